from __future__ import annotations

from pathlib import Path

import pytest

from inferwatch.alerter.evaluation.rules import RuleErrors, default_rules_path, load_rule_text, load_rules
from inferwatch.alerter.evaluation.rulewatch import RuleWatcher


def test_defaults_load() -> None:
    names = {r.name for r in load_rules(default_rules_path())}
    assert {"accuracy_drop", "input_drift", "embedding_drift", "lineage_self_share_rising", "llm_logprob_drop",
            "llm_refusal_rate", "llm_inconsistency", "error_rate_high", "latency_p95_regression"} <= names


def test_errors_name_file_rule_and_field() -> None:
    text = """
rules:
  - name: ok
    metric: error_rate
    condition: value > 0.1
  - name: bad_for
    metric: error_rate
    condition: value > 0.1
    for: soon
  - name: bad_cond
    metric: error_rate
    condition: "value >"
"""
    with pytest.raises(RuleErrors) as ei:
        load_rule_text(text, "team.yaml")
    errs = ei.value.errors
    assert any(e.file == "team.yaml" and e.rule == "bad_for" and e.field == "for" for e in errs)
    text2 = text.replace("    for: soon\n", "")
    with pytest.raises(RuleErrors) as ei:
        load_rule_text(text2, "team.yaml")
    assert [(e.rule, e.field) for e in ei.value.errors] == [("bad_cond", "condition")]


def test_condition_xor_anomaly_and_bad_yaml() -> None:
    with pytest.raises(RuleErrors, match="exactly one of 'condition' or 'anomaly'"):
        load_rule_text("rules: [{name: x, metric: m}]", "f.yaml")
    with pytest.raises(RuleErrors, match="not valid YAML"):
        load_rule_text("rules: [", "f.yaml")
    with pytest.raises(RuleErrors, match="labels.model"):
        load_rule_text("rules: [{name: x, metric: m, condition: value > 1, labels: {model: y}}]", "f.yaml")


def test_hot_reload_keeps_old_rules_on_error(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("rules: [{name: a, metric: m, condition: value > 1}]")
    w = RuleWatcher(f, poll_interval_s=0)
    w.load()
    f.write_text("rules: [{name: a, metric: m, condition: 'value >'}]")
    assert w.poll() is False
    assert [r.name for r in w.rules] == ["a"] and w.last_error and "condition" in w.last_error
    f.write_text("rules: [{name: b, metric: m, condition: value > 2}, {name: c, metric: m, condition: value > 3}]")
    assert w.poll() is True
    assert [r.name for r in w.rules] == ["b", "c"] and w.last_error is None
