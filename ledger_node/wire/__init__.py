"""The meterledger wire format, shared by gateways and ledger nodes.

`envelope` frames and signs body bytes; `canonical` is the one body encoding; `schema`
validates; `messages` registers the body types and opens messages (`open_message`);
`readings`, `facts` and `hwm` define the types; `errors` names every reason for rejection.
"""

from ledger_node.wire.envelope import (
    MAX_ENVELOPE_BYTES,
    Envelope,
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
from ledger_node.wire.facts import DrCommand, DrDeclaration, EpochKey, WrappedKey
from ledger_node.wire.hwm import HighWaterMark
from ledger_node.wire.messages import BODY_VERSION, TYPES, Message, open_message
from ledger_node.wire.readings import (
    QUALITY_FLAGS,
    ControlAction,
    MeterCommitment,
    Reading,
    ReadingsBatch,
    SlotPayload,
)

__all__ = [
    "BODY_VERSION",
    "MAX_ENVELOPE_BYTES",
    "QUALITY_FLAGS",
    "TYPES",
    "BadSignatureError",
    "ControlAction",
    "DrCommand",
    "DrDeclaration",
    "Envelope",
    "EpochKey",
    "HighWaterMark",
    "Message",
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
    "WrappedKey",
    "open_message",
    "parse",
    "seal",
    "txid_of",
    "verify",
]
