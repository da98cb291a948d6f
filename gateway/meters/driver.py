"""The generic meter driver: reads any model's registers from one unit id in planned blocks.

A meter that refuses a block (a Modbus exception: illegal address, illegal value, device
failure) is asked again in halves, down to single registers; the smaller plan is kept for
the next read, so the cost is paid once. A register the meter refuses on its own is
reported as refused, never guessed. No answer at all is the caller's problem: it raises.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from gateway.errors import ExceptionResponseError
from gateway.meters.plan import Block, plan_blocks, split
from gateway.meters.table import MeterModel

log = logging.getLogger("mlg.gateway.meters")


class RegisterReader(Protocol):
    def read(self, unit: int, table: str, address: int, count: int) -> list[int]:
        """`count` registers at `address` of `unit`'s input or holding table."""
        ...


class MeterDriver:
    """Reads `names` (default: every register) of `model` from one unit."""

    def __init__(self, model: MeterModel, names: Iterable[str] | None = None) -> None:
        self.model = model
        regs = model.registers if names is None else [model.register(n) for n in names]
        self.blocks = plan_blocks(regs, model.max_block)
        self.refused: set[str] = set()

    def read(self, bus: RegisterReader, unit: int) -> dict[str, float]:
        """Register name → value (in its unit); refused registers are left out."""
        values: dict[str, float] = {}
        plan: list[Block] = []
        pending = list(self.blocks)
        while pending:
            block = pending.pop(0)
            try:
                words = bus.read(unit, block.table, block.address, block.count)
            except ExceptionResponseError as exc:
                halves = split(block)
                if len(halves) == 1:
                    name = block.registers[0].name
                    if name not in self.refused:
                        log.warning("unit %d refuses register %s: %s", unit, name, exc)
                    self.refused.add(name)
                    plan.append(block)  # ask again next time: the refusal may pass
                    continue
                log.info(
                    "unit %d refuses %d registers at %d (%s); reading it in halves",
                    unit,
                    block.count,
                    block.address,
                    exc.code,
                )
                pending[:0] = halves
                continue
            plan.append(block)
            for reg in block.registers:
                offset = reg.address - block.address
                words_of = words[offset : offset + reg.words]
                values[reg.name] = reg.decode(words_of, self.model.big_word_first)
                self.refused.discard(reg.name)
        self.blocks = plan
        return values
