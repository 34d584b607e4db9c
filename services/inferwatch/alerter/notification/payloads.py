"""Notification bodies: our ``alert.v1`` JSON, Alertmanager's webhook v4, and Slack incoming webhooks.

Wire formats:
- ``inferwatch``: ``schemas/events/alert.v1.schema.json`` without ``delivery``.
- ``alertmanager``: ``{"version": "4", "groupKey", "truncatedAlerts", "status", "receiver",
  "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts": [{"status",
  "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}]}`` with RFC 3339
  times, ``endsAt`` ``0001-01-01T00:00:00Z`` while firing, as Alertmanager sends it.
- ``slack``: ``{"text", "attachments": [{"color", "title", "text", "fields"}]}``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from inferwatch.alerter.lifecycle.transitions import AlertRecord
from inferwatch.alerter.route.incidents import INCIDENT_ANNOTATION, summarize
from inferwatch.contract.events import AlertInstance, AlertV1

Format = Literal["inferwatch", "alertmanager", "slack"]
_ZERO_TIME = "0001-01-01T00:00:00Z"


def idempotency_key(receiver: str, group_key: str, seq: int, firing: Sequence[str], resolved: Sequence[str]) -> str:
    """Stable key of one decided notification: same decision, same key, on every attempt and restart."""
    h = hashlib.sha256()
    for part in (receiver, group_key, str(seq), ",".join(sorted(firing)), ",".join(sorted(resolved))):
        h.update(part.encode() + b"\x00")
    return h.hexdigest()[:32]


def instance(rec: AlertRecord) -> AlertInstance:
    """The wire form of one alert."""
    status: Literal["firing", "resolved"] = "resolved" if rec.state == "resolved" else "firing"
    return AlertInstance(
        fingerprint=rec.fingerprint, rule=rec.rule, status=status,
        severity=rec.severity if rec.severity in ("info", "warning", "critical") else "warning",  # type: ignore[arg-type]
        labels=rec.labels, annotations=rec.annotations, starts_at=rec.starts_at_ms or rec.active_since_ms,
        ends_at=rec.ends_at_ms if status == "resolved" else None, value=rec.value, model=rec.model,
        model_version=rec.model_version, segment=rec.segment,
    )


def notification(
    receiver: str, group_key: str, group_labels: dict[str, str], alerts: Sequence[AlertRecord], key: str, ts_ms: int
) -> AlertV1:
    """The ``alert.v1`` notification of a group (firing if any alert fires).

    The first alert carries the group's incident text (:mod:`inferwatch.alerter.route.incidents`) in its
    ``incident`` annotation. Only the first: a copy on each of thousands of alerts would multiply
    the body (and the record on ``inferwatch.alerts``) by kilobytes per alert.
    """
    inst = [instance(a) for a in alerts]
    if inst:
        text = summarize(inst).text()
        inst[0] = inst[0].model_copy(update={"annotations": {**inst[0].annotations, INCIDENT_ANNOTATION: text}})
    status: Literal["firing", "resolved"] = "firing" if any(i.status == "firing" for i in inst) else "resolved"
    return AlertV1(
        event_id=uuid.uuid4().hex, ts=ts_ms, idempotency_key=key, receiver=receiver, status=status,
        group_key=group_key, group_labels=group_labels, alerts=inst,
    )


def _rfc3339(ms: int | None) -> str:
    if ms is None:
        return _ZERO_TIME
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    out = dict(maps[0])
    for m in maps[1:]:
        out = {k: v for k, v in out.items() if m.get(k) == v}
    return out


def alertmanager_v4(n: AlertV1) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4), so existing receivers work unchanged.

    ``commonAnnotations.incident`` is the group's incident text, although only the first alert
    carries it (see :func:`notification`): it is about all of them.
    """
    common = _common([a.annotations for a in n.alerts])
    incident = n.alerts[0].annotations.get(INCIDENT_ANNOTATION) if n.alerts else None
    if incident:
        common[INCIDENT_ANNOTATION] = incident
    return {
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": _common([a.labels for a in n.alerts]),
        "commonAnnotations": common,
        "externalURL": "",
        "alerts": [
            {
                "status": a.status, "labels": a.labels, "annotations": a.annotations,
                "startsAt": _rfc3339(a.starts_at), "endsAt": _rfc3339(a.ends_at) if a.status == "resolved" else _ZERO_TIME,
                "generatorURL": "", "fingerprint": a.fingerprint,
            }
            for a in n.alerts
        ],
    }


_COLORS = {"critical": "#d0312d", "warning": "#f2a900", "info": "#439fe0"}


def slack(n: AlertV1) -> dict[str, Any]:
    """A Slack incoming-webhook message: one line of text plus one attachment per alert (max 20)."""
    firing = sum(1 for a in n.alerts if a.status == "firing")
    head = (f"[{n.status.upper()}{':' + str(firing) if n.status == 'firing' else ''}] "
            + ", ".join(f"{k}={v}" for k, v in sorted(n.group_labels.items())))
    incident = n.alerts[0].annotations.get(INCIDENT_ANNOTATION) if n.alerts else None
    if incident:  # the incident first; the per-finding attachments follow
        head += "\n" + incident
    atts = []
    for a in n.alerts[:20]:
        text = a.annotations.get("summary") or a.annotations.get("description") or ""
        atts.append({
            "color": "#2eb886" if a.status == "resolved" else _COLORS.get(a.severity, "#f2a900"),
            "title": f"{a.status.upper()} {a.rule} ({a.severity})",
            "text": text,
            "fields": [{"title": k, "value": v, "short": True} for k, v in sorted(a.labels.items())
                       if k not in ("alertname", "severity")],
        })
    if len(n.alerts) > 20:
        atts.append({"text": f"… and {len(n.alerts) - 20} more"})
    return {"text": head, "attachments": atts}


def render_body(fmt: Format, n: AlertV1) -> bytes:
    """The request body for a receiver's format."""
    if fmt == "alertmanager":
        return orjson.dumps(alertmanager_v4(n))
    if fmt == "slack":
        return orjson.dumps(slack(n))
    return n.model_dump_json(exclude={"delivery"}).encode()
