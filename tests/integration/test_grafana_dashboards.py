"""Every panel of infra/grafana/dashboards runs on the embedded store with the demo fleet's history.

Grafana cannot run here, so the ClickHouse plugin's macros are expanded the way the plugin does
(``$__timeFilter(c)`` → ``c >= toDateTime(from) AND c <= toDateTime(to)``, ``$__timeInterval(c)`` →
``toStartOfInterval(toDateTime(c), INTERVAL n second)``, ...) and template variables replaced; each
statement then goes through the store's read-only query path (the guard). A panel fails on an
error, and on an empty result: a fleet or alerts panel on the history, a model panel for every
model of the demo fleet (LLM panels only have rows for the LLM model, so a model panel must have
rows for at least one model and must never fail).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.history import END, MODELS, START, history_dir, opened  # noqa: F401 - fixture

pytestmark = pytest.mark.integration
GRAFANA = Path(__file__).resolve().parents[2] / "infra" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
INTERVAL_S = 60


def expand(sql: str, variables: dict[str, str]) -> str:
    """The SQL Grafana's ClickHouse plugin would send for the range START..END."""
    f, t = int(START.timestamp()), int(END.timestamp())
    sql = re.sub(r"\$__timeFilter\(\s*([^)]+?)\s*\)", lambda m: f"{m[1]} >= toDateTime({f}) AND {m[1]} <= toDateTime({t})", sql)
    sql = re.sub(r"\$__timeInterval\(\s*([^)]+?)\s*\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {INTERVAL_S} second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({f})").replace("$__toTime", f"toDateTime({t})")
    sql = sql.replace("$__interval_s", str(INTERVAL_S))
    for name, value in variables.items():
        sql = sql.replace("${" + name + "}", value).replace("$" + name, value)
    assert not re.search(r"\$(?:\{|\w)", sql), f"unexpanded macro or variable in: {sql}"
    return sql


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out += p.get("panels", []) if p.get("type") == "row" else [p]
    return out


def test_provisioning_names_the_plugin_and_the_dashboards_use_it() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml").read_text())["datasources"][0]
    assert ds["type"] == "grafana-clickhouse-datasource" and ds["jsonData"]["defaultDatabase"] == "inferwatch"
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "inferwatch.yaml").read_text())
    assert prov["providers"][0]["type"] == "file"
    assert {p.stem for p in DASHBOARDS} == {"fleet", "model", "alerts"}
    uids = set()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        uids.add(dash["uid"])
        ids = [p["id"] for p in panels(dash)]
        assert len(ids) == len(set(ids)), path.name
        for p in panels(dash):
            assert p["targets"], (path.name, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] == ds["uid"] and t["datasource"]["type"] == ds["type"]
                assert t["editorType"] == "sql" and t["rawSql"].strip()
    assert len(uids) == len(DASHBOARDS)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_runs_and_has_rows(history_dir: Path, path: Path) -> None:  # noqa: F811
    dash = json.loads(path.read_text())
    var_names = [v["name"] for v in dash.get("templating", {}).get("list", [])]
    runs = [{"model": m, "segment_key": "device" if m == "photo-verifier" else "region"} for m in MODELS] \
        if var_names else [{}]
    for v in var_names:
        assert v in ("model", "segment_key"), f"{path.name}: the test does not know variable {v}"
    failures: list[str] = []
    with opened(history_dir) as store:
        for var in dash.get("templating", {}).get("list", []):
            res = store.query(expand(var["query"], runs[0]), readonly=True)
            if not res.rows:
                failures.append(f"variable {var['name']}: empty")
        for p in panels(dash):
            for t in p["targets"]:
                rows = 0
                for variables in runs:
                    try:
                        rows += len(store.query(expand(t["rawSql"], variables), readonly=True, max_rows=1000).rows)
                    except Exception as exc:  # collect every broken panel, then fail once
                        failures.append(f"{p['title']!r} with {variables}: {exc}")
                if rows == 0:
                    failures.append(f"{p['title']!r}: empty result")
    assert not failures, f"{path.name}:\n" + "\n".join(failures)


def test_expand_refuses_unknown_macros() -> None:
    with pytest.raises(AssertionError, match="unexpanded"):
        expand("SELECT 1 WHERE $__unknownMacro(ts)", {})
