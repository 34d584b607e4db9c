"""What the platform should say about each simulated incident, and a check of what it did say.

Used by the demo's closing summary and by the e2e test. An incident counts as caught when one of
its ``rules`` fired for its model (and version, when given), and, where a segment is the cause,
when the first of those alerts that names a segment names that one.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferwatch.demo.fleet import CONTROL_MODEL, NEW_DEVICE
from inferwatch.demo.notifications import SeenAlert


@dataclass(frozen=True)
class Expectation:
    """An incident and the alerts that catch it."""

    incident: str
    model: str
    rules: frozenset[str]
    segment: str | None = None
    model_version: str | None = None


EXPECTED: tuple[Expectation, ...] = (
    Expectation("the new camera", "photo-verifier", frozenset({"accuracy_drop"}), f"device={NEW_DEVICE}"),
    Expectation("the feedback loop", "home-recommender", frozenset({"embedding_drift", "lineage_self_share_rising"})),
    Expectation("the confident liar", "essay-grader",
                frozenset({"llm_logprob_drop", "llm_refusal_rate", "llm_inconsistency"})),
    Expectation("the bad deploy", "checkout-ranker", frozenset({"error_rate_high", "latency_p95_regression"}),
                model_version="2.1"),
)


@dataclass(frozen=True)
class Verdict:
    """How one incident went: caught or not, and the evidence."""

    expectation: Expectation
    caught: bool
    rules_fired: tuple[str, ...]
    first_segment: str | None
    reason: str


def judge(exp: Expectation, firing: list[SeenAlert]) -> Verdict:
    """Judge one incident from the firing alerts in arrival order."""
    mine = [a for a in firing if a.model == exp.model and a.rule in exp.rules
            and (exp.model_version is None or a.model_version == exp.model_version)]
    fired = tuple(sorted({a.rule for a in mine}))
    named = [a.named_segment for a in mine if a.named_segment]
    first = named[0] if named else None
    if not mine:
        return Verdict(exp, False, fired, first, f"no {'/'.join(sorted(exp.rules))} alert for {exp.model}")
    if exp.segment is not None and first != exp.segment:
        return Verdict(exp, False, fired, first, f"first segment named is {first}, expected {exp.segment}")
    return Verdict(exp, True, fired, first, "caught")


def judge_all(firing: list[SeenAlert]) -> list[Verdict]:
    """A verdict per expected incident."""
    return [judge(e, firing) for e in EXPECTED]


def control_alerts(firing: list[SeenAlert]) -> list[SeenAlert]:
    """Alerts about the control model (there must be none)."""
    return [a for a in firing if a.model == CONTROL_MODEL]
