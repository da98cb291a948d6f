"""Authoring without a node: `mlg-node sign VERB …` builds a fact with the verb's row of
`commands.COMMANDS` (the same arguments, request and builder as through a node), signs
it with the organisation's key and writes the envelope to a file; `mlg-node publish
FILE` puts it on the broker's retained topic of its fact (where nodes and gateways take
it) or hands it to a node's API.

A fact's number (a registry fact's `n`, a declaration's or AS report's `rev`) comes from
the author's own facts retained on the broker (their signatures checked with the key),
or is given by hand (`--n`, `--rev`). Signing the same fact with the same number again
gives the same bytes (Ed25519 signatures are deterministic): a replay, never an
equivocation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs

from ledger_node.interfaces import commands
from ledger_node.interfaces.api import FACTS_ROUTE
from ledger_node.interfaces.client import call_node
from ledger_node.network.config import load_config
from ledger_node.network.retained import publish_retained, read_retained
from ledger_node.shared.cli import EXIT_OK, add_clock_options
from ledger_node.shared.config import Section, load_toml
from ledger_node.shared.errors import MeterledgerError
from ledger_node.shared.keys import Identity
from ledger_node.shared.mqtt import MqttSettings
from ledger_node.wire import MAX_ENVELOPE_BYTES, AsReport, DrDeclaration, Message, WireError
from ledger_node.wire.envelope import parse
from ledger_node.wire.messages import open_body, open_message
from ledger_node.wire.registry import REGISTRY_TYPES
from ledger_node.wire.topics import Topics

ENVELOPE = "application/octet-stream"
REVISED = frozenset({DrDeclaration.TYPE, AsReport.TYPE})


class RetainedNumbers:
    """Numbers from `me`'s own facts (`facts`), the next after the highest held; given
    ones (`n`, `rev`) win. Without facts to read and none given, a number is an error
    that says how to get one."""

    def __init__(
        self, me: str, facts: list[Message] | None, n: int | None, rev: int | None
    ) -> None:
        self.me = me
        self.facts = facts
        self.n = n
        self.rev = rev

    def _held(self, what: str, flag: str) -> list[Message]:
        if self.facts is None:
            raise MeterledgerError(
                f"which {what}? give {flag}, or --broker/--mqtt to read {self.me}'s retained facts"
            )
        return self.facts

    def registry_n(self) -> int:
        if self.n is not None:
            return self.n
        held = self._held("registry number n", "--n")
        numbers = [m.n for m in held if m.TYPE in REGISTRY_TYPES]  # type: ignore[attr-defined]
        return max(numbers, default=0) + 1

    def next_rev(self, fact: str, command: str) -> int:
        if self.rev is not None:
            return self.rev
        held = self._held("revision", "--rev")
        revs = [m.rev for m in held if fact == m.TYPE and m.command == command]  # type: ignore[attr-defined]
        return max(revs, default=0) + 1


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`sign` (a verb per authoring command) and `publish`, on `mlg-node`'s sub-commands."""
    sign = sub.add_parser(
        "sign",
        help="sign a fact offline with an organisation's key, into an envelope file",
        description=(
            "Sign a fact with an organisation's key, without a node: the same verbs and"
            " arguments as through a node, the envelope written to --out. Its number"
            " (registry n, revision) comes from the author's facts retained on the broker"
            " (--broker or --mqtt), or is given (--n, --rev). Then `mlg-node publish`."
        ),
    )
    verbs = sign.add_subparsers(dest="verb", required=True, metavar="VERB")
    for row in commands.COMMANDS:
        if row.verb is None or row.build is None:
            continue
        p = verbs.add_parser(row.verb, help=row.help, description=row.help)
        p.set_defaults(handler=lambda args, row=row: sign_cmd(row, args))
        for a in row.args:
            p.add_argument(*a.flags, **a.options)
        g = p.add_argument_group("signing")
        g.add_argument("--key", type=Path, required=True, help="the organisation's secret key")
        g.add_argument("--out", type=Path, required=True, help="envelope file to write")
        if row.fact.TYPE in REGISTRY_TYPES:
            g.add_argument("--n", type=int, help="its registry number (default: from the broker)")
        if row.fact.TYPE in REVISED:
            g.add_argument("--rev", type=int, help="its revision (default: from the broker)")
        _broker_options(p)
        if row.clock:
            add_clock_options(p)
    pub = sub.add_parser(
        "publish",
        help="publish envelope files (mlg-node sign) on the broker, or to a node's API",
        description=(
            "Put each signed fact on its retained topic on the broker, where nodes and"
            " gateways take it (--broker or --mqtt), or hand it to a node's API (-c, the"
            " node's config, with its token: the node admits it, answers whether it took"
            " it, and publishes it)."
        ),
    )
    pub.set_defaults(handler=publish_cmd)
    pub.add_argument("files", type=Path, nargs="+", metavar="FILE", help="envelope files")
    pub.add_argument("-c", "--config", type=Path, help="a node's TOML config: through its API")
    _broker_options(pub)


