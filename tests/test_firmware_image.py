"""The board's firmware image: the `const` assignments of the board modules
(firmware/*.py) are ones MicroPython's compiler folds."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOARD_MODULES = sorted((ROOT / "firmware").glob("*.py"))  # not firmware/emulator/


def _consts(source: Path) -> list[str]:
    """The names the module assigns with `const`; asserts each is `NAME = const(...)` at
    module level, the form MicroPython folds (annotated ones only from MicroPython 1.29)."""
    tree = ast.parse(source.read_text())
    names = []
    folded = set()
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "const"
        ):
            names.append(node.targets[0].id)
            folded.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and id(node) not in folded:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            assert name != "const", f"{source.name}:{node.lineno}: not `NAME = const(...)`"
    return names


def test_private_constants_take_no_ram_on_micropython(tmp_path: Path) -> None:
    consts = {p.stem: _consts(p) for p in BOARD_MODULES}
    assert consts["registers"] and consts["ticks"], "no constants found: the scan is broken"
    # board.py needs the board's `machine`, which MicroPython's WebAssembly port lacks.
    modules = sorted(name for name in consts if name not in ("__init__", "board"))
    script = tmp_path / "globals.py"
    script.write_text(
        f"from firmware import {', '.join(modules)}\n"
        f"for m in ({', '.join(modules)},):\n"
        "    print(m.__name__, ' '.join(dir(m)))\n"
    )
    if not (ROOT / "node_modules" / "@micropython").is_dir() or shutil.which("node") is None:
        pytest.fail("the MicroPython interpreter is not installed: run `make test`")
    result = subprocess.run(
        ["node", str(ROOT / "tests" / "mpy" / "run.mjs"), str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seen = {}
    for line in result.stdout.splitlines():
        module, *names = line.split()
        seen[module.rpartition(".")[2]] = set(names)
    assert sorted(seen) == modules, result.stdout
    for module in modules:
        for name in consts[module]:
            # A private constant is folded away; a public one stays importable.
            assert (name in seen[module]) != name.startswith("_"), f"{module}.{name}"
