"""`mlg-emulator`: serve emulated meters on virtual serial ports or Modbus TCP."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from firmware.emulator.config import (
    BROUTE,
    DEFAULT_START_KWH,
    EmulatorSpec,
    LineSpec,
    MeterSpec,
    load_config,
    parse_fault,
    parse_tcp,
    split_meter,
)
from firmware.emulator.dr import parse_window
from firmware.emulator.faults import KINDS, FaultRates
from firmware.emulator.line import Framing
from firmware.emulator.runner import Emulator
from firmware.emulator.wisun.dongle import DIALECTS, FAULT_KINDS, WisunFaults
from firmware.emulator.wisun.station import WisunSpec
from ledger_node.shared.cli import run_cli
from ledger_node.shared.clock import make_clock
from ledger_node.shared.errors import ConfigError
from ledger_node.wire import DEFAULT_SLOT_S

log = logging.getLogger("mlg.emulator")

LINE_FLAGS = (
    "meter",
    "link",
    "tcp",
    "baud",
    "parity",
    "stopbits",
    "turnaround_ms",
    "slot_seconds",
    "truth",
    "energy_start_kwh",
    "dr_drop",
    "dr_window",
    "fault",
    "pulses_per_kwh",
    "seed",
    "state_dir",
    "utc_offset_h",
    "dongle",
    "broute_id",
    "broute_password",
    "broute_unit",
    "broute_digits",
    "wisun_fault",
    "session_lifetime_s",
    "scan_seconds",
    "radio_latency_ms",
)
"""Flags that describe what to serve: refused together with --config, which does that."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-emulator",
        description=(
            "Serve emulated Modbus meters (Eastron SDM120, SDM230, SDM630, SDM72, or the adapter"
            " firmware itself) on a pseudo-terminal, as on an RS-485 bus, or on Modbus TCP. Prints"
            " where each line is; the gateway opens a pseudo-terminal like a USB RS-485"
            " adapter. Runs until SIGINT or SIGTERM, then removes its links."
        ),
        epilog=(
            "examples:\n"
            "  mlg-emulator --meter 1:sdm120:steps:1200,2400 --link /tmp/meterA\n"
            "  mlg-emulator --meter 1:sdm630:household:6000 --meter 2:adapter --baud 19200\n"
            "  mlg-emulator --meter 1:sdm120 --tcp 127.0.0.1:5020 --fault silent=0.05\n"
            "  mlg-emulator --meter 1:broute:household --dongle bp35a1 --link /tmp/wisun\n"
            "  mlg-emulator -c emulator.toml   (several lines; see README)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", type=Path, help="TOML file describing lines and meters")
    p.add_argument(
        "--meter",
        action="append",
        metavar="UNIT:MODEL[:PROFILE]",
        help="a meter on the line (repeatable). MODEL: sdm120 (default), sdm230, sdm630, sdm72,"
        " adapter, broute (a B-route smart meter behind a Wi-SUN dongle, alone on its line)."
        " PROFILE: constant:W (default constant:1000), steps:W1,W2,... (one level per"
        " slot, changing mid-slot), household[:PEAK_W] (daily curve), csv:PATH (seconds,watts)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--link", type=Path, help="also make this symlink to the pseudo-terminal")
    where.add_argument("--tcp", metavar="[HOST:]PORT", help="serve Modbus TCP instead")
    p.add_argument(
        "--baud", type=int, help="baud rate for wire timing (9600; a Wi-SUN dongle 115200)"
    )
    p.add_argument("--parity", choices="NEO", default="N", help="parity (N)")
    p.add_argument("--stopbits", type=int, choices=(1, 2), default=1, help="stop bits (1)")
    p.add_argument("--turnaround-ms", type=float, default=0.0, help="device turnaround, ms (0)")
    p.add_argument(
        "--slot-seconds",
        type=int,
        default=DEFAULT_SLOT_S,
        help=f"slot length for --truth ({DEFAULT_SLOT_S}, the gateways' default)",
    )
    p.add_argument("--truth", type=Path, help="append each meter's true energy per slot here")
    p.add_argument(
        "--energy-start-kwh",
        type=float,
        default=DEFAULT_START_KWH,
        help=f"energy registers at the start, kWh ({DEFAULT_START_KWH:g})",
    )
    p.add_argument(
        "--dr-drop", type=float, default=0.0, help="DR: fraction the load drops by (0..1; 0)"
    )
    p.add_argument(
        "--dr-window",
        action="append",
        metavar="HH:MM-HH:MM|START-END",
        help="DR window, daily in local time or UTC seconds (repeatable); coil 0 also works",
    )
    p.add_argument(
        "--fault",
        action="append",
        metavar="KIND=RATE",
        help=f"inject a fault per request at this rate (repeatable); KIND: {', '.join(KINDS)}",
    )
    p.add_argument("--fault-slow-s", type=float, default=1.0, help="delay of a slow answer (1 s)")
    p.add_argument(
        "--fault-exception-code", type=int, default=4, help="code of injected exceptions (4)"
    )
    p.add_argument(
        "--pulses-per-kwh", type=int, default=1000, help="adapter: the S0 pulse value (1000)"
    )
    p.add_argument("--seed", type=int, help="seed of the fault draws (random by default)")
    p.add_argument("--state-dir", type=Path, help="adapter: its flash (default: temporary)")
    p.add_argument(
        "--utc-offset-h", type=float, default=9.0, help="local time of daily profiles (9, JST)"
    )
    w = p.add_argument_group("a B-route meter (--meter 1:broute:PROFILE) behind a Wi-SUN dongle")
    w.add_argument("--dongle", choices=DIALECTS, help="the dongle's dialect (bp35c0)")
    w.add_argument("--broute-id", help="the meter's B-route ID (32 characters; a test value)")
    w.add_argument("--broute-password", help="its B-route password (12 characters)")
    w.add_argument("--broute-unit", type=lambda x: int(x, 0), help="0xE1 unit code (0x01: 0.1 kWh)")
    w.add_argument("--broute-digits", type=int, help="0xD7 effective digits (6)")
    w.add_argument(
        "--wisun-fault",
        action="append",
        metavar="KIND=RATE",
        help=f"a dongle fault at this rate (repeatable); KIND: {', '.join(FAULT_KINDS)}",
    )
    w.add_argument(
        "--session-lifetime-s", type=float, help="PANA session lifetime, emulator seconds (never)"
    )
    w.add_argument("--scan-seconds", type=float, help="real seconds a scan takes (0.2)")
    w.add_argument("--radio-latency-ms", type=float, help="the meter's answer latency (20 ms)")
    p.add_argument("--clock-scale", type=float, help="run time this many times faster")
    p.add_argument("--clock-origin", type=float, help="wall-clock instant shared by processes")
    p.add_argument("-v", "--verbose", action="store_true", help="log every frame")
    return p


