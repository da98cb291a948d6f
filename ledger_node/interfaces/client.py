"""The other end of the node's API: commands that call the running node.

The node writes the address it listens on beside its database (`write_address`; port 0
in the config means any free port); authoring requests carry the node's API token, read
from the file the node made at its first start.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ledger_node.network.config import NodeConfig
from ledger_node.shared.errors import MeterledgerError


def write_address(path: Path, host: str, port: int) -> None:
    """Write the API's address for other commands (atomically: new file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{host}:{port}\n")
    tmp.replace(path)


def read_address(path: Path) -> tuple[str, int]:
    """The (host, port) a running node wrote to `path` (OSError or ValueError while it has
    not)."""
    host, _, port = path.read_text().strip().rpartition(":")
    return host, int(port)


def node_url(cfg: NodeConfig, path: str) -> str:
    """`path` on the API of the node of `cfg` (on the port it wrote, when configured as 0)."""
    if cfg.api is None:
        raise MeterledgerError("api.listen is off in the config: these commands need the API")
    host, port = cfg.api
    if port == 0:  # any free port: the running node wrote the one it got
        try:
            host, port = read_address(cfg.api_addr_path)
        except (OSError, ValueError):
            raise MeterledgerError(
                f"api.listen has port 0 and {cfg.api_addr_path} names no port: is the node running?"
            ) from None
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - we connect, not listen
        host = "127.0.0.1"
    return f"http://{host}:{port}{path}"


def call_node(cfg: NodeConfig, path: str, body: bytes, content_type: str) -> Any:
    """POST `body` to the node of `cfg` and return its JSON answer; its error as ours."""
    request = urllib.request.Request(  # noqa: S310 - http to the configured node only
        node_url(cfg, path),
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Authorization": f"Bearer {read_token(cfg)}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            message = str(exc)
        raise MeterledgerError(message) from None
    except urllib.error.URLError as exc:
        raise MeterledgerError(
            f"cannot reach the node at {node_url(cfg, '')}: {exc.reason}"
            " (is `mlg-node run` running?)"
        ) from None


def read_token(cfg: NodeConfig) -> str:
    """The node's API token, from the file it made at its first start."""
    try:
        return cfg.token_path.read_text().strip()
    except OSError as exc:
        raise MeterledgerError(
            f"cannot read the node's API token {cfg.token_path} ({exc.strerror}): run this as"
            " the node's user, after the node has started once"
        ) from None
