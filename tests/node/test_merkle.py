"""RFC 6962/9162 Merkle trees: known answers, proofs against the definition, third-party
proofs, tampered proofs, and the SQLite-backed log."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ledger_node.ledger.merkle import (
    RFC6962,
    ProofError,
    consistency_proof,
    inclusion_proof,
    root_of,
    subtree_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from ledger_node.ledger.store import connect, transaction
from ledger_node.ledger.txlog import STORED_LEVEL, MerkleLog
from tests.support.ledgers import Where

# The reference leaves and roots of RFC 6962's test suite (certificate-transparency, as
# published in transparency-dev/merkle testonly/constants.go).
LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def test_roots_match_the_rfc6962_reference() -> None:
    hashes = [RFC6962.leaf(leaf) for leaf in LEAVES]
    for n, root in enumerate(ROOTS):
        assert root_of(RFC6962, hashes[:n]).hex() == root


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = RFC6962.leaf(b"a"), RFC6962.leaf(b"b")
    assert RFC6962.node(a, b) != RFC6962.leaf(a + b)
    assert RFC6962.leaf(b"x") == hashlib.sha256(b"\x00x").digest()


def test_every_proof_of_small_trees_verifies_and_matches_the_reference() -> None:
    hashes = [RFC6962.leaf(i.to_bytes(2, "big")) for i in range(40)]
    subtree = subtree_from_leaves(RFC6962, hashes)
    for n in range(1, 41):
        root = root_of(RFC6962, hashes[:n])
        for i in range(n):
            verify_inclusion(RFC6962, i, n, hashes[i], inclusion_proof(i, n, subtree), root)
        for m in range(n + 1):
            proof = consistency_proof(m, n, subtree)
            verify_consistency(RFC6962, m, n, proof, root_of(RFC6962, hashes[:m]), root)


def test_third_party_proofs_verify() -> None:
    """Happy-path vectors of transparency-dev/merkle (testdata/inclusion/1, consistency/3)."""
    verify_inclusion(
        RFC6962,
        0,
        8,
        _b("bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="),
        [
            _b("lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c="),
            _b("Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4="),
            _b("a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="),
        ],
        _b("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="),
    )
    verify_consistency(
        RFC6962,
        2,
        5,
        [
            _b("Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4="),
            _b("vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms="),
        ],
        _b("+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU="),
        _b("Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ="),
    )


@pytest.fixture
def seven() -> tuple[list[bytes], list[bytes], bytes]:
    hashes = [RFC6962.leaf(leaf) for leaf in LEAVES[:7]]
    subtree = subtree_from_leaves(RFC6962, hashes)
    return hashes, inclusion_proof(2, 7, subtree), root_of(RFC6962, hashes)


@pytest.mark.parametrize(
    "case",
    ["wrong-leaf", "wrong-index", "wrong-size", "bit-flipped", "truncated", "extended", "root"],
)
def test_tampered_inclusion_proofs_fail(
    seven: tuple[list[bytes], list[bytes], bytes], case: str
) -> None:
    hashes, proof, root = seven
    args = {"index": 2, "size": 7, "leaf": hashes[2], "proof": list(proof), "root": root}
    if case == "wrong-leaf":
        args["leaf"] = hashes[3]
    elif case == "wrong-index":
        args["index"] = 3
    elif case == "wrong-size":
        args["size"] = 3  # a shorter tree needs a shorter path
    elif case == "bit-flipped":
        args["proof"][1] = bytes([proof[1][0] ^ 1]) + proof[1][1:]
    elif case == "truncated":
        args["proof"] = proof[:-1]
    elif case == "extended":
        args["proof"] = [*proof, root]
    else:
        args["root"] = hashes[0]
    with pytest.raises(ProofError) as info:
        verify_inclusion(
            RFC6962, args["index"], args["size"], args["leaf"], args["proof"], args["root"]
        )
    assert str(info.value)


def test_tampered_consistency_proofs_fail() -> None:
    hashes = [RFC6962.leaf(leaf) for leaf in LEAVES]
    subtree = subtree_from_leaves(RFC6962, hashes)
    r3, r8 = root_of(RFC6962, hashes[:3]), root_of(RFC6962, hashes)
    proof = consistency_proof(3, 8, subtree)
    verify_consistency(RFC6962, 3, 8, proof, r3, r8)
    flipped = [proof[0], bytes([proof[1][0] ^ 4]) + proof[1][1:], *proof[2:]]
    for bad in (
        (3, 8, flipped, r3, r8),
        (3, 8, proof[:-1], r3, r8),
        (3, 8, proof, r8, r3),
        (4, 8, proof, r3, r8),
        (3, 8, [], r3, r8),
        (8, 3, proof, r8, r3),
    ):
        with pytest.raises(ProofError):
            verify_consistency(RFC6962, *bad)
    with pytest.raises(ProofError) as info:
        verify_consistency(RFC6962, 8, 8, [], r8, r3)
    assert r8.hex() in str(info.value) and r3.hex() in str(info.value)  # both sides named


def test_the_stored_log_matches_the_definition(store: Where) -> None:
    """On either store (SQLite, PostgreSQL)."""
    db = connect(store("log"))
    txlog = MerkleLog(db)
    envelopes = [b"entry %d" % i for i in range(70)]
    hashes = [RFC6962.leaf(e) for e in envelopes]
    roots = []
    with transaction(db):
        for i, env in enumerate(envelopes):
            txlog.append(hashlib.sha256(env).digest(), "test", "me", env, float(i), "local")
            roots.append(txlog.root())
    for n in range(1, 71):
        assert roots[n - 1] == root_of(RFC6962, hashes[:n]) == txlog.root(n)
    for i in (0, 15, 16, 17, 63, 69):
        verify_inclusion(RFC6962, i, 70, hashes[i], txlog.inclusion(i), txlog.root())
    verify_consistency(RFC6962, 17, 70, txlog.consistency(17), txlog.root(17), txlog.root())
    stored = [row[0] >> 40 for row in db.execute("SELECT id FROM tree")]
    assert stored and min(stored) == STORED_LEVEL  # lower levels come from the leaves
    db.close()
    again = MerkleLog(connect(store("log")))
    assert (again.size, again.root()) == (70, roots[-1])
    with transaction(again.db):
        again.shred(5)
    assert again.entry(5).envelope is None  # type: ignore[union-attr]
    assert again.root() == roots[-1] and again.leaf_hash(5) == hashes[5]
    verify_inclusion(RFC6962, 4, 70, hashes[4], again.inclusion(4), roots[-1])
    again.db.close()
