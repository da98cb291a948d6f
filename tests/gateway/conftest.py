"""The gateway area's helper: the TSO's epoch key facts, as a gateway takes them."""

from __future__ import annotations

from collections.abc import Sequence

import nacl.public

from ledger_node.shared.keys import Identity
from ledger_node.wire import EpochKey, WrappedKey


def epoch_key(
    site: str, epoch: int, key: bytes, members: Sequence[Identity], gateway: Identity
) -> EpochKey:
    """The TSO's `epoch` of `site`: `key` wrapped for each of `members` and the gateway."""
    wrapped = tuple(
        WrappedKey(p.name, bytes(nacl.public.SealedBox(p.public.box_key).encrypt(key)))
        for p in (*members, gateway)
    )
    return EpochKey("tso", site, epoch, gateway.name, tuple(m.name for m in members), wrapped)
