"""Decoders from 16-bit register words to numbers, one small pure function per type."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

Decoder = Callable[[Sequence[int], bool], float]


def _words_to_bytes(words: Sequence[int], big_word_first: bool) -> bytes:
    ordered = words if big_word_first else list(reversed(words))
    return b"".join(w.to_bytes(2, "big") for w in ordered)


def float32(words: Sequence[int], big_word_first: bool = True) -> float:
    """IEEE 754 float32 from two words (high word first unless `big_word_first` is False)."""
    value: float = struct.unpack(">f", _words_to_bytes(words, big_word_first))[0]
    return value


def uint16(words: Sequence[int], big_word_first: bool = True) -> float:
    return float(words[0])


def int16(words: Sequence[int], big_word_first: bool = True) -> float:
    return float(words[0] - 0x10000 if words[0] & 0x8000 else words[0])


def uint32(words: Sequence[int], big_word_first: bool = True) -> float:
    return float(int.from_bytes(_words_to_bytes(words, big_word_first), "big"))


def int32(words: Sequence[int], big_word_first: bool = True) -> float:
    return float(int.from_bytes(_words_to_bytes(words, big_word_first), "big", signed=True))


def encode_float32(value: float, big_word_first: bool = True) -> list[int]:
    """The two words of `value` as float32: the inverse of `float32`."""
    raw = struct.pack(">f", value)
    words = [int.from_bytes(raw[0:2], "big"), int.from_bytes(raw[2:4], "big")]
    return words if big_word_first else words[::-1]


def encode(type_name: str, value: float, big_word_first: bool = True) -> list[int]:
    """The words of `value` as `type_name` holds it (integers rounded): the inverse of its
    decoder, for a device that serves the table."""
    if type_name == "float32":
        return encode_float32(value, big_word_first)
    words, _ = DECODERS[type_name]
    raw = round(value).to_bytes(2 * words, "big", signed=type_name.startswith("int"))
    out = [int.from_bytes(raw[k : k + 2], "big") for k in range(0, len(raw), 2)]
    return out if big_word_first else out[::-1]


DECODERS: dict[str, tuple[int, Decoder]] = {
    "float32": (2, float32),
    "uint16": (1, uint16),
    "int16": (1, int16),
    "uint32": (2, uint32),
    "int32": (2, int32),
}
"""Type name → (words, decoder)."""
