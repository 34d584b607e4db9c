"""The cluster fault test (issue #13): three brokers, two processors, one sink, two alerters, the SDK
logging a steady stream with an incident in it, and kill -9 of a broker, a processor and an
alerter at seeded random moments, each restarted.

What it asserts, after the stream ends:

* every logged prediction is stored exactly once (the store is queried by event id and prediction id);
* every window's whole-version snapshot is emitted once, or again with the same count, and every
  event is counted in exactly one window;
* the incident's alert reaches the webhook receiver as one firing and one resolved notification, each
  with one idempotency key (a receiver deduplicates by that key: an alerter killed after a send and
  before it recorded the send sends the same notification again with the same key, which is the
  contract; a second key would be a second notification, which is not), and no other model alerts;
* every consumer group (processors, sink, alerter) is back to zero lag within a bound.

The seed is printed at the start and attached to any failure (rerun with ``INFERWATCH_FAULT_SEED``).
Marked ``slow``: collected after the other tests (tests/conftest.py) and bounded to a few minutes.
"""

from __future__ import annotations

import os
import random
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from inferwatch.alerter.notification.webhook_receiver import LocalReceiver
from inferwatch.config import Settings
from inferwatch.contract.topics import PREDICTIONS, load_registry
from inferwatch.infra.kafka_native import NativeCluster, free_port
from inferwatch.kafka.admin import apply_topics
from inferwatch.kafka.groups import ALERTER, SINK, group_id
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.topics import app_id, ensure_topics
from inferwatch.sdk import InferenceLogger
from inferwatch.store.remote import query_http
from inferwatch.supervisor import Service, Supervisor, cli_command
from tests.support.alerter_process import AlerterProcess
from tests.support.kafka import kafka_cluster, new_prefix
from tests.support.processor import Snapshots, Worker, close_windows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED_ENV = "INFERWATCH_FAULT_SEED"
STREAM_S = 60.0  # wall seconds of logging
RATE_PER_MODEL = 75  # predictions per second and model
INCIDENT_S = (15.0, 40.0)  # the incident model fails 40% of its predictions in this part of the stream
INCIDENT_ERROR_SHARE = 0.4
WINDOW_S = 5
LAG_BOUND_S = 120.0  # from the last event logged to zero lag in every group
PROCESSOR_ENV = {"INFERWATCH_PROCESSOR_WINDOW_S": str(WINDOW_S), "INFERWATCH_PROCESSOR_LATENESS_S": "1",
                 "INFERWATCH_PROCESSOR_BASELINE_S": str(2 * WINDOW_S),
                 # windows close by event time (the closers at the end), never early by a stall
                 "INFERWATCH_PROCESSOR_IDLE_FLUSH_S": "600", "INFERWATCH_PROCESSOR_BATCH_MAX_RECORDS": "2000"}

RULES = """
version: 1
rules:
  - name: fault_errors
    metric: error_rate
    match: {segments: whole, min_count: 50}
    condition: value > 0.2
    severity: critical
    annotations: {summary: "{{ model }} error rate {{ value | round(2) }}"}
"""


def _models(partitions: int) -> list[str]:
    """One model per partition of the predictions topic (the SDK's partitioner is CRC32 of the key, as
    librdkafka's default ``consistent_random``), so both processors have work whatever they hold."""
    out: dict[int, str] = {}
    for j in range(1000):
        name = f"fault-m{j}"
        out.setdefault(zlib.crc32(name.encode()) % partitions, name)
        if len(out) == partitions:
            break
    return [out[p] for p in sorted(out)]


