"""Pedersen commitments to integer energies on the Ed25519 prime-order group.

``C = v·G + r·H`` with `G` the standard base point and `H` a point nobody knows the
discrete log of (hashed to the curve from a public label). A commitment hides `v` (`r` is
uniformly random) and binds it. Commitments add: the sum of the commitments of a set of
readings opens to ``(V, R) = (Σv, Σr mod ℓ)``, so anyone can check a published total
against public commitments without seeing a single reading.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import nacl.bindings as sodium
import nacl.utils

POINT_BYTES = 32
SCALAR_BYTES = 32
IDENTITY = bytes([1]) + bytes(31)
"""The encoding of the group's neutral element."""

_H_LABEL = b"meterledger/pedersen/H/v1"
H = sodium.crypto_core_ed25519_from_uniform(hashlib.sha256(_H_LABEL).digest())
"""The second generator: hash-to-curve of a public label (nothing up the sleeve)."""

_ZERO = bytes(SCALAR_BYTES)


def scalar(value: int) -> bytes:
    """The 32-byte little-endian scalar for a non-negative integer, reduced mod ℓ."""
    if value < 0:
        raise ValueError(f"energy must be non-negative, got {value}")
    return sodium.crypto_core_ed25519_scalar_reduce(value.to_bytes(64, "little"))


def random_blinding() -> bytes:
    """A uniformly random scalar `r` (32 bytes)."""
    return sodium.crypto_core_ed25519_scalar_reduce(nacl.utils.random(64))


def _mul_base(s: bytes) -> bytes:
    # libsodium refuses to return the identity; zero times anything is the identity.
    return IDENTITY if s == _ZERO else sodium.crypto_scalarmult_ed25519_base_noclamp(s)


def _mul_h(s: bytes) -> bytes:
    return IDENTITY if s == _ZERO else sodium.crypto_scalarmult_ed25519_noclamp(s, H)


def commit(value_wh: int, blinding: bytes) -> bytes:
    """The commitment ``v·G + r·H`` to `value_wh` (integer Wh) with blinding scalar `r`."""
    if len(blinding) != SCALAR_BYTES:
        raise ValueError(f"blinding must be {SCALAR_BYTES} bytes, got {len(blinding)}")
    return sodium.crypto_core_ed25519_add(_mul_base(scalar(value_wh)), _mul_h(blinding))


def add_points(points: Iterable[bytes]) -> bytes:
    """The sum of commitments (the identity for none)."""
    total = IDENTITY
    for point in points:
        total = sodium.crypto_core_ed25519_add(total, point)
    return total


def add_scalars(scalars: Iterable[bytes]) -> bytes:
    """The sum of blinding scalars mod ℓ."""
    total = _ZERO
    for s in scalars:
        total = sodium.crypto_core_ed25519_scalar_add(total, s)
    return total


def check_total(commitments: Iterable[bytes], total_wh: int, total_blinding: bytes) -> bool:
    """True when the commitments sum to ``total_wh·G + total_blinding·H``."""
    expected = commit(total_wh, total_blinding)
    return hmac.compare_digest(add_points(commitments), expected)
