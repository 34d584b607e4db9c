"""The sequential detectors hold their stated false-alarm rate on null streams (traffic drawn from the
reference's own distribution), whatever the shape of the data, and their threshold follows from the
budget as documented. Bounded, seeded simulations: a large budget (1% per event) so that false alarms
are frequent enough to count in a few ten thousand events."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inferwatch.processor.core.detect import sequential as sq
from inferwatch.processor.core.detect.calibration import rate_per_test, threshold
from tests.unit.processor.detect_helpers import REF_END, T0, columns, detectors, feed

ALPHA = 0.01  # false alarms per event of the version, all detectors together
DRAWS = {
    "skewed": lambda rng, n: rng.lognormal(0.0, 1.0, n),
    "discrete": lambda rng, n: rng.integers(0, 5, n).astype(np.float64),
    "heavy_tailed": lambda rng, n: rng.standard_t(2, n),
}


def test_threshold_is_the_log_of_tests_over_budget() -> None:
    assert threshold(1e-6, 40) == pytest.approx(math.log(40e6))
    assert rate_per_test(threshold(1e-6, 40)) == pytest.approx(1e-6 / 40)
    with pytest.raises(ValueError, match="false-alarm rate"):
        threshold(0.0, 3)


@pytest.mark.parametrize("shape", sorted(DRAWS))
def test_false_alarm_rate_on_null_streams_is_within_the_stated_rate(shape: str) -> None:
    rng = np.random.default_rng(7)
    draw = DRAWS[shape]

    def make(k: int, ts: np.ndarray) -> object:
        return columns(ts, num={f"x{j}": draw(rng, k) for j in range(3)},
                       cat={"c": list(rng.choice(["a", "b", "c"], k, p=[0.6, 0.3, 0.1]))},
                       segments={"region": list(rng.choice(["eu", "us"], k))})

    det = detectors(false_alarm_rate=ALPHA, clear_events=1)
    assert feed(det, make, 3000, T0) == []  # the reference period decides nothing
    n = 30_000
    found = feed(det, make, n, REF_END)
    # the stated rate: per detector exp(-h), per event of the version ALPHA over every test
    h = det.ref["h"]
    assert h == pytest.approx(math.log(det.tests_per_event() / ALPHA))
    alarms = [f for f in found if f.status == "detected"]
    assert all(f.false_alarm_rate == pytest.approx(math.exp(-h)) for f in alarms)
    assert len(alarms) / n <= ALPHA, (shape, len(alarms))


def test_a_wrong_reference_is_what_the_dead_zone_absorbs() -> None:
    # scores of a stream whose mean is 0.1 reference standard deviations off (a reference known from a
    # sample of a few hundred events is off by about that much) never build evidence
    rng = np.random.default_rng(3)
    ref = np.sort(rng.normal(size=2000))
    z = sq.normal_scores(ref, rng.normal(0.1, 1.0, 50_000))[:, None]
    inc, _ = sq.scalar_increments(z, np.zeros(1), 0.15, np.zeros(1))
    _, trips = sq.run(np.zeros(1), inc, threshold(1e-6, 40))
    assert trips == []


def test_cusum_closed_form_matches_the_recursion() -> None:
    rng = np.random.default_rng(1)
    inc = rng.normal(-0.2, 1.0, (500, 3))
    s0 = np.array([0.0, 2.0, 5.0])
    path = sq.cusum_path(s0, inc)
    s = s0.copy()
    for t in range(len(inc)):
        s = np.maximum(0.0, s + inc[t])
        assert np.allclose(path[t], s)


def test_ewma_is_of_the_earlier_events_only() -> None:
    # the alternative at event t must not see event t: that is what keeps each factor's mean at 1
    w = np.arange(1.0, 6.0)[:, None]
    theta, last = sq.ewma_before(w, np.zeros(1), 0.5)
    assert theta[:, 0].tolist() == [0.0, 0.5, 1.25, 2.125, 3.0625]
    assert last[0] == pytest.approx(0.5 * 3.0625 + 2.5)