class Pipeline:
    """The services under test, each killable with SIGKILL and restartable with the same state."""

    def __init__(self, settings: Settings, root: Path, receiver_url: str) -> None:
        self.settings = settings
        self.root = root
        self.api_port = free_port()
        self.shared_dir = root / "data"  # the sink's store and the alerter's state
        self.supervisor = Supervisor(root / "logs", env={
            "INFERWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "INFERWATCH_TOPIC_PREFIX": settings.topic_prefix,
            "INFERWATCH_DATA_DIR": str(self.shared_dir), "INFERWATCH_API_HOST": "127.0.0.1",
            "INFERWATCH_API_PORT": str(self.api_port), "INFERWATCH_SINK_BATCH_MS": "500"}, stop_timeout_s=15.0)
        self.rules = root / "rules.yaml"
        self.rules.write_text(RULES)
        self.alerter_config = root / "alerter.yaml"
        self.alerter_config.write_text(yaml.safe_dump({
            # a killed alerter's partitions move to the other one after this long without its heartbeat
            "http": {"port": 0}, "start_from": "earliest", "session_timeout_s": 6,
            "delivery": {"timeout_s": 5, "backoff_initial_s": 0.2, "backoff_max_s": 2},
            "route": {"receiver": "hook", "group_by": ["model"], "group_wait": "0s", "group_interval": "1s",
                      "repeat_interval": "1h"},
            "receivers": [{"name": "hook", "url": receiver_url, "format": "inferwatch", "signing": "none",
                           "send_resolved": True}],
        }))
        self.workers: list[Worker] = []
        self.alerters: list[AlerterProcess] = []
        self.killed: set[int] = set()  # ids of the workers and alerters the test killed
        self.lock = threading.Lock()
        self.events: list[str] = []  # what the chaos did, with wall offsets, for the failure message

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_worker(self, i: int) -> Worker:
        w = Worker(self.settings, self.root / f"processor-{i}", self.root / f"processor-{i}.log", extra_env=PROCESSOR_ENV)
        with self.lock:
            if i < len(self.workers):
                self.workers[i] = w
            else:
                self.workers.append(w)
        return w

    def start_sink(self) -> Service:
        return self.supervisor.start("sink", cli_command("run", "sink"))

    def start_alerter(self, i: int) -> AlerterProcess:
        """Alerter ``i`` with its own data dir (its SQLite cache of the state in Kafka) and HTTP port."""
        a = AlerterProcess(self.settings, self.root / f"alerter-{i}", self.rules, self.alerter_config,
                           self.root / f"alerter-{i}.log")
        with self.lock:
            if i < len(self.alerters):
                self.alerters[i] = a
            else:
                self.alerters.append(a)
        return a

    def kill_alerter(self, i: int) -> None:
        """SIGKILL alerter ``i`` (its process group), as a crash would."""
        with self.lock:
            a = self.alerters[i]
            self.killed.add(id(a))
        a.kill()

    def kill_worker(self, i: int) -> None:
        """SIGKILL processor ``i`` (its process group), as a crash would."""
        with self.lock:
            w = self.workers[i]
            self.killed.add(id(w))
        w.kill9()

    def check(self) -> None:
        """Fail at once when a service died without being killed by the test."""
        with self.lock:
            self.supervisor.check()
            for w in self.workers:
                assert id(w) in self.killed or w.proc.poll() is None, f"a processor exited on its own\n{w.tail()}"
            for a in self.alerters:
                assert id(a) in self.killed or a.proc.poll() is None, f"an alerter exited on its own\n{a.tail()}"

    def api_ready(self) -> bool:
        try:
            query_http(self.api_url, "SELECT 1", max_rows=1, timeout_s=5)
        except Exception:  # noqa: BLE001 - not serving yet
            return False
        return True

    def stop(self) -> None:
        self.supervisor.stop_all()
        for w in self.workers:
            w.stop()
        for a in self.alerters:
            a.stop()


