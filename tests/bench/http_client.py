"""A plain HTTP client for the web benchmark, run as its own process: GET one URL from
`--connections` threads for `--seconds`, a new connection per request, then print
{"requests", "seconds", "rate", "errors"} as JSON.

A new connection per request: on a kept-alive connection the node's server (uvicorn on a
socket made without ``IPPROTO_TCP``, so asyncio leaves Nagle's algorithm on) waits for
the client's delayed ACK, about 40 ms, before the rest of each answer."""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=4)
    args = p.parse_args(argv)
    url = urlsplit(args.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    counts = [0] * args.connections
    errors = [0] * args.connections
    start = time.perf_counter()
    deadline = start + args.seconds

    def client(k: int) -> None:
        while time.perf_counter() < deadline:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                counts[k] += 1
            else:
                errors[k] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    done = sum(counts)
    print(
        json.dumps(
            {"requests": done, "seconds": elapsed, "rate": done / elapsed, "errors": sum(errors)}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
