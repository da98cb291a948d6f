"""Write the known-answer vectors of the node's wire types in tests/vectors/node/.

Run from the repository root: `.venv/bin/python tests/vectors/make_node_vectors.py`.
Registry facts, AS reports, epoch shredding, checkpoints, co-signatures, sync messages and
enrolment requests (self-signed: opened with `open_enrolment`):
one valid envelope of each (its body and txid), and tampered cases, each with the
exception it must raise and, for schema errors, the field's path. Keys come from fixed
labels and Ed25519 is deterministic: the output is the same on every run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nacl.public
import nacl.signing

from ledger_node.shared.ids import b64
from ledger_node.wire import (
    AsReport,
    Checkpoint,
    Cosignature,
    EnrolmentRequest,
    EpochShred,
    GatewayKey,
    Genesis,
    Message,
    Org,
    OrgAdd,
    OrgRemove,
    SiteMove,
    SiteRegistration,
    SlotDigest,
    SyncEntry,
    SyncRequest,
    SyncResponse,
    seal,
)
from ledger_node.wire.enrol import make_proof

OUT = Path(__file__).parent / "node"
T = 1610550000  # 2021-01-14T00:00:00+09:00
ENROL_CODE = "K7QM-4ZTW-PX2D-9HVN"
"""The enrolment code the vector's request is bound to."""


def _seed(label: str) -> bytes:
    return hashlib.sha256(f"meterledger node vector {label}".encode()).digest()


