"""What gateways, emulators and ledger nodes share: the bottom layer.

`errors` (the root exception of every meterledger error), `ids` (identifiers and the
base64 text of bytes), `clock` (injectable clocks, UTC seconds), `keys` (identities and
secret key files, mode 0600), `config` (reading TOML with errors that name the key),
`mqtt` (broker settings and the paho client) and `cli` (what every command line shares).

May import: the standard library, PyNaCl and paho-mqtt; nothing else of ours.
"""

from ledger_node.shared.clock import Clock, FixedClock, ScaledClock, SystemClock, make_clock
from ledger_node.shared.config import Section, load_toml
from ledger_node.shared.errors import ConfigError, KeyFileError, MeterledgerError
from ledger_node.shared.ids import ID_PATTERN, b64
from ledger_node.shared.keys import GroupKey, Identity, PublicIdentity, load_public
from ledger_node.shared.mqtt import MqttSettings, make_client

__all__ = [
    "ID_PATTERN",
    "Clock",
    "ConfigError",
    "FixedClock",
    "GroupKey",
    "Identity",
    "KeyFileError",
    "MeterledgerError",
    "MqttSettings",
    "PublicIdentity",
    "ScaledClock",
    "Section",
    "SystemClock",
    "b64",
    "load_public",
    "load_toml",
    "make_client",
    "make_clock",
]
