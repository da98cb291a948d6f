"""Run every benchmark (or those named on the command line) and write bench-results.json."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    p.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results.json")
    args = p.parse_args(argv)
    modules = sorted(f.stem for f in Path(__file__).parent.glob("bench_*.py"))
    if args.names:
        unknown = set(args.names) - set(modules)
        if unknown:
            print(
                f"unknown benchmarks: {', '.join(sorted(unknown))}; known: {modules}",
                file=sys.stderr,
            )
            return 2
        modules = [m for m in modules if m in args.names]
    results = []
    for name in modules:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        module = importlib.import_module(f"tests.bench.{name}")
        for result in module.run():
            print(result.describe(), flush=True)
            results.append(result.to_json())
        print(f"   ({time.monotonic() - started:.1f} s)\n", flush=True)
    doc = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor(),
        },
        "benchmarks": results,
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {len(results)} results to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
