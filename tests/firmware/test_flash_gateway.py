"""`mlg-flash gateway` on images the test makes (an MBR partition table and a FAT32
partition made by mkfs.vfat, written and read back with mtools): exactly the expected
files, no private key; `--dry-run` writes nothing; the first-boot script, run in a
temporary root, makes a config the gateway loads and keys with mode 0600; and, through
real nodes and Mosquitto, the gateway it set up asks to be enrolled, a wrong code is
refused, the printed code enrols it, and the code does not enrol twice."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.flash.fat import BootFs, boot_partition
from firmware.flash.gateway_image import FIRSTRUN_ARGS, firstboot_script
from gateway.config import load_config
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.keys import Identity, load_public
from tests.conftest import run_module
from tests.node.conftest import fig7_nodes
from tests.support.gateway import Emulator, clock_args

HW = Path(__file__).resolve().parents[2] / "hw"
SECTORS = 64 * 2048  # a 64 MiB image
START = 8192  # the boot partition's first sector, as in Raspberry Pi OS images


def make_image(path: Path, files: dict[str, bytes]) -> Path:
    """An image with an MBR, one FAT32 partition (mkfs.vfat) holding `files`."""
    if shutil.which("mkfs.vfat") is None and not Path("/usr/sbin/mkfs.vfat").exists():
        pytest.fail("mkfs.vfat is missing: run `make test`, which installs dosfstools")
    with path.open("wb") as f:
        f.truncate(SECTORS * 512)
        mbr = bytearray(512)
        mbr[446:462] = bytes([0, 0, 0, 0, 0x0C, 0, 0, 0]) + struct.pack(
            "<II", START, SECTORS - START
        )
        mbr[510:512] = b"\x55\xaa"
        f.write(mbr)
    mkfs = shutil.which("mkfs.vfat") or "/usr/sbin/mkfs.vfat"
    size_kib = (SECTORS - START) // 2
    subprocess.run(
        [mkfs, "--offset", str(START), "-F", "32", "-n", "BOOTFS", str(path), str(size_kib)],
        check=True,
        capture_output=True,
    )
    fs = BootFs(path, boot_partition(path))
    for name, data in files.items():
        src = path.with_name("src")
        src.write_bytes(data)
        fs.write(name, src)
    return path


def _site(tmp: Path, port: int, bus: str) -> Path:
    keys = tmp / "keys"
    keys.mkdir(exist_ok=True)
    for name in ("tso", "ra1"):
        if not (keys / f"{name}.key.pub").exists():
            Identity.generate(name).save(keys / f"{name}.key")
    path = tmp / "gateway.toml"
    path.write_text(
        '[gateway]\nid = "gw-site4"\nsite = "site4"\nslot_seconds = 60\n\n'
        '[trust]\ntso = "keys/tso.key.pub"\nras = ["keys/ra1.key.pub"]\n\n'
        '[confirm]\nquorum = 1\n[[confirm.node]]\npublic_key = "keys/ra1.key.pub"\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nkeepalive_s = 5\n\n'
        f'[[bus]]\nname = "rs485-0"\nport = "{bus}"\ntimeout_s = 0.3\n\n'
        '[[meter]]\nid = "m1"\nbus = "rs485-0"\nunit = 1\nmodel = "sdm120"\n'
        '[[meter]]\nid = "m2"\nbus = "rs485-0"\nunit = 2\nmodel = "sdm120"\n'
    )
    return path


def _flash(image: Path, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    done = run_module(
        "firmware.flash.cli", "gateway", str(image), "-c", str(config), "--hw", str(HW), *extra
    )
    assert done.returncode == 0, done.stderr
    return done


def _extract(image: Path, to: Path) -> dict[str, bytes]:
    """Every file of the image's FAT partition, also copied below `to`."""
    fs = BootFs(image, boot_partition(image))
    out = {name: fs.read(name) for name in fs.files()}
    for name, data in out.items():
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        (to / name).write_bytes(data)
    return out


