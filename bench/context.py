"""What every benchmark gets: a real Kafka bootstrap, a scratch dir, and ``record``."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Result:
    """One measured number with the baseline measured in the same run."""

    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_value": self.baseline_value,
            "ratio": self.ratio,
            "params": self.params,
        }


@dataclass
class BenchContext:
    """Passed to each benchmark's ``run``."""

    kafka_bootstrap: str
    scratch: Path
    quick: bool = False
    results: list[Result] = field(default_factory=list)

    def record(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        baseline: str | None = None,
        baseline_value: float | None = None,
        ratio: float | None = None,
        **params: Any,
    ) -> Result:
        """Record one result; ``ratio`` defaults to value / baseline_value when both are known."""
        if ratio is None and baseline_value:
            ratio = value / baseline_value
        r = Result(name, float(value), unit, baseline, baseline_value, ratio, params)
        self.results.append(r)
        print(f"  {name:<40} {value:>14.4g} {unit:<10}"
              + (f"  baseline {baseline}={baseline_value:.4g}  ratio {ratio:.3g}" if baseline_value else ""),
              flush=True)
        return r


def write_results(results: list[Result], path: Path) -> None:
    """Merge ``results`` into ``path`` (a JSON list), replacing entries of the same name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: list[dict[str, Any]] = []
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except ValueError:
            existing = []
    names = {r.name for r in results}
    merged = [e for e in existing if e.get("name") not in names] + [r.as_dict() for r in results]
    for e in merged:
        e.setdefault("params", {}).setdefault("machine", f"{platform.machine()} {platform.python_version()}")
    path.write_text(json.dumps(merged, indent=2) + "\n")
