"""Why a message was rejected: one exception type per reason, all under `WireError`.

Each class has a short, stable `reason` used as the counter label in logs and status.
"""

from __future__ import annotations

from ledger_node.shared.errors import MeterledgerError


class WireError(MeterledgerError):
    """A message that is not a valid meterledger transaction."""

    reason = "malformed"


class OversizeError(WireError):
    """More bytes than the limit; rejected before any parsing."""

    reason = "oversize"


class TruncatedError(WireError):
    """The envelope ends before its declared parts, or has bytes after them."""

    reason = "truncated"


class UnknownVersionError(WireError):
    """An envelope or body version this code does not speak."""

    reason = "unknown_version"


class NotCanonicalError(WireError):
    """The body is JSON but not in the one canonical encoding (see `canonical`)."""

    reason = "not_canonical"


class SchemaError(WireError):
    """A field is missing, unknown, of the wrong type, or out of range.

    `path` names the field, e.g. ``meters[3].commit``.
    """

    reason = "schema"

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem

    def under(self, outer: str) -> SchemaError:
        """The same error, for a field inside the value at path `outer`."""
        if not self.path:
            path = outer
        elif not outer or self.path.startswith("["):
            path = outer + self.path
        else:
            path = f"{outer}.{self.path}"
        return SchemaError(path, self.problem)


class UnknownSignerError(WireError):
    """The signer id has no registered public key."""

    reason = "unknown_signer"


class SignerMismatchError(WireError):
    """The envelope's signer is not the author the body names."""

    reason = "signer_mismatch"


class BadSignatureError(WireError):
    """The Ed25519 signature does not verify over the body bytes with the signer's key."""

    reason = "bad_signature"
