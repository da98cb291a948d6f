"""What the gateway takes from the ledger over a real Mosquitto: signed high-water marks
(confirmation by a quorum of nodes), the TSO's epoch keys, and DR commands with the RAs'
declarations, which switch a real Modbus coil on a pseudo-terminal for the window and
are recorded in the sealed batches. Forged, misaddressed, late and oversized messages are
refused, counted, and change nothing."""

from __future__ import annotations

import math
import re
import time
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware.emulator.dr import ControlledLoad
from firmware.emulator.profiles import Constant
from firmware.emulator.s0 import EmulatedAdapter
from firmware.modbus_rtu import Slave
from gateway.config import ControlConfig, load_config
from gateway.config_file import MeterEntry
from gateway.status import collect, render
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.clock import ScaledClock
from ledger_node.shared.keys import GroupKey, Identity
from ledger_node.wire import DrCommand, DrDeclaration, EpochKey, HighWaterMark
from ledger_node.wire.readings import MAX_SEQ_GAP
from tests.gateway.conftest import epoch_key
from tests.support.gateway import (
    GATEWAY,
    SITE,
    Collector,
    DeviceServer,
    InProcessGateway,
    gateway_config,
    make_keys,
    public_key,
)
from tests.support.sim import sign

pytestmark = pytest.mark.slow
SLOT_S = 10
SPEED = 10.0
EPOCH_TOPIC = "mlg/v1/facts/epoch_key/tso/site1/{}"


class Adapter(EmulatedAdapter):
    """The adapter firmware itself (DR relay on coil 0) counting S0 pulses of a 3.6 kW
    load; records each switch of its relay."""

    def __init__(self, clock: ScaledClock, flash: Path) -> None:
        anchor = math.floor(clock.now() / SLOT_S) * SLOT_S
        self.switches: list[tuple[float, int]] = []
        super().__init__(ControlledLoad(Constant(3600.0)), clock, anchor, flash, 500_000.0)

    def _switch(self, on: bool) -> None:
        self.switches.append((self.clock.now(), int(on)))
        super()._switch(on)


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


def _epoch_key(ids: dict[str, Identity], epoch: int, key: bytes) -> EpochKey:
    """The site's epoch `epoch`, for AC(1), RA(1), the TSO and the gateway."""
    return epoch_key(SITE, epoch, key, [ids[m] for m in ("ac1", "ra1", "tso")], ids[GATEWAY])


def _status_text(config: Path) -> str:
    """What `mlg-gateway status` prints."""
    return render(collect(load_config(config)))


@contextmanager
def _site(tmp_path: Path, broker: Broker, key_first: bool):  # type: ignore[no-untyped-def]
    """The adapter on a pseudo-terminal, a collector acting as the TSO's node, and the
    gateway trusting the TSO and ra1; with `key_first`, the TSO's epoch 0 key (the
    collector's) is on the broker before the gateway starts."""
    keys = make_keys(tmp_path, "tso", "ac1", "ra1", "ra2")
    clock = ScaledClock(SPEED, time.time())
    adapter = Adapter(clock, tmp_path / "flash")
    server = DeviceServer([Slave(1, adapter)], tmp_path / "bus")
    config = gateway_config(
        tmp_path,
        broker.port,
        {"rs485-0": str(tmp_path / "bus")},
        [MeterEntry("m1", 1, "adapter")],
        SLOT_S,
        group_key=False,
        tso=public_key("tso"),
        ras=[public_key("ra1")],
        confirm_nodes=[public_key("tso"), public_key("ac1")],
        quorum=2,
        retry_s=1,
        control=ControlConfig("m1", coil=None, register=None),
    )
    ids = {n: Identity.load(keys / f"{n}.key") for n in ("tso", "ac1", "ra1", "ra2", GATEWAY)}
    collector = Collector(broker.port, keys, node=ids["tso"], clock=clock)
    if key_first:
        key0 = _epoch_key(ids, 0, collector.group_keys[0].key)
        _publish(broker.port, [(EPOCH_TOPIC.format(0), sign(ids["tso"], key0))])
    gateway = InProcessGateway(config, clock)
    try:
        yield gateway, config, collector, ids, clock, adapter
    finally:
        gateway.stop()
        collector.close()
        server.close()


@pytest.fixture
def site(tmp_path: Path, broker: Broker):  # type: ignore[no-untyped-def]
    with _site(tmp_path, broker, key_first=True) as (gateway, _, collector, ids, clock, adapter):
        yield gateway.gateway, collector, ids, clock, adapter, broker


