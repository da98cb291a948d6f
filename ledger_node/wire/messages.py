"""Body version 1: the registry of message types and `open_message`, the one way in.

Every message type is a frozen dataclass with `TYPE` (the body's ``type``), `AUTHOR` (the
body field naming who signed it), a `SCHEMA`, `to_body()` and `from_body()`. Modules
defining types decorate them with `@register`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import nacl.signing

from ledger_node.wire import canonical
from ledger_node.wire.envelope import MAX_ENVELOPE_BYTES, Envelope, parse, verify
from ledger_node.wire.errors import SchemaError, SignerMismatchError, UnknownVersionError
from ledger_node.wire.schema import Obj

BODY_VERSION = 1


class Message(Protocol):
    TYPE: ClassVar[str]
    AUTHOR: ClassVar[str]
    SCHEMA: ClassVar[Obj]

    @property
    def author(self) -> str: ...

    def to_body(self) -> bytes: ...

    @classmethod
    def from_body(cls, obj: dict[str, Any]) -> Message: ...


M = TypeVar("M", bound=type[Message])
TYPES: dict[str, type[Message]] = {}


def register(cls: M) -> M:
    """Class decorator: make a message type known to `open_message`."""
    if cls.TYPE in TYPES:
        raise ValueError(f"message type {cls.TYPE!r} registered twice")
    TYPES[cls.TYPE] = cls
    return cls


def check_version(obj: dict[str, Any]) -> None:
    """Raise `UnknownVersionError` unless the body's `v` is one this code speaks."""
    version = obj.get("v")
    if version != BODY_VERSION or type(version) is not int:
        raise UnknownVersionError(f"body version {version!r}; this code speaks {BODY_VERSION}")


def open_message(
    raw: bytes,
    keys: Mapping[str, nacl.signing.VerifyKey],
    max_bytes: int = MAX_ENVELOPE_BYTES,
    allowed: frozenset[str] | None = None,
) -> tuple[Envelope, Message]:
    """Size limit, envelope, signature, canonical body, version, type, author, schema.

    The signature is checked before the body is parsed, so unauthenticated bytes never
    reach the JSON parser. `allowed` restricts the types accepted (None: all registered).
    """
    envelope = parse(raw, max_bytes)
    verify(envelope, keys)
    return envelope, open_body(envelope, allowed)


def open_body(envelope: Envelope, allowed: frozenset[str] | None = None) -> Message:
    """Canonical body, version, type, author and schema of an envelope whose signature the
    caller has checked (`open_message` does both)."""
    obj = canonical.decode(envelope.body)
    check_version(obj)
    kind = obj.get("type")
    cls = TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None or (allowed is not None and kind not in allowed):
        raise SchemaError("type", f"{kind!r} is not an accepted message type here")
    if obj.get(cls.AUTHOR) != envelope.signer:
        raise SignerMismatchError(
            f"body {cls.AUTHOR}={obj.get(cls.AUTHOR)!r} but signed by {envelope.signer!r}"
        )
    return cls.from_body(obj)
