"""Catching up on a backlog: a labelled model's windows wait for the label watermark too (the
predictions topic can be read far ahead of the feedback topic), close anyway after ``label_stall_s``
of prediction event time when labels stop, and a model without labels closes as before."""

from __future__ import annotations

import orjson
import pytest

from inferwatch.processor import ProcessorSettings
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import ProcessorCore

T0 = 1_764_140_040_000  # aligned to 60 s windows
W_MS = 60_000
LABEL_DELAY_MS = 2_000
CFG = ProcessorSettings(window_s=60, lateness_s=5, label_wait_s=0, baseline_s=0, label_stall_s=120)


def pred(i: int, ts: int, model: str = "m") -> Raw:
    value = orjson.dumps({"event_id": f"e{i}", "prediction_id": f"{model}-p{i}", "ts": ts, "model": model,
                          "model_version": "1", "outputs": {"label": "yes" if i % 4 else "no"},
                          "segment": {"device": f"d{i % 3}"}})
    return Raw(value, "pred", 0, i)


def label(i: int, ts: int, model: str = "m") -> Raw:
    value = orjson.dumps({"event_id": f"f{i}", "prediction_id": f"{model}-p{i}", "ts": ts, "model": model,
                          "label": "yes" if i % 5 else "no"})
    return Raw(value, "fb", 0, i)


def traffic(first_window: int, windows: int, per_window: int = 30) -> list[tuple[int, int]]:
    """(index, ts) of predictions spread over ``windows`` windows from ``first_window``."""
    step = W_MS // per_window
    return [(w * per_window + k, T0 + w * W_MS + k * step)
            for w in range(first_window, first_window + windows) for k in range(per_window)]


def whole(snaps: list) -> dict[int, object]:  # type: ignore[type-arg]
    return {s.window_start: s for s in snaps if s.segment_key is None}


def test_backlog_of_predictions_read_before_its_labels_keeps_every_label() -> None:
    # Bug: the watermark followed predictions only, so a predictions backlog read ahead of the
    # feedback backlog closed its windows before their labels were read (all became late_labels).
    # the default label_stall_s (600 s) exceeds the 300 s of predictions read ahead of their labels
    cfg = ProcessorSettings(window_s=60, lateness_s=5, label_wait_s=0, baseline_s=0)
    windows: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    meta: dict[str, bytes] = {}
    core = ProcessorCore(cfg, windows, joins, meta)
    live = traffic(0, 1)
    snaps = core.process_predictions([pred(i, ts) for i, ts in live]).snapshots
    snaps += core.process_feedback([label(i, ts + LABEL_DELAY_MS) for i, ts in live]).snapshots
    # downtime; then the worker restarts and reads 5 windows of predictions before any of their labels
    backlog = traffic(1, 5)
    core = ProcessorCore(cfg, windows, joins, meta)
    snaps += core.process_predictions([pred(i, ts) for i, ts in backlog]).snapshots
    core = ProcessorCore(cfg, windows, joins, meta)  # another restart between the two backlogs
    for w in range(5):  # the feedback backlog, one window's labels per batch
        part = backlog[w * 30:(w + 1) * 30]
        snaps += core.process_feedback([label(i, ts + LABEL_DELAY_MS) for i, ts in part]).snapshots
    # the last window's labels end at its end: it waits for later traffic on both topics (or the idle flush)
    snaps += core.process_predictions([pred(10_000, T0 + 7 * W_MS)]).snapshots
    assert T0 + 5 * W_MS not in whole(snaps)
    snaps += core.process_feedback([label(10_000, T0 + 7 * W_MS + LABEL_DELAY_MS)]).snapshots
    got = whole(snaps)
    assert sorted(got) == [T0 + w * W_MS for w in range(6)]
    for s in got.values():
        assert s.count == 30  # type: ignore[attr-defined]
        assert s.metrics["perf.label_coverage"] == pytest.approx(1.0)  # type: ignore[attr-defined]
        assert "perf.accuracy" in s.metrics  # type: ignore[attr-defined]
    assert all(v.get("late_labels", 0) == 0 for v in core._model("m")["versions"].values())


def test_window_waits_for_the_label_watermark_exactly() -> None:
    core = ProcessorCore(CFG)
    core.process_predictions([pred(0, T0 + 1_000)])
    core.process_feedback([label(0, T0 + 1_500)])
    # the prediction watermark is far past the window's end + lateness, the label watermark is not
    assert not core.process_predictions([pred(1, T0 + 3 * W_MS)]).snapshots
    assert not core.process_feedback([label(1, T0 + W_MS + 4_999)]).snapshots
    closed = whole(core.process_feedback([label(2, T0 + W_MS + 5_000)]).snapshots)
    assert list(closed) == [T0]


def test_windows_still_close_when_labels_stop() -> None:
    core = ProcessorCore(CFG)
    live = traffic(0, 1)
    core.process_predictions([pred(i, ts) for i, ts in live])
    core.process_feedback([label(i, ts + LABEL_DELAY_MS) for i, ts in live])
    # labels stop (the last one has ts T0 + 60 s, short of T0 + 65 s); predictions go on, so the
    # windows close only label_stall_s after the prediction watermark would have closed them.
    ends = {}
    for k, ts in enumerate(range(T0 + 61_000, T0 + 5 * W_MS, 1_000)):
        for start in whole(core.process_predictions([pred(1_000 + k, ts)]).snapshots):
            ends[start] = ts
    # a window ending at e closes at the first prediction ts >= e + lateness 5 s + stall 120 s
    assert ends == {T0: T0 + W_MS + 125_000, T0 + W_MS: T0 + 2 * W_MS + 125_000}
    assert len(core._live) == 3  # bounded: only the windows inside the stall span stay open


def test_model_without_labels_closes_as_before() -> None:
    core = ProcessorCore(CFG)
    # a labelled model whose feedback lags far behind must not hold the unlabelled model back
    core.process_predictions([pred(0, T0, model="labelled")])
    core.process_feedback([label(0, T0 + 1_000, model="labelled")])
    ends = {}
    for k, ts in enumerate(range(T0, T0 + 4 * W_MS, 1_000)):
        for start in whole(core.process_predictions([pred(k, ts, model="plain")]).snapshots):
            ends[start] = ts
    # closes when the prediction watermark passes end + lateness (+ label_wait 0), as before
    assert ends == {T0: T0 + W_MS + 5_000, T0 + W_MS: T0 + 2 * W_MS + 5_000, T0 + 2 * W_MS: T0 + 3 * W_MS + 5_000}
    assert "max_label_ts" not in core._model("plain")
