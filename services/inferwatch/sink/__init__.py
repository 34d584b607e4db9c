"""The sink: every Kafka topic into the history store (ClickHouse or embedded chDB).

>>> from inferwatch.sink import Sink
>>> Sink(settings, open_store(settings)).run(stop_event)
"""

from __future__ import annotations

from inferwatch.sink.options import SinkOptions
from inferwatch.sink.runner import Sink, run_sink

__all__ = ["Sink", "SinkOptions", "run_sink"]
