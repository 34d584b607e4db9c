"""Benchmarks behind `make bench`. Each ``bench/bench_*.py`` defines ``run(ctx) -> None`` and records
results with ``ctx.record(...)``; the runner prints a table and writes ``.bench/results.json``."""
