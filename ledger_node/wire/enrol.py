"""Enrolment: a new gateway asks its RA to register it, without its key leaving it.

`mlg-flash` writes a one-time enrolment code into the gateway's image and prints it for
the RA. At first boot the gateway makes its keys and publishes an `EnrolmentRequest`
(retained, on ``{prefix}/enrol/{site}/{gateway}``): its public keys, site and meters,
signed with its new Ed25519 key, and bound to the code by `proof`, an HMAC-SHA256 under
the code of what it asks for. The RA approves it with the code (`mlg-node enrol`), which
checks the proof and authors the site registration. The code itself never travels.

The request is self-signed: its signature is checked with the key it carries
(`open_enrolment`), so its body is parsed before the signature is checked (size-limited
first); what makes it trusted is the proof, which only a holder of the code can make.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import nacl.signing

from ledger_node.shared.ids import b64
from ledger_node.wire.envelope import parse, verify
from ledger_node.wire.errors import SchemaError
from ledger_node.wire.messages import Message, body_schema, open_body, register
from ledger_node.wire.registry import MAX_SITE_METERS
from ledger_node.wire.schema import B64, Id, Int, ListOf, Obj

MAX_ENROL_BYTES = 16 * 1024
"""An enrolment request is small: larger ones are refused before parsing."""
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32: no I, L, O or U to misread."""
CODE_CHARS = 16
"""80 bits: out of reach of an offline search over a published request."""


def new_code() -> str:
    """A fresh one-time enrolment code, as printed: ``XXXX-XXXX-XXXX-XXXX``."""
    chars = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(chars[i : i + 4] for i in range(0, CODE_CHARS, 4))


def normalise_code(text: str) -> str:
    """A code as typed (any case, dashes, spaces) in its canonical form; ValueError if it
    is no code."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != CODE_CHARS or any(c not in CODE_ALPHABET for c in code):
        raise ValueError(f"an enrolment code is {CODE_CHARS} characters of {CODE_ALPHABET}")
    return code


def code_digest(code: str) -> str:
    """What a node keeps of a used code (SHA-256, hex): enough to refuse it again."""
    return hashlib.sha256(b"mlg-enrol-code\0" + normalise_code(code).encode()).hexdigest()


def make_proof(code: str, gateway: str, site: str, ed25519: bytes, x25519: bytes) -> bytes:
    """HMAC-SHA256 under the code of the gateway, its site and its public keys."""
    msg = b"\0".join((b"mlg-enrol-v1", gateway.encode(), site.encode(), ed25519, x25519))
    return hmac.new(normalise_code(code).encode(), msg, hashlib.sha256).digest()


@register
@dataclass(frozen=True, slots=True)
class EnrolmentRequest(Message):
    """Gateway `by` of `site`, with `meters`, asks to be registered with its public keys;
    `t` is its clock (UTC s) when it asked; `proof` binds it to the enrolment code."""

    TYPE: ClassVar[str] = "enrol"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "by": Id(),
            "site": Id(),
            "meters": ListOf(Id(), max_len=MAX_SITE_METERS, min_len=1),
            "ed25519": B64(32, 32),
            "x25519": B64(32, 32),
            "t": Int(0),
            "proof": B64(32, 32),
        },
    )

    by: str
    site: str
    meters: tuple[str, ...]
    ed25519: bytes
    x25519: bytes
    t: int
    proof: bytes

    def proves(self, code: str) -> bool:
        """Whether `code` is the one this request was made with."""
        try:
            want = make_proof(code, self.by, self.site, self.ed25519, self.x25519)
        except ValueError:
            return False
        return hmac.compare_digest(want, self.proof)

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "site": self.site,
            "meters": list(self.meters),
            "ed25519": b64(self.ed25519),
            "x25519": b64(self.x25519),
            "t": self.t,
            "proof": b64(self.proof),
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(
            v["by"],
            v["site"],
            tuple(v["meters"]),
            v["ed25519"],
            v["x25519"],
            v["t"],
            v["proof"],
        )

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        if v["meters"] != sorted(set(v["meters"])):
            raise SchemaError("meters", "must be sorted and unique")


def open_enrolment(raw: bytes, max_bytes: int = MAX_ENROL_BYTES) -> EnrolmentRequest:
    """Size, envelope, body (schema, author), then the signature by the key it carries."""
    envelope = parse(raw, max_bytes)
    message = open_body(envelope, frozenset({EnrolmentRequest.TYPE}))
    assert isinstance(message, EnrolmentRequest)
    verify(envelope, {message.by: nacl.signing.VerifyKey(message.ed25519)})
    return message
