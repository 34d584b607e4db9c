"""Rule files: YAML validated against ``schemas/rules/rules.schema.json``, compiled into :class:`Rule`.

Errors name the file, the rule and the field (``rules.yaml: rule 'acc_drop': field for: ...``).
``--rules`` may be one file or a directory of ``*.yaml``/``*.yml`` files.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2
import jsonschema
import yaml

from inferwatch.alerter.errors import AlerterError, ExpressionError, RuleError
from inferwatch.alerter.evaluation.durations import parse_duration_s
from inferwatch.alerter.evaluation.expr import Expression, parse
from inferwatch.alerter.evaluation.templates import compile_template
from inferwatch.paths import schemas_dir

Severity = Literal["info", "warning", "critical"]


class RuleErrors(AlerterError):
    """One or more invalid rules; ``errors`` lists each with file, rule and field."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class Anomaly:
    """Z-score of the value against the series' own last ``window`` values (at least ``min_windows``)."""

    zscore: float
    window: int = 20
    min_windows: int = 8
    direction: Literal["above", "below", "both"] = "both"


@dataclass(frozen=True)
class Selector:
    """Which snapshots a rule reads."""

    model: re.Pattern[str] | None = None
    model_version: re.Pattern[str] | None = None
    segments: Literal["whole", "per_segment", "all"] = "all"
    segment_key: re.Pattern[str] | None = None
    segment_value: re.Pattern[str] | None = None
    min_count: int = 0

    def selects(self, model: str, version: str, seg_key: str | None, seg_value: str | None, count: int) -> bool:
        """Whether a snapshot with these coordinates is read by the rule."""
        if count < self.min_count:
            return False
        if self.model is not None and not self.model.match(model):
            return False
        if self.model_version is not None and not self.model_version.match(version):
            return False
        if seg_key is None:
            return self.segments in ("whole", "all") and self.segment_key is None and self.segment_value is None
        if self.segments == "whole":
            return False
        if self.segment_key is not None and not self.segment_key.match(seg_key):
            return False
        return not (self.segment_value is not None and not self.segment_value.match(seg_value or ""))