def _lag(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """Messages behind per ``topic[partition]`` of ``group`` (partitions holding data only)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        out: dict[str, int] = {}
        for topic in topics:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            tps = [TopicPartition(topic, p) for p in parts]
            committed = {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)}
            for p in parts:
                end = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                if end > 0:
                    out[f"{topic}[{p}]"] = end - max(committed.get(p, 0), 0)
        return out
    finally:
        c.close()


def _holds(alerter: AlerterProcess, model: str) -> bool:
    """Whether ``alerter`` holds an alert of ``model`` (its partitions' state) now."""
    try:
        alerts = httpx.get(f"{alerter.api}/alerts", params={"state": ["pending", "firing"]}, timeout=5).json()["alerts"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return any(a.get("model") == model for a in alerts)


class Stream:
    """The model servers: one logger per model, paced to ``RATE_PER_MODEL`` each, with the incident."""

    def __init__(self, settings: Settings, models: list[str], spool: Path) -> None:
        self.models = models
        self.incident_model = models[0]
        self.loggers = {m: InferenceLogger(m, "1", settings=settings, spool_dir=spool) for m in models}
        self.sent: dict[str, int] = dict.fromkeys(models, 0)

    def run(self, seconds: float, rng: random.Random, on_tick: Callable[[float], None]) -> None:
        t0 = time.monotonic()
        while (el := time.monotonic() - t0) < seconds:
            due = int(el * RATE_PER_MODEL)
            incident = INCIDENT_S[0] <= el < INCIDENT_S[1]
            for m, lg in self.loggers.items():
                for i in range(self.sent[m], due):
                    x = {"x0": rng.random(), "x1": float(i % 7), "device": f"d{i % 3}"}
                    if m == self.incident_model and incident and rng.random() < INCIDENT_ERROR_SHARE:
                        lg.prediction(x, None, error="upstream timeout", latency_ms=30.0, prediction_id=str(i))
                    else:
                        lg.prediction(x, {"label": "yes" if i % 2 else "no", "score": rng.random()},
                                      latency_ms=5.0 + i % 5, prediction_id=str(i))
                self.sent[m] = max(self.sent[m], due)
            on_tick(el)
            time.sleep(0.02)

    def close(self) -> dict[str, dict[str, int]]:
        for lg in self.loggers.values():
            lg.flush(60)
        stats = {m: lg.stats() for m, lg in self.loggers.items()}
        for lg in self.loggers.values():
            lg.close()
        return stats


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NativeCluster]:
    with kafka_cluster(tmp_path / "kafka", brokers=3) as c:
        yield c


def test_kill_a_broker_a_processor_and_the_alerter_loses_and_doubles_nothing(
        cluster: NativeCluster, tmp_path: Path) -> None:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1 << 31))
    print(f"fault schedule seed: {seed} (rerun with {SEED_ENV}={seed})")  # noqa: T201
    try:
        _run(cluster, tmp_path, seed)
    except BaseException as exc:
        exc.add_note(f"fault schedule seed: {seed} (rerun with {SEED_ENV}={seed})")
        raise


