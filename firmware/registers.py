"""A Modbus register image: input registers, holding registers and coils.

Words are stored big-endian in bytearrays allocated once, so a read answers from a slice
without building lists. Subclasses check writes by overriding `check_holding` and react
to them in `written`.
"""

import struct

from .compat import const

ILLEGAL_FUNCTION = const(1)
ILLEGAL_ADDRESS = const(2)
ILLEGAL_VALUE = const(3)

INPUT = const(0)
HOLDING = const(1)
COIL = const(2)


class RegisterBank:
    def __init__(self, n_input: int, n_holding: int, n_coils: int) -> None:
        self.input = bytearray(2 * n_input)
        self.holding = bytearray(2 * n_holding)
        self.coils = bytearray(n_coils)

    # -- values, as the meter model writes them -------------------------------------
    def set_float(self, address: int, value: float) -> None:
        """Store `value` as float32 big-endian (high word first) at input `address`."""
        struct.pack_into(">f", self.input, 2 * address, value)

    def get_float(self, address: int) -> float:
        return struct.unpack_from(">f", self.input, 2 * address)[0]

    def set_uint(self, address: int, value: int, words: int) -> None:
        """Store an unsigned integer of 1 or 2 words (high word first) at input `address`."""
        if words == 1:
            struct.pack_into(">H", self.input, 2 * address, value & 0xFFFF)
        else:
            struct.pack_into(">I", self.input, 2 * address, value & 0xFFFFFFFF)

    def set_holding(self, address: int, value: int) -> None:
        struct.pack_into(">H", self.holding, 2 * address, value)

    def get_holding(self, address: int) -> int:
        return struct.unpack_from(">H", self.holding, 2 * address)[0]

    # -- hooks for subclasses -----------------------------------------------------------
    def refresh(self) -> None:
        """Called before each request is answered: bring live values up to date."""

    def check_holding(self, address: int, words: list) -> int:
        """Return 0 if writing `words` (list of int) at `address` is allowed, else a code."""
        return 0

    def written(self, kind: int, address: int, count: int) -> None:
        """Called after a successful write of `count` items of `kind` at `address`."""

    # -- what the slave calls -------------------------------------------------------------
    def offset(self, kind: int, address: int, count: int) -> int:
        """The byte offset of `count` words (coils: the index) at `address`; -1 if outside."""
        if kind == COIL:
            return address if address + count <= len(self.coils) else -1
        size = len(self.input if kind == INPUT else self.holding) // 2
        return 2 * address if address + count <= size else -1
