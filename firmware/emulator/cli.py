"""`mlg-emulator`: serve emulated meters on a virtual serial port."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from pathlib import Path
from types import FrameType

from firmware.emulator.line import Framing, PtyLine, serve
from firmware.emulator.meter import EmulatedMeter
from firmware.emulator.profiles import parse_profile
from firmware.emulator.truth import TruthRecorder
from firmware.modbus_rtu import Slave
from gateway.errors import ConfigError
from gateway.meters import load_model
from ledger_node.clock import Clock, make_clock

log = logging.getLogger("mlg.emulator")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-emulator",
        description=(
            "Serve emulated Modbus RTU meters on a pseudo-terminal, as on an RS-485 bus. "
            "Prints the device path; the gateway opens it like a USB RS-485 adapter."
        ),
        epilog="example: mlg-emulator --meter 1:sdm120:steps:1200,2400 --link /tmp/meterA",
    )
    p.add_argument(
        "--meter",
        action="append",
        metavar="UNIT:MODEL[:PROFILE]",
        help="a meter on the line (repeatable); PROFILE is constant:W (default constant:1000)"
        " or steps:W1,W2,... (one level per slot, changing mid-slot)",
    )
    p.add_argument("--link", type=Path, help="also make this symlink to the device")
    p.add_argument("--baud", type=int, default=9600, help="baud rate for wire timing (9600)")
    p.add_argument("--parity", choices="NEO", default="N", help="parity (N)")
    p.add_argument("--stopbits", type=int, choices=(1, 2), default=1, help="stop bits (1)")
    p.add_argument("--turnaround-ms", type=float, default=0.0, help="device turnaround, ms (0)")
    p.add_argument("--slot-seconds", type=int, default=60, help="slot length for --truth (60)")
    p.add_argument("--truth", type=Path, help="append each meter's true energy per slot here")
    p.add_argument(
        "--energy-start-kwh", type=float, default=1000.0, help="import register at the start"
    )
    p.add_argument("--clock-scale", type=float, help="run time this many times faster")
    p.add_argument("--clock-origin", type=float, help="wall-clock instant shared by processes")
    p.add_argument("-v", "--verbose", action="store_true", help="log every frame")
    return p


def _meters(
    specs: list[str], clock: Clock, slot_s: int, start_wh: float
) -> list[tuple[int, EmulatedMeter]]:
    meters = []
    clock_now = clock.now()
    anchor = math.floor(clock_now / slot_s) * slot_s
    for spec in specs:
        unit_text, _, rest = spec.partition(":")
        model_name, _, profile_spec = rest.partition(":")
        unit = int(unit_text)
        if not 1 <= unit <= 247:
            raise ConfigError(f"--meter {spec}: unit id must be 1..247")
        model = load_model(model_name or "sdm120")
        profile = parse_profile(profile_spec or "constant:1000", slot_s)
        meters.append((unit, EmulatedMeter(model, profile, clock, anchor, start_wh)))
    return meters


def _record(truth: TruthRecorder | None, clock: Clock) -> None:
    if truth is not None:
        truth.record_until(clock.now())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    clock = make_clock(args.clock_scale, args.clock_origin)
    try:
        meters = _meters(
            args.meter or ["1:sdm120"], clock, args.slot_seconds, args.energy_start_kwh * 1000.0
        )
    except (ConfigError, ValueError) as exc:
        print(f"mlg-emulator: {exc}", file=sys.stderr)
        return 2
    framing = Framing(args.baud, args.parity, args.stopbits, args.turnaround_ms / 1000.0)
    slaves = [Slave(unit, meter) for unit, meter in meters]
    truth = (
        TruthRecorder(args.truth, meters, args.slot_seconds, clock.now()) if args.truth else None
    )
    line = PtyLine(args.link)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(line.path, flush=True)
    log.info(
        "serving %s on %s (%s), %d baud %d%s%d",
        ", ".join(f"unit {u} {m.model.name}" for u, m in meters),
        line.path,
        line.device,
        framing.baud,
        8,
        framing.parity,
        framing.stopbits,
    )
    try:
        serve(
            line,
            slaves,
            framing,
            running=lambda: not stopping,
            on_idle=lambda: _record(truth, clock),
        )
    finally:
        line.close()
        if truth:
            truth.close()
        for slave in slaves:
            log.info(
                "unit %d: %d frames, %d CRC errors, %d exceptions",
                slave.unit_id,
                slave.frames,
                slave.crc_errors,
                slave.exceptions,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
