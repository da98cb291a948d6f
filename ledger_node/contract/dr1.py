"""The DR aggregation contract, version ``dr-1``: declarations × readings → results, reward.

A pure function of the facts, so every node that can read the same readings computes the
same results whatever order the facts arrived in.

Per (command, slot, RA), over the sites of the RA's latest declaration for the command,
and per (command, slot, AC), over the declared sites of the AC's RAs:

- the readings counted: for each declared site and registered meter, the reading of the
  batch with the lowest `seq` for that slot (a meter reported twice counts once);
- ``actual_wh`` = Σ readings, ``baseline_wh`` = Σ declared baselines;
- ``delivered_wh`` = Σ (baseline − actual) over the sites whose registered meters *all*
  reported in the slot; a site with a missing reading delivers 0 in that slot (an absent
  reading must never look like a reduction);
- ``reported`` / ``declared`` meters (coverage), ``flagged`` readings (quality flags);
- the Pedersen total ``(V, R)`` = (actual_wh, Σ blinding factors) with the list of
  readings it covers (txid, meter): anyone checks ``Σ C == V·G + R·H`` from the public
  commitments alone (`check_total`).

Reward per (command, AC), the shortfall rule: in each slot the AC is credited its
delivered reduction up to its target, ``credited = min(max(delivered, 0), target)``; the
shortfall ``target − credited`` is tolerated up to a tenth of the target, and what
exceeds that (``penalised``) is charged at the same price:
``reward_yen = ⌊price × (Σ credited − Σ penalised) / 1000⌋`` (price in yen per kWh,
energies in Wh; negative means the AC pays).
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ledger_node.shared.errors import MeterledgerError
from ledger_node.wire import DrCommand, DrDeclaration, pedersen

CONTRACT_VERSION = "dr-1"
CONTRACTS = frozenset({CONTRACT_VERSION})
TOLERANCE_DIVISOR = 10
"""A shortfall up to target // 10 Wh per slot is not charged."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A meter's entry in a readings batch, as public data shows it."""

    txid: bytes
    seq: int
    site: str
    meter: str


@dataclass(frozen=True, slots=True)
class MeterReading:
    """A candidate with its decrypted energy (Wh), blinding scalar and quality flag."""

    ref: Candidate
    wh: int
    r: bytes
    flagged: bool


Ref = tuple[bytes, str]
"""A reading's reference: (txid of its batch, meter id)."""


@dataclass(frozen=True, slots=True)
class SlotResult:
    command: str
    slot: int
    kind: str  # "ra" or "ac"
    scope: str
    contract: str
    actual_wh: int
    baseline_wh: int
    delivered_wh: int
    target_wh: int
    reported: int
    declared: int
    flagged: int
    v_wh: int
    r: bytes
    refs: tuple[Ref, ...]


@dataclass(frozen=True, slots=True)
class Reward:
    command: str
    ac: str
    contract: str
    price: int
    credited_wh: int
    shortfall_wh: int
    penalised_wh: int
    reward_yen: int


@dataclass(frozen=True)
class Inputs:
    """Everything one command's settlement depends on."""

    command: DrCommand
    declarations: Mapping[str, DrDeclaration]
    """The latest declaration of each RA for the command."""
    ra_ac: Mapping[str, str]
    site_meters: Mapping[str, tuple[str, ...]]
    readings: Mapping[tuple[str, int], list[MeterReading]]
    """(site, slot) → the readings this node decrypted for it (any seq)."""
    scopes: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    """("ra", id) and ("ac", id) to settle: those whose sites this node can read."""


def select(candidates: Iterable[Candidate], meters: Iterable[str]) -> dict[str, Candidate]:
    """Per registered meter, the candidate of the lowest seq."""
    wanted = set(meters)
    chosen: dict[str, Candidate] = {}
    for c in candidates:
        if c.meter in wanted and (c.meter not in chosen or c.seq < chosen[c.meter].seq):
            chosen[c.meter] = c
    return chosen


@dataclass
class _Sum:
    actual: int = 0
    baseline: int = 0
    delivered: int = 0
    reported: int = 0
    declared: int = 0
    flagged: int = 0
    r: bytes = pedersen.scalar(0)
    refs: list[Ref] = field(default_factory=list)

    def add(self, other: _Sum) -> None:
        self.actual += other.actual
        self.baseline += other.baseline
        self.delivered += other.delivered
        self.reported += other.reported
        self.declared += other.declared
        self.flagged += other.flagged
        self.r = pedersen.add_scalars((self.r, other.r))
        self.refs.extend(other.refs)


