"""Inhibition: a firing source alert mutes target alerts that share the ``equal`` labels.

As in Alertmanager, an alert that matches both sides of a rule does not inhibit itself, and only
firing alerts inhibit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from inferwatch.alerter.route.matchers import Matcher, all_match, parse_matchers
from inferwatch.alerter.route.routing import InhibitRuleConfig


@dataclass(frozen=True)
class InhibitRule:
    """A compiled inhibition rule."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @staticmethod
    def from_config(cfg: InhibitRuleConfig) -> InhibitRule:
        """Compile one configured rule."""
        return InhibitRule(parse_matchers(cfg.source_matchers), parse_matchers(cfg.target_matchers), tuple(cfg.equal))


def inhibited(
    rules: Iterable[InhibitRule], labels: Mapping[str, str], firing: Iterable[Mapping[str, str]]
) -> bool:
    """Whether an alert with ``labels`` is muted by one of the ``firing`` alerts' labels."""
    firing = list(firing)
    for r in rules:
        if not all_match(r.target, labels):
            continue
        for src in firing:
            if src is labels or dict(src) == dict(labels):
                continue
            if all_match(r.source, src) and all(src.get(k, "") == labels.get(k, "") for k in r.equal):
                return True
    return False
