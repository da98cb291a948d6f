"""The wire area's helper: a known-answer vector as the tests read it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nacl.signing


def load_case(path: Path) -> dict[str, Any]:
    """A vector's JSON, with its envelope bytes (`raw`, plus any `append_zero_bytes`) and
    its signers' `verify_keys`."""
    case: dict[str, Any] = json.loads(path.read_text())
    case["raw"] = bytes.fromhex(case["envelope"]) + bytes(case.get("append_zero_bytes", 0))
    case["verify_keys"] = {
        name: nacl.signing.VerifyKey(base64.b64decode(key)) for name, key in case["keys"].items()
    }
    return case
