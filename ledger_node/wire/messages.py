"""Body version 1: the base of every message type, its registry, and `open_message`, the
one way in.

Every message type is a frozen dataclass derived from `Message` with `TYPE` (the body's
``type``), `AUTHOR` (the body field naming who signed it), a `SCHEMA` made by
`body_schema`, and the hooks `_fields`, `_from_checked` and (where fields constrain each
other) `_check`; `Message` turns them into `author`, `to_body()` and `from_body()`.
Modules defining types decorate them with `@register`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

import nacl.signing

from ledger_node.shared.keys import Identity
from ledger_node.wire import canonical
from ledger_node.wire.envelope import MAX_ENVELOPE_BYTES, Envelope, parse, seal, verify
from ledger_node.wire.errors import SchemaError, SignerMismatchError, UnknownVersionError
from ledger_node.wire.schema import Const, Field, Obj

BODY_VERSION = 1


def body_schema(kind: str, fields: Mapping[str, Field]) -> Obj:
    """The schema of a body of type `kind`: ``v``, ``type``, then `fields` in their order."""
    return Obj({"v": Const(BODY_VERSION), "type": Const(kind), **fields})


class Message:
    """A message type's body mechanics, from its hooks (subclasses are frozen dataclasses).

    `to_body` and `from_body` both run the schema, then `_check`, so what one encodes the
    other accepts; a rule checked on the way in only belongs in `_from_checked`.
    """

    __slots__ = ()

    TYPE: ClassVar[str]
    AUTHOR: ClassVar[str] = "by"
    """The body field naming the signer; the attribute of that name holds it (a type whose
    attribute is named otherwise overrides `author`)."""
    SCHEMA: ClassVar[Obj]

    @property
    def author(self) -> str:
        """Who must have signed the message (the value of its `AUTHOR` field)."""
        author: str = getattr(self, self.AUTHOR)
        return author

    def to_body(self) -> bytes:
        """Canonical body bytes, validated against the schema and `_check` first."""
        obj = self._fields()
        obj["v"] = BODY_VERSION
        obj["type"] = self.TYPE
        self._check(self.SCHEMA.check(obj, ""))
        return canonical.encode(obj)

    def seal(self, identity: Identity) -> bytes:
        """The envelope of this message's body, signed by `identity` (its author)."""
        return seal(self.to_body(), identity.name, identity.signing_key)

    @classmethod
    def from_body(cls, obj: dict[str, Any]) -> Self:
        """Validate a decoded body (version, schema, `_check`) and build the message."""
        check_version(obj)
        v = cls.SCHEMA.check(obj, "")
        cls._check(v)
        return cls._from_checked(v)

    def _fields(self) -> dict[str, Any]:
        """The body's fields besides ``v`` and ``type``, as JSON values."""
        raise NotImplementedError

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        """The message of a body that passed the schema (bytes decoded) and `_check`."""
        raise NotImplementedError

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        """Rules across fields the schema cannot state; raise `SchemaError` naming the field."""


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


def open_stored(raw: bytes) -> Message:
    """A message from an envelope this node stored after checking it when it arrived: its
    body opened again, its signature not checked twice (any size: it was checked then)."""
    return open_body(parse(raw, max(len(raw), 1)))
