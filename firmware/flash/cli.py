"""`mlg-flash`: provision a gateway's Raspberry Pi OS image, or deploy the adapter firmware
to a MicroPython board.

    mlg-flash gateway IMAGE -c gateway.toml [--hw hw] [--wheel W.whl] [--dry-run]
    mlg-flash board PORT --unit 1 --baud 9600 --parity N --pulses-per-kwh 1000

Progress goes to stderr; what the technician needs (the enrolment code and the RA's
approval command, the board's identity) to stdout. Exit codes: 0 done, 1 a failure the
message explains, 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from firmware.flash import board as board_cmd
from firmware.flash.fat import BootFs, ImageError, boot_partition
from firmware.flash.gateway_image import DIR, plan, read_site
from ledger_node.shared.cli import EXIT_OK, run_cli, setup_logging
from ledger_node.wire.enrol import new_code

CHECKOUT_HW = Path(__file__).resolve().parents[2] / "hw"
"""The hw/ folder of the checkout this package runs from (an editable install)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-flash",
        description="Provision meterledger field devices: a gateway's Raspberry Pi OS image "
        "(its keys are made on the device at first boot), or a meter adapter board.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    g = sub.add_parser(
        "gateway",
        help="write a gateway's config and first-boot set-up into an image's boot partition",
        description="Write a gateway's config, the broker's CA, its trusted parties' public "
        "keys, a one-time enrolment code and a first-boot set-up (cloud-init on Trixie, "
        "firstrun.sh on Bookworm) into the FAT boot partition of a Raspberry Pi OS image "
        "file or block device, with mtools, without mounting it. Prints the enrolment code "
        "and the command the RA approves the gateway with.",
    )
    g.add_argument("image", type=Path, help="image file or block device (e.g. /dev/sdb)")
    g.add_argument(
        "-c", "--config", type=Path, required=True, help="the gateway's config (gateway.toml)"
    )
    g.add_argument(
        "--hw", type=Path, default=CHECKOUT_HW, help="hw/ of a meterledger checkout (its own)"
    )
    g.add_argument("--wheel", type=Path, help="a meterledger wheel to install from the image")
    g.add_argument(
        "--first-boot",
        choices=("auto", "cloud-init", "firstrun"),
        default="auto",
        help="cloud-init (Trixie) or firstrun.sh (Bookworm); auto: as the image shows",
    )
    g.add_argument("--wifi-ssid", help="a Wi-Fi network for cloud-init's network-config")
    g.add_argument("--wifi-psk-file", type=Path, help="a file holding its passphrase")
    g.add_argument("--force", action="store_true", help="replace an earlier provisioning")
    g.add_argument("--dry-run", action="store_true", help="list what would be written")
    g.set_defaults(handler=_gateway)
    board_cmd.add_parser(sub, CHECKOUT_HW)
    return p


def _wifi(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.wifi_ssid is None:
        return None
    if args.wifi_psk_file is None:
        raise ImageError("--wifi-ssid needs --wifi-psk-file (a passphrase never goes on argv)")
    return args.wifi_ssid, args.wifi_psk_file.read_text().strip()


def _gateway(args: argparse.Namespace) -> int:
    cfg = read_site(args.config)
    partition = boot_partition(args.image)
    fs = BootFs(args.image, partition)
    names = fs.files()
    if f"{DIR}/etc/gateway.toml" in names and not args.force:
        raise ImageError(
            f"{args.image} is provisioned already ({DIR}/etc/gateway.toml): --force replaces it"
        )
    existing = {n: b"" for n in names}
    if "cmdline.txt" in names:
        existing["cmdline.txt"] = fs.read("cmdline.txt")
    code = new_code()
    p = plan(cfg, code, args.hw, existing, args.first_boot, args.wheel, _wifi(args))
    print(
        f"{args.image}: FAT partition {partition.number} at byte {partition.start}, "
        f"{partition.size // 1_048_576} MiB; {p.hook}",
        file=sys.stderr,
    )
    if args.dry_run:
        for path, data in sorted(p.files.items()):
            state = "replace" if path in names else "new"
            shown = "(a new one-time code)" if path.endswith("enrol.code") else f"{len(data)} B"
            print(f"would write {path}  {shown}  [{state}]")
        return EXIT_OK
    folders = fs.folders()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (path, data) in enumerate(sorted(p.files.items()), 1):
            print(f"[{i}/{len(p.files)}] {path} ({len(data)} B)", file=sys.stderr)
            if "/" in path:
                fs.mkdirs(path.rsplit("/", 1)[0], folders)
            source = Path(tmp) / "file"
            source.write_bytes(data)
            fs.write(path, source)
    print(f"gateway {p.gateway} of site {p.site} (meters {', '.join(p.meters)}): image ready")
    print(f"enrolment code: {code}")
    print("when the gateway has booted, its RA approves it with:")
    print(f"  mlg-node enrol -c node.toml --gateway {p.gateway} --code {code}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_cli("mlg-flash", lambda: int(args.handler(args)))


if __name__ == "__main__":
    sys.exit(main())
