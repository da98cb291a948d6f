"""Block-read planning: cover a model's registers with as few reads as its meter allows.

Each read stays within one table (input or holding), starts at a register's first word and
ends at a register's last, so it never asks for part of a value; the unused registers it
spans between two rows are ones the datasheet reserves (an Eastron meter answers them with
zero).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.meters.table import Register


@dataclass(frozen=True, slots=True)
class Block:
    """One read: `count` registers from `address` of `table`, holding `registers`."""

    address: int
    count: int
    registers: tuple[Register, ...]

    @property
    def table(self) -> str:
        return self.registers[0].table


def plan_blocks(registers: Iterable[Register], max_block: int, max_gap: int = 16) -> list[Block]:
    """Merge registers (by table, then address) into reads of at most `max_block` registers.

    A gap of more than `max_gap` unused registers starts a new read: reading them costs
    two bytes each on the wire, a new read costs a request and a turnaround.
    """
    blocks: list[Block] = []
    current: list[Register] = []
    for reg in sorted(registers, key=lambda r: (r.table, r.address)):
        if current:
            start = current[0].address
            end = max(r.address + r.words for r in current)
            if (
                reg.table == current[0].table
                and reg.address - end <= max_gap
                and reg.address + reg.words - start <= max_block
            ):
                current.append(reg)
                continue
            blocks.append(_block(current))
        current = [reg]
    if current:
        blocks.append(_block(current))
    return blocks


def _block(regs: list[Register]) -> Block:
    start = regs[0].address
    end = max(r.address + r.words for r in regs)
    return Block(start, end - start, tuple(regs))


def split(block: Block) -> list[Block]:
    """Two smaller reads covering `block`'s registers (split between registers), or the
    block itself when it holds a single register."""
    regs = block.registers
    if len(regs) < 2:
        return [block]
    half = len(regs) // 2
    return [_block(list(regs[:half])), _block(list(regs[half:]))]
