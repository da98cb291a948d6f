#!/bin/sh
# meterledger gateway, first boot: written into the boot partition by `mlg-flash gateway`.
# Installs meterledger (the wheel beside this script, else from the package index), the
# systemd unit and udev rule, moves the config and the one-time enrolment code off the
# FAT partition into /etc/meterledger (mode 0600) and makes the gateway's keys here, on
# the device: its private key never leaves it. When the daemon starts it asks its RA to
# enrol it, with the code the RA got from mlg-flash.
#
#   MLG_ROOT     set up below this root instead of / (a test's temporary root: no
#                users, systemctl or udevadm; the state directory goes below it too)
#   MLG_GATEWAY  the mlg-gateway command to use instead of installing the package
set -eu

ROOT="${MLG_ROOT:-}"
SRC="$(cd "$(dirname "$0")" && pwd)"
ETC="$ROOT/etc/meterledger"
STATE="$ROOT/var/lib/meterledger"
VENV="$ROOT/opt/meterledger"

log() { echo "meterledger first boot: $*" >&2; }

GW_ID=$(sed -n 's/^id = "\([a-z0-9._-]*\)"$/\1/p' "$SRC/etc/gateway.toml" | head -n 1)
if [ -z "$GW_ID" ]; then
    log "no gateway id in $SRC/etc/gateway.toml"
    exit 1
fi

if [ -z "${MLG_GATEWAY:-}" ]; then
    log "installing meterledger into $VENV"
    python3 -m venv "$VENV"
    set -- "$SRC"/wheels/*.whl
    if [ -e "$1" ]; then
        "$VENV/bin/pip" install --quiet "$@"
    else
        "$VENV/bin/pip" install --quiet meterledger
    fi
    mkdir -p "$ROOT/usr/local/bin"
    ln -sf "$VENV/bin/mlg-gateway" "$ROOT/usr/local/bin/mlg-gateway"
    MLG_GATEWAY="$VENV/bin/mlg-gateway"
fi

umask 077
mkdir -p "$ETC" "$STATE"
cp -R "$SRC/etc/." "$ETC/"
chmod 0600 "$ETC"/*.toml "$ETC"/*.pub "$ETC/enrol.code"
# The one-time code and a TLS key leave the FAT partition, which anyone can read.
rm -f "$SRC/etc/enrol.code" "$SRC/etc/tls/client.key"
if [ -n "$ROOT" ]; then
    sed -i "s|^state_dir = \"/var/lib/meterledger\"|state_dir = \"$STATE\"|" "$ETC/gateway.toml"
fi

if [ ! -e "$ETC/$GW_ID.key" ]; then
    log "making the keys of $GW_ID"
    # shellcheck disable=SC2086  # MLG_GATEWAY may be a command with arguments
    $MLG_GATEWAY keygen --id "$GW_ID" --out "$ETC/$GW_ID.key" >/dev/null
fi

install -D -m 0644 "$SRC/systemd/mlg-gateway.service" "$ROOT/etc/systemd/system/mlg-gateway.service"
install -D -m 0644 "$SRC/udev/99-meterledger-rs485.rules" \
    "$ROOT/etc/udev/rules.d/99-meterledger-rs485.rules"

if [ -z "$ROOT" ]; then
    id mlg >/dev/null 2>&1 || useradd --system --home-dir /var/lib/meterledger \
        --shell /usr/sbin/nologin mlg
    usermod -aG dialout mlg
    chown -R mlg:mlg "$ETC" "$STATE"
    udevadm control --reload || true
    udevadm trigger || true
    systemctl daemon-reload
    systemctl enable mlg-gateway.service
    systemctl start mlg-gateway.service || true
fi
log "gateway $GW_ID is set up; it asks its RA to enrol it (the code mlg-flash printed)"
