"""Run the benchmarks: ``python -m bench [name ...] [--quick]``.

Starts a real Kafka broker like the tests do (env var, testcontainers, or the native broker),
runs every ``bench/bench_*.py`` (or the named ones), prints a table, writes ``.bench/results.json``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.kafka import real_kafka  # noqa: E402

from bench.context import BenchContext, write_results  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(prog="make bench", description=__doc__)
    ap.add_argument("names", nargs="*", help="benchmarks to run (e.g. sdk sink); default: all")
    ap.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    ap.add_argument("--out", default=str(ROOT / ".bench" / "results.json"))
    args = ap.parse_args()
    modules = sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))
    if args.names:
        modules = [m for m in modules if m.removeprefix("bench_") in args.names or m in args.names]
    failed = []
    with tempfile.TemporaryDirectory(prefix="inferwatch-bench-") as tmp, real_kafka(Path(tmp)) as bootstrap:
        ctx = BenchContext(kafka_bootstrap=bootstrap, scratch=Path(tmp), quick=args.quick)
        for name in modules:
            print(f"==> {name}", flush=True)
            t0 = time.monotonic()
            try:
                importlib.import_module(f"bench.{name}").run(ctx)
            except Exception:
                traceback.print_exc()
                failed.append(name)
            print(f"    ({time.monotonic() - t0:.1f}s)", flush=True)
            write_results(ctx.results, Path(args.out))
    print(f"\nwrote {args.out}")
    if failed:
        print("failed benchmarks:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
