"""What ``inferwatch status`` shows: is Kafka up, which services run, consumer lag, store size.

Reads: Kafka metadata and committed offsets (:mod:`inferwatch.api.lag`), pid files under
``<data_dir>/run`` (written by ``inferwatch run all``), the API's ``/healthz``, and the store's
``system.parts`` through the API when the sink owns the embedded store, or directly otherwise.
"""

from __future__ import annotations

from typing import Any

from inferwatch.config import Settings

STORE_SIZE_SQL = (
    "SELECT table, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts "
    "WHERE database = currentDatabase() AND active GROUP BY table ORDER BY table"
)


def kafka_answers(s: Settings, timeout_s: float = 3.0) -> bool:
    """Whether the configured Kafka answers a metadata request."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from inferwatch.kafka.clientconf import base_config

    try:
        # a probe: "connection refused" is the answer, not something to log 60 times
        AdminClient({**base_config(s), "log_level": 0}).list_topics(timeout=timeout_s)
        return True
    except KafkaException:
        return False


def store_size(s: Settings) -> dict[str, Any]:
    """Rows and bytes per table of the store: ``{"kind", "rows", "bytes", "tables": {t: (rows, bytes)}}``."""
    from inferwatch.store.remote import api_answers, query_http

    base = f"http://{s.api_host}:{s.api_port}"
    try:
        if not s.clickhouse_url and api_answers(base):
            res = query_http(base, STORE_SIZE_SQL, {}, max_rows=1000, timeout_s=10, token=s.api_token)
            kind = "embedded (via the sink's API)"
        else:
            from inferwatch.store import open_store

            if not s.clickhouse_url and not (s.data_dir / "chdb").exists():
                return {"error": f"no embedded store yet under {s.data_dir / 'chdb'} (run `inferwatch migrate`)"}
            with open_store(s) as store:
                res = store.query(STORE_SIZE_SQL, {}, max_rows=1000, timeout_s=10)
                kind = store.kind
    except Exception as exc:
        return {"error": f"store not readable: {exc}"}
    tables = {str(t): (int(r), int(b)) for t, r, b in res.rows}
    return {"kind": kind, "rows": sum(r for r, _ in tables.values()), "bytes": sum(b for _, b in tables.values()),
            "tables": tables}


def collect(s: Settings) -> dict[str, Any]:
    """Everything ``inferwatch status`` prints, as a JSON-able dict."""
    import httpx

    from inferwatch.api.lag import consumer_lag
    from inferwatch.supervisor import running_from_pid_files

    up = kafka_answers(s)
    running = running_from_pid_files(s.data_dir / "run")
    services = {name: (f"running (pid {running[name]})" if name in running else "not started by `run all`")
                for name in ("processor", "sink", "alerter")}
    url = f"http://{s.api_host}:{s.api_port}"
    api: dict[str, Any] = {"url": url, "ok": False}
    try:
        # with the token /healthz shows each check's details; without it only the ok flags
        auth = {"Authorization": f"Bearer {s.api_token}"} if s.api_token else {}
        r = httpx.get(f"{url}/healthz", timeout=2, headers=auth)
        api = {"url": url, "ok": r.status_code == 200, "checks": r.json().get("checks")}
    except (httpx.HTTPError, ValueError):
        pass
    lag: dict[str, Any] = {}
    if up:
        for g in consumer_lag(s):
            lag[g.group] = {"service": g.service, "lag": g.lag, "per_topic": g.per_topic, "error": g.error}
    return {"kafka": {"bootstrap": s.kafka_bootstrap, "ok": up}, "services": services, "api": api, "lag": lag,
            "store": store_size(s)}
