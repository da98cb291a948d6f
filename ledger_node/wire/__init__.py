"""The meterledger wire format, shared by gateways and ledger nodes.

`envelope` frames and signs body bytes; `canonical` is the one body encoding; `schema`
validates; `messages` defines the body types; `errors` names every reason for rejection.
"""

from ledger_node.wire.envelope import (
    MAX_ENVELOPE_BYTES,
    Envelope,
    open_signed,
    parse,
    seal,
    txid_of,
    verify,
)
from ledger_node.wire.errors import (
    BadSignatureError,
    NotCanonicalError,
    OversizeError,
    SchemaError,
    SignerMismatchError,
    TruncatedError,
    UnknownSignerError,
    UnknownVersionError,
    WireError,
)
from ledger_node.wire.messages import (
    BODY_VERSION,
    QUALITY_FLAGS,
    MeterCommitment,
    Reading,
    ReadingsBatch,
    SlotPayload,
)

__all__ = [
    "BODY_VERSION",
    "MAX_ENVELOPE_BYTES",
    "QUALITY_FLAGS",
    "BadSignatureError",
    "Envelope",
    "MeterCommitment",
    "NotCanonicalError",
    "OversizeError",
    "Reading",
    "ReadingsBatch",
    "SchemaError",
    "SignerMismatchError",
    "SlotPayload",
    "TruncatedError",
    "UnknownSignerError",
    "UnknownVersionError",
    "WireError",
    "open_signed",
    "parse",
    "seal",
    "txid_of",
    "verify",
]