def test_marks_confirm_at_quorum_and_bad_marks_are_refused(site) -> None:  # type: ignore[no-untyped-def]
    gw, collector, ids, clock, _, broker = site
    wait_until(lambda: len(collector.seqs()) >= 3, 60, "three batches")
    time.sleep(1.0)
    # Only the TSO's marks so far (the collector publishes them): one of a quorum of two.
    assert gw.outbox.stats().last_confirmed_seq is None
    assert gw.confirmations.marks["tso"].next >= 3
    stranger = Identity.generate("ac1")  # right name, wrong key
    good = HighWaterMark("ac1", GATEWAY, 2, (), int(clock.now()))
    other_gw = HighWaterMark("ac1", "gw-other", 2, (), int(clock.now()))
    # A node the gateway does not count on (ra1 runs one too) publishes its mark: the
    # gateway does not subscribe to it, so it is nothing to refuse.
    ra1_mark = HighWaterMark("ra1", GATEWAY, 2, (), int(clock.now()))
    _publish(
        broker.port,
        [
            (f"mlg/v1/hwm/ra1/{GATEWAY}", sign(ids["ra1"], ra1_mark)),
            (f"mlg/v1/hwm/ac1/{GATEWAY}", sign(stranger, good)),
            (f"mlg/v1/hwm/tso/{GATEWAY}", sign(ids["ac1"], good)),
            (f"mlg/v1/hwm/ac1/{GATEWAY}", sign(ids["ac1"], other_gw)),
            (f"mlg/v1/hwm/ac1/{GATEWAY}", b"\x00not an envelope"),
            # Over the limit by a little: delivered, then refused unparsed. Over the MQTT
            # maximum packet size the gateway announced: the broker does not even send it.
            (f"mlg/v1/hwm/ac1/{GATEWAY}", b"ML\x01" + bytes(65_536)),
            (f"mlg/v1/hwm/ac1/{GATEWAY}", b"ML\x01" + bytes(200_000)),
        ],
    )
    wait_until(lambda: sum(gw.trust.refused.values()) >= 5, 30, "five refusals")
    assert dict(gw.trust.refused) == {
        "bad_signature": 1,
        "wrong_topic": 1,
        "not_for_us": 1,
        "malformed": 1,
        "oversize": 1,
    }
    assert gw.outbox.stats().last_confirmed_seq is None  # none of them counted
    _publish(broker.port, [(f"mlg/v1/hwm/ac1/{GATEWAY}", sign(ids["ac1"], good))])
    wait_until(lambda: gw.outbox.stats().last_confirmed_seq == 1, 30, "seqs 0 and 1 confirmed")
    pending = [p.seq for p in gw.outbox.pending()]
    assert pending and min(pending) == 2  # the rest waits for the second node
    # A node that has seen seq 999: our state must be an old backup; never sign below it.
    ahead = HighWaterMark("ac1", GATEWAY, 1000, (), int(clock.now()) + 1)
    _publish(broker.port, [(f"mlg/v1/hwm/ac1/{GATEWAY}", sign(ids["ac1"], ahead))])
    wait_until(lambda: gw.outbox.stats().next_seq >= 1000, 30, "the seq to move past 999")
    wait_until(lambda: max(collector.seqs()) >= 1000, 30, "a batch with seq 1000")
    # A mark far beyond any backup (a corrupt or forged batch the node logged): not adopted,
    # an alarm instead, and the gateway goes on sealing at its own seqs.
    wild = HighWaterMark("ac1", GATEWAY, 2**53 - 1, (), int(clock.now()) + 2)
    _publish(broker.port, [(f"mlg/v1/hwm/ac1/{GATEWAY}", sign(ids["ac1"], wild))])
    wait_until(lambda: "seq_jump" in gw.alarms, 30, "the seq_jump alarm")
    assert gw.outbox.stats().next_seq < 1000 + MAX_SEQ_GAP
    last = max(collector.seqs())
    wait_until(lambda: max(collector.seqs()) > last, 30, "another batch at the gateway's own seq")
    assert max(collector.seqs()) < 1000 + MAX_SEQ_GAP


