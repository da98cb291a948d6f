"""Serving the web application from `mlg-node run`: uvicorn in a daemon thread, on a
socket bound before it starts (so port 0 yields a free port, known at once)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading

import uvicorn

from ledger_node.interfaces.web.app import guarded, make_app
from ledger_node.interfaces.web.context import WebContext

log = logging.getLogger("mlg.node.web")

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_headers(bound: str, port: int, names: tuple[str, ...]) -> frozenset[str]:
    """The Host header values that name a node bound to `bound`:`port`: the loopback names
    on loopback, the address itself, and the configured `names`."""
    hosts = set(LOOPBACK_NAMES) if is_loopback(bound) or bound in ("0.0.0.0", "::") else set()  # noqa: S104
    if bound not in ("0.0.0.0", "::", ""):  # noqa: S104
        hosts.add(f"[{bound}]" if ":" in bound else bound)
    hosts.update(n.lower() for n in names)
    out = {f"{h}:{port}" for h in hosts}
    if port == 80:
        out |= hosts
    return frozenset(out)


class WebServer:
    """The node's screens and JSON API on `host`:`port` (0: any free port)."""

    def __init__(self, ctx: WebContext, host: str, port: int, names: tuple[str, ...] = ()) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named, so that asyncio turns Nagle off on the accepted connections
        # (with proto 0 it does not, and every answer on a kept-alive one waits 40 ms).
        self.sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host.strip("[]"), port))
        self.sock.listen(128)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        ctx.hosts = host_headers(host, self.port, names)
        ctx.open_reads = ctx.open_reads and is_loopback(host)
        self.ctx = ctx
        config = uvicorn.Config(
            guarded(make_app(ctx), ctx),
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="mlg-web", daemon=True
        )

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        self.thread.start()
        log.info("screens and JSON API on %s (OpenAPI: %sapi/openapi.json)", self.url, self.url)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