def _first_boot(boot: Path, root: Path) -> None:
    env = {**os.environ, "MLG_ROOT": str(root), "MLG_GATEWAY": f"{sys.executable} -m gateway.cli"}
    done = subprocess.run(
        ["sh", str(boot / "meterledger" / "firstboot.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "gateway gw-site4 is set up" in done.stderr


@pytest.mark.parametrize("flavour", ["trixie", "bookworm"])
def test_an_image_gets_exactly_its_files_and_the_first_boot_makes_the_keys(
    tmp_path: Path, flavour: str
) -> None:
    os_files = {
        "trixie": {"meta-data": b"instance-id: rpios\n", "config.txt": b"arm_64bit=1\n"},
        "bookworm": {"cmdline.txt": b"console=tty1 root=PARTUUID=1-02 rootwait\n"},
    }[flavour]
    image = make_image(tmp_path / "rpi.img", os_files)
    config = _site(tmp_path, 8883, "/dev/rs485-FT1234")
    before = BootFs(image, boot_partition(image)).files()
    dry = _flash(image, config, "--dry-run")
    assert "would write meterledger/etc/gateway.toml" in dry.stdout
    assert "enrolment code" not in dry.stdout
    assert BootFs(image, boot_partition(image)).files() == before  # nothing written

    done = _flash(image, config)
    code = re.search(r"enrolment code: (\S+)", done.stdout)
    assert code, done.stdout
    assert f"mlg-node enrol -c node.toml --gateway gw-site4 --code {code[1]}" in done.stdout
    assert "[1/" in done.stderr  # progress
    files = _extract(image, tmp_path / "boot")
    hook = (
        {"user-data", "network-config", "meta-data"}
        if flavour == "trixie"
        else {"cmdline.txt", "firstrun.sh"}
    )
    expected = {
        "meterledger/etc/gateway.toml",
        "meterledger/etc/enrol.code",
        "meterledger/etc/tso.key.pub",
        "meterledger/etc/ra1.key.pub",
        "meterledger/firstboot.sh",
        "meterledger/systemd/mlg-gateway.service",
        "meterledger/udev/99-meterledger-rs485.rules",
        *hook,
        *os_files,
    }
    assert set(files) == expected
    assert files["meterledger/etc/enrol.code"].decode().strip() == code[1]
    for name in ("tso", "ra1"):
        pub = json.loads(files[f"meterledger/etc/{name}.key.pub"])
        assert pub == load_public(tmp_path / "keys" / f"{name}.key.pub").to_json()
    assert files["meterledger/firstboot.sh"] == firstboot_script()
    assert (
        files["meterledger/systemd/mlg-gateway.service"]
        == (HW / "systemd" / "mlg-gateway.service").read_bytes()
    )
    assert (
        files["meterledger/udev/99-meterledger-rs485.rules"]
        == (HW / "udev" / "99-meterledger-rs485.rules").read_bytes()
    )
    if flavour == "trixie":
        assert b"runcmd:\n  - [sh, /boot/firmware/meterledger/firstboot.sh]" in files["user-data"]
        assert files["meta-data"] == b"instance-id: mlg-gw-site4\n"
        assert b"eth0:" in files["network-config"]
    else:
        assert files["cmdline.txt"] == (
            b"console=tty1 root=PARTUUID=1-02 rootwait " + FIRSTRUN_ARGS.encode() + b"\n"
        )
        assert b"sh /boot/firmware/meterledger/firstboot.sh" in files["firstrun.sh"]
    for name, data in files.items():  # no private key of any kind
        assert b"PRIVATE KEY" not in data and b"_secret" not in data and b"_seed" not in data
        assert not name.endswith(".key"), name

    root = tmp_path / "root"
    _first_boot(tmp_path / "boot", root)
    etc = root / "etc" / "meterledger"
    key = etc / "gw-site4.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (etc / "enrol.code").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "boot" / "meterledger" / "etc" / "enrol.code").exists()
    assert Identity.load(key).name == "gw-site4"
    cfg = load_config(etc / "gateway.toml")  # a config the gateway runs with
    assert (cfg.gateway_id, cfg.site, cfg.key_path) == ("gw-site4", "site4", key)
    assert cfg.state_dir == root / "var" / "lib" / "meterledger"
    assert cfg.tso is not None and cfg.tso.name == "tso"
    assert [r.name for r in cfg.ras] == ["ra1"] and cfg.enrol_code_path == etc / "enrol.code"
    assert [m.id for m in cfg.meters] == ["m1", "m2"] and cfg.buses[0].port == "/dev/rs485-FT1234"
    assert (root / "etc/systemd/system/mlg-gateway.service").exists()
    assert (root / "etc/udev/rules.d/99-meterledger-rs485.rules").exists()
    # A second run keeps the keys it made.
    made = key.read_bytes()
    (tmp_path / "boot" / "meterledger" / "etc" / "enrol.code").write_text(code[1])
    _first_boot(tmp_path / "boot", root)
    assert key.read_bytes() == made

    again = run_module("firmware.flash.cli", "gateway", str(image), "-c", str(config))
    assert again.returncode == 1 and "provisioned already" in again.stderr


@pytest.mark.slow
def test_the_flashed_gateway_is_enrolled_by_its_code_once(tmp_path: Path, broker: Broker) -> None:
    with fig7_nodes(tmp_path / "net", broker.port) as fig7:
        keys = tmp_path / "keys"
        keys.mkdir()
        for name in ("tso", "ra1"):
            shutil.copy(tmp_path / "net" / "keys" / f"{name}.key.pub", keys)
        clock = clock_args(1.0)
        image = make_image(tmp_path / "rpi.img", {"meta-data": b"instance-id: x\n"})
        code = re.search(
            r"enrolment code: (\S+)",
            _flash(image, _site(tmp_path, broker.port, str(tmp_path / "bus"))).stdout,
        )
        assert code
        _extract(image, tmp_path / "boot")
        root = tmp_path / "root"
        _first_boot(tmp_path / "boot", root)
        etc = root / "etc" / "meterledger"
        meters = ["1:sdm120:constant:1200", "2:sdm120:constant:600"]
        emulator = Emulator(tmp_path, tmp_path / "bus", meters, clock, 60)
        log = (tmp_path / "gateway.log").open("ab")
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "-c", str(etc / "gateway.toml")],
            stdout=log,
            stderr=log,
        )
        try:

            def waiting() -> set[str]:
                return {r["gateway"] for r in fig7.net.get("ra1", "/api/enrolments")}

            wait_until(lambda: "gw-site4" in waiting(), 30, "the gateway's enrolment request")

            def sites() -> set[str]:
                return {s["site"] for s in fig7.net.get("ra1", "/api/registry")["sites"]}

            wrong = fig7.net.cli("ra1", "enrol", "--gateway", "gw-site4", "--code", "0" * 16)
            assert wrong.returncode == 1 and "is not the one" in wrong.stderr
            assert "site4" not in sites()
            done = fig7.net.cli("ra1", "enrol", "--gateway", "gw-site4", "--code", code[1])
            assert done.returncode == 0, done.stderr
            assert "site4" in sites()
            # The TSO keys site4; the gateway takes the key, spends its code, seals.
            wait_until(
                lambda: not (etc / "enrol.code").exists(), 60, "the gateway enrolled (code spent)"
            )
            ours = Identity.load(etc / "gw-site4.key").public
            site4 = next(
                s for s in fig7.net.get("ra1", "/api/registry")["sites"] if s["site"] == "site4"
            )
            assert site4["gateway"] == ours.name == "gw-site4"
            again = fig7.net.cli("ra1", "enrol", "--gateway", "gw-site4", "--code", code[1])
            assert again.returncode == 1  # spent: the request is gone, the code used
            assert sites() == {"site1", "site2", "site3", "site4"}
        finally:
            gateway.terminate()
            gateway.wait(timeout=20)
            log.close()
            emulator.stop()
