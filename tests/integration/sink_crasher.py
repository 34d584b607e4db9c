"""TEST ONLY: a sink process that SIGKILLs itself right after its first insert, before the commit.

``python -m tests.integration.sink_crasher`` reads the usual ``INFERWATCH_*`` environment and runs
the sink with the crash hook switched on. The hook is a constructor argument of
:class:`inferwatch.sink.Sink`, never an environment variable: a normal run (``inferwatch run sink``)
cannot be made to kill itself by its environment.
"""

from __future__ import annotations

import logging

from inferwatch.config import Settings
from inferwatch.sink import Sink, SinkSettings
from inferwatch.store import open_store


def main() -> None:
    """Run the sink until it kills itself (or is stopped)."""
    logging.basicConfig(level=logging.INFO)
    s = Settings()
    store = open_store(s)
    store.migrate()
    Sink(s, store, SinkSettings(), crash_after_insert=True).run()


if __name__ == "__main__":
    main()
