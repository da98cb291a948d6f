"""A flaky TCP link on loopback, between a client (a gateway) and the broker: each chunk
is delayed (latency with jitter), the link can stall (a loss burst: nothing passes,
nothing closes, until keepalives time out), be cut (every connection aborted, and what the
proxy held in flight for it lost) and be down (new connections closed at once).

Asyncio in a thread of its own; the test drives it from its thread (`delay`, `stall`,
`cut`, `down`)."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from dataclasses import dataclass


@dataclass
class LinkCounts:
    connections: int = 0
    refused: int = 0
    """Connections closed at once while the link was down."""
    cuts: int = 0
    """Connections aborted by `cut`."""
    lost_bytes: int = 0
    """Bytes read from one side and never written to the other (held when cut)."""
    bytes: int = 0
    """Bytes forwarded, both ways."""


class FlakyLink:
    """Listens on a free loopback port (`port`) and forwards to `upstream_port`."""

    def __init__(self, upstream_port: int, seed: int = 0) -> None:
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.delay_s = (0.0, 0.0)
        """Each chunk waits uniformly between these (s) before it is forwarded."""
        self.stalled = False
        self.is_down = False
        self.counts = LinkCounts()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        self._sock = sock
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flaky-link", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, sock=self._sock))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_down:
            self.counts.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self.counts.connections += 1
        self._writers |= {writer, up_writer}
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer)),
            asyncio.ensure_future(self._pump(up_reader, writer)),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()
        for p in pumps:
            p.cancel()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            chunk = await reader.read(65_536)
            if not chunk:
                return
            try:
                while self.stalled and not writer.is_closing():
                    await asyncio.sleep(0.05)
                lo, hi = self.delay_s
                if hi > 0:
                    await asyncio.sleep(self.rng.uniform(lo, hi))
                if writer.is_closing():
                    self.counts.lost_bytes += len(chunk)
                    return
                writer.write(chunk)
                await writer.drain()
                self.counts.bytes += len(chunk)
            except (ConnectionError, asyncio.CancelledError):
                self.counts.lost_bytes += len(chunk)
                raise

    def _call(self, fn: object) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn()  # type: ignore[operator]
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    @property
    def open(self) -> int:
        """Connections passing through now."""
        return len(self._writers) // 2

    def delay(self, lo_s: float, hi_s: float) -> None:
        self.delay_s = (lo_s, hi_s)

    def stall(self, on: bool) -> None:
        self.stalled = on

    def cut(self) -> None:
        """Abort every connection now (both sides see a reset)."""

        def abort() -> None:
            self.counts.cuts += len(self._writers) // 2
            for w in list(self._writers):
                w.transport.abort()
            self._writers.clear()

        self._call(abort)

    def down(self, on: bool) -> None:
        """Cut every connection and refuse new ones (`on`), or let them in again."""
        self.is_down = on
        if on:
            self.cut()

    def close(self) -> None:
        self.down(True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
