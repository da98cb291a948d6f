"""The gateway daemon: pollers feed samples; closed slots are sealed, stored, published.

One thread per bus polls (`poll.py`); this thread turns samples into slot energies
(`slots.py`), seals a slot's batch once every meter has reported it (or half a slot after
it ended), stores it in the outbox with the meter states it reports, and hands the outbox
to the publisher, and carries out DR switches. paho's thread takes in marks and facts.
Once a second: publish what is due, check alarms, write `status.json`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from typing import Any

from gateway import enrol
from gateway.alarms import Alarms
from gateway.broute.credentials import load_credentials
from gateway.broute.poll import FIXED_SLOT_S, BroutePoller, broute_alarms
from gateway.config import ENERGY_REGISTER, BusConfig, GatewayConfig
from gateway.confirm import Confirmations
from gateway.control import Controller
from gateway.db import Database
from gateway.errors import GatewayError
from gateway.facts import DrPlan, EpochKeys
from gateway.metrics import heartbeat_fields, samples
from gateway.outbox import Outbox
from gateway.plain.view import PlainView
from gateway.poll import BusPoller
from gateway.publish import Publisher
from gateway.seal import Sealer
from gateway.sealing import SealingLine
from gateway.slots import MeterSlots, Sample
from gateway.status import write_status
from gateway.timegate import TimeGate
from gateway.timekeeping import DisciplinedClock
from gateway.trust import Trust
from ledger_node.shared.clock import Clock
from ledger_node.shared.keys import Identity
from ledger_node.shared.metrics import MetricsServer, serve
from ledger_node.wire import Checkpoint, DrCommand, DrDeclaration, EpochKey, EpochShred
from ledger_node.wire.readings import MAX_SEQ_GAP
from ledger_node.wire.topics import Topics

log = logging.getLogger("mlg.gateway")

BACKLOG_S = 3.0
"""Real seconds after a (re)connection in which signed times are taken for queued ones."""
TICK_S = 1.0
"""Real seconds between sweeps: publish, alarms, status file."""
STATUS_EVERY_S = 10.0
"""Real seconds between status messages on the gateway's status topic."""


