"""Benchmarks (`make bench`): each module `bench_*.py` here has `run() -> list[Result]`.

A benchmark measures its figure and, in the same run, the limit it is compared with (a bare
loop of the dominant cost, a protocol ceiling, or a stated goal), and reports the ratio.
Timings are never asserted in tests; they are printed here and written to
`bench-results.json` at the repository root.
"""
