"""The wire format against its known-answer vectors (tests/vectors/wire/*.json)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nacl.secret
import nacl.signing
import pytest

from ledger_node import wire
from ledger_node.wire import ReadingsBatch, SlotPayload, open_message, pedersen
from tests.vectors import make_wire_vectors
from tests.wire.conftest import load_case

VECTORS = sorted(make_wire_vectors.OUT.glob("*.json"))


def _open(case: dict[str, Any]) -> tuple[wire.Envelope, ReadingsBatch]:
    envelope, message = open_message(case["raw"], case["verify_keys"])
    assert isinstance(message, ReadingsBatch)
    return envelope, message


def test_every_reason_has_a_vector() -> None:
    expected = {json.loads(p.read_text())["expect"] for p in VECTORS}
    reasons = {name for name in wire.__all__ if name.endswith("Error")}
    assert reasons <= expected, f"no vector for {reasons - expected}"


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector(path: Path) -> None:
    case = load_case(path)
    if case["expect"] == "ok":
        envelope, batch = _open(case)
        assert envelope.txid.hex() == case["txid"]
        assert envelope.body.decode() == case["body"]
        box = nacl.secret.SecretBox(base64.b64decode(case["group_key"]))
        plain = box.decrypt(batch.box)
        assert plain.decode() == case["payload"]
        payload = SlotPayload.from_bytes(plain)
        for reading, public in zip(payload.readings, batch.commitments, strict=True):
            assert pedersen.commit(reading.wh, reading.blinding) == public.commitment
        return
    with pytest.raises(wire.WireError) as info:
        _open(case)
    assert type(info.value).__name__ == case["expect"], str(info.value)
    if "path" in case:
        assert isinstance(info.value, wire.SchemaError)
        assert info.value.path == case["path"]
    assert str(info.value), "every rejection says what was wrong"


def test_encoder_reproduces_the_vectors() -> None:
    """Ed25519 is deterministic: encoding the same facts gives the same bytes."""
    for case in make_wire_vectors.vectors():
        stored = json.loads((make_wire_vectors.OUT / f"{case['name']}.json").read_text())
        assert stored["envelope"] == case["envelope"], case["name"]


def test_rejections_have_distinct_reasons() -> None:
    classes = [getattr(wire, n) for n in wire.__all__ if n.endswith("Error") and n != "WireError"]
    reasons = [c.reason for c in classes]
    assert len(set(reasons)) == len(reasons)
