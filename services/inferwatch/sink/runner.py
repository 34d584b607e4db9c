"""The sink: every topic -> ClickHouse tables, at-least-once made exactly-once at the store.

:class:`Sink` composes the parts, each in its own module:

- :mod:`inferwatch.sink.consume`: the Kafka consume loop (poll, buffer per partition, when a batch
  is due, pause/resume for back-pressure and while a failed write waits, rebalance callbacks);
- :mod:`inferwatch.sink.pipeline`: decode → dead letters confirmed by delivery report → insert with
  the deduplication token → commit, on a writer thread with retries; its docstring states the
  commit order;
- :mod:`inferwatch.sink.replay_guard`: the replay guard (skip what the store already holds after a crash
  between insert and commit), reading the store through :meth:`Store.max_kafka_offset` and
  :meth:`Store.kafka_events`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from inferwatch.config import Settings
from inferwatch.contract.topics import load_registry
from inferwatch.sink.consume import ConsumeLoop
from inferwatch.sink.health import SinkHealth
from inferwatch.sink.pipeline import Pipeline
from inferwatch.sink.settings import SinkSettings, sink_group_id
from inferwatch.store.base import Store


class Sink:
    """Consume every topic of the registry and write it to ``store``."""

    def __init__(self, settings: Settings, store: Store, options: SinkSettings | None = None, *,
                 crash_after_insert: bool = False) -> None:
        """``crash_after_insert`` is for TESTS ONLY: SIGKILL the process right after the first insert,
        before its offset commit, to prove a replay leaves no duplicates. It is deliberately not an
        option or environment variable, so a normal run cannot be told to kill itself."""
        self.settings = settings
        self.store = store
        self.options = options or SinkSettings()
        self.group_id = sink_group_id(settings, self.options)
        """The consumer group: the option when set, else the deployment's (inferwatch.kafka.groups)."""
        self.health = SinkHealth(store_kind=store.kind)
        self.schemas: dict[str, str] = {
            spec.full_name(settings.topic_prefix): spec.schema_ for spec in load_registry().values()
            if "sink" in spec.consumers  # internal topics (the alerters' state) are not events to store
        }
        self.pipeline = Pipeline(settings, store, self.options, self.health, self.schemas,
                                 crash_after_insert=crash_after_insert)
        """Decode, dead letters, insert, commit (the writer thread)."""
        self.consume = ConsumeLoop(settings, self.group_id, self.options, self.health, self.pipeline)
        """The Kafka consume loop that feeds :attr:`pipeline`."""

    def run(self, stop: threading.Event | None = None, idle_exit_s: float | None = None) -> None:
        """Consume, batch, write and commit until ``stop`` is set (or after ``idle_exit_s`` of silence
        with nothing buffered, for tests and benchmarks). Flushes what is buffered before returning,
        then closes the consumer and the dead-letter producer."""
        self.consume.run(list(self.schemas), stop, idle_exit_s)


def run_sink(settings: Settings, store: Store, options: SinkSettings | None = None,
             stop: threading.Event | None = None, on_ready: Callable[[Sink], None] | None = None) -> Sink:
    """Build a :class:`Sink`, call ``on_ready`` (e.g. to serve its health), and run it until ``stop``."""
    sink = Sink(settings, store, options)
    if on_ready is not None:
        on_ready(sink)
    sink.run(stop)
    return sink
