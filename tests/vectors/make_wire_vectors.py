"""Write the wire-format known-answer vectors in tests/vectors/wire/.

Run from the repository root: `.venv/bin/python tests/vectors/make_wire_vectors.py`.
Keys, blinding factors and the SecretBox nonce are derived from fixed labels, and Ed25519
signatures are deterministic, so the output is the same on every run; the tests check
that encoding reproduces every accepted vector byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import nacl.secret
import nacl.signing

from ledger_node.shared.ids import b64
from ledger_node.wire import MeterCommitment, Reading, ReadingsBatch, SlotPayload, pedersen, seal

OUT = Path(__file__).parent / "wire"


def _seed(label: str) -> bytes:
    return hashlib.sha256(f"meterledger test vector {label}".encode()).digest()


GW_KEY = nacl.signing.SigningKey(_seed("gateway gw-site1"))
OTHER_KEY = nacl.signing.SigningKey(_seed("another gateway"))
GROUP_KEY = _seed("group key site1 epoch 0")
KEYS = {
    "gw-site1": b64(bytes(GW_KEY.verify_key)),
    "gw-site2": b64(bytes(OTHER_KEY.verify_key)),
}


def _blinding(label: str) -> bytes:
    return pedersen.scalar(int.from_bytes(hashlib.sha512(_seed(label)).digest(), "little"))


def batch_body(seq: int = 7) -> tuple[bytes, bytes]:
    """(body bytes, payload bytes) of a two-meter batch for slot 2021-01-14 00:00 JST."""
    readings = (
        Reading("m1", 4000, _blinding("m1"), ()),
        Reading("m2", 3000, _blinding("m2"), ("estimated",)),
    )
    payload = SlotPayload("gw-site1", seq, readings).to_bytes()
    nonce = _seed("nonce")[: nacl.secret.SecretBox.NONCE_SIZE]
    box = bytes(nacl.secret.SecretBox(GROUP_KEY).encrypt(payload, nonce))
    batch = ReadingsBatch(
        gateway="gw-site1",
        site="site1",
        seq=seq,
        slot_start=1610550000,  # 2021-01-14T00:00:00+09:00
        slot_seconds=60,
        epoch=0,
        commitments=tuple(
            MeterCommitment(r.meter, pedersen.commit(r.wh, r.blinding)) for r in readings
        ),
        box=box,
    )
    return batch.to_body(), payload


def _envelope(
    body: bytes, signer: str = "gw-site1", key: nacl.signing.SigningKey = GW_KEY, version: int = 1
) -> bytes:
    raw = seal(body, signer, key)
    return raw[:2] + bytes([version]) + raw[3:] if version != 1 else raw


def _resign(obj: dict[str, object], text: bytes | None = None) -> bytes:
    body = (
        text
        if text is not None
        else json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    )
    return _envelope(body)


def vectors() -> list[dict[str, object]]:
    body, payload = batch_body()
    good = _envelope(body)
    obj = json.loads(body)
    sig_flipped = bytearray(good)
    sig_flipped[-1] ^= 0x01
    body_flipped = bytearray(good)
    body_flipped[len(good) - 64 - 10] ^= 0x20
    signer_len = len(b"gw-site1")
    truncated = good[: 8 + signer_len + 20]
    body_len_pos = 4 + signer_len
    short_body = bytearray(good)
    struct.pack_into(">I", short_body, body_len_pos, len(body) - 5)
    cases: list[dict[str, object]] = [
        {
            "name": "valid-batch",
            "envelope": good,
            "expect": "ok",
            "txid": hashlib.sha256(good).hexdigest(),
            "body": body.decode(),
            "payload": payload.decode(),
            "group_key": b64(GROUP_KEY),
        },
        {
            "name": "signature-bit-flipped",
            "envelope": bytes(sig_flipped),
            "expect": "BadSignatureError",
        },
        {
            "name": "body-bit-flipped",
            "envelope": bytes(body_flipped),
            "expect": "BadSignatureError",
        },
        {
            "name": "wrong-signer-key",
            "envelope": _envelope(body, "gw-site1", OTHER_KEY),
            "expect": "BadSignatureError",
        },
        {
            "name": "signed-by-another-gateway",
            "envelope": _envelope(body, "gw-site2", OTHER_KEY),
            "expect": "SignerMismatchError",
        },
        {
            "name": "unknown-signer",
            "envelope": _envelope(body, "gw-unknown", OTHER_KEY),
            "expect": "UnknownSignerError",
        },
        {"name": "truncated-body", "envelope": truncated, "expect": "TruncatedError"},
        {
            "name": "body-length-disagrees",
            "envelope": bytes(short_body),
            "expect": "TruncatedError",
        },
        {"name": "trailing-bytes", "envelope": good + b"\x00", "expect": "TruncatedError"},
        {
            "name": "oversize",
            "envelope": good,
            "append_zero_bytes": 65536,
            "expect": "OversizeError",
        },
        {
            "name": "unknown-envelope-version",
            "envelope": _envelope(body, version=2),
            "expect": "UnknownVersionError",
        },
        {
            "name": "unknown-body-version",
            "envelope": _resign({**obj, "v": 2}),
            "expect": "UnknownVersionError",
        },
        {"name": "bad-magic", "envelope": b"XX" + good[2:], "expect": "WireError"},
        {
            "name": "not-canonical-spaces",
            "envelope": _resign(obj, json.dumps(obj, sort_keys=True).encode()),
            "expect": "NotCanonicalError",
        },
        {
            "name": "not-canonical-key-order",
            "envelope": _resign(
                obj, json.dumps(dict(reversed(list(obj.items()))), separators=(",", ":")).encode()
            ),
            "expect": "NotCanonicalError",
        },
        {
            "name": "float-field",
            "envelope": _resign(obj, body.replace(b'"seq":7', b'"seq":7.0')),
            "expect": "SchemaError",
            "path": "",
        },
        {
            "name": "duplicate-key",
            "envelope": _resign(obj, body.replace(b'"seq":7', b'"seq":7,"seq":8')),
            "expect": "SchemaError",
            "path": "seq",
        },
        {
            "name": "unknown-field",
            "envelope": _resign({**obj, "extra": 1}),
            "expect": "SchemaError",
            "path": "extra",
        },
        {
            "name": "missing-field",
            "envelope": _resign({k: v for k, v in obj.items() if k != "epoch"}),
            "expect": "SchemaError",
            "path": "epoch",
        },
        {
            "name": "negative-seq",
            "envelope": _resign({**obj, "seq": -1}),
            "expect": "SchemaError",
            "path": "seq",
        },
        {
            "name": "slot-not-aligned",
            "envelope": _resign({**obj, "slot": obj["slot"] + 1}),
            "expect": "SchemaError",
            "path": "slot",
        },
        {
            "name": "bad-commitment-length",
            "envelope": _resign({**obj, "meters": [{"id": "m1", "c": b64(bytes(31))}]}),
            "expect": "SchemaError",
            "path": "meters[0].c",
        },
        {
            "name": "meter-id-too-long",
            "envelope": _resign({**obj, "meters": [{"id": "m" * 64, "c": obj["meters"][0]["c"]}]}),
            "expect": "SchemaError",
            "path": "meters[0].id",
        },
        {
            "name": "too-many-meters",
            "envelope": _resign(
                {**obj, "meters": [{"id": f"m{i}", "c": obj["meters"][0]["c"]} for i in range(257)]}
            ),
            "expect": "SchemaError",
            "path": "meters",
        },
        {
            "name": "body-not-object",
            "envelope": _resign(obj, b"[1,2]"),
            "expect": "SchemaError",
            "path": "",
        },
        {"name": "body-not-json", "envelope": _resign(obj, b"{not json"), "expect": "WireError"},
    ]
    for case in cases:
        case["envelope"] = bytes(case["envelope"]).hex()  # type: ignore[arg-type]
    return cases


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    for case in vectors():
        (OUT / f"{case['name']}.json").write_text(
            json.dumps({"keys": KEYS, **case}, indent=2, sort_keys=True) + "\n"
        )
    print(f"wrote {len(vectors())} vectors to {OUT}")


if __name__ == "__main__":
    main()