def settle(inputs: Inputs) -> tuple[list[SlotResult], list[Reward]]:
    """The results of one command for the requested scopes, and the AC rewards."""
    cmd = inputs.command
    results: list[SlotResult] = []
    per_ac_slot: dict[str, list[_Sum]] = {}
    targets = dict(cmd.targets)
    for index, slot in enumerate(cmd.slots):
        ac_sums: dict[str, _Sum] = defaultdict(_Sum)
        for ra in sorted(inputs.declarations):
            decl = inputs.declarations[ra]
            ra_sum = _Sum()
            for site, _ in decl.sites:
                baseline = decl.baseline_wh(site, index) or 0
                ra_sum.add(_site_sum(inputs, site, slot, baseline))
            ac = inputs.ra_ac.get(ra)
            if ac is not None:
                ac_sums[ac].add(ra_sum)
            if ("ra", ra) in inputs.scopes:
                results.append(_result(cmd, slot, "ra", ra, ra_sum, 0))
        for ac in sorted({ac for kind, ac in inputs.scopes if kind == "ac"}):
            total = ac_sums.get(ac, _Sum())
            results.append(_result(cmd, slot, "ac", ac, total, targets.get(ac, 0)))
            per_ac_slot.setdefault(ac, []).append(total)
    rewards = [
        reward(cmd, ac, targets[ac], [s.delivered for s in per_ac_slot[ac]])
        for ac in sorted(per_ac_slot)
        if ac in targets
    ]
    return results, rewards


def _site_sum(inputs: Inputs, site: str, slot: int, baseline: int) -> _Sum:
    meters = inputs.site_meters.get(site, ())
    readings = inputs.readings.get((site, slot), [])
    by_ref = {(m.ref.txid, m.ref.meter): m for m in readings}
    chosen = select((m.ref for m in readings), meters)
    s = _Sum(baseline=baseline, declared=len(meters))
    for meter in sorted(chosen):
        reading = by_ref[(chosen[meter].txid, meter)]
        s.actual += reading.wh
        s.flagged += reading.flagged
        s.r = pedersen.add_scalars((s.r, reading.r))
        s.refs.append((reading.ref.txid, meter))
    s.reported = len(chosen)
    s.delivered = baseline - s.actual if meters and s.reported == len(meters) else 0
    return s


def _result(cmd: DrCommand, slot: int, kind: str, scope: str, s: _Sum, target: int) -> SlotResult:
    return SlotResult(
        command=cmd.id,
        slot=slot,
        kind=kind,
        scope=scope,
        contract=CONTRACT_VERSION,
        actual_wh=s.actual,
        baseline_wh=s.baseline,
        delivered_wh=s.delivered,
        target_wh=target,
        reported=s.reported,
        declared=s.declared,
        flagged=s.flagged,
        v_wh=s.actual,
        r=s.r,
        refs=tuple(sorted(s.refs)),
    )


def reward(cmd: DrCommand, ac: str, target: int, delivered: Iterable[int]) -> Reward:
    """AC `ac`'s reward for `cmd` from its delivered reduction per slot (Wh) and its target
    per slot (Wh): the shortfall rule of the module's docstring."""
    credited = shortfall = penalised = 0
    for d in delivered:
        c = min(max(d, 0), target)
        credited += c
        shortfall += target - c
        penalised += max(0, target - c - target // TOLERANCE_DIVISOR)
    price = cmd.price_yen_per_kwh
    return Reward(
        command=cmd.id,
        ac=ac,
        contract=CONTRACT_VERSION,
        price=price,
        credited_wh=credited,
        shortfall_wh=shortfall,
        penalised_wh=penalised,
        reward_yen=(price * (credited - penalised)) // 1000,
    )


class TotalCheckError(MeterledgerError):
    """A published total that its public commitments do not support."""


def check_total(
    v_wh: int,
    r: bytes,
    refs: Iterable[Ref],
    commitments: Mapping[Ref, bytes],
    expected_refs: Iterable[Ref] | None = None,
) -> None:
    """Check a Pedersen total against public data; raise `TotalCheckError` saying why not.

    `commitments` maps each (txid, meter) to its public commitment (from the batches in
    the checker's own log). With `expected_refs` (the readings public data says the total
    must cover), a total that leaves one out, or adds one, fails too.
    """
    refs = list(refs)
    missing = [ref for ref in refs if ref not in commitments]
    if missing:
        txid, meter = missing[0]
        raise TotalCheckError(f"no public commitment for meter {meter} of batch {txid.hex()}")
    if expected_refs is not None:
        expected, given = set(expected_refs), set(refs)
        if expected - given:
            txid, meter = sorted(expected - given)[0]
            raise TotalCheckError(f"the total leaves out meter {meter} of batch {txid.hex()}")
        if given - expected:
            txid, meter = sorted(given - expected)[0]
            raise TotalCheckError(f"the total counts meter {meter} of batch {txid.hex()}")
    if len(set(refs)) != len(refs):
        raise TotalCheckError("the total counts a reading twice")
    total = pedersen.add_points(commitments[ref] for ref in refs)
    if not hmac.compare_digest(total, pedersen.commit(v_wh, r)):
        raise TotalCheckError(
            f"Σ C of {len(refs)} readings ≠ {v_wh}·G + R·H: the total or its readings were altered"
        )
