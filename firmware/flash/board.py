"""`mlg-flash board PORT`: the adapter firmware onto a MicroPython board (a Raspberry Pi
Pico), through mpremote's library (`mpy`).

Copies the board modules (`firmware/*.py` as the package `/firmware`, or nothing of them
with `--frozen`), the pin map as `/pins.json` and the root `main.py`, each written beside
its place, verified by its SHA-256 computed on the board and only then renamed into
place; files already there with the right hash are skipped, stale modules removed. Then
writes the adapter's settings with the firmware's own `Settings` (so the board reads what
its code writes), reads them back, reads the board's identity and the firmware's version,
and soft-resets the board so that the adapter starts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import firmware
from firmware import pinmap
from firmware import settings as fw_settings
from firmware.flash.mpy import Board, BoardError, Identity, find_port
from ledger_node.shared.cli import EXIT_OK

FIRMWARE = Path(firmware.__file__).resolve().parent
"""The board modules: every .py directly in the package (not emulator/, flash/)."""
PACKAGE = "/firmware"
SETTINGS = "/state/settings.dat"
NAMES = ("unit", "baud", "parity", "pulses_per_kwh", "debounce_ms")
"""The adapter's settings, in the order of its settings record."""

_PURGE = (
    "import sys\nfor m in [k for k in sys.modules if k == 'firmware' or "
    "k.startswith('firmware.')]:\n del sys.modules[m]\n"
)
"""Forget modules an earlier import loaded (the old code, before a soft reset)."""


@dataclass(frozen=True)
class File:
    target: str
    """Path on the board."""
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _setting(name: str) -> Any:
    def parse(text: str) -> int:
        value = fw_settings.PARITIES.index(text.upper()) if name == "parity" else int(text)
        if not fw_settings.valid(name, value):
            raise ValueError(text)
        return value

    parse.__name__ = name.replace("_", " ")  # argparse names it in "invalid ... value"
    return parse


def add_parser(sub: argparse._SubParsersAction, hw: Path) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "board",
        help="deploy the meter-adapter firmware to a MicroPython board and set it up",
        description="Copy the adapter firmware, its pin map and main.py to a MicroPython "
        "board (a Raspberry Pi Pico with MicroPython) over USB with mpremote, verify each "
        "file by its SHA-256 on the board, write the adapter's settings, read back the "
        "board's identity and the firmware's version, and restart the board. Settings "
        "not given keep the board's (the defaults on a new board: unit 1, 9600 8N1, 1000 "
        "pulses/kWh, 10 ms). The count on the board (/state) is never touched.",
    )
    p.add_argument("port", help="the board's serial port (/dev/ttyACM0), or auto")
    p.add_argument("--unit", type=_setting("unit"), metavar="ID", help="Modbus unit id, 1-247")
    p.add_argument(
        "--baud",
        type=_setting("baud"),
        help="1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200",
    )
    p.add_argument("--parity", type=_setting("parity"), metavar="N|E|O", help="8 data bits, 1 stop")
    p.add_argument(
        "--pulses-per-kwh",
        type=_setting("pulses_per_kwh"),
        metavar="N",
        help="the meter's S0 constant, 1-50000 (imp/kWh on its label)",
    )
    p.add_argument(
        "--debounce-ms", type=_setting("debounce_ms"), metavar="MS", help="S0 debounce, 1-30"
    )
    p.add_argument(
        "--hw", type=Path, default=hw, metavar="DIR", help="hw/ of a meterledger checkout (its own)"
    )
    p.add_argument(
        "--pins", type=Path, metavar="FILE", help="pin map (default: DIR/pico-adapter/pins.json)"
    )
    p.add_argument(
        "--frozen",
        action="store_true",
        help="the board's MicroPython image has the firmware frozen in: copy only the pin "
        "map and main.py, and remove a /firmware folder that would shadow it",
    )
    p.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="wait this long for the REPL"
    )
    p.add_argument("--json", action="store_true", help="the result as JSON on stdout")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="compare and list what would change; write nothing (the board is still "
        "interrupted and restarted)",
    )
    p.set_defaults(handler=deploy)


def host_files(hw: Path, pins: Path | None, frozen: bool) -> list[File]:
    """What goes onto the board, in the order it is written (main.py last)."""
    adapter = hw / "pico-adapter"
    pins = pins or adapter / "pins.json"
    files = (
        []
        if frozen
        else [File(f"{PACKAGE}/{p.name}", p.read_bytes()) for p in sorted(FIRMWARE.glob("*.py"))]
    )
    try:
        pin_map = pins.read_bytes()
        main = (adapter / "main.py").read_bytes()
    except OSError as exc:
        raise BoardError(
            f"cannot read {exc.filename}: run from a meterledger checkout, or give --hw DIR "
            "(its pico-adapter/ holds main.py and pins.json)"
        ) from None
    try:
        pinmap.parse(pin_map.decode("utf-8", "replace"))
    except pinmap.PinMapError as exc:
        raise BoardError(f"{pins}: {exc}") from None
    return [*files, File("/pins.json", pin_map), File("/main.py", main)]


