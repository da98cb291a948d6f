"""`mlg-monitor`: watch a broker and the project's topics (see `watch`).

A live terminal view until Ctrl-C, or `--once` (the picture after `--wait` seconds, as
text or `--json`), or `--headless` (no view: only the Prometheus endpoint). Exit codes:
0 no alarm, 1 alarms raised (listed), 2 a usage or configuration error, 3 the broker
cannot be reached. A config file (`-c`) holds the broker and the limits::

    [mqtt]
    host = "broker.example.net"
    port = 8883
    ca_file = "ca.pem"               # the monitor's identity from `mlg-node broker-config`
    cert_file = "monitor.pem"
    key_file = "monitor.key"

    [monitor]
    dead_after_s = 45                # no status for this long: the gateway or node is dead
    max_skew_s = 30                  # a gateway's clock off by more
    max_lag_batches = 10             # a node's mark this far behind a gateway's next seq
    max_outbox = 100                 # unconfirmed batches in a gateway's outbox
    metrics = "127.0.0.1:9472"       # Prometheus endpoint (absent: none)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from rich.console import Console
from rich.live import Live

from ledger_node.interfaces.monitor.prom import samples
from ledger_node.interfaces.monitor.view import render
from ledger_node.interfaces.monitor.watch import SYS_PREFIX, Limits, Watch
from ledger_node.shared.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    add_clock_options,
    clock_from,
    run_cli,
    setup_logging,
)
from ledger_node.shared.clock import Clock
from ledger_node.shared.config import Section, load_toml, parse_listen
from ledger_node.shared.errors import ConfigError
from ledger_node.shared.metrics import serve
from ledger_node.shared.mqtt import MqttSettings, make_client
from ledger_node.wire.topics import Topics

log = logging.getLogger("mlg.monitor")

EXIT_UNREACHABLE = 3


class Unreachable(Exception):
    """The broker cannot be reached, or does not let the monitor in."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-monitor",
        description="Watch a meterledger broker: its $SYS counters, each gateway's liveness, "
        "clock skew and outbox, the nodes' marks (seq gaps, confirmation lag) and refusals. "
        "Exit 0 without alarms, 1 with alarms, 2 on a usage error, 3 if the broker cannot "
        "be reached.",
    )
    p.add_argument("-c", "--config", type=Path, help="monitor TOML config ([mqtt], [monitor])")
    p.add_argument("--host", help="broker host (overrides the config)")
    p.add_argument("--port", type=int, help="broker port (overrides the config)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="report once and exit")
    mode.add_argument("--headless", action="store_true", help="no view; serve metrics only")
    p.add_argument("--json", action="store_true", help="with --once: print the report as JSON")
    p.add_argument(
        "--wait", type=float, default=12.0, help="with --once: seconds to listen first (12)"
    )
    p.add_argument("--metrics", help="serve Prometheus metrics on HOST:PORT")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_clock_options(p)
    return p


def _settings(args: argparse.Namespace) -> tuple[MqttSettings, Limits, tuple[str, int] | None]:
    data = load_toml(args.config) if args.config else {}
    root = Section(data, "", args.config.parent if args.config else Path("."))
    settings = MqttSettings.from_section(root.section("mqtt", required=False), "mlg-monitor")
    m = root.section("monitor", required=False)
    limits = Limits(
        dead_after_s=m.get("dead_after_s", float, Limits.dead_after_s),
        max_skew_s=m.get("max_skew_s", float, Limits.max_skew_s),
        max_lag_batches=m.get("max_lag_batches", int, Limits.max_lag_batches),
        max_outbox=m.get("max_outbox", int, Limits.max_outbox),
    )
    metrics = parse_listen(args.metrics or m.get("metrics", str, ""), "monitor.metrics")
    m.check_unknown()
    root.check_unknown()
    if settings.protocol != "5":
        raise ConfigError("mlg-monitor speaks MQTT 5 only")
    over = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    return MqttSettings(**{**settings.__dict__, **over}), limits, metrics


class Monitor:
    """A Watch fed by a paho client (MQTT 5, a clean session: nothing queued for it)."""

    def __init__(self, settings: MqttSettings, limits: Limits, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.topics = Topics(settings.prefix)
        self.watch = Watch(self.topics, limits)
        self.lock = threading.Lock()
        self.client = make_client(settings)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        s = self.settings
        try:
            self.client.connect(s.host, s.port, keepalive=s.keepalive_s, clean_start=True)
        except (OSError, ValueError) as exc:
            raise Unreachable(f"cannot reach the broker at {s.host}:{s.port}: {exc}") from None
        self.client.reconnect_delay_set(1, 30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        if rc.is_failure:
            log.error("the broker refused the monitor: %s", rc)
            return
        t = self.topics
        client.subscribe(
            [
                (SYS_PREFIX + "#", 0),
                (t.all_statuses, 1),
                (t.all_node_statuses, 1),
                (t.hwm("+", "+"), 1),
            ]
        )
        with self.lock:
            self.watch.connected = True

    def _on_disconnect(self, client: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        with self.lock:
            self.watch.connected = False
        log.warning("disconnected from the broker: %s", rc)

    def _on_message(self, client: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.watch.on_message(msg.topic, bytes(msg.payload), bool(msg.retain), self.clock.now())

    def report(self) -> dict[str, Any]:
        with self.lock:
            return self.watch.report(self.clock.now())

    def wait_connected(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if self.watch.connected:
                    return
            time.sleep(0.05)
        raise Unreachable(
            f"no answer from the broker at {self.settings.host}:{self.settings.port} (TLS or "
            "identity refused? see the log)"
        )


def _run(args: argparse.Namespace) -> int:
    settings, limits, metrics = _settings(args)
    monitor = Monitor(settings, limits, clock_from(args))
    monitor.start()
    server = serve(metrics, lambda: samples(monitor.report())) if metrics else None
    try:
        monitor.wait_connected(10.0)
        if args.once:
            time.sleep(args.wait)
            report = monitor.report()
            if args.json:
                print(json.dumps(report, indent=2, sort_keys=True))
            else:
                Console().print(render(report))
            return EXIT_FAILURE if report["alarms"] else EXIT_OK
        if args.headless:
            while True:
                time.sleep(3600)
        with Live(render(monitor.report()), refresh_per_second=1, screen=False) as live:
            while True:
                time.sleep(1.0)
                live.update(render(monitor.report()))
    finally:
        if server is not None:
            server.stop()
        monitor.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return run_cli("mlg-monitor", lambda: _run(args))
    except Unreachable as exc:
        print(f"mlg-monitor: error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
