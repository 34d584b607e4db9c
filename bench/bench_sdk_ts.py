"""The TypeScript SDK (sdks/typescript): ``sdk_ts.throughput`` and ``sdk_ts.caller_p50_us`` against a
bare ``produce()`` of the same client (node-rdkafka with the SDK's producer settings) in the same run.

The measuring is done by sdks/typescript/bench/bench.mjs (alternating raw/SDK blocks, each ending
with a flush; see its header); this module starts it against the benchmark's broker and records
what it prints.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from bench.context import BenchContext
from inferwatch.config import Settings
from inferwatch.kafka.admin import apply_topics

PKG = Path(__file__).resolve().parents[1] / "sdks" / "typescript"


def run(ctx: BenchContext) -> None:
    """Entry point of ``python -m bench sdk_ts``."""
    node = shutil.which("node")
    if node is None or not (PKG / "dist" / "esm" / "index.js").exists():
        raise RuntimeError("node and the built TypeScript SDK are required (make install)")
    settings = Settings(kafka_bootstrap=ctx.kafka_bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
                        data_dir=ctx.scratch / "data-ts")
    apply_topics(settings)
    n = 100_000 if ctx.quick else 400_000
    env = {**os.environ, "INFERWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "INFERWATCH_TOPIC_PREFIX": settings.topic_prefix, "IW_BENCH_EVENTS": str(n)}
    out = subprocess.run([node, "bench/bench.mjs"], cwd=PKG, env=env, capture_output=True, text=True, timeout=1200)
    if out.returncode != 0:
        raise RuntimeError(f"bench.mjs failed: {out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    common = {"events": r["events"], "blocks": r["blocks"], "node": r["node"], "librdkafka": r["librdkafka"]}
    ctx.record("sdk_ts.throughput", r["sdk_throughput"], "events/s", baseline="kafka.raw_produce_node_rdkafka",
               baseline_value=r["raw_throughput"], delivered=r["delivered"], dropped=r["dropped"],
               spooled=r["spooled"], **common)
    ctx.record("sdk_ts.caller_p50_us", r["sdk_p50_us"], "us", baseline="kafka.raw_produce_node_rdkafka",
               baseline_value=r["raw_p50_us"], baseline_what="JSON.stringify(event) + produce()", **common)
    ctx.record("sdk_ts.caller_p99_us", r["sdk_p99_us"], "us", baseline="kafka.raw_produce_node_rdkafka",
               baseline_value=r["raw_p99_us"], **common)
