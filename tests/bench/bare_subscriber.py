"""The bare paho subscriber the node's ingest is compared with: QoS 1, automatic PUBACK,
nothing done per message but counting. Run as a process, like the node.

`--prepare` connects once to leave a persistent session subscribed to the readings
topics, so that messages published afterwards queue at the broker; without it, the
process drains `--count` messages and prints the rate between the first and the last,
and the process's CPU time per message over the same span (µs).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from ledger_node.shared.mqtt import MqttSettings, make_client
from ledger_node.shared.mqtt import start as mqtt_start
from ledger_node.wire.topics import Topics


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bare_subscriber")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--prepare", action="store_true")
    args = p.parse_args(argv)
    settings = MqttSettings(port=args.port, client_id=args.client_id)
    client = make_client(settings)
    got = 0
    first = last = cpu_first = cpu_last = 0.0
    subscribed = threading.Event()
    done = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, props: Any) -> None:
        c.subscribe(Topics(settings.prefix).all_readings, qos=1)

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, rcs: Any, props: Any) -> None:
        subscribed.set()

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal got, first, last, cpu_first, cpu_last
        now = time.perf_counter()
        if got == 0:
            first, cpu_first = now, time.process_time()
        got += 1
        last = now
        if got >= args.count:
            cpu_last = time.process_time()
            done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    mqtt_start(client, settings)
    if args.prepare:
        subscribed.wait(10)
        client.disconnect()
        client.loop_stop()
        return 0
    ok = done.wait(600)
    client.disconnect()
    client.loop_stop()
    rate = (got - 1) / (last - first) if got > 1 and last > first else 0.0
    cpu_us = 1e6 * (cpu_last - cpu_first) / (got - 1) if got > 1 else 0.0
    print(json.dumps({"messages": got, "rate": rate, "cpu_us": cpu_us, "complete": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
