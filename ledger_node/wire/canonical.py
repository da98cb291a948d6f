"""The canonical body encoding: JSON, keys sorted, no spaces, ASCII only, no floats.

Why JSON and not CBOR: the standard library reads and writes it on CPython and MicroPython,
a body is legible in `mosquitto_sub` and in the database, and the cost that matters at
ingest is the signature check, not the parse. Floats are banned because their text form is
not unique across implementations: energies are integer Wh, times integer seconds.
Canonical means one value has exactly one byte string, so equal content gives an equal
transaction id, and a body that differs in bytes differs in content. `decode` enforces it
by re-encoding and comparing.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from ledger_node.wire.errors import NotCanonicalError, SchemaError, WireError

JsonObject = dict[str, Any]


def encode(obj: JsonObject) -> bytes:
    """Encode `obj` canonically. Raises `ValueError` for floats, NaN or non-string keys."""
    _reject_floats(obj)
    return _dumps(obj)


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def _dumps(obj: JsonObject) -> bytes:
    return _ENCODER.encode(obj).encode("ascii")


def decode(data: bytes) -> JsonObject:
    """Parse canonical JSON bytes into a dict, or raise a `WireError` saying why not.

    A duplicate key cannot survive the re-encoding (the parser keeps one), so the check
    for it runs only when the body is not canonical, to name the key."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise NotCanonicalError(f"body is not ASCII at byte {exc.start}") from None
    obj = _loads(text, _DECODER)
    if not isinstance(obj, dict):
        raise SchemaError("", f"body must be a JSON object, not {type(obj).__name__}")
    if _dumps(obj) != data:  # no floats can be in `obj`: the parser refused them
        _loads(text, _NO_DUPLICATES)
        raise NotCanonicalError("body is valid JSON but not canonically encoded")
    return obj


def _loads(text: str, decoder: json.JSONDecoder) -> Any:
    try:
        return decoder.decode(text)
    except WireError:
        raise
    except (ValueError, RecursionError) as exc:
        raise WireError(f"body is not JSON: {exc}") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> JsonObject:
    obj: JsonObject = {}
    for key, value in pairs:
        if key in obj:
            raise SchemaError(key, "duplicate key")
        obj[key] = value
    return obj


def _no_float(text: str) -> NoReturn:
    raise SchemaError("", f"floats are not allowed ({text}); use integers with units")


def _no_constant(text: str) -> NoReturn:
    raise SchemaError("", f"{text} is not allowed")


# Built once (json.loads with options builds a decoder per call).
_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_constant)
_NO_DUPLICATES = json.JSONDecoder(
    object_pairs_hook=_no_duplicate_keys, parse_float=_no_float, parse_constant=_no_constant
)


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise ValueError(f"float {value!r} in a canonical body; use integers with units")
    if isinstance(value, dict):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list):
        for item in value:
            _reject_floats(item)
