"""The node's wire types (registry facts, AS reports, shredding, checkpoints, co-signatures,
sync, enrolment requests) against their known-answer vectors (tests/vectors/node/*.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger_node import wire
from ledger_node.wire import Envelope, Message, open_enrolment, open_message, parse
from ledger_node.wire.registry import REGISTRY_TYPES
from tests.vectors import make_node_vectors
from tests.wire.conftest import load_case

VECTORS = sorted(make_node_vectors.OUT.glob("*.json"))


def test_every_new_type_has_a_valid_vector() -> None:
    types = {json.loads(p.read_text()).get("type") for p in VECTORS}
    node_types = REGISTRY_TYPES | {
        "epoch_shred",
        "as_report",
        "checkpoint",
        "cosig",
        "sync_req",
        "sync_resp",
        "enrol",
    }
    assert node_types <= types, node_types - types
    bad = [json.loads(p.read_text()) for p in VECTORS]
    assert sum(c["expect"] != "ok" for c in bad) >= 15


def _open(path: Path, case: dict[str, Any]) -> tuple[Envelope, Message]:
    """Enrolment requests are self-signed: checked by the key they carry."""
    if "enrol" in path.stem:
        return parse(case["raw"]), open_enrolment(case["raw"])
    return open_message(case["raw"], case["verify_keys"])


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector(path: Path) -> None:
    case = load_case(path)
    if case["expect"] == "ok":
        envelope, message = _open(path, case)
        assert envelope.txid.hex() == case["txid"]
        assert envelope.body.decode() == case["body"]
        assert case["type"] == message.TYPE
        assert message.to_body() == envelope.body  # decoding and encoding agree
        return
    with pytest.raises(wire.WireError) as info:
        _open(path, case)
    assert type(info.value).__name__ == case["expect"], str(info.value)
    if "path" in case:
        assert isinstance(info.value, wire.SchemaError)
        assert info.value.path == case["path"], str(info.value)
    assert str(info.value)


def test_encoder_reproduces_the_vectors() -> None:
    """Ed25519 is deterministic: encoding the same facts gives the same bytes."""
    for case in make_node_vectors.vectors():
        stored = json.loads((make_node_vectors.OUT / f"{case['name']}.json").read_text())
        assert stored["envelope"] == case["envelope"], case["name"]
