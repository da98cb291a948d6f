"""What `mlg-flash gateway` writes into a Raspberry Pi OS image's boot partition.

Everything goes under ``meterledger/`` (the first-boot script moves it to the device):

    meterledger/etc/gateway.toml      the gateway's config, paths as on the device
    meterledger/etc/enrol.code        the one-time enrolment code (moved off the FAT at
                                      first boot, mode 0600)
    meterledger/etc/NAME.key.pub      the TSO's, RAs' and confirming nodes' public keys
    meterledger/etc/tls/…             the broker's CA (and the gateway's broker certificate
                                      and TLS key, only when given)
    meterledger/firstboot.sh          installs the package, the unit and the udev rule,
                                      and makes the gateway's keys, on the device
    meterledger/systemd/mlg-gateway.service, meterledger/udev/99-meterledger-rs485.rules
    meterledger/wheels/*.whl          the package to install (when given)

and the first-boot hook of the image's release: cloud-init's ``user-data``,
``network-config`` and ``meta-data`` (Raspberry Pi OS Trixie), or ``firstrun.sh`` and
its entry in ``cmdline.txt`` (Bookworm, as Raspberry Pi Imager does). No private key of
the gateway is ever in the image: it is made at first boot and never leaves the device.
"""

from __future__ import annotations

import json
import tempfile
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig, config_from
from gateway.config_file import MeterEntry, write_config
from gateway.meters import builtin_models
from ledger_node.shared.errors import ConfigError
from ledger_node.shared.keys import PublicIdentity
from ledger_node.shared.mqtt import MqttSettings

DIR = "meterledger"
DEVICE_BOOT = "/boot/firmware"
STATE_DIR = Path("/var/lib/meterledger")
CODE_FILE = "enrol.code"
HW_FILES = {
    "systemd/mlg-gateway.service": "systemd/mlg-gateway.service",
    "udev/99-meterledger-rs485.rules": "udev/99-meterledger-rs485.rules",
}
"""Image path below `DIR` → path below `hw/`."""
FIRSTRUN_ARGS = (
    f"systemd.run={DEVICE_BOOT}/firstrun.sh systemd.run_success_action=reboot "
    "systemd.unit=kernel-command-line.target"
)


@dataclass
class Plan:
    """Files to write (image path → bytes) and a description of the first-boot hook."""

    files: dict[str, bytes] = field(default_factory=dict)
    hook: str = ""
    gateway: str = ""
    site: str = ""
    meters: tuple[str, ...] = ()


