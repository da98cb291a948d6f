"""The signed envelope: the body bytes exactly as sent, the signer's id, an Ed25519 signature.

Layout (all integers big-endian)::

    magic  "ML"          2 bytes
    version              1 byte   (ENVELOPE_VERSION)
    signer length n      1 byte   (1..63)
    signer id            n bytes  ASCII, see `schema.ID_PATTERN`
    body length m        4 bytes
    body                 m bytes  canonical JSON (see `canonical`)
    signature            64 bytes Ed25519 over the body bytes

Verification is over the bytes received, never over a re-serialisation. The transaction id
is the SHA-256 of the whole envelope. The size limit is checked before anything is parsed.
`verify` returns a `Verified` record naming the key it checked with, so that the check can
run elsewhere (another thread, another process) and the writer re-checks only that the key
is still the signer's.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from ledger_node.shared.ids import ID_PATTERN
from ledger_node.wire.errors import (
    BadSignatureError,
    OversizeError,
    TruncatedError,
    UnknownSignerError,
    UnknownVersionError,
    WireError,
)

MAGIC = b"ML"
ENVELOPE_VERSION = 1
SIGNATURE_BYTES = 64
MAX_ENVELOPE_BYTES = 64 * 1024
"""Default limit on one envelope, in bytes: a batch of 256 meters fits with room to spare."""

_HEADER = struct.Struct(">2sBB")
_BODY_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed envelope; `raw` is the exact bytes it was parsed from."""

    signer: str
    body: bytes
    signature: bytes
    raw: bytes

    @property
    def txid(self) -> bytes:
        """SHA-256 of the envelope bytes (32 bytes)."""
        return hashlib.sha256(self.raw).digest()


@dataclass(frozen=True, slots=True)
class Verified:
    """An envelope whose signature was checked with `key`, the signer's Ed25519 public key
    (32 bytes) at the time of the check."""

    envelope: Envelope
    key: bytes


def txid_of(raw: bytes) -> bytes:
    """The transaction id of envelope bytes `raw`."""
    return hashlib.sha256(raw).digest()


def seal(body: bytes, signer: str, key: nacl.signing.SigningKey) -> bytes:
    """Sign `body` as `signer` and return the envelope bytes."""
    if not ID_PATTERN.fullmatch(signer):
        raise ValueError(f"signer id {signer!r} does not match {ID_PATTERN.pattern}")
    signature = key.sign(body).signature
    signer_bytes = signer.encode("ascii")
    return b"".join(
        (
            _HEADER.pack(MAGIC, ENVELOPE_VERSION, len(signer_bytes)),
            signer_bytes,
            _BODY_LEN.pack(len(body)),
            body,
            signature,
        )
    )


def parse(raw: bytes, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    """Split envelope bytes into their parts; checks structure only, not the signature."""
    check_size(raw, max_bytes)
    if len(raw) < _HEADER.size:
        raise TruncatedError(f"envelope of {len(raw)} bytes is shorter than its header")
    magic, version, signer_len = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise WireError(f"not a meterledger envelope (magic {magic!r})")
    if version != ENVELOPE_VERSION:
        raise UnknownVersionError(
            f"envelope version {version}; this node speaks {ENVELOPE_VERSION}"
        )
    pos = _HEADER.size
    signer_bytes = raw[pos : pos + signer_len]
    pos += signer_len
    if len(raw) < pos + _BODY_LEN.size:
        raise TruncatedError("envelope ends inside the signer id or body length")
    try:
        signer = signer_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise WireError("signer id is not ASCII") from None
    if not ID_PATTERN.fullmatch(signer):
        raise WireError(f"signer id {signer!r} does not match {ID_PATTERN.pattern}")
    (body_len,) = _BODY_LEN.unpack_from(raw, pos)
    pos += _BODY_LEN.size
    end = pos + body_len + SIGNATURE_BYTES
    if len(raw) != end:
        raise TruncatedError(f"envelope declares {end} bytes in all but has {len(raw)}")
    return Envelope(
        signer=signer,
        body=raw[pos : pos + body_len],
        signature=raw[end - SIGNATURE_BYTES :],
        raw=raw,
    )


def check_size(raw: bytes, max_bytes: int) -> None:
    """Raise `OversizeError` if envelope bytes `raw` exceed `max_bytes`."""
    if len(raw) > max_bytes:
        raise OversizeError(f"envelope of {len(raw)} bytes exceeds the limit of {max_bytes}")


def verify(envelope: Envelope, keys: Mapping[str, nacl.signing.VerifyKey]) -> Verified:
    """Check the signature against the signer's registered key; raise if it fails."""
    key = keys.get(envelope.signer)
    if key is None:
        raise UnknownSignerError(f"no public key registered for signer {envelope.signer!r}")
    try:
        key.verify(envelope.body, envelope.signature)
    except nacl.exceptions.BadSignatureError:
        raise BadSignatureError(
            f"signature of {envelope.signer!r} does not verify over the body"
        ) from None
    return Verified(envelope, bytes(key))
