"""The FAT boot partition inside a disk image or on a block device, reached with Debian's
mtools (`mdir`, `mcopy`, `mmd`), never mounted.

The partition is found in the image's MBR partition table (Raspberry Pi OS images have
one: partition 1 is the FAT boot partition); mtools addresses it as ``IMAGE@@OFFSET``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ledger_node.shared.errors import MeterledgerError

SECTOR = 512
FAT_TYPES = {0x01: "FAT12", 0x04: "FAT16", 0x06: "FAT16", 0x0B: "FAT32", 0x0C: "FAT32 (LBA)",
             0x0E: "FAT16 (LBA)"}  # fmt: skip
"""MBR partition types of a FAT file system."""
TOOLS = ("mdir", "mcopy", "mmd")


class ImageError(MeterledgerError):
    pass


@dataclass(frozen=True)
class Partition:
    number: int
    kind: int
    start: int
    """Offset in the image, bytes."""
    size: int
    """Bytes."""


def partitions(image: Path) -> list[Partition]:
    """The primary partitions of an MBR partition table (ImageError if there is none)."""
    try:
        with image.open("rb") as f:
            mbr = f.read(SECTOR)
    except OSError as exc:
        raise ImageError(f"cannot read {image}: {exc.strerror}") from None
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise ImageError(f"{image} has no MBR partition table: is it a Raspberry Pi OS image?")
    out = []
    for i in range(4):
        entry = mbr[446 + 16 * i : 446 + 16 * (i + 1)]
        kind = entry[4]
        start, count = struct.unpack_from("<II", entry, 8)
        if kind == 0xEE:
            raise ImageError(f"{image} has a GPT partition table; Raspberry Pi OS images use MBR")
        if kind and count:
            out.append(Partition(i + 1, kind, start * SECTOR, count * SECTOR))
    return out


def boot_partition(image: Path) -> Partition:
    """The first FAT partition (Raspberry Pi OS: its boot partition)."""
    for p in partitions(image):
        if p.kind in FAT_TYPES:
            return p
    raise ImageError(f"{image} has no FAT partition: is it a Raspberry Pi OS image?")


def check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise ImageError(f"{', '.join(missing)} not found: apt-get install mtools")


class BootFs:
    """Files of the FAT file system at `partition` of `image`, through mtools."""

    def __init__(self, image: Path, partition: Partition) -> None:
        check_tools()
        self.target = f"{image}@@{partition.start}"

    def _run(self, *args: str, binary: bool = False) -> bytes:
        env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}
        done = subprocess.run(
            [args[0], "-i", self.target, *args[1:]],
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip()
            raise ImageError(f"{args[0]} {' '.join(args[1:])}: {err or 'failed'}")
        return done.stdout

    def _listing(self) -> list[str]:
        """Every entry below the root, folders ending in "/"."""
        out = self._run("mdir", "-/", "-b", "::/").decode("utf-8", "replace")
        entries = (line.strip() for line in out.splitlines())
        return [e[3:] for e in entries if e.startswith("::/")]

    def files(self) -> list[str]:
        """Every file's path below the root (``meterledger/etc/gateway.toml``), sorted."""
        return sorted(e for e in self._listing() if not e.endswith("/"))

    def exists(self, path: str) -> bool:
        return path in self.files()

    def read(self, path: str) -> bytes:
        return self._run("mcopy", "-n", f"::/{path}", "-")

    def mkdirs(self, folder: str, existing: set[str]) -> None:
        """Make `folder` and its parents unless in `existing` (updated)."""
        parts = folder.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in existing:
                self._run("mmd", f"::/{sub}")
                existing.add(sub)

    def write(self, path: str, source: Path) -> None:
        """Copy the host file `source` to `path` (replacing it)."""
        self._run("mcopy", "-o", "-n", str(source), f"::/{path}")

    def folders(self) -> set[str]:
        return {e.rstrip("/") for e in self._listing() if e.endswith("/")}
