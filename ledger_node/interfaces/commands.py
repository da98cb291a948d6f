"""The authoring commands, one row each: CLI verb, API route, fact type, builder, arguments.

`mlg-node` makes its authoring sub-commands, their requests and their dispatch from
`COMMANDS`; the API routes its POSTs by it (`route`). A row reads its request in two
ways: on the node from the HTTP query and body (`read`, into the fields its `author`
builder takes), and in the CLI from the parsed arguments (`request`, what it sends).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger_node.interfaces import authoring, enrolment
from ledger_node.interfaces.as_csv import parse_as_csv
from ledger_node.interfaces.authoring import (
    Build,
    LedgerNumbers,
    Numbers,
    RequestError,
    parse_time,
    submit,
)
from ledger_node.ledger.admission import Ledger
from ledger_node.shared.cli import clock_from
from ledger_node.shared.errors import MeterledgerError
from ledger_node.shared.keys import load_public
from ledger_node.wire import (
    DEFAULT_SLOT_S,
    AsReport,
    DrCommand,
    DrDeclaration,
    EpochShred,
    Message,
    OrgAdd,
    OrgRemove,
    SiteMove,
    SiteRegistration,
)

JSON = "application/json"
CSV = "text/csv"

Query = Mapping[str, list[str]]
Reader = Callable[[Query, bytes], Mapping[str, Any]]


def param(query: Query, key: str, required: bool = True) -> str | None:
    """The first value of query parameter `key` (None if absent and not `required`)."""
    values = query.get(key)
    if not values:
        if required:
            raise RequestError(f"query parameter {key!r} is required")
        return None
    return values[0]


def json_object(query: Query, body: bytes) -> dict[str, Any]:
    """A JSON body, which must be an object (an empty body is ``{}``)."""
    try:
        obj = json.loads(body or b"{}")
    except ValueError as exc:
        raise RequestError(f"the body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RequestError("the body must be a JSON object")
    return obj


def _as_csv(query: Query, body: bytes) -> dict[str, Any]:
    """An AS report as CSV, its command in ``?command=``."""
    command = param(query, "command") or ""
    return {"command": command, "slots": parse_as_csv(body.decode("utf-8-sig", errors="replace"))}


def _as_report_csv(me: str, numbers: Numbers, fields: Mapping[str, Any]) -> Message:
    return authoring.as_report(me, numbers, fields["command"], fields["slots"])


@dataclass(frozen=True)
class Request:
    """What the CLI sends when not a JSON object: a body and a query string."""

    body: bytes
    query: str = ""


@dataclass(frozen=True)
class Arg:
    """One argument of a CLI verb, as `argparse.ArgumentParser.add_argument` takes it."""

    flags: tuple[str, ...]
    options: Mapping[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class Command:
    """One authoring command: how the CLI and the API ask for a fact of type `fact`."""

    verb: str | None
    """`mlg-node VERB` (None: through the API only)."""
    route: str
    """The API's POST path."""
    fact: type[Message]
    """The type of fact it authors (the API's answer names its `TYPE`)."""
    build: Build | None
    """Builds the fact from its author, its numbering and the request's fields (None:
    only a node can author it, by `on_node`)."""
    help: str
    args: tuple[Arg, ...] = ()
    request: Callable[[argparse.Namespace], Mapping[str, Any] | Request] | None = None
    """The CLI's request from its arguments: a JSON object, or a `Request` of `content`."""
    content: str = JSON
    """The media type of the body it takes: `JSON` or `CSV`."""
    read: Reader = json_object
    """The request's fields from the HTTP query and body."""
    clock: bool = False
    """Whether its CLI verb takes the clock options (its times may be relative to now)."""
    warn: Callable[[Ledger, Message], list[str]] | None = None
    """What the node's answer warns of, once the fact is in its ledger."""
    on_node: Callable[[Ledger, Mapping[str, Any]], dict[str, Any]] | None = None
    """Authors the fact from what only a node holds (an enrolment request it received),
    for a row without `build`: such a verb cannot be signed offline."""

    def author(self, ledger: Ledger, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Build the fact from the request's fields as the node's organisation, sign and
        admit it (in the node's worker); the answer names it, with any warnings."""
        if self.build is None:
            assert self.on_node is not None, self.route
            return self.on_node(ledger, fields)
        message = self.build(ledger.me.name, LedgerNumbers(ledger), fields)
        answer = submit(ledger, message)
        warnings = self.warn(ledger, message) if self.warn else []
        return answer | {"warnings": warnings} if warnings else answer


def _pair(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not value.isdigit():
        raise MeterledgerError(f"{text!r}: expected NAME=INTEGER")
    return name, int(value)


RELATIVE_UNITS = {"s": 1, "m": 60, "h": 3600}


def cli_time(text: str, now: float, align: int = 1) -> int:
    """A time argument: UTC s or ISO 8601 with its offset (`parse_time`), or relative to
    `now` on the CLI's clock: ``now``, ``+90``, ``+5m``, ``+2h``, rounded up to a multiple
    of `align` (a command's slot boundary)."""
    text = text.strip()
    if not text.startswith(("now", "+")):
        return parse_time(text)
    amount = text.removeprefix("now").removeprefix("+") or "0"
    scale = RELATIVE_UNITS.get(amount[-1], 1) if amount[-1].isalpha() else 1
    number = amount[:-1] if amount[-1].isalpha() else amount
    if not number.isdigit() or (amount[-1].isalpha() and amount[-1] not in RELATIVE_UNITS):
        raise MeterledgerError(f"{text!r}: a relative time is now, +SECONDS, +MINUTESm or +HOURSh")
    t = int(now) + int(number) * scale
    return -(-t // align) * align


def _command_request(a: argparse.Namespace) -> dict[str, Any]:
    now = clock_from(a).now()
    return {
        "id": a.id,
        "start": cli_time(a.start, now, a.slot_s),
        "end": cli_time(a.end, now, a.slot_s),
        "slot_s": a.slot_s,
        "gate_closure": cli_time(a.gate_closure, now),
        "price_yen_per_kwh": a.price,
        "targets": dict(_pair(t) for t in a.target),
    }


def _csv_request(args: argparse.Namespace) -> Request:
    text = args.csv.read_text(encoding="utf-8-sig")
    parse_as_csv(text)  # refuse a bad file before sending it
    return Request(text.encode(), f"command={args.dr_command}")


COMMANDS: tuple[Command, ...] = (
    Command(
        "org-add",
        "/api/orgs",
        OrgAdd,
        authoring.org_add,
        "TSO: add an AC or an RA",
        (
            arg("--pub", type=Path, required=True, help="its .pub file"),
            arg("--role", choices=("ac", "ra"), required=True),
            arg("--ac", help="an RA's AC"),
        ),
        lambda a: {"public": load_public(a.pub).to_json(), "role": a.role, "ac": a.ac},
    ),
    Command(
        "org-remove",
        "/api/orgs/remove",
        OrgRemove,
        authoring.org_remove,
        "TSO: remove an AC or an RA",
        (arg("--id", required=True),),
        lambda a: {"id": a.id},
    ),
    Command(
        "site",
        "/api/sites",
        SiteRegistration,
        authoring.site,
        "RA: register (or update) one of its sites",
        (
            arg("--site", required=True),
            arg("--gateway", type=Path, required=True, help="the gateway's .pub file"),
            arg("--meter", action="append", required=True, help="meter id (repeatable)"),
        ),
        lambda a: {
            "site": a.site,
            "gateway": load_public(a.gateway).to_json(),
            "meters": a.meter,
        },
    ),
    Command(
        "site-move",
        "/api/site-moves",
        SiteMove,
        authoring.site_move,
        "TSO: move a site to another RA",
        (arg("--site", required=True), arg("--to", required=True, help="the new RA")),
        lambda a: {"site": a.site, "ra": a.to},
    ),
    Command(
        "command",
        "/api/commands",
        DrCommand,
        authoring.command,
        "TSO: issue a DR command",
        (
            arg("--id", required=True),
            arg(
                "--start",
                required=True,
                help="UTC s, ISO 8601 with offset, or relative to the clock (now, +90, +5m,"
                " +2h; start and end rounded up to a slot boundary)",
            ),
            arg("--end", required=True, help="as --start"),
            arg(
                "--slot-s",
                type=int,
                default=DEFAULT_SLOT_S,
                help=f"slot length, s ({DEFAULT_SLOT_S}, as the gateways' default): the"
                " gateways' slot length, or the command counts none of their readings",
            ),
            arg(
                "--gate-closure",
                required=True,
                help="declarations accepted until then (as --start)",
            ),
            arg("--price", type=int, required=True, help="yen per kWh delivered"),
            arg(
                "--target",
                action="append",
                required=True,
                metavar="AC=WH",
                help="reduction per slot",
            ),
        ),
        _command_request,
        clock=True,
        warn=authoring.slot_warnings,
    ),
    Command(
        "declare",
        "/api/declarations",
        DrDeclaration,
        authoring.declaration,
        "RA: declare the sites responding to a command, with baselines",
        (
            arg("--command", dest="dr_command", required=True),
            arg(
                "--site",
                action="append",
                required=True,
                metavar="SITE=WH",
                help="baseline per slot",
            ),
        ),
        lambda a: {"command": a.dr_command, "sites": dict(_pair(s) for s in a.site)},
    ),
    Command(
        "as-report",
        "/api/as-reports",
        AsReport,
        _as_report_csv,
        "RA/AC: submit the aggregation system's own totals (CSV)",
        (
            arg("--command", dest="dr_command", required=True),
            arg("--csv", type=Path, required=True, help="header slot,wh (or slot,kwh)"),
        ),
        _csv_request,
        content=CSV,
        read=_as_csv,
    ),
    Command(
        None,
        "/api/as-reports",
        AsReport,
        authoring.as_report_json,
        "RA/AC: submit the aggregation system's own totals (JSON)",
    ),
    Command(
        "enrol",
        "/api/enrolments",
        SiteRegistration,
        None,
        "RA: approve a gateway's enrolment request with its one-time code (registers its site)",
        (
            arg("--gateway", required=True, help="the gateway's id, as mlg-flash printed it"),
            arg("--code", required=True, help="its enrolment code, as mlg-flash printed it"),
        ),
        lambda a: {"gateway": a.gateway, "code": a.code},
        on_node=enrolment.approve,
    ),
    Command(
        "shred",
        "/api/shred",
        EpochShred,
        authoring.shred,
        "TSO: destroy an epoch's data key on every replica",
        (arg("--site", required=True), arg("--epoch", type=int, required=True)),
        lambda a: {"site": a.site, "epoch": a.epoch},
    ),
)


def _index() -> tuple[dict[str, Command], dict[tuple[str, str], Command]]:
    verbs: dict[str, Command] = {}
    routes: dict[tuple[str, str], Command] = {}
    for c in COMMANDS:
        if c.verb is not None:
            if c.verb in verbs:
                raise ValueError(f"verb {c.verb!r} twice in COMMANDS")
            verbs[c.verb] = c
        if (c.route, c.content) in routes:
            raise ValueError(f"route {c.route} ({c.content}) twice in COMMANDS")
        routes[c.route, c.content] = c
    return verbs, routes


VERBS, _ROUTES = _index()


def route(path: str, content_type: str) -> Command | None:
    """The command a POST to `path` runs: its CSV form for a CSV body where it has one."""
    if "csv" in content_type and (path, CSV) in _ROUTES:
        return _ROUTES[path, CSV]
    return _ROUTES.get((path, JSON))
