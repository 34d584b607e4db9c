"""The alerter's state as changelog records and silences as topic records: (de)serialisation, hostile
records, and the store's side (partition scope, dirty rows, restore, drop) without Kafka (issue #13)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from inferwatch.alerter.lifecycle.changelog import (
    AlertRow,
    ChangelogError,
    HistRow,
    NflogRow,
    OutboxRow,
    SeenRow,
    StateKey,
    decode_key,
    decode_record,
    decode_value,
    encode_value,
    state_key,
)
from inferwatch.alerter.lifecycle.fingerprint import fingerprint
from inferwatch.alerter.lifecycle.state import NO_PART, AlertStore, NflogEntry, OutboxItem
from inferwatch.alerter.lifecycle.transitions import AlertRecord
from inferwatch.alerter.route.dispatch import Dispatcher
from inferwatch.alerter.route.routing import compile_route, parse_config
from inferwatch.alerter.silence.silence_topic import SilenceRecordError, decode_silence, encode_silence
from inferwatch.alerter.silence.silences import new_silence
from inferwatch.clock import now_ms


def rec(model: str = "m", state: str = "firing", rule: str = "errors") -> AlertRecord:
    labels = {"alertname": rule, "model": model, "severity": "critical"}
    return AlertRecord(fingerprint(labels), rule, state, labels, {"summary": "é ✓"}, "critical",  # type: ignore[arg-type]
                       active_since_ms=1, starts_at_ms=2, model=model, model_version="1", value=0.5)


ROWS = [
    (state_key(2, "alert", rec().fingerprint), AlertRow(record=rec(), updated_wall_ms=5)),
    (state_key(0, "hist", "fp"), HistRow(points=[(1, 0.5), (2, -1e300)])),
    (state_key(1, "seen", "silent", "model \x00 with odd bytes", ""), SeenRow(last_wall_ms=9)),
    (state_key(1, "nflog", "hook", '{}:{model="m"}'), NflogRow(firing=["a"], resolved=[], notified_wall_ms=3, seq=2)),
    (state_key(0, "outbox", "k" * 32), OutboxRow(receiver="hook", group_key="g", body="{}", status="pending",
                                                 attempts=1, created_wall_ms=1, updated_wall_ms=2)),
]


@pytest.mark.parametrize(("key", "row"), ROWS, ids=[k.kind for k, _ in ROWS])
def test_every_kind_round_trips(key: StateKey, row: object) -> None:
    k, r = decode_record(key.encode(), encode_value(row))  # type: ignore[arg-type]
    assert k == key and r == row


def test_a_tombstone_decodes_to_none() -> None:
    key = state_key(0, "alert", "fp")
    assert decode_record(key.encode(), None) == (key, None)


@pytest.mark.parametrize(("raw", "message"), [
    (None, "without a key"),
    (b"", "without a key"),
    (b"not json", "not JSON"),
    (b'{"part": 1}', "array"),
    (b"[1]", "array"),
    (b'[-1, "alert", "fp"]', "partition"),
    (b'[1.5, "alert", "fp"]', "partition"),
    (b'[true, "alert", "fp"]', "partition"),
    (b'[5000, "alert", "fp"]', "partition"),
    (b'[0, "drop table", "fp"]', "unknown key kind"),
    (b'[0, "alert"]', "takes 1 string ids"),
    (b'[0, "seen", "r", "m"]', "takes 3 string ids"),
    (b'[0, "alert", 7]', "string ids"),
    (b"[0, " + b'"' + b"x" * 20_000 + b'"]', "bytes"),
])
def test_hostile_keys_are_refused_with_the_reason(raw: bytes | None, message: str) -> None:
    with pytest.raises(ChangelogError, match=message):
        decode_key(raw)


@pytest.mark.parametrize(("kind", "value", "message"), [
    ("alert", b"{", "record"),
    ("alert", b'{"v": 2, "record": {}, "updated_wall_ms": 1}', "v"),
    ("alert", b'{"v": 1, "updated_wall_ms": 1}', "record"),
    ("alert", orjson.dumps({"v": 1, "record": {**orjson.loads(encode_value(ROWS[0][1]) or b"")["record"],  # type: ignore[arg-type]
                                               "state": "exploded"}, "updated_wall_ms": 1}), "state"),
    ("hist", b'{"v": 1, "points": [["a", 1]]}', "points"),
    ("nflog", b'{"v": 1, "firing": [], "resolved": [], "notified_wall_ms": 1, "seq": 0}', "seq"),
    ("outbox", b'{"v": 1, "receiver": "r", "group_key": "g", "body": "{}", "status": "sent", "attempts": 0,'
               b' "created_wall_ms": 1, "updated_wall_ms": 1}', "status"),
    ("seen", b'{"v": 1, "last_wall_ms": 1, "extra": true}', "extra"),
])
def test_hostile_values_are_refused_naming_the_field(kind: str, value: bytes, message: str) -> None:
    key = next(k for k, _ in ROWS if k.kind == kind)
    with pytest.raises(ChangelogError, match=message):
        decode_value(key, value)


def test_an_alert_under_another_fingerprint_is_refused() -> None:
    with pytest.raises(ChangelogError, match="under the key"):
        decode_value(state_key(0, "alert", "other"), encode_value(ROWS[0][1]))


def test_the_store_tags_rows_with_their_partition_and_marks_them_dirty(tmp_path: Path) -> None:
    st = AlertStore(tmp_path / "s.sqlite")
    st.track_changes()
    a, b = rec("a"), rec("b")
    with st.partition_scope(2):
        st.save_evaluations([a], [], [(a.fingerprint, 10, 0.5)], {a.fingerprint: 5}, [("silent", "a", "", 7)])
    with st.partition_scope(0):
        st.save_evaluations([b], [], [], {})
    dirty = st.take_dirty()
    assert set(dirty) == {state_key(2, "alert", a.fingerprint), state_key(2, "hist", a.fingerprint),
                          state_key(2, "seen", "silent", "a", ""), state_key(0, "alert", b.fingerprint)}
    assert st.take_dirty() == []
    # outside a scope (a tick, a rules reload) the model's partition is remembered
    st.save_evaluations([rec("a", "resolved")], [], [], {})
    assert st.take_dirty() == [state_key(2, "alert", a.fingerprint)]
    assert st.partition_of(a) == 2 and st.partition_of(b) == 0
    # a deleted alert becomes a tombstone of its partition
    st.save_evaluations([], [b.fingerprint], [], {})
    key = state_key(0, "alert", b.fingerprint)
    assert st.take_dirty() == [key] and st.row(key) is None


def test_rows_restored_from_the_changelog_replace_the_partition_and_are_not_dirty(tmp_path: Path) -> None:
    src = AlertStore(tmp_path / "src.sqlite")
    src.track_changes()
    a = rec("a")
    with src.partition_scope(1):
        src.save_evaluations([a], [], [(a.fingerprint, 10, 0.5), (a.fingerprint, 20, 0.7)], {a.fingerprint: 5},
                             [("silent", "a", "", 7)])
    entry = NflogEntry("hook", '{}:{model="a"}', frozenset({a.fingerprint}), frozenset(), 3, 1, 1)
    item = OutboxItem("key1", "hook", entry.group_key, "{}", "pending", 0, 3, 1)
    src.record_notifications([(entry, item)])
    src.mark_outbox("key1", "pending", 2, "503")
    # what the changelog would carry: each dirty key's row as it is now, through the wire format
    records = [(k.encode(), encode_value(src.row(k))) for k in src.take_dirty()]
    assert len(records) == 5

    dst = AlertStore(tmp_path / "dst.sqlite")
    dst.track_changes()
    with dst.partition_scope(1):
        dst.save_evaluations([rec("stale")], [], [], {})  # whatever the cache held for partition 1 goes
    with dst.partition_scope(0):
        dst.save_evaluations([rec("other")], [], [], {})  # another partition's rows stay
    dst.take_dirty()
    dst.replace_partition(1, dict(decode_record(k, v) for k, v in records))
    assert not dst.has_dirty
    assert set(dst.load_alerts()) == {a.fingerprint, rec("other").fingerprint}
    assert dst.load_alerts()[a.fingerprint] == a
    assert dst.history(a.fingerprint, 5) == [0.5, 0.7]
    assert dst.load_seen() == {("silent", "a", ""): 7}
    assert dst.all_nflog() == {("hook", entry.group_key): entry}
    [pending] = dst.pending_outbox([1])
    assert (pending.idempotency_key, pending.attempts, pending.part) == ("key1", 2, 1)
    assert dst.pending_outbox([0]) == []
    dst.drop_partitions([1])
    assert set(dst.load_alerts()) == {rec("other").fingerprint} and dst.all_nflog() == {}


def test_groups_that_do_not_name_the_model_are_split_per_partition(tmp_path: Path) -> None:
    cfg = parse_config({"route": {"receiver": "r", "group_by": ["alertname"], "group_wait": 0},
                        "receivers": [{"name": "r", "url": "http://127.0.0.1:1/", "signing": "none"}]})
    st = AlertStore(tmp_path / "s.sqlite")
    d = Dispatcher(compile_route(cfg.route), {r.name: r for r in cfg.receivers}, [], st)
    st.note_model("a", 0)
    st.note_model("b", 1)
    d.insert(rec("a"))
    d.insert(rec("b"))
    d.insert(rec("c"))  # partition unknown (an engine without Kafka): the key is unchanged
    assert sorted(d.groups) == ['{}:{alertname="errors"}', '{}:{alertname="errors"}@partition=0',
                                '{}:{alertname="errors"}@partition=1']
    items = d.flush_due(lambda: [])
    assert sorted(i.part for i in items) == [NO_PART, 0, 1]
    d.drop_partitions({0})
    assert sorted(g.part for g in d.groups.values()) == [NO_PART, 1]


def test_a_silence_round_trips_and_hostile_records_are_refused() -> None:
    s = new_silence(['model="m"', 'severity=~"crit.*"'], now_ms() + 60_000, "alice", "é")
    assert decode_silence(s.id.encode(), encode_silence(s)) == s
    good = orjson.loads(encode_silence(s))
    for value, message in [
        (None, "tombstone"), (b"{", "value"), (orjson.dumps({**good, "matchers": []}), "matchers"),
        (orjson.dumps({**good, "matchers": [{"name": "a", "op": "=~", "value": "("}]}), "bad regex"),
        (orjson.dumps({**good, "v": 2}), "v"), (orjson.dumps({**good, "comment": "x" * 5000}), "comment"),
        (b"x" * 2_000_000, "bytes"),
    ]:
        with pytest.raises(SilenceRecordError, match=message):
            decode_silence(s.id.encode(), value)
    with pytest.raises(SilenceRecordError, match="another key"):
        decode_silence(b"other", encode_silence(s))


def test_silence_copies_converge_whatever_the_order(tmp_path: Path) -> None:
    s = new_silence(['model="m"'], now_ms() + 3_600_000, "alice")
    expired = type(s)(s.id, s.matchers, s.starts_at_ms, now_ms() - 1, s.created_by, s.comment, s.created_at_ms)
    one, two = AlertStore(tmp_path / "1.sqlite"), AlertStore(tmp_path / "2.sqlite")
    assert one.merge_silence(s) and one.merge_silence(expired)
    assert two.merge_silence(expired) and not two.merge_silence(s)  # the later end never comes back
    assert one.silences(include_expired=True) == two.silences(include_expired=True)
    assert one.silences() == []


def test_a_state_file_from_before_partitions_is_read_and_its_rows_discarded(tmp_path: Path) -> None:
    import sqlite3
    from dataclasses import asdict

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE alerts (fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL, state TEXT NOT NULL, "
               "record TEXT NOT NULL, updated_wall_ms INTEGER NOT NULL)")
    a = rec("old")
    db.execute("INSERT INTO alerts VALUES (?,?,?,?,?)", (a.fingerprint, a.rule, a.state, orjson.dumps(asdict(a)).decode(), 1))
    db.commit()
    db.close()
    st = AlertStore(path)  # the partition column is added in place
    assert st.load_alerts() == {a.fingerprint: a} and st.partition_of(a) == NO_PART
    st.drop_partitions()  # what an alerter does at start: it holds no partition yet
    assert st.load_alerts() == {}
