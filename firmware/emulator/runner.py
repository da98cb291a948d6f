"""An emulator instance: builds the meters, lines and ground-truth record of a spec, runs
each pseudo-terminal line in its own thread and the TCP lines in theirs, and stops
cleanly (adapters store their exact counts, links are removed)."""

from __future__ import annotations

import logging
import math
import random
import shutil
import tempfile
import threading
from pathlib import Path

from firmware.emulator.config import EmulatorSpec, LineSpec, MeterSpec
from firmware.emulator.dr import ControlledLoad
from firmware.emulator.faults import Faults
from firmware.emulator.line import Meter, MeterOnLine, PtyLine, Station, TcpLine, serve
from firmware.emulator.meter import EmulatedMeter
from firmware.emulator.profiles import parse_profile
from firmware.emulator.s0 import EmulatedAdapter
from firmware.emulator.truth import MeterOnLine as Recorded
from firmware.emulator.truth import TruthRecorder
from firmware.emulator.wisun.station import WisunLine
from gateway.meters import load_model
from ledger_node.shared.clock import Clock

log = logging.getLogger("mlg.emulator")

TICK_S = 0.05


class Emulator:
    def __init__(self, spec: EmulatorSpec, clock: Clock) -> None:
        self.spec = spec
        self.clock = clock
        self._rng = random.Random(spec.seed)  # noqa: S311 (fault draws, not secrets)
        self._tmp: Path | None = None
        if spec.state_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="mlg-emulator-"))
        self.state_dir = spec.state_dir or self._tmp or Path()
        self.anchor = math.floor(clock.now() / spec.slot_s) * spec.slot_s
        self.stations: list[Station] = []
        self.endpoints: list[tuple[LineSpec, PtyLine | TcpLine]] = []
        self._running = True
        self._threads: list[threading.Thread] = []
        self.truth: TruthRecorder | None = None
        self.wisun_lines: list[WisunLine] = []
        try:
            for line in spec.lines:
                if line.wisun is not None:
                    self.wisun_lines.append(self._wisun_line(line))
                    continue
                station = Station(line.name, [self._on_line(line, m) for m in line.meters])
                self.stations.append(station)
                if line.tcp is not None:
                    host, port = line.tcp
                    endpoint: PtyLine | TcpLine = TcpLine(
                        station, host, port, line.framing.turnaround_s
                    )
                else:
                    endpoint = PtyLine(line.link)
                self.endpoints.append((line, endpoint))
        except BaseException:
            self.close()
            raise
        self.meters = [m for s in self.stations for m in s.meters]
        if spec.truth is not None:
            recorded: list[Recorded] = [*self.meters]
            recorded += [m for w in self.wisun_lines for m in w.meters]
            self.truth = TruthRecorder(spec.truth, recorded, spec.slot_s, clock.now())

    def _load(self, spec: MeterSpec) -> ControlledLoad:
        return ControlledLoad(
            parse_profile(spec.profile, self.spec.slot_s, self.spec.utc_offset_h),
            spec.dr_drop,
            spec.dr_windows,
            self.spec.utc_offset_h * 3600.0,
        )

    def _wisun_line(self, line: LineSpec) -> WisunLine:
        assert line.wisun is not None
        spec = line.meters[0]
        return WisunLine(
            line.name,
            line.wisun,
            self._load(spec),
            self.clock,
            self.anchor,
            spec.energy_start_wh,
            line.link,
            self._rng.getrandbits(64),
        )

    def _on_line(self, line: LineSpec, spec: MeterSpec) -> MeterOnLine:
        load = self._load(spec)
        meter: Meter
        if spec.model == "adapter":
            meter = EmulatedAdapter(
                load,
                self.clock,
                self.anchor,
                self.state_dir / f"{line.name}-unit{spec.unit}",
                spec.energy_start_wh,
                spec.pulses_per_kwh,
            )
        else:
            meter = EmulatedMeter(
                load_model(spec.model),
                load,
                self.clock,
                self.anchor,
                spec.energy_start_wh,
                dr_coil=spec.dr_drop > 0,
                line=(spec.unit, line.framing.baud, line.framing.parity, line.framing.stopbits),
            )
        seed = self._rng.getrandbits(64)
        faults = Faults(spec.faults, random.Random(seed)) if spec.faults.any else None  # noqa: S311
        return MeterOnLine(line.name, spec.unit, meter, faults)

    def describe(self) -> list[str]:
        """One line of text per line: where it is and who is on it."""
        out = []
        for (line, endpoint), station in zip(self.endpoints, self.stations, strict=True):
            where = endpoint.path
            if isinstance(endpoint, PtyLine):
                where += (
                    f" ({endpoint.device}, {line.framing})"
                    if endpoint.link
                    else (f" ({line.framing})")
                )
            else:
                where = f"modbus tcp {where}"
            units = ", ".join(f"unit {m.unit} {m.meter.model_name}" for m in station.meters)
            out.append(f"line {line.name}: {where}: {units}")
        return out + [w.describe() for w in self.wisun_lines]

    def paths(self) -> list[str]:
        """Where each line is (a pseudo-terminal or its link, or HOST:PORT), as `describe`."""
        return [e.path for _, e in self.endpoints] + [w.pty.path for w in self.wisun_lines]

    def start(self) -> Emulator:
        for (line, endpoint), station in zip(self.endpoints, self.stations, strict=True):
            if isinstance(endpoint, TcpLine):
                endpoint.start()
                continue
            thread = threading.Thread(
                target=serve,
                args=(endpoint, station, line.framing, lambda: self._running),
                name=f"mlg-line-{line.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        for wisun in self.wisun_lines:
            wisun.start()
        return self

    def tick(self) -> None:
        """Idle work: ground-truth rows for ended slots, the adapters' main-loop service."""
        if self.truth is not None:
            self.truth.record_until(self.clock.now())
        for station in self.stations:
            station.tick()

    def run_until(self, stop: threading.Event) -> None:
        while not stop.wait(TICK_S):
            self.tick()

    def close(self) -> None:
        self._running = False
        for thread in self._threads:
            thread.join(timeout=5)
        for _, endpoint in self.endpoints:
            endpoint.close()
        for wisun in self.wisun_lines:
            wisun.close()
        for station in self.stations:
            station.close()
        if self.truth is not None:
            self.truth.record_until(self.clock.now())  # slots that ended since the last tick
            self.truth.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def report(self) -> None:
        """Log each meter's frames, errors and faults."""
        for wisun in self.wisun_lines:
            wisun.report()
        for m in self.meters:
            faults = m.faults.counts if m.faults is not None else {}
            shown = ", ".join(f"{k} {v}" for k, v in faults.items() if v) or "none"
            log.info(
                "line %s unit %d: %d frames, %d CRC errors, %d exceptions; faults: %s",
                m.line,
                m.unit,
                m.slave.frames,
                m.slave.crc_errors,
                m.slave.exceptions,
                shown,
            )
