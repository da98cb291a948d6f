"""The genesis: the network's first fact, made once by the TSO and given to every node.

The file holds the signed envelope's bytes. A node starts its log with it, or refuses a
database whose log starts with another one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from ledger_node.contract.dr1 import CONTRACT_VERSION
from ledger_node.shared.errors import ConfigError
from ledger_node.shared.keys import Identity, PublicIdentity
from ledger_node.wire import Genesis, Org, WireError, open_body, parse

MAX_GENESIS_BYTES = 1024 * 1024


def make_genesis(
    tso: Identity,
    network: str,
    members: Iterable[tuple[PublicIdentity, str, str | None]],
    contract: str = CONTRACT_VERSION,
    t: int | None = None,
) -> bytes:
    """The signed genesis: the TSO plus `members` as (public identity, role, AC of an RA)."""
    orgs = [
        Org(tso.name, "tso", bytes(tso.signing_key.verify_key), bytes(tso.box_secret.public_key))
    ]
    for public, role, ac in members:
        orgs.append(Org(public.name, role, bytes(public.verify_key), bytes(public.box_key), ac))
    genesis = Genesis(
        by=tso.name,
        network=network,
        contract=contract,
        t=int(time.time()) if t is None else t,
        orgs=tuple(sorted(orgs, key=lambda o: o.id)),
    )
    return genesis.seal(tso)


def load_genesis(path: Path) -> tuple[bytes, Genesis]:
    """Read a genesis file; the signature is checked when the node admits it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read genesis {path}: {exc.strerror}") from None
    try:
        message = open_body(parse(raw, MAX_GENESIS_BYTES), frozenset({Genesis.TYPE}))
    except WireError as exc:
        raise ConfigError(f"{path} is not a meterledger genesis: {exc}") from None
    assert isinstance(message, Genesis)
    return raw, message
