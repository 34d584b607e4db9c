"""--from/--to parsing and the SVG/table helpers (escaping, empty data)."""

from __future__ import annotations

import datetime as dt

import pytest

from inferwatch.report.build import bucket_for
from inferwatch.report.svg import Series, bar_chart, line_chart, table
from inferwatch.report.timespec import TimeSpecError, parse_duration, resolve_range

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def test_durations() -> None:
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("7d") == dt.timedelta(days=7)
    assert parse_duration("2w") == dt.timedelta(days=14)
    assert parse_duration("-24h") == dt.timedelta(hours=24)
    assert parse_duration("24") is None and parse_duration("h") is None and parse_duration("1y") is None


def test_ranges() -> None:
    assert resolve_range(None, None, NOW) == (NOW - dt.timedelta(hours=24), NOW)
    # a duration in --from counts back from --to; one in --to from now
    assert resolve_range("6h", "2026-12-01T12:00:00Z", NOW) == (dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC),
                                                                dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC))
    assert resolve_range("2026-12-01", "1d", NOW) == (dt.datetime(2026, 12, 1, tzinfo=dt.UTC), NOW - dt.timedelta(days=1))
    # no zone means UTC; another zone is converted
    start, _ = resolve_range("2026-12-01T08:00:00+02:00", "2026-12-02", NOW)
    assert start == dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC)


@pytest.mark.parametrize(("f", "t", "msg"), [
    ("yesterday", None, "--from: cannot read 'yesterday'"),
    (None, "2026-13-01", "--to: cannot read '2026-13-01'"),
    ("2026-12-02", "2026-12-01", "must be before --to"),
    ("1h", "now", None),
    ("9000d", None, "longer than a year"),
    ("2020-01-01", "2026-01-01", "longer than a year"),
    ("   ", None, "--from: empty"),
])
def test_errors_are_clear(f: str | None, t: str | None, msg: str | None) -> None:
    if msg is None:
        resolve_range(f, t, NOW)
        return
    with pytest.raises(TimeSpecError, match=msg.replace("(", r"\(")):
        resolve_range(f, t, NOW)


def test_bucket_keeps_charts_small() -> None:
    assert bucket_for(NOW - dt.timedelta(hours=1), NOW) == 60
    assert bucket_for(NOW - dt.timedelta(days=1), NOW) == 600
    assert (7 * 86400) / bucket_for(NOW - dt.timedelta(days=7), NOW) <= 240


def test_svg_escapes_every_text_and_handles_no_data() -> None:
    evil = '<script>alert(1)</script>"'
    svg = line_chart(evil, evil, [Series(evil, [(0.0, 1.0), (60.0, 2.0)])])
    assert "<script" not in svg and "&lt;script&gt;" in svg and "&quot;" in svg
    assert "no data in this range" in line_chart("t", "d", [Series("a", [])])
    bars = bar_chart("t", "d", [(evil, 0.5, 0.9)])
    assert "<script" not in bars and "reference 0.9" in bars
    html = table(["h<"], [[evil, 1234567, None]])
    assert "<script" not in html and "1,234,567" in html and "–" in html


def test_heat_cells_keep_text_readable() -> None:
    from inferwatch.report.svg import TEXT, contrast, shade

    for v in (None, 0.0, 0.1, 0.2, 0.3, 0.4, 5.0):
        assert contrast(shade(v, 0.2), TEXT) >= 4.5, v
    assert shade(0.4, 0.2) == shade(9.0, 0.2) != shade(0.1, 0.2)  # saturates at twice the threshold