def test_slots_before_the_first_epoch_key_are_held_durably_then_sealed(
    tmp_path: Path, broker: Broker
) -> None:
    """No key yet: nothing is sealed or published, the slots are stored (they survive a
    restart); the TSO's key comes: every held slot is sealed with it, in order, once."""
    with _site(tmp_path, broker, key_first=False) as (first, config, collector, ids, clock, _):
        gw = first.gateway
        wait_until(lambda: gw.outbox.stats().waiting_for_key >= 2, 60, "two held slots")
        assert "no_epoch_key" in gw.alarms
        assert gw.outbox.stats().next_seq == 0 and collector.seqs() == []
        first.stop()
        # A restart before the key: the held slots are still there, and polling goes on.
        second = InProcessGateway(config, clock)
        try:
            gw = second.gateway
            held = {(e.slot_start, e.meter): e.wh for e in gw.outbox.held()}
            assert len({slot for slot, _ in held}) >= 2
            wait_until(lambda: gw.outbox.stats().waiting_for_key > len(held), 60, "another slot")
            wait_until(lambda: "ALARM: no_epoch_key" in _status_text(config), 10, "the alarm")
            assert re.search(r"\nheld: [1-9]\d* slots stored unsealed", _status_text(config))
            key5 = GroupKey.generate(SITE, 5)
            collector.group_keys[5] = key5
            forged = _epoch_key(ids, 6, bytes(32))
            _publish(
                broker.port,
                [
                    (EPOCH_TOPIC.format(5), sign(ids["tso"], _epoch_key(ids, 5, key5.key))),
                    (EPOCH_TOPIC.format(6), sign(ids["ra1"], forged)),
                ],
            )
            wait_until(lambda: gw.outbox.stats().waiting_for_key == 0, 30, "the held slots sealed")
            first_slot = min(slot for slot, _ in held)
            wait_until(
                lambda: len(collector.seqs()) >= 4, 60, "the held slots and a live one published"
            )
            readings = collector.readings()
            slots = sorted(slot for meter, slot in readings if meter == "m1")
            # Every slot from the first held one on, each once: none lost, none invented.
            assert slots == list(range(first_slot, slots[-1] + SLOT_S, SLOT_S))
            assert all(len(v) == 1 for v in readings.values())
            for (slot, meter), wh in held.items():
                assert readings[(meter, slot)][0][1] == wh  # sealed as they were stored
            assert {r.batch.epoch for r in collector.batches.values()} == {5}
            assert collector.seqs() == list(range(len(collector.seqs())))
            assert "no_epoch_key" not in gw.alarms
            assert gw.trust.refused["unknown_signer"] == 1  # only the TSO hands out keys
            with gw.db.lock:
                kept = gw.db.conn.execute("SELECT epoch FROM epoch_keys").fetchall()
            assert kept == [(5,)]  # kept for a restart without a broker
        finally:
            second.stop()


def test_a_declared_dr_window_switches_the_coil_and_is_recorded(site) -> None:  # type: ignore[no-untyped-def]
    gw, collector, ids, clock, adapter, broker = site
    wait_until(lambda: len(collector.seqs()) >= 1, 60, "a first batch")
    now = clock.now()
    start = (math.floor(now / SLOT_S) + 3) * SLOT_S
    end = start + 2 * SLOT_S
    cmd = DrCommand("tso", "cmd1", start, end, SLOT_S, start - SLOT_S, 20, (("ac1", 500),))
    late_cmd = DrCommand("tso", "cmd2", start, end, SLOT_S, int(now) - 1, 20, (("ac1", 500),))
    decl = DrDeclaration("ra1", "cmd1", 1, ((SITE, (100,)),))
    unknown_ra = DrDeclaration("ra2", "cmd1", 1, ((SITE, (100,)),))
    late = DrDeclaration("ra1", "cmd2", 1, ((SITE, (100,)),))
    _publish(
        broker.port,
        [
            ("mlg/v1/facts/dr_command/tso/cmd1", sign(ids["tso"], cmd)),
            ("mlg/v1/facts/dr_command/tso/cmd2", sign(ids["tso"], late_cmd)),
            ("mlg/v1/facts/dr_declaration/ra1/cmd1", sign(ids["ra1"], decl)),
            # Another RA's declarations are not even subscribed to; one under ra1's name is
            # refused.
            ("mlg/v1/facts/dr_declaration/ra2/cmd1", sign(ids["ra2"], unknown_ra)),
            ("mlg/v1/facts/dr_declaration/ra1/cmd9", sign(ids["ra2"], unknown_ra)),
            ("mlg/v1/facts/dr_declaration/ra1/cmd2", sign(ids["ra1"], late)),
        ],
    )
    wait_until(lambda: len(adapter.switches) >= 2, 90, "the coil switched on and off")
    (on_t, on), (off_t, off) = adapter.switches[:2]
    assert (on, off) == (1, 0)
    assert start <= on_t < start + SLOT_S / 2 and end <= off_t < end + SLOT_S / 2
    assert gw.trust.refused["unknown_signer"] == 1 and gw.trust.refused["late"] == 1
    assert [w.command for w in gw.plan.windows()] == ["cmd1"]

    def actions() -> list[tuple[int, str, int, bool]]:
        return [
            (r.batch.slot_start, a.command, a.state, a.ok)
            for r in collector.batches.values()
            for a in r.payload.control
        ]

    wait_until(lambda: len(actions()) >= 2, 60, "the actions in sealed batches")
    assert sorted(actions()) == [(start, "cmd1", 1, True), (end, "cmd1", 0, True)]
