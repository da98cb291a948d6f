"""The node over HTTP: its screens and its JSON API, on one FastAPI application.

`app` assembles it: `guard` (the door: Host and Origin checks against DNS rebinding and
cross-site requests, body size limits, security headers), `auth` (the node's API token,
operators' sessions and CSRF tokens), `routes` (the JSON API from the GET table of `api`
and the authoring table of `commands`, with its OpenAPI document), and `server` (uvicorn
in a thread of `mlg-node run`).

May import: the rest of `ledger_node.interfaces` and every layer below it.
"""

from ledger_node.interfaces.web.app import make_app
from ledger_node.interfaces.web.context import WebContext
from ledger_node.interfaces.web.server import WebServer

__all__ = ["WebContext", "WebServer", "make_app"]
