"""The gateway config: every listed key, and clear errors naming the key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config import BusConfig, ControlConfig, load_config
from gateway.config_file import MeterEntry, write_config
from gateway.errors import ConfigError, GatewayError
from gateway.run import Gateway
from ledger_node.shared.clock import SystemClock
from ledger_node.shared.keys import Identity
from ledger_node.shared.mqtt import MqttSettings
from tests.support.gateway import gateway_config, make_keys

TRUST_TSO_RA1_TWO_NODES = """
[trust]
tso = "keys/tso.key.pub"
ras = ["keys/ra1.key.pub"]

[confirm]
quorum = 2
[[confirm.node]]
public_key = "keys/tso.key.pub"
[[confirm.node]]
public_key = "keys/ac1.key.pub"
"""
"""Config tables trusting the TSO and ra1, confirming by the marks of tso and ac1."""

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


def _write(tmp_path: Path, extra: str = "", group_key: bool = True) -> Path:
    """A config with meters m1 (SDM120) and m2 (adapter), and `extra` TOML after them."""
    make_keys(tmp_path, "tso", "ra1", "ac1")
    meters = [MeterEntry("m1", 1), MeterEntry("m2", 2, "adapter")]
    path = gateway_config(tmp_path, 1883, {"rs485-0": "/dev/ttyUSB0"}, meters, group_key=group_key)
    path.write_text(path.read_text() + "\n" + extra)
    return path


def test_a_complete_config(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, FULL, group_key=False))
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
    # A meter behind current transformers: its own plausibility limit, else the model's.
    ct = '[[meter]]\nid = "m3"\nbus = "rs485-0"\nunit = 3\nmodel = "sdm630"\nmax_power_w = 7e5\n'
    cfg = load_config(_write(tmp_path, ct))
    assert (cfg.meter("m3").plausible_w, cfg.meter("m1").plausible_w) == (7e5, 11000)


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
        (
            '[[meter]]\nid = "m3"\nbus = "rs485-0"\nunit = 3\nmodel = "sdm630"\nmax_power_w = 0\n',
            "meter[2].max_power_w must be positive",
        ),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(_write(tmp_path, extra))


def test_the_group_key_file_is_only_for_a_gateway_without_a_tso(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"seal\.group_key is required"):
        load_config(_write(tmp_path, group_key=False))
    tso = '[trust]\ntso = "keys/tso.key.pub"\n'
    cfg = load_config(_write(tmp_path, tso, group_key=False))
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
        load_config(
            _write(tmp_path, '[trust]\ntso = "keys/tso.key.pub"\n' + control, group_key=False)
        )


def test_a_key_for_another_gateway_is_refused_at_start(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "keys" / "gw-site1.key").unlink()
    (tmp_path / "keys" / "gw-site1.key.pub").unlink()
    Identity.generate("gw-other").save(tmp_path / "keys" / "gw-site1.key")
    with pytest.raises(GatewayError, match="gw-other"):
        Gateway(load_config(path), SystemClock())


def test_the_written_config_reads_back_as_written(tmp_path: Path) -> None:
    """`write_config` with every option it takes, strings and paths with quotes,
    backslashes and control characters among them: `load_config` reads each value back."""
    make_keys(tmp_path, "tso", "ra1", "ac1")
    odd = 'st"a\\te\tü'
    mqtt = MqttSettings(
        host="broker.example.net",
        port=8883,
        client_id="c1",
        prefix="p/v1",
        keepalive_s=5,
        protocol="3.1.1",
        ca_file=Path("tls/ca.pem"),
        cert_file=Path("tls/client.pem"),
        key_file=Path("tls/client.key"),
        username='u"1',
        password="p\\w",
    )
    buses = [
        BusConfig(
            "rs485-0",
            port='/dev/tty"0\\',
            baud=19200,
            parity="E",
            stopbits=2,
            timeout_s=0.3,
            retries=2,
            retry_budget=5,
            unit_pause_s=0.005,
            reopen_after=3,
        ),
        BusConfig("tcp-0", host="10.0.0.7", tcp_port=5020),
    ]
    control = ControlConfig("m1", coil=None, register=7, on=2, off=3)
    path = write_config(
        tmp_path / "gateway.toml",
        gateway_id="gw-site1",
        site="site1",
        key_path=Path("keys/gw-site1.key"),
        state_dir=Path(odd),
        slot_seconds=30,
        mqtt=mqtt,
        buses=buses,
        meters=[MeterEntry("m1", 1, "adapter", poll_seconds=2.0), MeterEntry("m2", 2, bus="tcp-0")],
        tso=Path("keys/tso.key.pub"),
        ras=[Path("keys/ra1.key.pub")],
        confirm_nodes=[Path("keys/tso.key.pub"), Path("keys/ac1.key.pub")],
        quorum=2,
        outbox_max_bytes=8192,
        retry_s=5.0,
        unconfirmed_alarm_s=60.0,
        control=control,
    )
    cfg = load_config(path)
    assert (cfg.gateway_id, cfg.site, cfg.slot_seconds) == ("gw-site1", "site1", 30)
    assert (cfg.key_path, cfg.state_dir) == (tmp_path / "keys/gw-site1.key", tmp_path / odd)
    tls = {k: tmp_path / "tls" / f for k, f in (("ca_file", "ca.pem"), ("cert_file", "client.pem"))}
    assert cfg.mqtt == replace(mqtt, key_file=tmp_path / "tls/client.key", **tls)
    assert cfg.buses == tuple(buses)
    assert [(m.id, m.unit, m.model.name, m.bus, m.poll_seconds) for m in cfg.meters] == [
        ("m1", 1, "adapter", "rs485-0", 2.0),
        ("m2", 2, "sdm120", "tcp-0", 1.0),
    ]
    assert cfg.tso is not None and cfg.tso.name == "tso"
    assert [r.name for r in cfg.ras] == ["ra1"]
    assert [n.name for n in cfg.confirm_nodes] == ["tso", "ac1"] and cfg.quorum == 2
    assert (cfg.outbox_max_bytes, cfg.retry_s, cfg.unconfirmed_alarm_s) == (8192, 5.0, 60.0)
    assert cfg.control == control
    assert cfg.group_key_path is None


def test_the_example_config_is_a_valid_config(tmp_path: Path) -> None:
    """`gateway/config.example.toml`, every option's reference, loads as it stands (with
    the key files it names made here)."""
    example = Path(__file__).resolve().parents[2] / "gateway" / "config.example.toml"
    make_keys(tmp_path, "tso", "ra1")  # gw-site1's own and the parties' it trusts
    path = tmp_path / "gateway.toml"
    path.write_text(example.read_text())
    cfg = load_config(path)
    assert (cfg.gateway_id, cfg.site, cfg.slot_seconds) == ("gw-site1", "site1", 60)
    assert {b.name for b in cfg.buses} == {"rs485-0", "wisun-0"}
    assert {m.id for m in cfg.meters} == {"b1", "m1"}
    assert cfg.control is not None and cfg.plain is not None and cfg.metrics is not None
