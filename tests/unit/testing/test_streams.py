"""The detection benchmark's streams: deterministic, and each scenario's known answer (drift start,
affected segment, clean segments, control) is what the generator actually did to the bytes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import orjson
import pytest

from inferwatch.testing import streams
from inferwatch.testing.streams import SCENARIOS, Stream

DURATION_S = 240  # short streams: ~500 events of the affected segment after the drift


@pytest.fixture(scope="module")
def built() -> dict[str, Stream]:
    return {name: streams.build(name, duration_s=DURATION_S) for name in SCENARIOS}


def test_at_least_eight_scenarios_over_every_kind() -> None:
    assert len(SCENARIOS) >= 8
    assert {s.kind for s in SCENARIOS.values()} == {"input", "concept", "new_segment", "embedding", "llm"}
    assert not any(s.data == "digits" for s in SCENARIOS.values())  # reserved for an independent evaluation


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = streams.build("input_shift_wine", duration_s=60)
    b = streams.build("input_shift_wine", duration_s=60)
    c = streams.build("input_shift_wine", seed=1, duration_s=60)
    assert [e.value for e in a.events] == [e.value for e in b.events]
    assert a.truth == b.truth
    assert [e.value for e in a.events] != [e.value for e in c.events]


def test_unknown_scenario_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        streams.build("nope")


def _rows(s: Stream) -> tuple[dict[tuple[str, str, bool], list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Predictions grouped by (model, segment value, after the drift start?), and labels by prediction id."""
    t = s.truth
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = defaultdict(list)
    labels: dict[str, dict[str, Any]] = {}
    for e in s.events:
        d = orjson.loads(e.value)
        assert d["ts"] == e.ts and d["model"] == e.key.decode()
        if e.kind == "prediction":
            groups[(d["model"], d["segment"][t.segment_key], d["ts"] >= t.drift_start_ms)].append(d)
        else:
            labels[d["prediction_id"]] = d
    return groups, labels


def _stat(kind: str, rows: list[dict[str, Any]], labels: dict[str, dict[str, Any]], spec: streams.Spec) -> float:
    """The one number the scenario's drift moves."""
    if kind == "llm":
        return float(np.mean([np.mean(r["llm"]["token_logprobs"]) for r in rows]))
    if kind == "embedding":
        return float(np.mean([r["embedding"] for r in rows], axis=0) @ _direction(spec))
    if kind == "concept":
        return float(np.mean([r["outputs"]["label"] == labels[r["prediction_id"]]["label"] for r in rows]))
    if spec.category_after is not None:
        return float(np.mean([r["inputs"]["instrument"] == "c" for r in rows]))
    f = next(iter(spec.shift_std or spec.scale))
    return float(np.mean([r["inputs"][f] for r in rows]) / streams.dataset(spec.data).std[
        streams.dataset(spec.data).features.index(f)])


def _direction(spec: streams.Spec) -> np.ndarray:
    d = np.random.default_rng(streams._seed(spec.data, 7)).normal(size=streams.EMBED_DIM)
    return d / np.linalg.norm(d)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_known_answer_is_what_the_generator_did(built: dict[str, Stream], name: str) -> None:
    s = built[name]
    t, spec = s.truth, SCENARIOS[name]
    assert t.drift_start_ms == streams.T0_MS + (DURATION_S // 2 + streams.DRIFT_OFFSET_S) * 1000
    assert t.segment == f"{spec.segment_key}={streams.affected_value(name)}"
    assert set(t.clean) | {t.affected} == set(spec.values) and t.affected not in t.clean
    for f in [*spec.shift_std, *spec.scale]:  # what the drift moves is what the bench accepts as its cause
        assert spec.kind == "new_segment" or f"input.{f}." in t.signals
    assert bool(t.signals) == (spec.kind != "new_segment")
    assert [e.ts for e in s.events] == sorted(e.ts for e in s.events)
    groups, labels = _rows(s)
    # labels (when the scenario has them) come label_delay_s after their prediction
    if t.label_delay_s is None:
        assert not labels
    else:
        for rows in groups.values():
            for r in rows[:50]:
                assert labels[r["prediction_id"]]["ts"] - r["ts"] == int(t.label_delay_s * 1000)
    if spec.kind == "new_segment":
        assert (t.model, t.affected, False) not in groups  # unseen before the drift
        assert len(groups[(t.model, t.affected, True)]) > 200
        assert not any(k[1] == t.affected for k in groups if k[0] == t.control)  # the control never drifts
        pre = [r for (m, _, post), rows in groups.items() if m == t.model and not post for r in rows]
    else:
        pre = groups[(t.model, t.affected, False)]
    before = _stat(spec.kind, pre, labels, spec)
    moved = abs(_stat(spec.kind, groups[(t.model, t.affected, True)], labels, spec) - before)
    # every clean segment of the drifted model and every segment of the control stays where it was
    still = [abs(_stat(spec.kind, groups[(m, v, True)], labels, spec) - _stat(spec.kind, groups[(m, v, False)], labels, spec))
             for (m, v, post) in groups if post and (m == t.control or v in t.clean)]
    assert len(still) == 2 * len(spec.values) - 1 - (1 if spec.kind == "new_segment" else 0)
    assert moved > 2.5 * max(still), (moved, still)
