"""The label join's waiting room: one store write per batch, recovery from the store alone, expiry
by event time, and the periodic sweep interval of the service."""

from __future__ import annotations

import orjson
import pytest

from inferwatch.processor import ProcessorSettings
from inferwatch.processor.app import expiry_interval_s
from inferwatch.processor.core.joins import LABEL, PRED, JoinBook
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import ProcessorCore

DAY_MS = 86_400_000


class CountingStore(dict):  # type: ignore[type-arg]
    """A dict that counts writes and deletes (a faust table turns each into a changelog message)."""

    writes = 0

    def __setitem__(self, k: str, v: bytes) -> None:
        self.writes += 1
        super().__setitem__(k, v)

    def __delitem__(self, k: str) -> None:
        self.writes += 1
        super().__delitem__(k)


def pred(i: int, ts: int, model: str = "m") -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "prediction_id": f"p{i}", "ts": ts, "model": model, "model_version": "1",
                         "outputs": {"label": "yes"}, "segment": {"device": f"d{i % 3}"}})


def label(i: int, ts: int, model: str = "m") -> bytes:
    return orjson.dumps({"event_id": f"f{i}", "prediction_id": f"p{i}", "ts": ts, "model": model, "label": "yes"})


CFG = ProcessorSettings(window_s=60, lateness_s=0, label_wait_s=600, baseline_s=0, join_retention_s=3600)


def test_a_batch_of_labelled_predictions_is_one_join_write() -> None:
    joins = CountingStore()
    core = ProcessorCore(CFG, joins=joins)
    core.process_predictions([Raw(pred(i, 1000 + i), "p", 0, i) for i in range(2000)])
    assert joins.writes == 1 and len(joins) == 1
    assert len(core.joinbook) == 2000
    # labels for half of them: the bucket is rewritten once, not once per label
    core.process_feedback([Raw(label(i, 5000 + i), "f", 0, i) for i in range(1000)])
    assert joins.writes == 2
    assert len(core.joinbook) == 1000
    core.process_feedback([Raw(label(i, 5000 + i), "f", 0, i) for i in range(1000, 2000)])
    assert len(joins) == 0 and len(core.joinbook) == 0  # the emptied bucket is deleted


def test_join_state_recovers_from_the_store_alone() -> None:
    windows: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    meta: dict[str, bytes] = {}
    core = ProcessorCore(CFG, windows, joins, meta)
    core.process_predictions([Raw(pred(i, 1000 + i), "p", 0, i) for i in range(300)])
    core.process_feedback([Raw(label(i, 2000), "f", 0, i) for i in range(300, 310)])  # labels first
    # "restart": a new core sees only the stores (restored from the changelogs in the service)
    core2 = ProcessorCore(CFG, dict(windows), dict(joins), dict(meta))
    assert len(core2.joinbook) == 310
    core2.process_feedback([Raw(label(i, 3000), "f", 0, 10 + i) for i in range(300)])
    core2.process_predictions([Raw(pred(i, 1500), "p", 0, i) for i in range(300, 310)])
    snap = next(s for s in core2.flush_all().snapshots if s.segment_key is None)
    assert snap.count == 310
    assert snap.metrics["perf.label_coverage"] == pytest.approx(1.0)
    assert len(core2.joinbook) == 0


def test_expire_joins_drops_entries_past_retention_by_event_time() -> None:
    joins = CountingStore()
    core = ProcessorCore(CFG, joins=joins)
    core.process_predictions([Raw(pred(i, 1000), "p", 0, i) for i in range(50)])  # old, unlabelled
    core.process_feedback([Raw(label(i, 1000), "f", 0, i) for i in range(100, 110)])  # labels of nothing
    assert core.expire_joins() == 0  # the model's clock (newest ts) is still within the retention
    core.process_predictions([Raw(pred(i, 1000 + 2 * 3_600_000), "p", 0, i) for i in range(50, 60)])
    dropped = core.expire_joins()  # now 2 h later in event time: retention is 1 h
    assert dropped == 60
    assert len(core.joinbook) == 10 and len(joins) == 1  # only the fresh bucket is left in the store
    assert core.joinbook.take(PRED, "m", "p3") is None  # an expired prediction no longer joins
    assert core.joinbook.waiting(PRED, "m").keys() == {f"p{i}" for i in range(50, 60)}
    # an explicit clock expires everything older than it
    assert core.expire_joins(now_ms=1000 + 4 * 3_600_000) == 10
    assert len(joins) == 0


def test_replayed_prediction_is_parked_once() -> None:
    book = JoinBook({})
    book.put(PRED, "m", "p1", ["1", 0, {}, "yes", None, None, None, 10], "t:0:0")
    book.flush()
    book.put(PRED, "m", "p1", ["1", 0, {}, "yes", None, None, None, 10], "t:0:5")
    book.flush()
    assert len(book) == 1 and list(book.store) == ["pb|m|t:0:5"]
    assert book.take(LABEL, "m", "p1") is None and book.take(PRED, "m", "p1") is not None


def test_legacy_single_entry_keys_are_read() -> None:
    import msgspec

    store = {"p|m|p7": msgspec.msgpack.encode(["1", 0, [["", ""], ["device", "d1"]], "yes", None, None, None, 10])}
    book = JoinBook(store)
    assert book.take(PRED, "m", "p7")[3] == "yes"  # type: ignore[index]
    book.flush()
    assert store == {}


def test_expiry_sweep_interval_follows_retention() -> None:
    assert expiry_interval_s(ProcessorSettings(join_retention_s=7 * 86400)) == 600.0
    assert expiry_interval_s(ProcessorSettings(join_retention_s=60)) == 6.0
    assert 5.0 <= expiry_interval_s(ProcessorSettings(join_retention_s=3600)) <= 600.0
