"""One transport per process and settings, shared by every logger that asks for the same one.

Key: the effective librdkafka configuration of the main producer (every setting, frozen into a
sorted tuple), the replay timeout, the two topics and the spool settings (absolute directory,
size limit, fsync). Loggers whose keys are equal share one :class:`~inferwatch.sdk.transport.Transport`;
any difference (another bootstrap, a SASL user, a topic prefix, a spool directory) gets its own.

The door for callers (the SDK's loggers, the OTLP receiver) is :func:`attach_transport`: it builds
the key from those settings and opens a new transport's spool itself.

Life cycle:
  * :func:`attach` finds or creates the transport and returns a :class:`~inferwatch.sdk.transport.Lane`
    for the logger (microseconds when the transport exists; no thread is started);
  * :func:`release` detaches a lane; the last one out flushes and closes the transport (with that
    logger's ``close_timeout_s``). A logger created while its transport is closing waits for the
    close to finish, then starts a fresh one, which takes over the same spool directory.
  * A logger that is garbage-collected has its lane released by the transport's delivery thread
    (:meth:`~inferwatch.sdk.transport.Transport.release_later`: a finalizer must not take locks).
    At interpreter exit an ``atexit`` hook closes every transport left.
  * ``fork``: the child starts with an empty registry (the parent's producers and threads do not
    exist there; the parent keeps owning them), so loggers created in the child get their own
    transport. Transports inherited by the child are never flushed or closed by it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

from inferwatch.sdk.errors import SpoolError
from inferwatch.sdk.producer_config import replay_config
from inferwatch.sdk.spool import Spool, open_spool
from inferwatch.sdk.transport import Lane, Transport

log = logging.getLogger("inferwatch.sdk")

Key = tuple[Any, ...]

_lock = threading.Lock()
_transports: dict[Key, Transport] = {}
_closing: dict[Key, threading.Event] = {}


def freeze(conf: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable, order-independent form of a librdkafka configuration dict.

    Hashable values (str, int, bool, callables, loggers) stand for themselves; anything else (a
    dict, a list) by its ``repr``.
    """
    return tuple(sorted((k, v if isinstance(v, Hashable) else ("repr", repr(v))) for k, v in conf.items()))


def attach_transport(conf: dict[str, Any], topics: tuple[str, str], spool_root: Path | None, spool_max_bytes: int,
                     spool_fsync: bool, replay_timeout_ms: int | None, prefix: str, close_timeout_s: float) -> Lane:
    """A lane for a logger (``prefix``: its event ids' prefix) on the transport of these settings.

    ``conf`` is the main producer's librdkafka configuration, ``topics`` the predictions and feedback
    topics, ``spool_root`` the absolute spool directory (``None``: no spool). A transport created
    here opens its spool; a directory that cannot be used means no spool, with one warning.
    """
    key = (freeze(conf), replay_timeout_ms, topics, str(spool_root) if spool_root else None, spool_max_bytes,
           bool(spool_fsync))

    def make() -> Transport:
        return _open_transport(conf, topics, spool_root, spool_max_bytes, spool_fsync,
                               replay_config(conf, replay_timeout_ms))

    return attach(key, make, prefix, close_timeout_s)


def _open_transport(conf: dict[str, Any], topics: tuple[str, str], root: Path | None, max_bytes: int, fsync: bool,
                    replay_conf: dict[str, Any]) -> Transport:
    """A transport with its spool (or none, with one warning, when the directory cannot be used)."""
    spool: Spool | None = None
    if root is not None:
        try:
            spool = open_spool(root, max_bytes, fsync)
        except (SpoolError, OSError) as exc:
            log.warning("inferwatch: running without a spool (%s); undeliverable events will be dropped", exc)
            root = None
    return Transport(conf, topics, spool, replay_conf, root)


def attach(key: Key, make: Callable[[], Transport], prefix: str, close_timeout_s: float) -> Lane:
    """A lane on the transport for ``key``, created with ``make()`` if there is none."""
    while True:
        with _lock:
            closing = _closing.get(key)
            if closing is None:
                t = _transports.get(key)
                if t is None:
                    t = make()
                    t.key = key
                    t.release_fn = release
                    _transports[key] = t
                return t.attach(prefix, close_timeout_s)
        # The previous transport for these settings is closing (its last logger left): wait, so
        # the new one can own the same spool directory.
        closing.wait(60.0)


def release(lane: Lane, timeout_s: float) -> None:
    """Detach ``lane``; when it was the transport's last, flush and close the transport."""
    t = lane.t
    if t.pid != os.getpid():
        return  # inherited across fork: the parent owns the producer
    with _lock:
        if not t.detach(lane) or t.loggers:
            return
        last = _transports.get(t.key) is t
        if last:
            del _transports[t.key]
            done = _closing[t.key] = threading.Event()
    if not last:
        t.close(timeout_s)  # closed at exit already, or not registered: close is idempotent
        return
    try:
        t.close(timeout_s)
    finally:
        with _lock:
            _closing.pop(t.key, None)
        done.set()


def release_later(lane: Lane, timeout_s: float) -> None:
    """The finalizer of a logger: hand its lane to the delivery thread (no lock taken here)."""
    if lane.t.pid == os.getpid():
        lane.t.release_later(lane, timeout_s)


def transports() -> list[Transport]:
    """The live shared transports of this process (for tests and diagnostics)."""
    with _lock:
        return list(_transports.values())


def _close_all_at_exit() -> None:
    with _lock:
        left = list(_transports.values())
        _transports.clear()
    for t in left:
        t.close(t.close_timeout_s())


def _before_fork() -> None:
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()


def _after_fork_in_child() -> None:
    global _lock
    # The inherited lock is held (by the forking thread, in the parent's name): a fresh one.
    _lock = threading.Lock()
    _transports.clear()
    _closing.clear()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
