"""`mlg-gateway`: run the gateway; read a meter, scan a bus, show status; create keys."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from pathlib import Path
from types import FrameType

from gateway.broute import cli as broute_cli
from gateway.bus import ModbusBus
from gateway.config import BusConfig, GatewayConfig, load_config
from gateway.config_wisun import WisunOptions
from gateway.errors import BusError, ConfigError, ExceptionResponseError, NoAnswerError
from gateway.meters import MeterDriver, MeterModel, builtin_models, load_model
from gateway.run import Gateway
from gateway.status import collect, render
from ledger_node.shared.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    add_clock_options,
    add_keygen_parser,
    clock_from,
    keygen,
    run_cli,
    setup_logging,
)


def _bus_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the bus, from the config or given here")
    g.add_argument("-c", "--config", type=Path, help="gateway TOML config")
    g.add_argument("--bus", help="a [[bus]] name of the config (default: the first)")
    g.add_argument("--port", help="serial device, e.g. /dev/ttyUSB0 (instead of --config)")
    g.add_argument("--host", help="Modbus TCP host (instead of --port)")
    g.add_argument("--tcp-port", type=int, default=502, help="Modbus TCP port (502)")
    g.add_argument("--baud", type=int, default=9600, help="baud rate (9600)")
    g.add_argument("--parity", choices="NEO", default="N", help="parity (N)")
    g.add_argument("--stopbits", type=int, choices=(1, 2), default=1, help="stop bits (1)")
    g.add_argument("--timeout", type=float, help="seconds to wait for an answer")
    w = p.add_argument_group("a Wi-SUN dongle (B-route meter) instead of Modbus")
    w.add_argument("--dongle", choices=("bp35a1", "bp35c0"), help="the dongle's dialect")
    w.add_argument("--credentials", type=Path, help="B-route id/password file (mode 0600)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-gateway",
        description=(
            "meterledger gateway: polls Modbus meters on slot boundaries, seals each slot's "
            "readings for the site's privacy group, signs them, keeps them in a durable "
            "outbox and publishes them over MQTT."
        ),
        epilog="exit codes: 0 ok, 1 failure (the message says why), 2 usage error",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_keygen_parser(sub, "gateway")
    run = sub.add_parser(
        "run",
        help="poll, seal, store and publish until stopped (SIGTERM/SIGINT)",
        description="Run the gateway daemon with the given config until SIGTERM or SIGINT.",
    )
    run.add_argument("-c", "--config", type=Path, required=True, help="gateway TOML config")
    add_clock_options(run)

    read = sub.add_parser(
        "read",
        help="read every register of one meter once and print a table",
        description=(
            "Read one meter once: every register of its model, in planned block reads. "
            "Name it with --meter from a config, or give the bus, --unit and --model. A "
            "B-route meter (--meter on a Wi-SUN bus, or --port with --dongle and "
            "--credentials): join it and read its energies, power and currents."
        ),
    )
    _bus_options(read)
    read.add_argument("--meter", help="a [[meter]] id of the config")
    read.add_argument("--unit", type=int, help="unit id 1..247")
    read.add_argument(
        "--model", help=f"meter model ({', '.join(sorted(builtin_models()))} or a [[model]])"
    )
    read.add_argument("--json", action="store_true", help="print JSON instead of a table")

    scan = sub.add_parser(
        "scan",
        help="find which unit ids answer on a bus",
        description=(
            "Ask each unit id for one register (function 04, --address) and list those that "
            "answer, with an exception response or with data. On a Wi-SUN bus (a B-route "
            "meter): an active scan for the meter's PAN. Progress goes to stderr."
        ),
    )
    _bus_options(scan)
    scan.add_argument("--units", default="1-247", help="ids to try, e.g. 1-10,20 (1-247)")
    scan.add_argument("--address", type=lambda s: int(s, 0), default=0, help="register (0)")
    scan.add_argument("--json", action="store_true", help="print JSON instead of lines")

    status = sub.add_parser(
        "status",
        help="outbox depth, confirmations, meters and broker connection",
        description=(
            "Show the gateway's outbox (depth, bytes, last confirmed seq), each meter's last "
            "poll and error counts, the broker connection and any alarm. Works while the "
            "daemon runs and after it stopped. Exit 1 when an alarm is raised."
        ),
    )
    status.add_argument("-c", "--config", type=Path, required=True, help="gateway TOML config")
    status.add_argument("--json", action="store_true", help="print JSON")
    return p


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    gateway = Gateway(cfg, clock_from(args))

    def stop(signum: int, frame: FrameType | None) -> None:
        gateway.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    gateway.run()
    return EXIT_OK


def _bus_from(args: argparse.Namespace) -> tuple[BusConfig, GatewayConfig | None]:
    if args.config is not None:
        cfg = load_config(args.config)
        name = args.bus or (cfg.meter(args.meter).bus if getattr(args, "meter", None) else None)
        name = name or cfg.buses[0].name
        if name not in {b.name for b in cfg.buses}:
            raise ConfigError(f"no [[bus]] named {name!r} in {args.config}")
        bus = cfg.bus(name)
        if args.timeout is not None:
            bus = BusConfig(**{**bus.__dict__, "timeout_s": args.timeout})
        return bus, cfg
    if args.port is None and args.host is None:
        raise UsageError("give --config, --port or --host")
    if args.dongle is not None:
        if args.credentials is None or args.port is None:
            raise UsageError("--dongle needs --port and --credentials")
        options = WisunOptions(args.credentials, args.dongle)
        wisun = BusConfig.for_wisun("cli", args.port, options)
        if args.timeout is not None:
            wisun = BusConfig(**{**wisun.__dict__, "timeout_s": args.timeout})
        return wisun, None
    return (
        BusConfig(
            name="cli",
            port=args.port or "",
            host=args.host,
            tcp_port=args.tcp_port,
            baud=args.baud,
            parity=args.parity,
            stopbits=args.stopbits,
            timeout_s=args.timeout or 0.5,
        ),
        None,
    )


class UsageError(ConfigError):
    """Wrong or missing command-line options (exit code 2)."""


def _read(args: argparse.Namespace) -> int:
    bus_cfg, cfg = _bus_from(args)
    if bus_cfg.kind == "wisun":
        broute_cli.read(bus_cfg, args.json)
        return EXIT_OK
    model: MeterModel
    if args.meter is not None:
        if cfg is None:
            raise UsageError("--meter needs --config")
        if args.meter not in {m.id for m in cfg.meters}:
            raise ConfigError(f"no [[meter]] with id {args.meter!r} in {args.config}")
        meter = cfg.meter(args.meter)
        unit, model = meter.unit, meter.model
    else:
        if args.unit is None or args.model is None:
            raise UsageError("give --meter, or --unit and --model")
        unit = args.unit
        model = load_model(args.model, {m.model.name: m.model for m in cfg.meters} if cfg else None)
    bus = ModbusBus(bus_cfg)
    try:
        values = MeterDriver(model).read(bus, unit)
    finally:
        bus.close()
    rows = [
        (r.name, values.get(r.name), r.unit, r.address)
        for r in sorted(model.registers, key=lambda r: r.address)
    ]
    if args.json:
        doc = {
            "unit": unit,
            "model": model.name,
            "values": {
                n: (None if v is None or not math.isfinite(v) else v) for n, v, _, _ in rows
            },
            "units": {n: u for n, _, u, _ in rows},
        }
        print(json.dumps(doc, indent=2))
    else:
        print(f"unit {unit} on {bus.where}: {model.name} ({model.description})")
        print(f"{'register':<16}{'address':>9}{'value':>16}  unit")
        for name, value, unit_name, address in rows:
            shown = "refused" if value is None else f"{value:,.3f}"
            print(f"{name:<16}{f'0x{address:04X}':>9}{shown:>16}  {unit_name}")
    return EXIT_OK


def _units(spec: str) -> list[int]:
    units: list[int] = []
    try:
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            units += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        raise UsageError(f"--units {spec!r}: use ranges like 1-10,20") from None
    if not units or not all(1 <= u <= 247 for u in units):
        raise UsageError("--units must lie in 1..247")
    return units


def _scan(args: argparse.Namespace) -> int:
    units = _units(args.units)
    bus_cfg, _ = _bus_from(args)
    if bus_cfg.kind == "wisun":
        return EXIT_OK if broute_cli.scan(bus_cfg, args.json) else EXIT_FAILURE
    if args.timeout is None:
        bus_cfg = BusConfig(**{**bus_cfg.__dict__, "timeout_s": min(bus_cfg.timeout_s, 0.2)})
    bus_cfg = BusConfig(**{**bus_cfg.__dict__, "reopen_after": 1_000_000})
    bus = ModbusBus(bus_cfg)
    found: list[dict[str, object]] = []
    try:
        for i, unit in enumerate(units, 1):
            print(
                f"\rscanning {bus.where}: unit {unit} ({i}/{len(units)}), {len(found)} found",
                end="",
                file=sys.stderr,
                flush=True,
            )
            try:
                bus.read(unit, "input", args.address, 1)
                found.append({"unit": unit, "answer": "data"})
            except ExceptionResponseError as exc:
                found.append({"unit": unit, "answer": f"exception {exc.code}"})
            except NoAnswerError:
                continue
    finally:
        bus.close()
        print(file=sys.stderr)
    if args.json:
        print(json.dumps({"port": bus.where, "found": found}, indent=2))
    else:
        for f in found:
            print(f"unit {f['unit']}: answers ({f['answer']})")
        print(f"{len(found)} of {len(units)} unit ids answer on {bus.where}")
    return EXIT_OK if found else EXIT_FAILURE


def _status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    doc = collect(cfg)
    print(json.dumps(doc, indent=2, sort_keys=True) if args.json else render(doc))
    return EXIT_FAILURE if doc["daemon"].get("alarms") else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    handlers = {"keygen": keygen, "run": _run, "read": _read, "scan": _scan, "status": _status}

    def handle() -> int:
        try:
            return handlers[args.command](args)
        except UsageError as exc:
            parser.print_usage(sys.stderr)
            print(f"mlg-gateway {args.command}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except BusError as exc:
            print(f"mlg-gateway: {exc}", file=sys.stderr)
            return EXIT_FAILURE

    return run_cli("mlg-gateway", handle)


if __name__ == "__main__":
    sys.exit(main())
