"""The alerter: metric snapshots in, rule evaluation, Alertmanager-style routing, signed webhooks out.

Pipeline, one stage per module (after Prometheus Alertmanager):
``rules`` (load/validate/hot-reload) → ``evaluate`` (conditions) → ``lifecycle`` (pending/firing/
resolved, event time) → ``dispatch`` (route → group → inhibit → silence → dedup, wall clock) →
``delivery`` (sign, retry, record) with ``state`` (SQLite) keeping it all across restarts.
"""