class Gateway:
    def __init__(self, cfg: GatewayConfig, system_clock: Clock) -> None:
        self.cfg = cfg
        quorum = max(1, min(cfg.quorum, len(cfg.confirm_nodes)))
        self.clock = clock = DisciplinedClock(system_clock, cfg.max_clock_skew_s, quorum=quorum)
        identity = Identity.load(cfg.key_path)
        if identity.name != cfg.gateway_id:
            raise GatewayError(
                f"key {cfg.key_path} is for {identity.name!r}, but gateway.id is "
                f"{cfg.gateway_id!r}: nodes would refuse every batch"
            )
        self.db = Database(cfg.db_path)
        with self.db.transaction() as db:
            db.execute("UPDATE meta SET value=value+1 WHERE key='boot'")
        self.boot = self.db.meta("boot")
        tso = cfg.tso.name if cfg.tso else None
        parties = [p for p in (cfg.tso, *cfg.ras, *cfg.confirm_nodes) if p is not None]
        self.trust = Trust(parties, cfg.max_message_bytes)
        self.keys = EpochKeys(self.db, identity, cfg.site, tso, cfg.group_key_path)
        self.sealer = Sealer(identity, cfg.site, self.keys.current, cfg.max_message_bytes)
        self.outbox = Outbox(self.db, cfg.outbox_max_bytes)
        self.topics = Topics(cfg.mqtt.prefix)
        self.confirmations = Confirmations(
            self.topics, self.trust, [n.name for n in cfg.confirm_nodes], cfg.gateway_id, cfg.quorum
        )
        self.plan = DrPlan(
            self.db, cfg.site, tso, tuple(r.name for r in cfg.ras), clock, self.keys.members
        )
        self.publisher = Publisher(
            cfg.mqtt,
            self.outbox,
            cfg.gateway_id,
            self.topics.readings(cfg.site, cfg.gateway_id),
            clock,
            self.boot,
            self.trust,
            cfg.max_message_bytes,
            cfg.retry_s,
            confirm_by_puback=self.confirmations.by_puback,
        )
        self._subscribe()
        self.enrol_topic = ""
        code_path = cfg.enrol_code_path
        if code_path is not None and code_path.exists() and not self.keys.ready:
            self.enrol_topic = self.topics.enrol(cfg.site, cfg.gateway_id)
            raw = enrol.request(cfg, identity, enrol.read_code(code_path), clock.now())
            self.publisher.keep_retained(self.enrol_topic, raw)
            log.info(
                "asking to be enrolled on %s (the RA approves with the code)", self.enrol_topic
            )
        self.slots = {m.id: self._meter_slots(m.id) for m in cfg.meters}
        if not cfg.confirm_nodes:
            clock.trust_system()  # no node to ask the time
        self.time_gate = TimeGate(clock, self.slots, cfg.clock_wait_s)
        self._samples: queue.Queue[Sample] = queue.Queue()
        self.alarms = Alarms()
        self.stop_event = threading.Event()
        self.pollers = {bus.name: self._poller(bus) for bus in cfg.buses}
        self.controller = None
        if cfg.control is not None:
            meter = cfg.meter(cfg.control.meter)
            self.controller = Controller(
                cfg.control, meter, self.plan, self.db, clock, self.pollers[meter.bus].submit
            )
        jobs = {name: poller.submit for name, poller in self.pollers.items()}
        self.plain = PlainView(cfg.plain, cfg.gateway_id, cfg.meters, jobs) if cfg.plain else None
        on_sealed = None if self.plain is None else self.plain.slot
        self.line = SealingLine(
            cfg, self.db, self.keys, self.sealer, self.outbox, self.alarms, on_sealed
        )
        self.started_at = clock.now()
        self._metrics: MetricsServer | None = None
        self._status_sent = 0.0

    def _poller(self, bus: BusConfig) -> BusPoller | BroutePoller:
        """The thread that reads `bus`: Modbus, or a B-route meter behind a Wi-SUN dongle."""
        meters = [m for m in self.cfg.meters if m.bus == bus.name]
        if bus.wisun is None:
            return BusPoller(bus, meters, self.clock, self._samples.put, self.cfg.slot_seconds)
        last = {m.id: t for m in meters if (t := self.slots[m.id].last) is not None}
        creds = load_credentials(bus.wisun.credentials)
        return BroutePoller(
            bus, meters, self.clock, self._samples.put, self.cfg.slot_seconds, creds, last
        )

    def _meter_slots(self, meter_id: str) -> MeterSlots:
        m = self.cfg.meter(meter_id)
        reg = m.model.register(ENERGY_REGISTER)
        on_boundaries = m.model.name == "broute" and self.cfg.slot_seconds == FIXED_SLOT_S
        limits = (m.plausible_w, reg.min, reg.max)
        slots = MeterSlots(m.id, self.cfg.slot_seconds, m.poll_seconds, *limits, on_boundaries)
        state = self.outbox.meter_states().get(m.id)
        if state is not None:
            slots.restore(state)
            log.info("meter %s resumes at slot %s", m.id, slots.slot)
        return slots

    def _subscribe(self) -> None:
        """The configured nodes' marks for this gateway; the TSO's epoch keys for this site
        and its DR commands; the trusted RAs' declarations. Only the trusted authors'
        topics: other parties' marks and facts are nothing to refuse."""
        cfg, p = self.cfg, self.publisher
        for node in cfg.confirm_nodes:  # their marks, and their signed times (fresh ones)
            p.subscribe(self.topics.hwm(node.name, cfg.gateway_id), self._on_mark)
            p.subscribe(self.topics.checkpoint(node.name), self._on_checkpoint)
        if cfg.tso is not None:
            p.subscribe(
                self.topics.site_epochs(EpochKey.TYPE, cfg.site),
                lambda t, raw, _: self.keys.offer(self.trust, raw),
            )
            p.subscribe(
                self.topics.site_epochs(EpochShred.TYPE, cfg.site),
                lambda t, raw, _: self.keys.offer_shred(self.trust, raw),
            )
            p.subscribe(
                self.topics.facts(DrCommand.TYPE, cfg.tso.name),
                lambda t, raw, _: self.plan.offer_command(self.trust, raw),
            )
        for ra in cfg.ras:
            p.subscribe(
                self.topics.facts(DrDeclaration.TYPE, ra.name),
                lambda t, raw, _: self.plan.offer_declaration(self.trust, raw),
            )

    def _fresh(self, retained: bool) -> bool:
        """Whether a signed time just received says the time now: not a retained copy, and
        not the backlog the broker held for this session (delivered on reconnecting)."""
        return not retained and time.monotonic() - self.publisher.connected_mono > BACKLOG_S

    def _on_checkpoint(self, topic: str, raw: bytes, retained: bool) -> None:
        checkpoint = self.trust.open(raw, Checkpoint.TYPE, [n.name for n in self.cfg.confirm_nodes])
        assert isinstance(checkpoint, Checkpoint)
        if self._fresh(retained):
            self.clock.observe(checkpoint.by, checkpoint.t)

    def _on_mark(self, topic: str, raw: bytes, retained: bool) -> None:
        mark = self.confirmations.offer(topic, raw)
        if mark is not None and self._fresh(retained):
            self.clock.observe(mark.by, mark.t)
        if mark is None:
            return
        done = self.confirmations.covered(self.outbox.pending_seqs())
        if done:
            self.outbox.confirm(done)
            self.publisher.forget(done)
            log.debug("batches %d..%d confirmed by the nodes' marks", done[0], done[-1])
        seen = self.confirmations.highest_seen()
        ours = self.outbox.stats().next_seq
        if seen > ours + MAX_SEQ_GAP:
            self.alarms.on(
                "seq_jump",
                f"node {mark.by} reports seqs up to {seen - 1}, {seen - ours} above this"
                f" gateway's next ({ours}): not adopted (a corrupt or forged batch or mark);"
                " compare the nodes' logs for this gateway",
            )
        elif self.outbox.advance_seq(seen):
            log.warning(
                "node %s has seen seqs up to %d, beyond ours: state restored from an older "
                "backup? continuing at seq %d",
                mark.by,
                seen - 1,
                seen,
            )

    def run(self) -> None:
        """Run until `stop_event` is set."""
        self.publisher.start()
        if self.plain is not None:
            self.plain.start()
        if self.cfg.metrics is not None:
            gw = self.cfg.gateway_id
            self._metrics = serve(
                self.cfg.metrics, lambda: samples(gw, self.status(), self.outbox.stats())
            )
        for poller in self.pollers.values():
            poller.start()
        log.info(
            "gateway %s (site %s), boot %d: %d meters on %d buses, %d s slots",
            self.cfg.gateway_id,
            self.cfg.site,
            self.boot,
            len(self.cfg.meters),
            len(self.cfg.buses),
            self.cfg.slot_seconds,
        )
        last_tick = 0.0
        try:
            while not self.stop_event.is_set():
                try:
                    sample = self._samples.get(timeout=0.1)
                except queue.Empty:
                    pass
                else:
                    self.line.take(self.time_gate.add(sample))
                self.line.take(self.time_gate.check())
                sealed = self.line.seal_due(self.clock.now())
                if sealed or time.monotonic() - last_tick >= TICK_S:
                    self.publisher.flush()
                self._control()
                if time.monotonic() - last_tick >= TICK_S:
                    last_tick = time.monotonic()
                    self._tick()
        finally:
            self.stop_event.set()
            for poller in self.pollers.values():
                poller.stop()
            for poller in self.pollers.values():
                poller.join(timeout=5)
            self.publisher.stop()
            if self.plain is not None:
                self.plain.stop()
            if self._metrics is not None:
                self._metrics.stop()
            self._write_status(running=False)
            self.db.close()

    def _control(self) -> None:
        """DR switches due now (checked every loop, ~0.1 s, so a window starts on time)."""
        if self.controller is not None:
            try:
                self.controller.tick()
            except GatewayError as exc:
                log.error("DR control: %s", exc)

    def _tick(self) -> None:
        if self.enrol_topic and self.keys.ready and self.cfg.enrol_code_path is not None:
            self.publisher.clear_retained(self.enrol_topic)
            enrol.finish(self.cfg.enrol_code_path)
            self.enrol_topic = ""
        self._check_alarms()
        self._write_status()
        if self.plain is not None:
            last = self.line.last_sealed
            end = None if last is None else last + self.cfg.slot_seconds
            self.plain.tick(self.outbox.stats().depth, sorted(self.alarms), end, self.publisher)
        if time.monotonic() - self._status_sent >= STATUS_EVERY_S and self.publisher.heartbeat(
            heartbeat_fields(self.status(), self.outbox.stats())
        ):
            self._status_sent = time.monotonic()

    def _check_clock(self) -> None:
        if self.clock.skewed:
            self.alarms.on("clock_skew", self.clock.describe())
        else:
            self.alarms.off("clock_skew")
        if self.cfg.confirm_nodes and self.clock.settled and not self.clock.verified:
            self.alarms.on(
                "clock_unverified",
                "no fresh signed time from the nodes since start: slots follow the system"
                " clock unchecked (are the nodes and the broker reachable?)",
            )
        else:
            self.alarms.off("clock_unverified")

    def _check_alarms(self) -> None:
        self._check_clock()
        for name, text in broute_alarms(self.pollers.values()).items():  # the B-route buses'
            self.alarms.on(name, text) if text else self.alarms.off(name)
        if "outbox_full" in self.alarms and self.outbox.depth_bytes < 0.9 * self.outbox.max_bytes:
            log.warning("outbox has room again (%d bytes)", self.outbox.depth_bytes)
            self.alarms.off("outbox_full")
        if self.publisher.oversize:
            self.alarms.on(
                "oversize",
                f"{len(self.publisher.oversize)} stored batches exceed the broker's packet limit",
            )
        self._check_unconfirmed()
        held = sum(len(v) for v in self.line.open.values())
        if held > len(self.cfg.meters) * 2 * 86_400 // self.cfg.slot_seconds:
            self.alarms.on("memory", f"{held} slot energies held in memory, waiting for the outbox")

    def _check_unconfirmed(self) -> None:
        """Alarm while the oldest unconfirmed batch's slot ended over `unconfirmed_alarm_s`
        ago: the ledger is not taking it (nodes down, this gateway not registered, or the
        batch later than the nodes' lateness limit). It stays stored and is re-sent."""
        stats = self.outbox.stats()
        if stats.oldest_slot is None:
            self.alarms.off("unconfirmed")
            return
        age = self.clock.now() - (stats.oldest_slot + self.cfg.slot_seconds)
        if age <= self.cfg.unconfirmed_alarm_s:
            self.alarms.off("unconfirmed")
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stats.oldest_slot))
        self.alarms.on(
            "unconfirmed",
            f"{stats.depth} batches unconfirmed, the oldest for slot {stamp} UTC, {age:.0f} s"
            " after it ended: are the ledger nodes running, is this gateway registered with"
            " its site, and is the batch within the nodes' late_after_s?",
        )

    def status(self, running: bool = True) -> dict[str, Any]:
        p = self.publisher
        try:
            epoch: int | None = self.keys.current().epoch
        except GatewayError:
            epoch = None
        meters = []
        for m in self.cfg.meters:
            h = self.pollers[m.bus].health[m.id]
            meters.append({"id": m.id, "bus": m.bus, "unit": m.unit, **h.to_json()})
        return {
            "written_at": time.time(),
            "clock": self.clock.now(),
            "clock_offset_s": round(self.clock.offset, 1),
            "clock_steps": self.clock.steps,
            "clock_waiting": self.time_gate.waiting,
            "slots_unreported": sum(s.gaps_unreported for s in self.slots.values()),
            "pid": os.getpid(),
            "running": running,
            "boot": self.boot,
            "started_at": self.started_at,
            "alarms": self.alarms.lines(),
            "refused_batches": self.line.refused,
            "held_slots": len(self.line.open),
            "epoch": epoch,
            "broker": {
                "host": self.cfg.mqtt.host,
                "port": self.cfg.mqtt.port,
                "connected": p.connected.is_set(),
                "last_connected": p.last_connected,
                "last_disconnect_reason": p.last_disconnect_reason,
                "refused_by_broker": p.refused_by_broker,
                "published": p.published,
                "max_packet": p.broker_max_packet,
            },
            "marks": {n: m.next for n, m in self.confirmations.marks.items()},
            "confirm": {
                "by": "puback" if self.confirmations.by_puback else "marks",
                "nodes": list(self.confirmations.nodes),
                "quorum": self.confirmations.quorum,
            },
            "refused": dict(self.trust.refused),
            "buses": {
                name: {"port_ok": poller.port_ok, "reopens": poller.bus.reopens}
                for name, poller in self.pollers.items()
            },
            "meters": meters,
            "dr_windows": [dataclasses.asdict(w) for w in self.plan.windows()],
        }

    def _write_status(self, running: bool = True) -> None:
        try:
            write_status(self.cfg.status_path, self.status(running))
        except OSError as exc:
            log.warning("cannot write %s: %s", self.cfg.status_path, exc)
