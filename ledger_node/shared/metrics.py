"""Prometheus metrics endpoints (prometheus_client) for the node, the gateway and the
monitor: each builds its samples from the same document it shows as status, at scrape
time, so the endpoint and the status always give the same numbers.

`Samples` collects (name, help, kind, labels, value) rows; `serve` answers
``GET /metrics`` on the configured address (loopback unless configured otherwise).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ledger_node.shared.errors import ConfigError

log = logging.getLogger("mlg.metrics")


@dataclass
class Samples:
    """Metric families being built: `gauge` and `counter` add one sample each."""

    prefix: str
    _families: dict[str, GaugeMetricFamily | CounterMetricFamily] = field(default_factory=dict)

    def _family(
        self, name: str, help_text: str, kind: str, labels: Iterable[str]
    ) -> GaugeMetricFamily | CounterMetricFamily:
        full = f"{self.prefix}_{name}"
        family = self._families.get(full)
        if family is None:
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = cls(full, help_text, labels=list(labels))
            self._families[full] = family
        return family

    def gauge(
        self, name: str, help_text: str, value: float, labels: Mapping[str, str] | None = None
    ) -> None:
        labels = labels or {}
        fam = self._family(name, help_text, "gauge", labels)
        fam.add_metric(list(labels.values()), float(value))

    def counter(
        self, name: str, help_text: str, value: float, labels: Mapping[str, str] | None = None
    ) -> None:
        """`name` without the ``_total`` suffix, which Prometheus adds."""
        labels = labels or {}
        fam = self._family(name, help_text, "counter", labels)
        fam.add_metric(list(labels.values()), float(value))

    def families(self) -> list[Metric]:
        return list(self._families.values())


class _Collector(Collector):
    def __init__(self, collect: Callable[[], Samples]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        try:
            samples = self._collect()
        except Exception:  # a scrape must never take the daemon down
            log.exception("collecting metrics failed")
            return
        yield from samples.families()


@dataclass
class MetricsServer:
    """A running endpoint; `port` is the one bound (useful with port 0)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(listen: tuple[str, int], collect: Callable[[], Samples]) -> MetricsServer:
    """Serve `collect()`'s samples at ``http://HOST:PORT/metrics``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(collect))
    host, port = listen
    try:
        server, thread = start_http_server(port, host, registry)
    except OSError as exc:
        raise ConfigError(f"metrics on {host}:{port}: {exc.strerror}") from None
    log.info("Prometheus metrics on http://%s:%d/metrics", host, server.server_port)
    return MetricsServer(server, thread)
