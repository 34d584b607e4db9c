"""Notifications as the demo's webhook receiver sees them: decoded ``alert.v1`` bodies, collected
thread-safely, and rendered as readable lines. Wire format: the generic webhook JSON (``alert.v1``)
with an HMAC signature header checked by :class:`~inferwatch.alerter.notification.webhook_receiver.LocalReceiver`."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from inferwatch.alerter.notification.webhook_receiver import Received

_TOP = re.compile(r"(?:mostly )?in segment (\S+=[^\s;,)]+)")


@dataclass(frozen=True)
class SeenAlert:
    """One alert of one notification."""

    fingerprint: str
    status: str
    rule: str
    severity: str
    model: str
    model_version: str
    segment: str | None
    summary: str
    starts_at_ms: int
    signature_ok: bool | None

    @property
    def named_segment(self) -> str | None:
        """The segment the alert points at: its own, else the one its summary names first."""
        if self.segment:
            return self.segment
        m = _TOP.search(self.summary)
        return m.group(1) if m else None


def parse(rec: Received) -> list[SeenAlert]:
    """The alerts of one webhook request (empty when the body is not an ``alert.v1`` JSON)."""
    try:
        body: dict[str, Any] = orjson.loads(rec.body)
    except orjson.JSONDecodeError:
        return []
    out = []
    for a in body.get("alerts", []):
        labels = a.get("labels", {})
        out.append(SeenAlert(
            fingerprint=str(a.get("fingerprint", "")), status=a.get("status", body.get("status", "?")), rule=a.get("rule", labels.get("alertname", "?")),
            severity=a.get("severity", labels.get("severity", "?")),
            model=a.get("model") or labels.get("model", "?"),
            model_version=a.get("model_version") or labels.get("model_version", "?"),
            segment=a.get("segment") or labels.get("segment"),
            summary=" ".join((a.get("annotations", {}).get("summary") or "").split()),
            starts_at_ms=int(a.get("starts_at") or 0), signature_ok=rec.signature_ok,
        ))
    return out


def incident_of(rec: Received) -> str | None:
    """The incident text of a firing notification (its alerts' ``incident`` annotation), if any."""
    try:
        body: dict[str, Any] = orjson.loads(rec.body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or body.get("status") != "firing":
        return None
    for a in body.get("alerts") or []:
        text = (a.get("annotations") or {}).get("incident") if isinstance(a, dict) else None
        if isinstance(text, str) and text:
            return " ".join(text.split())
    return None


@dataclass
class Inbox:
    """Every alert received, in arrival order (the receiver calls :meth:`add` from its threads).

    A group's notification repeats the group's alerts that are still firing; ``alerts`` keeps each
    (fingerprint, status) once, at its first arrival.
    """

    alerts: list[SeenAlert] = field(default_factory=list)
    _seen: set[tuple[str, str]] = field(default_factory=set, repr=False)
    requests: int = 0
    bad_signatures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, rec: Received) -> list[SeenAlert]:
        """Record one request; return the alerts it brought that were not seen before in that state."""
        new = []
        with self._lock:
            self.requests += 1
            if rec.signature_ok is False:
                self.bad_signatures += 1
            for a in parse(rec):
                if (a.fingerprint, a.status) not in self._seen:
                    self._seen.add((a.fingerprint, a.status))
                    self.alerts.append(a)
                    new.append(a)
        return new

    def firing(self) -> list[SeenAlert]:
        """Firing alerts, first arrival first."""
        with self._lock:
            return [a for a in self.alerts if a.status == "firing"]

    def models_alerted(self) -> set[str]:
        """Models with at least one firing alert."""
        return {a.model for a in self.firing()}


def render(a: SeenAlert, with_summary: bool = True) -> str:
    """One readable line (plus the summary on a second line) for the terminal."""
    when = datetime.fromtimestamp(a.starts_at_ms / 1000, UTC).strftime("%H:%M") if a.starts_at_ms else "--:--"
    where = f"segment {a.segment}" if a.segment else "whole version"
    sig = {True: "signature ok", False: "BAD SIGNATURE", None: "unsigned"}[a.signature_ok]
    head = f"{a.status.upper():<8} {a.severity:<8} {a.rule:<24} {a.model}@{a.model_version}  {where}  (sim {when} UTC, {sig})"
    return head + (f"\n           {a.summary}" if a.summary and with_summary else "")