def _run(cluster: NativeCluster, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    # the schedule: when (seconds into the stream) each component dies, and for how long
    broker_at, broker_node, broker_down = rng.uniform(8, 20), rng.choice([1, 2, 3]), rng.uniform(3, 8)
    proc_at, proc_i, proc_down = rng.uniform(15, 40), rng.choice([0, 1]), rng.uniform(1, 4)
    # the alerter dies a random moment after the incident's firing notification went out, so its state (firing,
    # notified) must move with its partitions: the resolution is then sent once, the firing not again
    alerter_after, alerter_i, alerter_down = rng.uniform(0, 3), rng.choice([0, 1]), rng.uniform(1, 4)
    schedule = (f"broker {broker_node} at {broker_at:.1f}s for {broker_down:.1f}s; processor {proc_i} at "
                f"{proc_at:.1f}s for {proc_down:.1f}s; the alerter holding the incident {alerter_after:.1f}s after its firing "
                f"notification (else alerter {alerter_i}) for {alerter_down:.1f}s")
    print(f"schedule: {schedule}")  # noqa: T201

    s = Settings(kafka_bootstrap=cluster.bootstrap, topic_prefix=new_prefix(), data_dir=tmp_path / "sdk")
    rep = apply_topics(s)
    assert rep.environment == "cluster"
    ensure_topics(s, ProcessorSettings(window_s=WINDOW_S, lateness_s=1, baseline_s=2 * WINDOW_S, idle_flush_s=600))
    models = _models(load_registry()[PREDICTIONS].partitions)
    receiver = LocalReceiver().start()
    pipe = Pipeline(s, tmp_path, receiver.url)
    snaps = Snapshots(s)
    stream: Stream | None = None
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []
    try:
        pipe.start_worker(0)
        pipe.start_worker(1)
        pipe.start_sink()
        pipe.start_alerter(0)
        pipe.start_alerter(1)
        for w in pipe.workers:
            w.wait_healthy(timeout_s=120)
        for a in pipe.alerters:
            a.wait_healthy(timeout_s=120)
        deadline = time.monotonic() + 120  # both workers hold partitions (the group settled)
        while time.monotonic() < deadline and not all((w.health() or {}).get("assigned_partitions") for w in pipe.workers):
            pipe.check()
            time.sleep(0.5)
        assert all((w.health() or {}).get("assigned_partitions") for w in pipe.workers), [w.tail() for w in pipe.workers]
        while time.monotonic() < deadline and not all(a.partitions() for a in pipe.alerters):
            pipe.check()
            time.sleep(0.5)
        assert all(a.partitions() for a in pipe.alerters), [a.tail() for a in pipe.alerters]
        pipe.supervisor.wait_until("the sink's API", pipe.api_ready, 120)

        started = time.monotonic()

        def at(offset_s: float, what: str, action: Callable[[], None]) -> threading.Thread:
            def go() -> None:
                try:
                    time.sleep(max(0.0, started + offset_s - time.monotonic()))
                    pipe.events.append(f"{time.monotonic() - started:6.1f}s {what}")
                    action()
                    pipe.events.append(f"{time.monotonic() - started:6.1f}s {what}: done")
                except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                    errors.append(exc)
            t = threading.Thread(target=go, name=what, daemon=True)
            t.start()
            return t

        def broker_fault() -> None:
            cluster.kill(broker_node)
            time.sleep(broker_down)
            cluster.restart(broker_node, timeout_s=120)

        def processor_fault() -> None:
            pipe.kill_worker(proc_i)
            time.sleep(proc_down)
            pipe.start_worker(proc_i)  # the same state directory

        def alerter_fault() -> None:
            receiver.wait_for(lambda rs: any(orjson.loads(r.body)["status"] == "firing" for r in rs), 60)
            time.sleep(alerter_after)
            victim = next((i for i, a in enumerate(pipe.alerters) if _holds(a, models[0])), alerter_i)
            pipe.events.append(f"{time.monotonic() - started:6.1f}s kill -9 alerter {victim}")
            pipe.kill_alerter(victim)  # the other takes its partitions and their state from the changelog
            time.sleep(alerter_down)
            pipe.start_alerter(victim)  # the same data dir; the group splits the partitions again

        stream = Stream(s, models, tmp_path / "spool")
        threads = [at(broker_at, f"kill -9 broker {broker_node}", broker_fault),
                   at(proc_at, f"kill -9 processor {proc_i}", processor_fault),
                   at(INCIDENT_S[0], "the alerter fault", alerter_fault)]

        last_check = [0.0]

        def tick(_el: float) -> None:
            snaps.poll(0)
            if errors:
                raise errors[0]
            if time.monotonic() - last_check[0] > 1.0:
                last_check[0] = time.monotonic()
                pipe.check()

        stream.run(STREAM_S, rng, tick)
        for t in threads:
            t.join(180)
        assert not errors, errors
        assert not any(t.is_alive() for t in threads), pipe.events
        sent = dict(stream.sent)
        sdk_stats = stream.close()
        stream = None
        ended = time.monotonic()
        for m, st in sdk_stats.items():
            # a failed delivery is spooled and replayed (no loss); a dropped event is lost
            assert st["logged"] == sent[m] and st["dropped"] == 0, (m, st)
        # the closers: one event per model an hour ahead; every window of the stream closes by event time
        close_windows(s, models, int(time.time() * 1000) + 3_600_000)

        # everything drains: snapshots of every event, rows of every event, zero lag everywhere
        sink_topics = [s.topic(name) for name, spec in load_registry().items() if "sink" in spec.consumers]
        groups = {app_id(s): [s.predictions_topic], group_id(s, SINK): sink_topics,
                  group_id(s, ALERTER): [s.metrics_topic]}
        deadline = ended + LAG_BOUND_S
        lags: dict[str, dict[str, int]] = {}
        settled = None  # since when nothing is behind and no snapshot came
        while time.monotonic() < deadline:
            pipe.check()
            before = sum(len(v) for v in snaps.by_model.values())
            snaps.poll(0.5)
            lags = {g: {k: v for k, v in _lag(s.kafka_bootstrap, g, ts).items() if v} for g, ts in groups.items()}
            if all(snaps.counted(m) >= sent[m] for m in models) and not any(lags.values()):
                break
            quiet = not any(lags.values()) and sum(len(v) for v in snaps.by_model.values()) == before
            settled = (settled or time.monotonic()) if quiet else None
            if settled is not None and time.monotonic() - settled > 15:
                break  # drained, and no snapshot for 15 s: what is missing will not come
        drained_s = time.monotonic() - ended
        per_window: dict[tuple[str, int], int] = {}  # (model, window start) -> rows stored
        for model, start, n in query_http(
                pipe.api_url, f"SELECT model, intDiv(toUnixTimestamp64Milli(ts), {WINDOW_S * 1000}) * {WINDOW_S * 1000}, "
                "count() FROM predictions WHERE model_version = '1' GROUP BY 1, 2", max_rows=10_000, timeout_s=60).rows:
            per_window[(model, int(start))] = int(n)
        rows = {r[0]: [int(v) for v in r[1:]] for r in query_http(
            pipe.api_url,
            "SELECT model, count(), uniqExact(event_id), uniqExact(prediction_id), min(toUInt64(prediction_id)), "
            "max(toUInt64(prediction_id)) FROM predictions WHERE model_version = '1' GROUP BY model",
            max_rows=100, timeout_s=60).rows}
        # the incident is over: its resolution must reach the receiver (bounded wait)
        receiver.wait_for(lambda rs: any(orjson.loads(r.body)["status"] == "resolved" for r in rs), 60)
        time.sleep(2.0)  # a duplicate notification would arrive now
        pipe.check()
        alerts_seen = [orjson.loads(r.body) | {"_key": r.idempotency_key, "_status": r.status}
                       for r in list(receiver.requests)]
    finally:
        print("faults:", *pipe.events, sep="\n  ")  # noqa: T201 - shown with any failure
        for t in threads:
            t.join(0)
        if stream is not None:
            stream.close()
        snaps.close()
        pipe.stop()
        receiver.stop()

    notes = [f"{x['status']} {x['group_labels'].get('model')} key {x['_key'][:8]} http {x['_status']}"
             for x in alerts_seen]
    print("faults:", *pipe.events, f"drained {drained_s:.1f} s after the last event", "notifications:", *notes,  # noqa: T201
          sep="\n  ")
    problems: list[str] = []  # every check, so one run (minutes) reports everything it found
    # consumer lag back to zero within the bound
    if any(lags.values()):
        problems.append(f"consumer lag not back to zero {LAG_BOUND_S:.0f} s after the stream: {lags}")
    # every logged prediction stored exactly once
    for m in models:
        n = sent[m]
        if n < RATE_PER_MODEL * STREAM_S * 0.8:
            problems.append(f"{m}: only {n} predictions logged")
        got = rows.get(m, [0, 0, 0, -1, -1])
        if got != [n, n, n, 0, n - 1]:
            problems.append(f"{m}: store has rows, event ids, prediction ids, min id, max id = {got}, logged {n}")
    # every window emitted once or identically; every event counted in one window
    for m in models:
        wins = snaps.windows(m)
        twice = {start: counts for start, counts in wins.items() if len(set(counts)) > 1}
        if twice:
            problems.append(f"{m}: windows emitted again with other counts: {twice}")
        if snaps.counted(m) != sent[m]:
            diff = {start: (n, wins.get(start)) for (mm, start), n in sorted(per_window.items())
                    if mm == m and wins.get(start, [None])[0] != n}
            late = {x["window_start"]: x["metrics"].get("late_events") for x in snaps.by_model[m]
                    if x["metrics"].get("late_events")}
            problems.append(f"{m}: {snaps.counted(m)} events counted in snapshots, {sent[m]} logged; windows "
                            f"(rows stored, snapshot counts) that differ: {diff}; late events: {late}")
    # the incident: one firing and one resolved notification (one idempotency key each), nothing else
    keys: dict[str, set[str]] = defaultdict(set)
    for x in alerts_seen:
        keys[x["status"]].add(x["_key"])
    if not all(x["_status"] == 200 for x in alerts_seen):
        problems.append("a notification was not answered 200")
    if {x["group_labels"].get("model") for x in alerts_seen} != {models[0]}:
        problems.append(f"notifications for other models than {models[0]}, or none")
    if len(keys["firing"]) != 1 or len(keys["resolved"]) != 1:
        problems.append(f"the incident's notifications by idempotency key: {dict(keys)} (want one firing, one resolved)")
    if cluster.running() != [1, 2, 3]:
        problems.append(f"brokers running at the end: {cluster.running()}")
    assert not problems, "\n".join(problems + ["faults:", *pipe.events, "notifications:", *notes])
