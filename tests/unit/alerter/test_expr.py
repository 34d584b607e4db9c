from __future__ import annotations

import pytest

from inferwatch.alerter.errors import ExpressionError
from inferwatch.alerter.evaluation.expr import MissingValue, parse


def r(d):
    def get(name):
        if name not in d:
            raise MissingValue(name)
        return d[name]
    return get


def test_precedence_and_logic() -> None:
    assert parse("1 + 2 * 3 == 7").holds(r({}))
    assert parse("(1 + 2) * 3 == 9").holds(r({}))
    assert parse("-2 * -3 > 5 and not 1 > 2").holds(r({}))
    assert parse("value < reference * 0.9").holds(r({"value": 0.8, "reference": 0.93}))
    assert not parse("value < reference * 0.9").holds(r({"value": 0.85, "reference": 0.93}))


def test_dotted_names_and_functions() -> None:
    env = {"embedding.drift": 0.5, "embedding.drift_threshold": 0.3, "input.a-b.psi": 0.4}
    assert parse("embedding.drift > embedding.drift_threshold").holds(r(env))
    assert parse('metric("input.a-b.psi") >= max(0.2, abs(-0.1))').holds(r(env))
    assert parse('ref("x") > 1').names == frozenset({"ref:x"})


def test_missing_name_is_no_data_but_or_short_circuits() -> None:
    with pytest.raises(MissingValue):
        parse("value > reference").holds(r({"value": 1.0}))
    assert parse("value > 0.5 or value > reference").holds(r({"value": 1.0}))
    with pytest.raises(MissingValue):
        parse("value / 0 > 1").holds(r({"value": 1.0}))


@pytest.mark.parametrize("src", ["", "value >", "__import__('os')", "value > 1 > 0", "a.__class__ ;", "foo(1)", "1 +* 2",
                                 "value[0]"])
def test_bad_expressions_raise(src: str) -> None:
    with pytest.raises(ExpressionError):
        parse(src)
