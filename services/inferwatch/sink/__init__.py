"""The sink: every Kafka topic into the history store (ClickHouse or embedded chDB).

>>> from inferwatch.sink import Sink
>>> Sink(settings, open_store(settings)).run(stop_event)
"""

from __future__ import annotations

from inferwatch.sink.runner import Sink, run_sink
from inferwatch.sink.settings import SinkSettings

__all__ = ["Sink", "SinkSettings", "run_sink"]
