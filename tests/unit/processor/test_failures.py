"""The failure policy of a batch: retry, narrow down to the failing records, dead-letter them, never skip."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from inferwatch.processor.failures import FailurePolicy, Steps, process_batch


class Recorder:
    """Steps over ``n`` records where the records in ``poison`` always fail (and ``flaky`` tries fail once each)."""

    def __init__(self, n: int, poison: set[int] = frozenset(), flaky: int = 0) -> None:  # type: ignore[assignment]
        self.n = n
        self.poison = poison
        self.flaky = flaky
        self.processed: list[int] = []
        self.published: list[tuple[int, int]] = []
        self.dead: list[tuple[int, int, str, int]] = []
        self.failures: list[int] = []
        self.successes = 0
        self.sleeps: list[float] = []

    def steps(self) -> Steps[tuple[int, int]]:
        def run(lo: int, hi: int) -> tuple[int, int]:
            if self.flaky:
                self.flaky -= 1
                raise ConnectionError("transient")
            bad = [i for i in range(lo, hi) if i in self.poison]
            if bad:
                raise ValueError(f"poison at {bad[0]}")
            self.processed.extend(range(lo, hi))
            return lo, hi

        async def publish(out: tuple[int, int]) -> None:
            self.published.append(out)

        def on_failure(exc: BaseException, consecutive: int) -> None:
            self.failures.append(consecutive)

        async def dead_letter(lo: int, hi: int, exc: BaseException, tries: int) -> None:
            self.dead.append((lo, hi, str(exc), tries))

        def on_success() -> None:
            self.successes += 1

        return Steps(run, publish, on_failure, dead_letter, on_success)

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)


def _run(rec: Recorder, policy: FailurePolicy) -> Any:
    return asyncio.run(process_batch(rec.n, rec.steps(), policy, sleep=rec.sleep))


def test_a_healthy_batch_is_tried_once_and_published() -> None:
    rec = Recorder(100)
    out = _run(rec, FailurePolicy())
    assert (out.tries, out.failures, out.dead_lettered) == (1, 0, 0)
    assert rec.processed == list(range(100)) and rec.published == [(0, 100)] and rec.successes == 1


def test_a_transient_failure_is_retried_with_backoff_and_nothing_is_dead_lettered() -> None:
    rec = Recorder(50, flaky=2)
    out = _run(rec, FailurePolicy(attempts=3, backoff_s=0.5))
    assert out.tries == 3 and out.failures == 2 and not rec.dead
    assert rec.sleeps == [0.5, 1.0]
    assert rec.failures == [1, 2]  # the consecutive count the health endpoint shows
    assert rec.processed == list(range(50))


def test_a_poison_record_is_isolated_and_every_other_record_processed_in_order() -> None:
    rec = Recorder(1000, poison={637})
    out = _run(rec, FailurePolicy(attempts=3, bisect_budget=64))
    assert [(lo, hi) for lo, hi, _, _ in rec.dead] == [(637, 638)]
    assert "poison at 637" in rec.dead[0][2]
    assert out.dead_lettered == 1
    assert sorted(rec.processed) == [i for i in range(1000) if i != 637]
    assert rec.processed == sorted(rec.processed)  # parts are processed in offset order
    assert out.tries <= 3 + 2 * 10 + 2  # whole tries + about 2 log2(n)
    assert rec.successes == 1


def test_several_poison_records() -> None:
    poison = {0, 1, 500, 999}
    rec = Recorder(1000, poison=poison)
    _run(rec, FailurePolicy(attempts=1, bisect_budget=200))
    dead = {i for lo, hi, _, _ in rec.dead for i in range(lo, hi)}
    assert dead == poison
    assert set(rec.processed) == set(range(1000)) - poison


def test_a_spent_budget_dead_letters_the_failing_ranges_whole_and_loses_nothing() -> None:
    rec = Recorder(1024, poison=set(range(1024)))  # a systematic failure: every record fails
    out = _run(rec, FailurePolicy(attempts=2, bisect_budget=6))
    dead = sorted(i for lo, hi, _, _ in rec.dead for i in range(lo, hi))
    assert dead == list(range(1024))  # every record accounted for, once
    assert out.tries <= 2 + 6
    assert not rec.processed


def test_a_failure_to_publish_propagates_and_is_not_retried_as_a_processing_failure() -> None:
    rec = Recorder(10)
    steps = rec.steps()

    async def publish(out: tuple[int, int]) -> None:
        raise RuntimeError("broker said no")

    steps.publish = publish
    with pytest.raises(RuntimeError, match="broker said no"):
        asyncio.run(process_batch(10, steps, FailurePolicy(), sleep=rec.sleep))
    assert rec.processed == list(range(10)) and not rec.failures and not rec.dead


def test_backoff_doubles_up_to_its_bound() -> None:
    p = FailurePolicy(backoff_s=1.0, max_backoff_s=5.0)
    assert [p.backoff(i) for i in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
