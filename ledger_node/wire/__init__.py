"""The meterledger protocol, shared by gateways and ledger nodes.

`envelope` frames and signs body bytes; `canonical` is the one body encoding; `schema`
validates; `messages` registers the body types and opens messages (`open_message`);
`readings`, `facts`, `registry`, `reports` (ledger facts), `hwm`, `checkpoints`, `sync`
and `enrol` (between nodes and gateways) define the types; `errors` names every reason
for rejection; `pedersen` commits to a reading's energy; `topics` builds and parses every
MQTT topic.

May import: `ledger_node.shared`, the standard library and PyNaCl.
"""

from ledger_node.wire.checkpoints import Checkpoint, Cosignature, SlotDigest
from ledger_node.wire.enrol import EnrolmentRequest, open_enrolment
from ledger_node.wire.envelope import (
    MAX_ENVELOPE_BYTES,
    Envelope,
    Verified,
    check_size,
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
from ledger_node.wire.facts import DrCommand, DrDeclaration, EpochKey, EpochShred, WrappedKey
from ledger_node.wire.hwm import HighWaterMark
from ledger_node.wire.messages import (
    BODY_VERSION,
    TYPES,
    Message,
    open_body,
    open_message,
    open_stored,
)
from ledger_node.wire.readings import (
    DEFAULT_SLOT_S,
    QUALITY_FLAGS,
    ControlAction,
    MeterCommitment,
    Reading,
    ReadingsBatch,
    SlotPayload,
)
from ledger_node.wire.registry import (
    GatewayKey,
    Genesis,
    Org,
    OrgAdd,
    OrgRemove,
    SiteMove,
    SiteRegistration,
)
from ledger_node.wire.reports import AsReport
from ledger_node.wire.sync import SyncEntry, SyncRequest, SyncResponse
from ledger_node.wire.topics import Topic, Topics

__all__ = [
    "BODY_VERSION",
    "DEFAULT_SLOT_S",
    "MAX_ENVELOPE_BYTES",
    "QUALITY_FLAGS",
    "TYPES",
    "AsReport",
    "BadSignatureError",
    "Checkpoint",
    "ControlAction",
    "Cosignature",
    "DrCommand",
    "DrDeclaration",
    "EnrolmentRequest",
    "Envelope",
    "EpochKey",
    "EpochShred",
    "GatewayKey",
    "Genesis",
    "HighWaterMark",
    "Message",
    "MeterCommitment",
    "NotCanonicalError",
    "Org",
    "OrgAdd",
    "OrgRemove",
    "OversizeError",
    "Reading",
    "ReadingsBatch",
    "SchemaError",
    "SignerMismatchError",
    "SiteMove",
    "SiteRegistration",
    "SlotDigest",
    "SlotPayload",
    "SyncEntry",
    "SyncRequest",
    "SyncResponse",
    "Topic",
    "Topics",
    "TruncatedError",
    "UnknownSignerError",
    "UnknownVersionError",
    "Verified",
    "WireError",
    "WrappedKey",
    "check_size",
    "open_body",
    "open_enrolment",
    "open_message",
    "open_stored",
    "parse",
    "seal",
    "txid_of",
    "verify",
]
