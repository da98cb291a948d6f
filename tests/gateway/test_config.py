"""The gateway config: every listed key, and clear errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError, GatewayError
from gateway.run import Gateway
from ledger_node.shared.clock import SystemClock
from ledger_node.shared.keys import Identity
from tests.support.gateway import TRUST_TSO_RA1_TWO_NODES, MeterSpec, gateway_config, make_keys

FULL = (
    TRUST_TSO_RA1_TWO_NODES
    + """
[outbox]
path = "elsewhere/outbox.sqlite"
max_bytes = 1048576
retry_s = 5

[[bus]]
name = "tcp-0"
host = "10.0.0.7"
port = 5020

[[meter]]
id = "x1"
bus = "tcp-0"
unit = 4
model = "acme-x1"

[[model]]
model = "acme-x1"
max_power_w = 20000
table = "holding"
registers = [
  { name = "import_energy", address = 0, words = 2, type = "uint32", scale = 10, unit = "Wh" },
]

[control]
meter = "m2"
"""
)


def _write(tmp_path: Path, extra: str = "", **kw: object) -> Path:
    make_keys(tmp_path, "tso", "ra1", "ac1")
    meters = [MeterSpec("m1", 1), MeterSpec("m2", 2, "adapter")]
    return gateway_config(tmp_path, 1883, {"rs485-0": "/dev/ttyUSB0"}, meters, extra=extra, **kw)  # type: ignore[arg-type]


def test_a_complete_config(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, FULL, seal=""))
    assert cfg.tso is not None and cfg.tso.name == "tso"
    assert [r.name for r in cfg.ras] == ["ra1"]
    assert [n.name for n in cfg.confirm_nodes] == ["tso", "ac1"] and cfg.quorum == 2
    assert (cfg.outbox_max_bytes, cfg.retry_s) == (1048576, 5.0)
    tcp = cfg.bus("tcp-0")
    assert (tcp.host, tcp.tcp_port) == ("10.0.0.7", 5020)
    x1 = cfg.meter("x1")
    assert x1.model.table == "holding" and x1.model.register("import_energy").scale == 10
    assert cfg.control is not None and cfg.control.coil == 0  # the adapter's DR coil
    assert cfg.db_path == tmp_path / "elsewhere" / "outbox.sqlite"
    assert load_config(_write(tmp_path)).db_path == tmp_path / "state" / "state.sqlite"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[outbox]\nmax_bytes = 10\n", "outbox.max_bytes"),
        ("[outbox]\nmax_byte = 100000\n", "unknown key outbox.max_byte"),
        (
            '[confirm]\nquorum = 2\n[[confirm.node]]\npublic_key = "keys/tso.key.pub"\n',
            "confirm.quorum",
        ),
        ('[trust]\ntso = "keys/nobody.pub"\n', "trust.tso"),
        ('[control]\nmeter = "m1"\n', "has no dr_coil"),
        ('[control]\nmeter = "m9"\n', "control.meter"),
        (
            '[[model]]\nmodel = "y"\nmax_power_w = 1\n'
            'registers = [{ name = "e", address = 0, words = 2, type = "float64" }]\n',
            "unknown type",
        ),
        (
            '[[model]]\nmodel = "y"\nmax_power_w = 1\nregister = []\n',
            "model[0]: unknown key 'register'",
        ),
        (
            '[[meter]]\nid = "m3"\nbus = "rs485-0"\nunit = 1\nmodel = "sdm120"\n',
            "same bus and unit",
        ),
        (
            '[[meter]]\nid = "m3"\nbus = "rs485-0"\nunit = 3\nmodel = "nope"\n',
            "meter[2].model: unknown meter model 'nope'",
        ),
        (
            '[[meter]]\nid = "m3"\nbus = "rs485-0"\nunit = 3\nmodel = "sdm120"\npoll_seconds = 0\n',
            "meter[2].poll_seconds",
        ),
        ('[[bus]]\nname = "b2"\nport = "/dev/x"\nbaud = 1234\n', "bus[1].baud"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(_write(tmp_path, extra))


def test_the_group_key_file_is_only_for_a_gateway_without_a_tso(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"seal\.group_key is required"):
        load_config(_write(tmp_path, seal=""))
    tso = '[trust]\ntso = "keys/tso.key.pub"\n'
    cfg = load_config(_write(tmp_path, tso, seal=""))
    assert cfg.group_key_path is None
    # With a TSO, batches sealed with the file's key would be unreadable on the ledger.
    with pytest.raises(ConfigError, match=r"seal\.group_key cannot be used with \[trust\] tso"):
        load_config(_write(tmp_path, tso))


def test_dr_control_needs_the_tso_and_the_ras_it_takes_orders_from(tmp_path: Path) -> None:
    control = '[control]\nmeter = "m2"\n'
    needs = r"\[control\] needs trust\.tso .* and trust\.ras"
    with pytest.raises(ConfigError, match=needs):
        load_config(_write(tmp_path, control))
    with pytest.raises(ConfigError, match=needs):
        load_config(_write(tmp_path, '[trust]\ntso = "keys/tso.key.pub"\n' + control, seal=""))


def test_a_key_for_another_gateway_is_refused_at_start(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "keys" / "gw-site1.key").unlink()
    (tmp_path / "keys" / "gw-site1.key.pub").unlink()
    Identity.generate("gw-other").save(tmp_path / "keys" / "gw-site1.key")
    with pytest.raises(GatewayError, match="gw-other"):
        Gateway(load_config(path), SystemClock())
