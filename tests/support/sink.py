"""The real sink for a test, run in a thread of the test's process and stopped on the way out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from inferwatch.config import Settings
from inferwatch.sink import Sink, SinkSettings
from inferwatch.store import Store


@contextmanager
def running_sink(settings: Settings, store: Store, options: SinkSettings | None = None) -> Iterator[Sink]:
    """Run a :class:`Sink` into ``store`` until the block ends (stop, then join its thread).

    ``options`` default to a consumer group of the test's own (from its topic prefix) and small
    batches written within 200 ms, so a test sees its rows quickly.
    """
    opts = options or SinkSettings(group_id=f"g-{settings.topic_prefix}", batch_rows=500, batch_ms=200)
    sink = Sink(settings, store, opts)
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True, name="test-sink")
    thread.start()
    try:
        yield sink
    finally:
        stop.set()
        thread.join(30)