@dataclass(frozen=True)
class Rule:
    """One compiled alert rule."""

    name: str
    metric: str
    selector: Selector
    condition: Expression | None
    anomaly: Anomaly | None
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    severity: Severity = "warning"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, jinja2.Template] = field(default_factory=dict, compare=False)
    description: str = ""
    source: str = ""
    # confirmation without stalls (see inferwatch.alerter.lifecycle.transitions): fire after this many
    # consecutive breaching snapshots (0 = unset), and decide a pending alert after this much
    # wall-clock time (None = the default of lifecycle.max_wait_s)
    for_events: int = 0
    for_max_wait_s: float | None = None
    # an absent (staleness) rule: fires when a selected model has sent nothing for this long
    absent_for_s: float | None = None
    absent_per: Literal["model", "model_version"] = "model"

    @property
    def kind(self) -> Literal["threshold", "anomaly", "absent"]:
        """``absent`` (``absent_for``), ``anomaly`` or ``threshold`` (``condition``)."""
        return "absent" if self.absent_for_s is not None else "anomaly" if self.anomaly is not None else "threshold"

    @property
    def is_pattern(self) -> bool:
        """Whether ``metric`` is a wildcard (each matching metric is its own alert)."""
        return "*" in self.metric or "?" in self.metric

    def metrics_in(self, names: Iterable[str]) -> list[str]:
        """The metric names of a snapshot this rule evaluates."""
        if not self.is_pattern:
            return [self.metric] if self.metric in names else []
        rx = _glob(self.metric)
        return sorted(n for n in names if rx.match(n))


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((schemas_dir() / "rules" / "rules.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _regex(file: str, rule: str, fld: str, v: str | None) -> re.Pattern[str] | None:
    if v is None:
        return None
    try:
        return re.compile(f"(?:{v})\\Z")
    except re.error as exc:
        raise RuleError(file, rule, fld, f"bad regex {v!r}: {exc}") from None


def _field_path(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out or "<file>"


def compile_rule(raw: dict[str, Any], file: str) -> Rule:
    """Compile one schema-valid rule mapping; raises :class:`RuleError` on semantic errors."""
    name = str(raw["name"])
    m = raw.get("match") or {}
    sel = Selector(
        model=_regex(file, name, "match.model", m.get("model")),
        model_version=_regex(file, name, "match.model_version", m.get("model_version")),
        segments=("per_segment" if (m.get("segment_key") or m.get("segment_value")) and m.get("segments", "all") == "all"
                  else m.get("segments", "all")),
        segment_key=_regex(file, name, "match.segment_key", m.get("segment_key")),
        segment_value=_regex(file, name, "match.segment_value", m.get("segment_value")),
        min_count=int(m.get("min_count", 0)),
    )
    cond = None
    if "condition" in raw:
        try:
            cond = parse(raw["condition"])
        except ExpressionError as exc:
            raise RuleError(file, name, "condition", str(exc)) from None
    anomaly = None
    if "anomaly" in raw:
        a = raw["anomaly"]
        anomaly = Anomaly(float(a["zscore"]), int(a.get("window", 20)), int(a.get("min_windows", 8)),
                          a.get("direction", "both"))
        if anomaly.min_windows > anomaly.window:
            raise RuleError(file, name, "anomaly.min_windows", "must not exceed anomaly.window")
    durations: dict[str, float] = {}
    for key in ("for", "keep_firing_for", "for_max_wait", "absent_for"):
        try:
            durations[key] = parse_duration_s(raw.get(key, 0))
        except ValueError as exc:
            raise RuleError(file, name, key, str(exc)) from None
    for key in ("for_max_wait", "absent_for"):
        if key in raw and durations[key] <= 0:
            raise RuleError(file, name, key, "must be more than 0s")
    if "absent_for" in raw:
        # an absent rule has no value to test: the delay is absent_for itself
        for key in ("metric", "for", "for_events", "for_max_wait", "keep_firing_for"):
            if key in raw:
                raise RuleError(file, name, key, "is not used by an absent rule (absent_for is its delay)")
    annotations: dict[str, jinja2.Template] = {}
    for k, src in (raw.get("annotations") or {}).items():
        try:
            annotations[k] = compile_template(src)
        except ExpressionError as exc:
            raise RuleError(file, name, f"annotations.{k}", str(exc)) from None
    reserved = {"alertname", "model", "model_version", "segment", "metric", "severity"} & set(raw.get("labels") or {})
    if reserved:
        raise RuleError(file, name, f"labels.{sorted(reserved)[0]}", "is set by the alerter; choose another label name")
    return Rule(
        name=name, metric=raw.get("metric", ""), selector=sel, condition=cond, anomaly=anomaly,
        for_s=durations["for"], keep_firing_for_s=durations["keep_firing_for"],
        severity=raw.get("severity", "warning"), labels=dict(raw.get("labels") or {}),
        annotations=annotations, description=raw.get("description", ""), source=file,
        for_events=int(raw.get("for_events", 0)),
        for_max_wait_s=durations["for_max_wait"] if "for_max_wait" in raw else None,
        absent_for_s=durations["absent_for"] if "absent_for" in raw else None,
        absent_per=raw.get("absent_per", "model"),
    )


def load_rule_text(text: str, file: str) -> list[Rule]:
    """Parse, validate and compile one rule file's text. Raises :class:`RuleErrors` listing every problem."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleErrors([RuleError(file, None, None, f"not valid YAML: {exc}")]) from None
    if doc is None:
        doc = {"rules": []}
    errors: list[RuleError] = []
    for err in sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        rule_name = None
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            item = doc["rules"][path[1]]
            rule_name = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else f"#{path[1]}"
            path = path[2:]
        msg = err.message
        if err.validator == "oneOf" and not path:
            msg = "needs exactly one of 'condition' or 'anomaly' (or 'absent_for' for an absent rule)"
        errors.append(RuleError(file, rule_name, _field_path(path), msg))
    if errors:
        raise RuleErrors(errors)
    rules: list[Rule] = []
    seen: set[str] = set()
    for raw in doc.get("rules", []):
        if raw.get("enabled", True) is False:
            continue
        try:
            rule = compile_rule(raw, file)
        except RuleError as exc:
            errors.append(exc)
            continue
        if rule.name in seen:
            errors.append(RuleError(file, rule.name, "name", "duplicate rule name"))
        seen.add(rule.name)
        rules.append(rule)
    if errors:
        raise RuleErrors(errors)
    return rules


def rule_files(path: Path) -> list[Path]:
    """The rule files at ``path``: the file itself, or the ``*.yaml``/``*.yml`` of a directory."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def load_rules(path: Path | str) -> list[Rule]:
    """Load every rule at ``path``; raises :class:`RuleErrors` (nothing is half-loaded)."""
    path = Path(path)
    rules: list[Rule] = []
    errors: list[RuleError] = []
    files = rule_files(path)
    if not path.exists():
        raise RuleErrors([RuleError(str(path), None, None, "no such file or directory")])
    for f in files:
        try:
            rules.extend(load_rule_text(f.read_text(), str(f)))
        except RuleErrors as exc:
            errors.extend(exc.errors)
        except OSError as exc:
            errors.append(RuleError(str(f), None, None, f"cannot read: {exc}"))
    names: dict[str, str] = {}
    for r in rules:
        if r.name in names and names[r.name] != r.source:
            errors.append(RuleError(r.source, r.name, "name", f"also defined in {names[r.name]}"))
        names[r.name] = r.source
    if errors:
        raise RuleErrors(errors)
    return rules


def default_rules_path() -> Path:
    """The shipped default rule set, ``schemas/rules/defaults.yaml``."""
    return schemas_dir() / "rules" / "defaults.yaml"
