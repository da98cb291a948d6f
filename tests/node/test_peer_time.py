"""A node's clock against its peers': a node whose clock is an hour ahead raises
`clock_skew` from its peers' fresh checkpoints; the others do not (one peer agreeing is
enough); the alarm ends once its clock is right again."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ledger_node.localnet.broker import Broker
from ledger_node.localnet.wait import wait_until
from tests.node.conftest import fig7_nodes


def test_a_node_with_a_skewed_clock_raises_the_alarm_and_only_it(
    tmp_path: Path, broker: Broker
) -> None:
    skew = tmp_path / "skew"
    skew.write_text("3600")
    with fig7_nodes(tmp_path, broker.port, speed=20.0, checkpoint_every_s=0.5) as sim:
        stop = threading.Event()

        def gateways() -> None:  # news, so that every node keeps checkpointing
            while not stop.is_set():
                sim.publish([sim.batch(site, sim.last_slot()) for site in sim.RAS])
                time.sleep(0.2)

        feeder = threading.Thread(target=gateways)
        feeder.start()
        try:
            sim.net.stop_node("ra1")
            sim.net.start_node("ra1", "--clock-skew-file", str(skew))

            def ra1_alarm() -> int | None:
                try:
                    alarms: dict[str, int] = sim.status("ra1")["alarms"]
                except OSError:  # its API is not up yet
                    return None
                return alarms.get("clock_skew")

            wait_until(ra1_alarm, 30, "ra1's clock_skew alarm", alive=sim.net.check_alive)
            # Transit through the broker, times the clock's speed (20), delays the peers'
            # times: the least delayed of their checkpoints brings it within a few seconds.
            wait_until(lambda: abs((ra1_alarm() or 0) - 3600) <= 10, 15, "ra1's skew within 10 s")
            for node in ("tso", "ac1"):
                status = sim.status(node)
                assert "clock_skew" not in status["alarms"], (node, status["clock"])
                assert abs(status["clock"]["skew_s"]) <= 10, (node, status["clock"])
            skew.write_text("0")  # NTP sets it right
            wait_until(lambda: ra1_alarm() is None, 30, "the alarm to end")
        finally:
            stop.set()
            feeder.join()