def build_id(files: list[File]) -> str:
    """A digest of the firmware package's files (names and hashes), 12 hex digits."""
    lines = "".join(f"{f.target} {f.sha256}\n" for f in files if f.target.startswith(PACKAGE))
    return hashlib.sha256(lines.encode()).hexdigest()[:12]


def _stale(board: Board, files: list[File], frozen: bool) -> list[tuple[str, bool]]:
    """(path, is a folder) of what in /firmware is not ours (left by an earlier version or
    a hand copy); with `frozen`, the whole folder (it would run instead of the frozen
    package)."""
    listing = board.listdir(PACKAGE)
    if listing is None:
        return []
    if frozen:
        return [(PACKAGE, True)]
    ours = {f.target for f in files}
    return [(f"{PACKAGE}/{n}", d) for n, d in listing if f"{PACKAGE}/{n}" not in ours or d]


def _remove(board: Board, stale: list[tuple[str, bool]], dry: bool) -> None:
    for path, folder in stale:
        _say(f"{path}: {'would remove' if dry else 'removing'} (stale)")
        if dry:
            continue
        if folder:
            board.rmtree(path)
        else:
            board.remove(path)


def _read_settings(board: Board) -> tuple[list[int], str]:
    """The settings as the firmware on the board reads them (the defaults when it cannot),
    and the file's state: ok, missing, corrupt, or "no firmware" to read it with."""
    code = _PURGE + (
        "try:\n from firmware.settings import Settings, CORRUPT\nexcept ImportError:\n"
        " print('None')\nelse:\n import os\n s = Settings(%r)\n s.load()\n"
        " try:\n  os.stat(s.path)\n  st = 'corrupt' if s.status & CORRUPT else 'ok'\n"
        " except OSError:\n  st = 'missing'\n print(repr(([s.get(n) for n in %r], st)))"
    ) % (SETTINGS, NAMES)
    got: tuple[list[int], str] | None = board.eval(code, "reading the adapter's settings")
    return (fw_settings.Settings("").values, "no firmware") if got is None else got


def _write_settings(board: Board, values: list[int]) -> None:
    code = _PURGE + (
        "import os\ntry:\n os.mkdir('/state')\nexcept OSError:\n pass\n"
        "from firmware.settings import Settings\ns = Settings(%r)\ns.values = %r\ns.save()"
    ) % (SETTINGS, values)
    board.run(code, "writing the adapter's settings")


def _version(board: Board, frozen_only: bool) -> tuple[str | None, str]:
    """The firmware's VERSION and the file its package was imported from; (None, "")
    without one. `frozen_only` looks only among the image's frozen modules."""
    path = "sys.path[:] = ['.frozen']\n" if frozen_only else ""
    code = _PURGE + (
        "p = sys.path[:]\n%s"
        "try:\n import firmware\n r = (getattr(firmware, 'VERSION', '?'), "
        "getattr(firmware, '__file__', ''))\nexcept ImportError:\n r = None\n"
        "sys.path[:] = p\n%sprint(repr(r))"
    ) % (path, _PURGE)
    got = board.eval(code, "reading the firmware's version")
    return (None, "") if got is None else (str(got[0]), str(got[1]))


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _wanted(args: argparse.Namespace, current: list[int]) -> list[int]:
    given = [getattr(args, n) for n in NAMES]
    return [now if new is None else new for now, new in zip(current, given, strict=True)]


def describe(values: list[int]) -> str:
    unit, baud, parity, ppk, debounce = values
    line = f"{baud} 8{fw_settings.PARITIES[parity]}1"
    return f"unit {unit}, {line}, {ppk} pulses/kWh, debounce {debounce} ms"


def _copy(board: Board, files: list[File], dry: bool) -> list[dict[str, str]]:
    """Each file onto the board unless it is there already; what was done with each."""
    there = {f.target: board.sha256(f.target) for f in files}
    if not dry:
        need = sum(len(f.data) for f in files if there[f.target] != f.sha256)
        free = board.ident.free_bytes
        if free is not None and need + 4096 > free:
            raise BoardError(
                f"the board's filesystem has {free} B free and the firmware needs {need} B "
                "more: remove files it does not need (mpremote ls, mpremote rm)"
            )
        for folder in sorted({f.target.rsplit("/", 1)[0] for f in files} - {""}):
            board.mkdir(folder)
    done = []
    for i, f in enumerate(files, 1):
        was = there[f.target]
        if was == f.sha256:
            action = "unchanged"
        elif dry:
            action = "would copy" if was is None else "would replace"
        else:
            board.put(f.target, f.data)
            action = "copied, sha256 verified" if was is None else "replaced, sha256 verified"
        _say(f"[{i}/{len(files)}] {f.target} ({len(f.data)} B): {action}")
        done.append({"path": f.target, "sha256": f.sha256, "action": action})
    return done