def read_site(path: Path) -> GatewayConfig:
    """The gateway's config as the technician wrote it (the `gateway.toml` format; its
    `key` and `state_dir` may be left out: mlg-flash sets them for the device)."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    gw = data.get("gateway")
    if isinstance(gw, dict):
        gw.setdefault("key", "unused.key")
    if "enrol" in data:
        raise ConfigError(f"{path}: [enrol] is written by mlg-flash, leave it out")
    cfg = config_from(data, path.parent)
    custom = [m.id for m in cfg.meters if m.model.name not in builtin_models()]
    if custom:
        raise ConfigError(
            f"meter {custom[0]}: a [[model]] of the config is not carried into an image; use a "
            "built-in model (sdm120, sdm630, adapter) or add the model to gateway/meters/"
        )
    if cfg.tso is None:
        raise ConfigError(f"{path}: [trust] tso is needed: the gateway's epoch keys come from it")
    return cfg


def _pub(identity: PublicIdentity) -> bytes:
    return (json.dumps(identity.to_json(), indent=2, sort_keys=True) + "\n").encode()


def tls_files(cfg: GatewayConfig) -> dict[str, Path]:
    """The broker's CA and the gateway's certificate and TLS key, where the config names
    them (files on this machine)."""
    m = cfg.mqtt
    files = {"ca_file": m.ca_file, "cert_file": m.cert_file, "key_file": m.key_file}
    return {k: v for k, v in files.items() if v is not None}


def device_config(cfg: GatewayConfig, tls: dict[str, Path]) -> bytes:
    """The config as the device reads it from /etc/meterledger (paths relative to it)."""
    assert cfg.tso is not None
    mqtt = MqttSettings(
        **{
            **cfg.mqtt.__dict__,
            "ca_file": Path("tls/ca.pem") if "ca_file" in tls else None,
            "cert_file": Path("tls/client.pem") if "cert_file" in tls else None,
            "key_file": Path("tls/client.key") if "key_file" in tls else None,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = write_config(
            Path(tmp) / "gateway.toml",
            gateway_id=cfg.gateway_id,
            site=cfg.site,
            key_path=Path(f"{cfg.gateway_id}.key"),
            state_dir=STATE_DIR,
            slot_seconds=cfg.slot_seconds,
            mqtt=mqtt,
            buses=cfg.buses,
            meters=[
                MeterEntry(m.id, m.unit, m.model.name, m.bus, m.poll_seconds) for m in cfg.meters
            ],
            tso=Path(f"{cfg.tso.name}.key.pub"),
            ras=[Path(f"{r.name}.key.pub") for r in cfg.ras],
            confirm_nodes=[Path(f"{n.name}.key.pub") for n in cfg.confirm_nodes],
            quorum=cfg.quorum if cfg.confirm_nodes else None,
            outbox_max_bytes=cfg.outbox_max_bytes,
            retry_s=cfg.retry_s,
            unconfirmed_alarm_s=cfg.unconfirmed_alarm_s,
            control=cfg.control,
            metrics=cfg.metrics,
            enrol_code_file=Path(CODE_FILE),
        )
        return path.read_bytes()


def _cloud_init(cfg: GatewayConfig, wifi: tuple[str, str] | None) -> dict[str, bytes]:
    user_data = (
        "#cloud-config\n"
        f"# meterledger gateway {cfg.gateway_id} of site {cfg.site}: written by mlg-flash\n"
        f"hostname: {cfg.gateway_id}\n"
        "runcmd:\n"
        f"  - [sh, {DEVICE_BOOT}/{DIR}/firstboot.sh]\n"
    )
    network = [
        "network:",
        "  version: 2",
        "  ethernets:",
        "    eth0:",
        "      dhcp4: true",
        "      optional: true",
    ]
    if wifi is not None:
        ssid, psk = (json.dumps(v) for v in wifi)  # JSON strings are YAML strings
        network += [
            "  wifis:",
            "    wlan0:",
            "      dhcp4: true",
            "      optional: true",
            "      access-points:",
            f"        {ssid}:",
            f"          password: {psk}",
        ]
    return {
        "user-data": user_data.encode(),
        "network-config": ("\n".join(network) + "\n").encode(),
        "meta-data": f"instance-id: mlg-{cfg.gateway_id}\n".encode(),
    }


FIRSTRUN = f"""#!/bin/bash
# meterledger first boot (Raspberry Pi OS Bookworm): written by mlg-flash, run once by
# systemd.run from cmdline.txt, which it then restores, as Raspberry Pi Imager's does.
set +e
sh {DEVICE_BOOT}/{DIR}/firstboot.sh
rm -f {DEVICE_BOOT}/firstrun.sh
sed -i 's| systemd.run=[^ ]*firstrun.sh[^ ]*||; s| systemd.run_success_action=[^ ]*||; s| systemd.unit=kernel-command-line.target||' {DEVICE_BOOT}/cmdline.txt
exit 0
"""  # noqa: E501


def hook_kind(names: set[str], wanted: str) -> str:
    """ "cloud-init" (Trixie) or "firstrun" (Bookworm): as asked, or as the image shows."""
    if wanted != "auto":
        return wanted
    if names & {"user-data", "meta-data", "network-config"}:
        return "cloud-init"
    if "cmdline.txt" in names:
        return "firstrun"
    raise ConfigError(
        "the FAT partition has neither cloud-init files nor cmdline.txt: not a Raspberry Pi "
        "OS boot partition? (--first-boot cloud-init or firstrun forces one)"
    )


def plan(
    cfg: GatewayConfig,
    code: str,
    hw: Path,
    existing: dict[str, bytes],
    first_boot: str = "auto",
    wheel: Path | None = None,
    wifi: tuple[str, str] | None = None,
) -> Plan:
    """The files for `cfg`'s gateway; `existing` holds the partition's `cmdline.txt` and
    the names of its files (their content is not needed otherwise)."""
    tls = tls_files(cfg)
    assert cfg.tso is not None
    p = Plan(gateway=cfg.gateway_id, site=cfg.site, meters=tuple(m.id for m in cfg.meters))
    etc = f"{DIR}/etc"
    p.files[f"{etc}/gateway.toml"] = device_config(cfg, tls)
    p.files[f"{etc}/{CODE_FILE}"] = (code + "\n").encode()
    for identity in (cfg.tso, *cfg.ras, *cfg.confirm_nodes):
        p.files[f"{etc}/{identity.name}.key.pub"] = _pub(identity)
    names = {"ca_file": "ca.pem", "cert_file": "client.pem", "key_file": "client.key"}
    for key, tls_file in tls.items():
        p.files[f"{etc}/tls/{names[key]}"] = _read(tls_file)
    p.files[f"{DIR}/firstboot.sh"] = firstboot_script()
    for target, source in HW_FILES.items():
        p.files[f"{DIR}/{target}"] = _read(hw / source)
    if wheel is not None:
        p.files[f"{DIR}/wheels/{wheel.name}"] = _read(wheel)
    kind = hook_kind(set(existing), first_boot)
    if kind == "cloud-init":
        p.files.update(_cloud_init(cfg, wifi))
        p.hook = "cloud-init user-data runs meterledger/firstboot.sh (Raspberry Pi OS Trixie)"
    else:
        if wifi is not None:
            raise ConfigError("--wifi-ssid needs cloud-init (Trixie); on Bookworm use the Imager")
        cmdline = existing.get("cmdline.txt", b"").decode().strip()
        if "firstrun.sh" not in cmdline:
            cmdline = f"{cmdline} {FIRSTRUN_ARGS}".strip()
        p.files["cmdline.txt"] = (cmdline + "\n").encode()
        p.files["firstrun.sh"] = FIRSTRUN.encode()
        p.hook = "firstrun.sh from cmdline.txt runs meterledger/firstboot.sh (Bookworm)"
    return p


def firstboot_script() -> bytes:
    """The device's set-up script, shipped with this package."""
    return resources.files(__package__).joinpath("firstboot.sh").read_bytes()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