def spec_from_args(args: argparse.Namespace) -> EmulatorSpec:
    """The spec the flags describe: one line with the `--meter`s on it."""
    try:
        rates = FaultRates(
            rates=dict(parse_fault(f) for f in args.fault or []),
            exception_code=args.fault_exception_code,
            slow_s=args.fault_slow_s,
        )
        windows = tuple(parse_window(w) for w in args.dr_window or [])
        framing = Framing(
            args.baud or 9600, args.parity, args.stopbits, args.turnaround_ms / 1000.0
        )
        wisun = _wisun_from(args) if any(BROUTE in m for m in args.meter or []) else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    meters = []
    for text in args.meter or ["1:sdm120"]:
        unit, model, profile = split_meter(text)
        meters.append(
            MeterSpec(
                unit=unit,
                model=model,
                profile=profile,
                energy_start_wh=args.energy_start_kwh * 1000.0,
                dr_drop=args.dr_drop,
                dr_windows=windows,
                faults=rates,
                pulses_per_kwh=args.pulses_per_kwh,
            )
        )
    line = LineSpec(
        name="line0",
        meters=tuple(meters),
        framing=framing,
        link=args.link,
        tcp=parse_tcp(args.tcp) if args.tcp else None,
        wisun=wisun,
    )
    return EmulatorSpec(
        lines=(line,),
        slot_s=args.slot_seconds,
        truth=args.truth,
        seed=args.seed,
        utc_offset_h=args.utc_offset_h,
        state_dir=args.state_dir,
    )


def _wisun_from(args: argparse.Namespace) -> WisunSpec:
    """The dongle and meter the Wi-SUN flags describe (defaults where not given)."""
    d = WisunSpec()
    fd = WisunFaults()
    rates = dict(parse_fault(f, FAULT_KINDS) for f in args.wisun_fault or [])
    faults = WisunFaults(
        rates=rates,
        session_lifetime_s=args.session_lifetime_s or 0.0,
        scan_s=fd.scan_s if args.scan_seconds is None else args.scan_seconds,
        latency_s=fd.latency_s if args.radio_latency_ms is None else args.radio_latency_ms / 1e3,
    )
    return WisunSpec(
        dialect=args.dongle or d.dialect,
        baud=args.baud or 115200,
        rbid=args.broute_id or d.rbid,
        password=args.broute_password or d.password,
        unit_code=d.unit_code if args.broute_unit is None else args.broute_unit,
        digits=args.broute_digits or d.digits,
        faults=faults,
    )


def _flags_given(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    return [
        "--" + name.replace("_", "-")
        for name in LINE_FLAGS
        if getattr(args, name) != parser.get_default(name)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    return run_cli("mlg-emulator", lambda: _serve(parser, args))


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Serve the meters `args` describe until SIGTERM or SIGINT."""
    try:
        if args.config is not None:
            given = _flags_given(parser, args)
            if given:
                raise ConfigError(f"{given[0]} cannot be used with --config; put it in the file")
            spec = load_config(args.config)
        else:
            spec = spec_from_args(args)
        clock = make_clock(args.clock_scale, args.clock_origin)
    except (ConfigError, ValueError) as exc:
        print(f"mlg-emulator: {exc}", file=sys.stderr)
        return 2
    try:
        emulator = Emulator(spec, clock)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"mlg-emulator: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        emulator.start()
        for path, text in zip(emulator.paths(), emulator.describe(), strict=True):
            print(path, flush=True)
            log.info("serving %s", text)
        emulator.run_until(stop)
    finally:
        emulator.close()
        emulator.report()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