def _sign_key(name: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(_seed(f"{name} ed25519"))


def _box_key(name: str) -> bytes:
    return bytes(nacl.public.PrivateKey(_seed(f"{name} x25519")).public_key)


NAMES = ("tso", "ac1", "ra1", "gw-site1")
KEYS = {n: b64(bytes(_sign_key(n).verify_key)) for n in NAMES}


def _org(name: str, role: str, ac: str | None = None) -> Org:
    return Org(name, role, bytes(_sign_key(name).verify_key), _box_key(name), ac)


def _gateway() -> GatewayKey:
    return GatewayKey("gw-site1", bytes(_sign_key("gw-site1").verify_key), _box_key("gw-site1"))


def messages() -> dict[str, Message]:
    """One valid message of each type, by vector name."""
    h = [hashlib.sha256(bytes([i])).digest() for i in range(4)]
    return {
        "genesis": Genesis(
            "tso",
            "jp-east",
            "dr-1",
            T,
            (_org("ac1", "ac"), _org("ra1", "ra", "ac1"), _org("tso", "tso")),
        ),
        "org-add": OrgAdd("tso", 1, _org("ra2", "ra", "ac1")),
        "org-remove": OrgRemove("tso", 2, "ra2"),
        "site": SiteRegistration("ra1", 1, "site1", _gateway(), ("m1", "m2")),
        "site-move": SiteMove("tso", 3, "site1", "ra2"),
        "epoch-shred": EpochShred("tso", "site1", 0),
        "as-report": AsReport("ra1", "c1", 1, ((T, 4000), (T + 60, 3000), (T + 120, 5000))),
        "checkpoint": Checkpoint(
            "tso", 12, h[0], T + 300, 8, (h[1], h[2]), (SlotDigest(T, 3, h[3]),)
        ),
        "cosig": Cosignature("ac1", "tso", 12, h[0], h[1], T + 301, ((T, h[3]),)),
        "sync-req": SyncRequest("ra1", "tso", bytes(16), "ids", 0, 512, (), 65536),
        "sync-resp": SyncResponse(
            "tso", "ra1", bytes(16), "get", 12, h[0], 0, (), (SyncEntry(3, b"ML\x01"),), ()
        ),
        "enrol": _enrolment(),
    }


def _enrolment() -> EnrolmentRequest:
    gw = _gateway()
    proof = make_proof(ENROL_CODE, gw.id, "site1", gw.ed25519, gw.x25519)
    return EnrolmentRequest(gw.id, "site1", ("m1", "m2"), gw.ed25519, gw.x25519, T, proof)


def _env(message: Message, signer: str | None = None, body: bytes | None = None) -> bytes:
    who = signer or message.author
    return seal(message.to_body() if body is None else body, who, _sign_key(who))


def _edit(message: Message, change: dict[str, object]) -> bytes:
    obj = json.loads(message.to_body())
    obj.update(change)
    body = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return _env(message, body=body)


def vectors() -> list[dict[str, object]]:
    m = messages()
    cases: list[dict[str, object]] = []
    for name, message in m.items():
        raw = _env(message)
        cases.append(
            {
                "name": f"valid-{name}",
                "type": message.TYPE,
                "envelope": raw,
                "expect": "ok",
                "txid": hashlib.sha256(raw).hexdigest(),
                "body": message.to_body().decode(),
            }
        )
    genesis = json.loads(m["genesis"].to_body())
    flipped = bytearray(_env(m["checkpoint"]))
    flipped[-3] ^= 0x10
    bad: list[tuple[str, bytes, str, str | None]] = [
        (
            "genesis-tso-is-not-the-author",
            _edit(m["genesis"], {"by": "ac1"}),
            "SignerMismatchError",
            None,
        ),
        (
            "genesis-without-its-author",
            _env(m["genesis"], body=_body(genesis, orgs=genesis["orgs"][:2])),
            "SchemaError",
            "orgs",
        ),
        (
            "genesis-ra-without-ac",
            _env(
                m["genesis"],
                body=_body(
                    genesis,
                    orgs=[
                        genesis["orgs"][0],
                        _without(genesis["orgs"][1], "ac"),
                        genesis["orgs"][2],
                    ],
                ),
            ),
            "SchemaError",
            "orgs[1].ac",
        ),
        (
            "org-add-a-second-tso",
            _edit(
                m["org-add"],
                {"org": _without(json.loads(m["org-add"].to_body())["org"], "ac", role="tso")},
            ),
            "SchemaError",
            "org.role",
        ),
        ("org-add-n-zero", _edit(m["org-add"], {"n": 0}), "SchemaError", "n"),
        (
            "site-meters-unsorted",
            _edit(m["site"], {"meters": ["m2", "m1"]}),
            "SchemaError",
            "meters",
        ),
        (
            "site-gateway-key-short",
            _edit(
                m["site"],
                {"gw": {**json.loads(m["site"].to_body())["gw"], "ed25519": b64(bytes(31))}},
            ),
            "SchemaError",
            "gw.ed25519",
        ),
        (
            "site-move-signed-by-another",
            _env(m["site-move"], signer="ra1"),
            "SignerMismatchError",
            None,
        ),
        ("epoch-shred-unknown-field", _edit(m["epoch-shred"], {"key": "x"}), "SchemaError", "key"),
        (
            "as-report-slots-unsorted",
            _edit(m["as-report"], {"slots": [{"s": T + 60, "wh": 1}, {"s": T, "wh": 1}]}),
            "SchemaError",
            "slots",
        ),
        (
            "as-report-float-wh",
            _env(
                m["as-report"], body=m["as-report"].to_body().replace(b'"wh":4000', b'"wh":4000.5')
            ),
            "SchemaError",
            "",
        ),
        ("checkpoint-prev-after-size", _edit(m["checkpoint"], {"prev": 13}), "SchemaError", "prev"),
        (
            "checkpoint-root-short",
            _edit(m["checkpoint"], {"root": b64(bytes(31))}),
            "SchemaError",
            "root",
        ),
        ("checkpoint-signature-flipped", bytes(flipped), "BadSignatureError", None),
        ("cosig-witness-of-itself", _edit(m["cosig"], {"node": "ac1"}), "SchemaError", "node"),
        ("sync-req-ids-of-nothing", _edit(m["sync-req"], {"count": 0}), "SchemaError", "count"),
        ("sync-req-unknown-op", _edit(m["sync-req"], {"op": "drop"}), "SchemaError", "op"),
        ("sync-resp-id-short", _edit(m["sync-resp"], {"id": b64(bytes(15))}), "SchemaError", "id"),
        (
            "enrol-meters-unsorted",
            _edit(m["enrol"], {"meters": ["m2", "m1"]}),
            "SchemaError",
            "meters",
        ),
        ("enrol-proof-short", _edit(m["enrol"], {"proof": b64(bytes(31))}), "SchemaError", "proof"),
        (
            "enrol-key-not-the-signers",  # signed by gw-site1's key, carrying ra1's
            _edit(m["enrol"], {"ed25519": KEYS["ra1"]}),
            "BadSignatureError",
            None,
        ),
        (
            "enrol-without-site",
            _env(m["enrol"], body=_body(_without(json.loads(m["enrol"].to_body()), "site"))),
            "SchemaError",
            "site",
        ),
    ]
    for name, raw, expect, path in bad:
        case: dict[str, object] = {"name": name, "envelope": raw, "expect": expect}
        if path is not None:
            case["path"] = path
        cases.append(case)
    for case in cases:
        case["envelope"] = bytes(case["envelope"]).hex()  # type: ignore[arg-type]
    return cases


def _without(obj: dict[str, object], key: str, **change: object) -> dict[str, object]:
    return {**{k: v for k, v in obj.items() if k != key}, **change}


def _body(obj: dict[str, object], **change: object) -> bytes:
    return json.dumps({**obj, **change}, sort_keys=True, separators=(",", ":")).encode()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    cases = vectors()
    for case in cases:
        (OUT / f"{case['name']}.json").write_text(
            json.dumps({"keys": KEYS, **case}, indent=2, sort_keys=True) + "\n"
        )
    print(f"wrote {len(cases)} vectors to {OUT}")


if __name__ == "__main__":
    main()