@dataclass
class Outcome:
    """What a deployment found and did."""

    version: str | None = None
    copied: list[dict[str, str]] = field(default_factory=list)
    removed: list[tuple[str, bool]] = field(default_factory=list)
    settings: list[int] = field(default_factory=list)


def deploy(args: argparse.Namespace) -> int:
    files = host_files(args.hw, args.pins, args.frozen)
    port = find_port(args.port)
    _say(f"{port}: connecting (the adapter stops and stores its count)")
    board = Board(port, args.timeout)
    try:
        ident = board.ident
        _say(f"board: {ident.machine} ({ident.platform}), MicroPython {ident.micropython}")
        done = _session(board, args, files)
    finally:
        restarted = board.close(restart=True)
    _say("restarted: main.py starts the adapter" if restarted else "no restart confirmed")
    _report(args, port, ident, None if args.frozen else build_id(files), done, restarted)
    return EXIT_OK


def _session(board: Board, args: argparse.Namespace, files: list[File]) -> Outcome:
    dry = args.dry_run
    done = Outcome()
    if args.frozen:  # before anything changes: a board without it would be left without
        done.version, _ = _version(board, frozen_only=True)
        if done.version is None:
            raise BoardError(
                "the board has no frozen firmware package: flash the UF2 built from "
                "hw/pico-adapter/manifest.py first, or run without --frozen"
            )
    done.copied = _copy(board, files, dry)
    done.removed = _stale(board, files, args.frozen)
    _remove(board, done.removed, dry)
    done.settings = _settings(board, args, dry)
    done.version, where = _version(board, frozen_only=False)
    if not dry:
        on_flash = where.lstrip("/").startswith("firmware/")
        if done.version is None or on_flash == args.frozen:
            wanted = "the image's frozen modules" if args.frozen else PACKAGE
            raise BoardError(
                f"the board imports its firmware from {where or 'nowhere'}, not {wanted}: run again"
            )
    if done.version is not None and done.version != firmware.VERSION:
        _say(f"note: the board's firmware is {done.version}, mlg-flash's {firmware.VERSION}")
    return done


def _settings(board: Board, args: argparse.Namespace, dry: bool) -> list[int]:
    """Write the settings given (keeping the board's others) and read them back."""
    current, state = _read_settings(board)
    if state == "corrupt":
        _say("the board's settings file is corrupt (the adapter used the defaults)")
    wanted = _wanted(args, current)
    if dry:
        verb = "keep" if wanted == current and state == "ok" else "write"
        _say(f"settings: would {verb} {describe(wanted)}")
        return wanted
    if wanted != current or state != "ok":
        _write_settings(board, wanted)
    back, state = _read_settings(board)
    if back != wanted or state != "ok":
        raise BoardError(
            f"the settings read back are {describe(back)} ({state}), not {describe(wanted)}: "
            "the board's flash may be failing; run again"
        )
    _say(f"settings: {describe(back)} (read back)")
    return back


def _report(
    args: argparse.Namespace,
    port: str,
    ident: Identity,
    build: str | None,
    done: Outcome,
    restarted: bool,
) -> None:
    settings: dict[str, int | str] = dict(zip(NAMES, done.settings, strict=True))
    settings["parity"] = fw_settings.PARITIES[done.settings[NAMES.index("parity")]]
    if args.json:
        report = {
            "port": port,
            "dry_run": args.dry_run,
            "board": ident.__dict__,
            "firmware": {"version": done.version, "build": build, "frozen": args.frozen},
            "files": done.copied,
            "removed": [path for path, _ in done.removed],
            "settings": settings,
            "restarted": restarted,
        }
        print(json.dumps(report, indent=2))
        return
    print(f"board: {ident.machine} ({ident.platform}), MicroPython {ident.micropython}")
    print(f"unique id: {ident.unique_id or 'none (no machine module)'}")
    kind = "frozen" if args.frozen else f"build {build}"
    if args.dry_run:
        print(f"firmware on the board: {done.version or 'none'}; would be {firmware.VERSION}")
    else:
        print(f"firmware: {done.version} ({kind})")
    changed = sum(1 for c in done.copied if c["action"] != "unchanged")
    verb = "would change" if args.dry_run else "changed"
    print(f"files: {len(done.copied)} ({changed} {verb}, {len(done.removed)} stale)")
    print(f"settings: {describe(done.settings)}")
