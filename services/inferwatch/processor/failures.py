"""What the processor does when processing a batch fails: retry, narrow down, dead-letter, never skip.

Wire format: none; the caller supplies the steps (the faust app in :mod:`inferwatch.processor.app`).

The rule this module enforces: **no offset is acknowledged for a record whose processing failed**.
faust acknowledges an event even when the agent raises (its stream iterator acks in a ``finally``),
so an exception escaping the agent would let the commit move past records that were never counted.
The agent therefore never lets a core failure escape: it calls :func:`process_batch`, which returns
only when every record of the batch was either processed or written to the dead-letter topic, and
the agent acknowledges the batch after that. Until then the batch's offsets stay uncommitted, and so
does everything after them (faust commits only a contiguous run of acknowledged offsets).

The order for one batch of ``n`` records:

1. the whole batch, up to ``attempts`` times, sleeping ``backoff`` (doubling, bounded) between tries;
   before each retry ``on_failure`` discards the core's in-memory state, so the retry starts from the
   tables (the same state a restarted worker would recover from the changelogs: each window's value
   holds its per-partition high-water offsets, so records a failed try already absorbed are skipped);
2. then halves, each tried once and split again when it fails (in offset order), within a budget of
   ``bisect_budget`` tries: a poison record is isolated in about ``2 log2 n`` tries while the rest of
   its batch is processed;
3. what still fails — a single record, or a range when the budget is spent — is handed to
   ``dead_letter`` with the last exception and the number of tries, and the stream moves on.

Outputs of a successful try are published before the next try starts; a failure to publish is not a
processing failure (the state already moved on) and propagates to the caller, which stops the worker
(see :mod:`inferwatch.processor.app`), so nothing is acknowledged past it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger("inferwatch.processor")

O = TypeVar("O")  # noqa: E741 - the output of one try


@dataclass(frozen=True)
class FailurePolicy:
    """How hard a failing batch is tried before its records are dead-lettered."""

    attempts: int = 3
    """Tries of the whole batch (>= 1)."""
    backoff_s: float = 0.5
    """Sleep before the second try; doubles per try up to ``max_backoff_s``."""
    max_backoff_s: float = 10.0
    bisect_budget: int = 64
    """Tries spent on parts of the batch after the whole batch failed ``attempts`` times."""

    def backoff(self, failures: int) -> float:
        """Seconds to sleep after the ``failures``-th consecutive failure."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** max(0, failures - 1)))


@dataclass
class BatchOutcome:
    """What happened to one batch."""

    tries: int = 0
    failures: int = 0
    dead_lettered: int = 0
    """Records handed to ``dead_letter``."""


class Steps(Generic[O]):
    """The caller's side of :func:`process_batch` (overridden or passed as callables)."""

    def __init__(
        self,
        run: Callable[[int, int], O],
        publish: Callable[[O], Awaitable[None]],
        on_failure: Callable[[BaseException, int], None],
        dead_letter: Callable[[int, int, BaseException, int], Awaitable[None]],
        on_success: Callable[[], None] = lambda: None,
    ) -> None:
        self.run = run
        """Process records ``[lo, hi)`` of the batch and return the outputs (raises on failure)."""
        self.publish = publish
        """Send one try's outputs (snapshots, invalid-input dead letters)."""
        self.on_failure = on_failure
        """Called with the exception and the count of consecutive failures; discards in-memory state."""
        self.dead_letter = dead_letter
        """Write records ``[lo, hi)`` to the dead-letter topic with the exception and the tries made."""
        self.on_success = on_success


async def process_batch(n: int, steps: Steps[O], policy: FailurePolicy,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> BatchOutcome:
    """Process a batch of ``n`` records as the module docstring says; returns when every record was
    processed or dead-lettered."""
    outcome = BatchOutcome()
    if n <= 0:
        return outcome
    last: BaseException | None = None
    for i in range(max(1, policy.attempts)):
        outcome.tries += 1
        try:
            out = steps.run(0, n)
        except Exception as exc:  # any failure of the core: retried, then narrowed down
            last = exc
            outcome.failures += 1
            steps.on_failure(exc, outcome.failures)
            log.error("processing a batch of %d records failed (try %d of %d): %r", n, i + 1, policy.attempts, exc,
                      exc_info=exc if outcome.failures == 1 else None)
            if i + 1 < policy.attempts:
                await sleep(policy.backoff(outcome.failures))
            continue
        await steps.publish(out)
        steps.on_success()
        return outcome
    assert last is not None
    budget = [max(0, policy.bisect_budget)]
    await _narrow(0, n, last, steps, budget, outcome)
    steps.on_success()
    return outcome


async def _narrow(lo: int, hi: int, exc: BaseException, steps: Steps[O], budget: list[int],
                  outcome: BatchOutcome) -> None:
    """Records ``[lo, hi)`` failed with ``exc``: try their halves in order, dead-letter what still fails."""
    if hi - lo <= 1 or budget[0] <= 0:
        outcome.dead_lettered += hi - lo
        log.error("dead-lettering %d record(s) whose processing failed after %d tries: %r", hi - lo,
                  outcome.tries, exc)
        await steps.dead_letter(lo, hi, exc, outcome.tries)
        return
    mid = (lo + hi) // 2
    for a, b in ((lo, mid), (mid, hi)):
        if budget[0] <= 0:
            await _narrow(a, b, exc, steps, budget, outcome)
            continue
        budget[0] -= 1
        outcome.tries += 1
        try:
            out = steps.run(a, b)
        except Exception as part_exc:
            outcome.failures += 1
            steps.on_failure(part_exc, outcome.failures)
            await _narrow(a, b, part_exc, steps, budget, outcome)
            continue
        await steps.publish(out)
