"""Wire format: opening a readings batch (parse, verify, decode, validate) against a bare
Ed25519 verification loop over the same bytes."""

from __future__ import annotations

import time

import nacl.secret
import nacl.signing

from ledger_node.wire import (
    MeterCommitment,
    Reading,
    ReadingsBatch,
    SlotPayload,
    open_message,
    parse,
    pedersen,
    seal,
)
from tests.bench.result import Figure, Result

N = 4000
METERS = 4


def _batches(key: nacl.signing.SigningKey) -> list[bytes]:
    box = nacl.secret.SecretBox(bytes(32))
    out = []
    for seq in range(N):
        readings = tuple(
            Reading(f"m{i}", 100 + i, pedersen.random_blinding()) for i in range(METERS)
        )
        batch = ReadingsBatch(
            gateway="gw-bench",
            site="site1",
            seq=seq,
            slot_start=1_800_000_000 - 1_800_000_000 % 60,
            slot_seconds=60,
            epoch=0,
            commitments=tuple(MeterCommitment(r.meter, bytes(32)) for r in readings),
            box=bytes(box.encrypt(SlotPayload("gw-bench", seq, readings).to_bytes())),
        )
        out.append(seal(batch.to_body(), "gw-bench", key))
    return out


def run() -> list[Result]:
    key = nacl.signing.SigningKey.generate()
    keys = {"gw-bench": key.verify_key}
    raws = _batches(key)
    envelopes = [parse(raw) for raw in raws]
    verify_key = key.verify_key

    start = time.perf_counter()
    for env in envelopes:
        verify_key.verify(env.body, env.signature)
    bare = N / (time.perf_counter() - start)

    start = time.perf_counter()
    for raw in raws:
        open_message(raw, keys)
    full = N / (time.perf_counter() - start)
    return [
        Result(
            name="wire.open_readings_batch",
            figures={
                "batches opened per second": Figure(full, "batch/s"),
                "envelope bytes": Figure(len(raws[0]), "B"),
            },
            limit_name="bare Ed25519 verify loop",
            limit=Figure(bare, "verify/s"),
            primary="batches opened per second",
            goal=0.8,
            notes=f"{METERS} meters per batch, one core",
        )
    ]
