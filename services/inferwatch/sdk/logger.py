"""``InferenceLogger``: log every prediction (and later its ground truth) to Kafka, without slowing
or endangering the model server.

``prediction()`` validates (:mod:`inferwatch.sdk.call_checks`, no pydantic on the hot path),
serialises with orjson and enqueues into librdkafka; delivery runs in librdkafka's threads.
The loggers of a process with the same settings share one producer, delivery thread, spool and
replayer (:mod:`inferwatch.sdk.shared`); see :mod:`inferwatch.sdk.transport` for what happens
when Kafka is away.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaException

from inferwatch.config import Settings
from inferwatch.contract.limits import TS_MAX_MS
from inferwatch.sdk import call_checks as v
from inferwatch.sdk import shared
from inferwatch.sdk.counters import count_value
from inferwatch.sdk.encode import fast_prediction, make_encoder
from inferwatch.sdk.errors import EventValidationError
from inferwatch.sdk.ids import IdGenerator
from inferwatch.sdk.producer_config import producer_config as build_producer_config
from inferwatch.sdk.redaction import Redaction, as_redaction
from inferwatch.sdk.sampling import Sampler, resolve_rate
from inferwatch.sdk.spool import DEFAULT_MAX_BYTES
from inferwatch.sdk.transport import KIND_FEEDBACK, KIND_PREDICTION

log = logging.getLogger("inferwatch.sdk")
_dumps = orjson.dumps
_time_ns = time.time_ns
_perf = time.perf_counter
# The thread that logs serves delivery reports itself every 256 events (see Transport.hot_poll).
_POLL_MASK = 255
# librdkafka's client.id of the shared producer: one per process and settings, not per model
# (a per-model id would give every logger its own transport).
CLIENT_ID = "inferwatch-sdk"


@dataclass
class TimedRecord:
    """What ``InferenceLogger.timed()`` yields: set ``outputs`` (and anything else) inside the block."""

    prediction_id: str
    inputs: Any = None
    outputs: Any = None
    segment: Any = None
    tags: Any = None
    embedding: Any = None
    llm: Any = None
    lineage: Any = None
    error: str | None = None
    latency_ms: float | None = field(default=None)


class InferenceLogger:
    """Logs predictions and feedback of one model version to Kafka.

    ``bootstrap`` defaults to ``INFERWATCH_KAFKA_BOOTSTRAP`` (via :class:`~inferwatch.config.Settings`);
    ``spool_dir`` defaults to ``<data_dir>/spool`` (``None`` disables spooling: events Kafka cannot
    take are then dropped and counted). ``sample_rate`` is a rate in [0, 1] or a per-model mapping.
    ``redact`` is a :class:`~inferwatch.sdk.redaction.Redaction`, a dict of its options, or a list of
    input fields to drop. ``producer_config`` overrides librdkafka settings (e.g. SASL/SSL).

    Many models in one process: create one logger per model (version). Loggers with the same
    Kafka settings, topics and spool settings share one transport -- one producer, one delivery
    thread, one spool, one replayer -- so a logger costs microseconds and no thread; ``close()``
    of one leaves the others logging, and the last one out flushes and closes the transport.
    """

    def __init__(
        self,
        model: str,
        model_version: str,
        *,
        settings: Settings | None = None,
        bootstrap: str | None = None,
        topic_prefix: str | None = None,
        spool_dir: str | Path | None = "default",  # type: ignore[assignment]
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        spool_fsync: bool = False,
        sample_rate: float | Mapping[str, float] | None = None,
        redact: Redaction | dict[str, Any] | list[str] | None = None,
        producer_config: dict[str, Any] | None = None,
        replay_timeout_ms: int | None = None,
        close_timeout_s: float = 5.0,
    ) -> None:
        self.model = v.check_name(model, "model")
        self.model_version = v.check_name(model_version, "model_version", 64)
        s = settings or _default_settings()
        updates: dict[str, Any] = {}
        if bootstrap is not None:
            updates["kafka_bootstrap"] = bootstrap
        if topic_prefix is not None:
            updates["topic_prefix"] = topic_prefix
        if updates:
            s = s.model_copy(update=updates)
        self.settings = s
        self.predictions_topic = s.predictions_topic
        self.feedback_topic = s.feedback_topic
        self._sampler = Sampler(resolve_rate(sample_rate, model))
        # resolves the hashing salt (INFERWATCH_REDACTION_SALT, else <data_dir>/redaction.salt)
        self._redaction = as_redaction(redact, s)
        self._redact_inputs = self._redaction is not None and self._redaction.touches_inputs
        self._ids = IdGenerator()
        self._key = model.encode()
        self._closed = False

        root: Path | None = None
        if spool_dir == "default":
            spool_dir = Path(s.data_dir) / "spool"
        if spool_dir is not None:
            root = Path(os.path.abspath(spool_dir))
        conf = build_producer_config(s.kafka_bootstrap, dict(s.kafka_security), producer_config_or_none(producer_config),
                                     CLIENT_ID)
        self._lane = shared.attach_transport(conf, (self.predictions_topic, self.feedback_topic), root, spool_max_bytes,
                                             spool_fsync, replay_timeout_ms, self._ids.prefix, close_timeout_s)
        # The finalizer (release the lane when the logger is collected) comes first, so a failure
        # further down never leaves the shared transport with a lane nobody releases. At exit the
        # transports are closed by inferwatch.sdk.shared's atexit hook, not by the finalizers.
        self._finalizer = weakref.finalize(self, shared.release_later, self._lane, close_timeout_s)
        self._finalizer.atexit = False
        self._transport = self._lane.t
        self._c = self._lane.c
        # Bound for the hot path: no attribute chains per call.
        self._produce = self._transport.produce
        self._next_id = self._ids.next_id
        self._encoder = make_encoder(self.model, self.model_version, self._ids)
        self._encode = self._encoder.prediction
        self._keep_all = self._sampler.keep_all
        # One flag for the fast path: nothing to sample out, nothing to redact, not closed.
        # Any redaction rule (segment, tags, outputs, error too) keeps a logger off the fast path.
        self._fast = self._keep_all and self._redaction is None
        self._next_logged = self._c.logged_c.__next__
        self._close_timeout_s = close_timeout_s
        self._fast_prediction = self._install_fast_prediction() if self._fast else None

    def _install_fast_prediction(self) -> Any:
        """Shadow ``prediction`` on this instance with its C version, when the C module is built.

        Same signature, same behaviour (the Python method below is its reference and its fallback);
        it saves the interpreter's share of a call, about half of what ``prediction()`` costs. The
        callbacks reach the logger through a weak reference, so the logger is not kept alive by a
        cycle and is still finalised (closed) as soon as it is dropped.
        """
        ref = weakref.ref(self)

        def checked(*args: Any) -> str:
            me = ref()
            if me is None:  # pragma: no cover - the instance attribute dies with the logger
                raise RuntimeError("the logger is gone")
            return me._prediction_checked(*args)

        def full(*args: Any, **kwargs: Any) -> str:
            return InferenceLogger.prediction(ref(), *args, **kwargs)  # type: ignore[arg-type]

        t, lane = self._transport, self._lane
        fast = fast_prediction(
            self._encoder, t.produce, self.predictions_topic, self._key, self._c.logged_c,
            functools.partial(lane.overflow, KIND_PREDICTION, self._key), lane.produce_error, KafkaException,
            t.serve_if_hot, checked, full,
        )
        if fast is not None:
            vars(self)["prediction"] = fast  # an instance attribute: found before the class's method
        return fast

    # -- predictions --------------------------------------------------------------------------
    def prediction(
        self,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        *,
        latency_ms: float | None = None,
        segment: Mapping[str, str] | None = None,
        embedding: Any = None,
        llm: Mapping[str, Any] | None = None,
        lineage: list[Mapping[str, Any]] | None = None,
        tags: Mapping[str, str] | None = None,
        error: str | None = None,
        prediction_id: str | None = None,
        ts_ms: int | None = None,
    ) -> str:
        """Log one prediction; return its ``prediction_id`` (generated unless given).

        Never blocks on the network and never raises on transport trouble. Raises
        :class:`~inferwatch.sdk.errors.EventValidationError` (a ``ValueError``) naming the field
        when an argument breaks the event contract.
        """
        # Fast path: the common call (plain dicts of plain values under valid names, no optional
        # blocks, no sampling/redaction) is checked and serialised in one pass by the encoder (C,
        # inferwatch.native._encode; its Python twin where not built), which returns None for
        # anything it does not recognise at once. That falls through to _prediction_checked, which
        # checks everything, converts what can be converted and names the offending field. Both
        # paths accept the same events and write the same bytes (unit tests compare them).
        if (
            self._fast
            and embedding is None
            and llm is None
            and lineage is None
            and tags is None
            and error is None
            and prediction_id is None
            and ts_ms is None
        ):
            enc = self._encode(inputs, outputs, latency_ms, segment)
            if enc is not None:
                # _send_prediction inlined: a method call is a noticeable share of the budget.
                n = self._next_logged()
                try:
                    self._produce(self.predictions_topic, enc[1], self._key)
                except BufferError:
                    self._lane.overflow(KIND_PREDICTION, self._key, enc[1])
                except KafkaException as exc:
                    self._lane.produce_error(exc, enc[1])
                if not n & _POLL_MASK:
                    self._transport.serve_if_hot()
                return enc[0]
        return self._prediction_checked(
            inputs, outputs, latency_ms, segment, embedding, llm, lineage, tags, error, prediction_id, ts_ms
        )

    def _send_prediction(self, payload: bytes) -> None:
        """Enqueue one serialised prediction; serve delivery reports every 256 events (``_POLL_MASK``)."""
        n = self._next_logged()
        try:
            self._produce(self.predictions_topic, payload, self._key)
        except BufferError:
            self._lane.overflow(KIND_PREDICTION, self._key, payload)
        except KafkaException as exc:
            self._lane.produce_error(exc, payload)
        if not n & _POLL_MASK:
            self._transport.serve_if_hot()

    def _prediction_checked(
        self,
        inputs: Any,
        outputs: Any,
        latency_ms: Any,
        segment: Any,
        embedding: Any,
        llm: Any,
        lineage: Any,
        tags: Any,
        error: Any,
        prediction_id: Any,
        ts_ms: Any,
    ) -> str:
        """The full check of every argument (see :mod:`inferwatch.sdk.call_checks`), then send."""
        eid = self._next_id()
        if prediction_id is None:
            pid = eid
        else:
            pid = v.short_text(prediction_id, "prediction_id", v.MAX_PREDICTION_ID, 1)
        if not self._keep_all and not self._sampler.keep(pid):
            next(self._c.sampled_out_c)
            return pid
        ev: dict[str, Any] = {
            "schema_version": "prediction.v1",
            "event_id": eid,
            "prediction_id": pid,
            "ts": _time_ns() // 1_000_000 if ts_ms is None else _ts(ts_ms),
            "model": self.model,
            "model_version": self.model_version,
        }
        if inputs is not None:
            inputs = v.features(inputs)
            ev["inputs"] = inputs
        if outputs is not None:
            ev["outputs"] = v.outputs(outputs)
        elif error is None:
            raise EventValidationError("outputs", "a prediction needs outputs, or error= when it failed")
        if latency_ms is not None:
            if type(latency_ms) is not float or not 0.0 <= latency_ms < 1e300:
                latency_ms = v.finite(latency_ms, "latency_ms", 0.0)
            ev["latency_ms"] = latency_ms
        if segment:
            ev["segment"] = v.labels(segment, "segment", v.MAX_SEGMENT)
        if error is not None:
            ev["error"] = v.short_text(error, "error", v.MAX_ERROR)
        if embedding is not None:
            ev["embedding"] = v.float_list(embedding, "embedding", 1, v.MAX_EMBEDDING)
        if llm is not None:
            block = v.llm_block(llm)
            ev["llm"] = block
        if lineage is not None:
            ev["lineage"] = v.lineage(lineage)
        if tags:
            ev["tags"] = v.labels(tags, "tags", v.MAX_TAGS)
        if self._redaction is not None:  # every rule, on the checked event, before it is serialised
            ev = self._redaction.prediction(ev)
        try:
            payload = _dumps(ev)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise EventValidationError("event", f"cannot be serialised: {exc}") from None
        if self._closed:
            self._lane.drop()
            return pid
        self._send_prediction(payload)
        return pid

    def feedback(
        self,
        prediction_id: str,
        label: str | None = None,
        *,
        value: float | None = None,
        model_version: str | None = None,
        tags: Mapping[str, str] | None = None,
        ts_ms: int | None = None,
    ) -> str | None:
        """Log the ground truth of an earlier prediction (a ``label`` or a ``value``); return the
        feedback's ``event_id``, or None when the prediction is sampled out (so is its feedback)."""
        pid = v.short_text(prediction_id, "prediction_id", v.MAX_PREDICTION_ID, 1)
        if label is None and value is None:
            raise EventValidationError("label", "feedback needs a label or a value")
        if not self._sampler.keep(pid):
            next(self._c.sampled_out_c)
            return None
        eid = self._next_id()
        ev: dict[str, Any] = {
            "schema_version": "feedback.v1",
            "event_id": eid,
            "prediction_id": pid,
            "ts": _time_ns() // 1_000_000 if ts_ms is None else _ts(ts_ms),
            "model": self.model,
        }
        if model_version is not None:
            ev["model_version"] = v.check_name(model_version, "model_version", 64)
        if label is not None:
            ev["label"] = v.short_text(label, "label")
        if value is not None:
            ev["value"] = v.finite(value, "value")
        if tags:
            ev["tags"] = v.labels(tags, "tags", v.MAX_TAGS)
        if self._redaction is not None:
            ev = self._redaction.feedback(ev)
        self._send(KIND_FEEDBACK, self.feedback_topic, ev)
        return eid

    def _send(self, kind: int, topic: str, ev: dict[str, Any]) -> None:
        try:
            payload = _dumps(ev)
        except (TypeError, orjson.JSONEncodeError) as exc:  # e.g. a str-subclass dict key
            raise EventValidationError("event", f"cannot be serialised: {exc}") from None
        if self._closed:
            self._lane.drop()
            return
        self._next_logged()
        try:
            self._produce(topic, payload, self._key)
        except BufferError:
            self._lane.overflow(kind, self._key, payload)
        except KafkaException as exc:
            self._lane.produce_error(exc, payload)

    @contextmanager
    def timed(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        segment: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        prediction_id: str | None = None,
    ) -> Iterator[TimedRecord]:
        """Measure the block's latency and log the prediction when it ends.

        Set ``rec.outputs`` inside the block. An exception is recorded as the event's ``error``
        and re-raised unchanged.
        """
        rec = TimedRecord(prediction_id=prediction_id or self._ids.next_id(), inputs=inputs, segment=segment, tags=tags)
        t0 = _perf()
        try:
            yield rec
        except BaseException as exc:
            rec.latency_ms = (_perf() - t0) * 1000.0
            rec.error = f"{type(exc).__name__}: {exc}"[: v.MAX_ERROR]
            try:
                self._log_record(rec)
            except ValueError as log_exc:  # never mask the model's own exception
                log.warning("inferwatch: could not log the failed prediction %s: %s", rec.prediction_id, log_exc)
            raise
        rec.latency_ms = (_perf() - t0) * 1000.0
        self._log_record(rec)

    def _log_record(self, rec: TimedRecord) -> None:
        self.prediction(
            rec.inputs, rec.outputs, latency_ms=rec.latency_ms, segment=rec.segment, tags=rec.tags,
            embedding=rec.embedding, llm=rec.llm, lineage=rec.lineage, error=rec.error,
            prediction_id=rec.prediction_id,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def flush(self, timeout_s: float = 5.0) -> bool:
        """Block until queued events are delivered and the spool replayed, or ``timeout_s`` passes.

        Returns True when nothing is left in memory or in the spool. The queue and the spool are
        the transport's, shared with the other loggers of the same settings: this waits for their
        events too. Blocking: from asyncio code use :meth:`aflush`.
        """
        return self._transport.flush(timeout_s)

    async def aflush(self, timeout_s: float = 5.0) -> bool:
        """:meth:`flush` in a worker thread, for asyncio servers."""
        return await asyncio.to_thread(self.flush, timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Stop logging; the last logger of a transport also closes it.

        The last logger on its transport delivers what can be delivered in ``timeout_s``, spools
        the rest and stops the transport's threads. While other loggers share the transport,
        ``close()`` returns at once: this logger's events stay in the shared queue and are
        delivered (or spooled) like theirs -- call :meth:`flush` first to wait for them. Also
        runs when the logger is garbage-collected and at interpreter exit. Events logged after
        ``close`` are dropped and counted.
        """
        if self._closed:
            return
        self._closed = True
        self._fast = False
        if self._fast_prediction is not None:
            self._fast_prediction.disable()
        self._finalizer.detach()
        shared.release(self._lane, self._close_timeout_s if timeout_s is None else timeout_s)

    async def aclose(self, timeout_s: float | None = None) -> None:
        """:meth:`close` in a worker thread, for asyncio servers."""
        await asyncio.to_thread(self.close, timeout_s)

    def __enter__(self) -> InferenceLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """This logger's counters since start, and its transport's.

        This logger: ``logged`` (accepted for delivery), ``delivered`` (by the live path),
        ``failed`` (delivery reports with an error), ``spooled``, ``dropped`` (lost: spool
        full/absent, refused for good, logged after close), ``sampled_out``.

        Its transport (shared by the loggers of the same settings): ``replayed`` (spooled events
        delivered, including spools adopted from a dead process), ``in_queue``, ``spool_bytes``,
        ``corrupt_skipped``, and ``transport_loggers``, ``transport_logged``,
        ``transport_delivered``, ``transport_failed``, ``transport_spooled``, ``transport_dropped``
        (every logger of the transport, closed ones included), ``transport_outages`` (times Kafka
        went down), ``transport_warnings`` (lines logged) and ``transport_warnings_held_back`` (by
        the rate limit).

        ``delivered`` is derived (logged − overflowed − failed − in_queue) rather than counted:
        counting successes needs a Python callback per delivered event, which the hot path cannot
        afford. ``in_queue`` is the shared queue's, so with several loggers ``delivered`` lags
        more while events are in flight; it is exact once :meth:`flush` returned True."""
        c = self._c.snapshot()
        t = self._transport.stats()
        out = {
            "logged": c["logged"],
            "delivered": max(0, c["logged"] - c["overflowed"] - c["failed"] - t["in_queue"]),
            "failed": c["failed"],
            "spooled": c["spooled"],
            "dropped": c["dropped"],
            "sampled_out": count_value(self._c.sampled_out_c),
        }
        out.update(t)
        return out


_settings_lock = threading.Lock()
_settings_cache: tuple[tuple[tuple[str, str], ...], Settings] | None = None


def _default_settings() -> Settings:
    """``Settings()`` from the environment, cached while the ``INFERWATCH_*`` variables stay the same.

    Reading the settings costs ≈ 0.6 ms (pydantic-settings); a process creating a logger per model
    would pay that per logger. Variable names are matched case-insensitively, as Settings does.
    """
    global _settings_cache
    env = _env_snapshot()
    cached = _settings_cache
    if cached is not None and cached[0] == env:
        return cached[1]
    s = Settings()
    with _settings_lock:
        _settings_cache = (env, s)
    return s


def _env_snapshot() -> tuple[tuple[Any, Any], ...]:
    """The ``INFERWATCH_*`` environment variables, read without decoding every variable of the process."""
    data = getattr(os.environ, "_data", None)  # CPython's raw (bytes on POSIX) mapping behind os.environ
    if isinstance(data, dict):
        return tuple(sorted(kv for kv in data.items() if kv[0][:11].upper() == _ENV_PREFIX_B))
    return tuple(sorted((k, v) for k, v in os.environ.items() if k[:11].upper() == "INFERWATCH_"))


_ENV_PREFIX_B = b"INFERWATCH_"


def producer_config_or_none(conf: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validate the caller's librdkafka overrides early (a typo is a programming error)."""
    if conf is None:
        return None
    if not isinstance(conf, dict) or not all(isinstance(k, str) for k in conf):
        raise ValueError("producer_config: must be a dict of librdkafka settings")
    return conf


def _ts(ts_ms: Any) -> int:
    if type(ts_ms) is not int or not 0 <= ts_ms <= TS_MAX_MS:
        raise EventValidationError("ts_ms", f"must be an int of ms since the epoch, got {ts_ms!r}")
    return ts_ms
