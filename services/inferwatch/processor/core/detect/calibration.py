"""Thresholds of the sequential detectors from a false-alarm rate, split over the tests.

Every detector is a CUSUM of likelihood ratios against the reference (:mod:`.sequential`), so by
Lorden's bound a threshold ``h`` gives at most ``exp(-h)`` false alarms per event it tests when the
traffic matches the reference. A model version runs many detectors at once: every event is tested by
the whole version's detectors and by those of each segment value it belongs to (one per segment key),
each of which runs one detector per signal (every numeric input, every categorical input, the
outputs, the embedding, the LLM confidence, all inputs at once). The version's budget ``alpha``
(false alarms per event of the version, ``detect_false_alarm_rate``) is split equally over the tests
an event meets (Bonferroni):

    h = log(tests_per_event / alpha),  rate per detector per event = alpha / tests_per_event.

The reference enters through the likelihood ratios themselves: values are scored by their rank
among the segment's own reference sample (or the whole version's, for a small or new segment), so
the threshold holds whatever the shape and spread of each feature, and a small segment is not
judged by a large one's variability. ``tests/unit/processor/test_detect_calibration.py`` checks the
stated rate on simulated null streams drawn from skewed, discrete and heavy-tailed references.
"""

from __future__ import annotations

import math


def threshold(alpha: float, tests_per_event: int) -> float:
    """The CUSUM threshold giving at most ``alpha`` false alarms per event over ``tests_per_event`` tests."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"false-alarm rate must be in (0, 1), got {alpha}")
    return math.log(max(1, tests_per_event) / alpha)


def rate_per_test(h: float) -> float:
    """The per-event false-alarm rate one detector with threshold ``h`` is calibrated for (``exp(-h)``)."""
    return math.exp(-h)