def _broker_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the broker")
    g.add_argument("--broker", metavar="HOST[:PORT]", help="a broker without TLS or login")
    g.add_argument(
        "--mqtt",
        type=Path,
        metavar="TOML",
        help="a file with an [mqtt] table as a node's or gateway's config has (TLS, login,"
        " topic prefix); a node's or gateway's config itself will do",
    )


def mqtt_settings(args: argparse.Namespace) -> MqttSettings | None:
    """The broker `--broker` or `--mqtt` names, if any."""
    if args.broker and args.mqtt:
        raise MeterledgerError("give --broker or --mqtt, not both")
    if args.mqtt:
        root = Section(load_toml(args.mqtt), "", args.mqtt.parent)
        return MqttSettings.from_section(root.section("mqtt"), "")
    if args.broker:
        host, _, port = args.broker.rpartition(":") if ":" in args.broker else (args.broker, "", "")
        if port and not port.isdigit():
            raise MeterledgerError(f"--broker {args.broker!r}: expected HOST or HOST:PORT")
        return MqttSettings(host=host or "127.0.0.1", port=int(port or 1883))
    return None


def own_facts(settings: MqttSettings, me: Identity) -> list[Message]:
    """`me`'s facts retained on the broker whose signatures `me`'s key checks."""
    topics = Topics(settings.prefix)
    keys = {me.name: me.signing_key.verify_key}
    facts = []
    for topic, raw in read_retained(settings, topics.facts(author=me.name), MAX_ENVELOPE_BYTES):
        try:
            facts.append(open_message(raw, keys)[1])
        except WireError as exc:
            print(f"mlg-node: ignored {topic}: {exc}", file=sys.stderr)
    return facts


def sign_cmd(row: commands.Command, args: argparse.Namespace) -> int:
    me = Identity.load(args.key)
    settings = mqtt_settings(args)
    given_n, given_rev = getattr(args, "n", None), getattr(args, "rev", None)
    numbered = row.fact.TYPE in REGISTRY_TYPES | REVISED and given_n is None and given_rev is None
    facts = own_facts(settings, me) if settings is not None and numbered else None
    assert row.request is not None and row.build is not None
    request = row.request(args)
    if not isinstance(request, commands.Request):
        request = commands.Request(json.dumps(request).encode())
    fields = row.read(parse_qs(request.query), request.body)  # as the node reads it
    message = row.build(me.name, RetainedNumbers(me.name, facts, given_n, given_rev), fields)
    raw = message.seal(me)
    if args.out.exists() and args.out.read_bytes() != raw:
        raise MeterledgerError(f"{args.out} exists with another fact; refusing to overwrite it")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(raw)
    print(f"{message.TYPE} by {me.name}{_number(message)} signed into {args.out}")
    return EXIT_OK


def _number(message: Message) -> str:
    n = getattr(message, "n", None)
    rev = getattr(message, "rev", None)
    return f" (n {n})" if n is not None else f" (rev {rev})" if rev is not None else ""


def read_envelope(path: Path) -> tuple[bytes, Message]:
    """An envelope file's bytes and its fact (signature not checked: the nodes do)."""
    raw = path.read_bytes()
    try:
        return raw, open_body(parse(raw))
    except WireError as exc:
        raise MeterledgerError(f"{path} is not a signed fact: {exc}") from None


def publish_cmd(args: argparse.Namespace) -> int:
    settings = mqtt_settings(args)
    if (settings is None) == (args.config is None):
        raise MeterledgerError("give one of --broker, --mqtt (the broker) or -c (a node)")
    facts = [(path, *read_envelope(path)) for path in args.files]
    for path, raw, message in facts:
        what = f"{message.TYPE} by {message.author}{_number(message)} ({path})"
        if settings is not None:
            topic = Topics(settings.prefix).fact(message)
            publish_retained(settings, topic, raw)
            print(f"{what}: published, retained, on {topic}")
            continue
        out = call_node(load_config(args.config), FACTS_ROUTE, raw, ENVELOPE)
        where = f" as entry {out['pos']}" if out.get("pos") is not None else ""
        print(f"{what}: {out['status']}{where}, txid {out['txid']}")
    return EXIT_OK
