"""Sequential, calibrated drift detection in the processor core (pure numpy; no Kafka, no faust).

:mod:`.sequential` holds the vectorised arithmetic (adaptive CUSUMs of likelihood ratios against the
reference), :mod:`.calibration` the thresholds from a false-alarm budget, :mod:`.detector` the
detectors of one model version with their state. :class:`~inferwatch.processor.core.state_machine.ProcessorCore`
runs them on every group of fresh predictions and every joined label and returns their decisions as
``detection.v1`` events in ``Output.detections``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inferwatch.processor.core.detect.detector import DetectSettings, Found, VersionDetectors, to_event

__all__ = ["DetectSettings", "Found", "VersionDetectors", "detect_settings", "label_slots", "to_event"]


def detect_settings(cfg: Any) -> DetectSettings:
    """The detectors' settings from :class:`~inferwatch.processor.settings.ProcessorSettings`."""
    return DetectSettings(
        false_alarm_rate=getattr(cfg, "detect_false_alarm_rate", 1e-6),
        min_reference=cfg.min_reference_count,
        max_values=cfg.max_tracked_values,
        clear_events=getattr(cfg, "detect_clear_events", 500),
        enabled=getattr(cfg, "detect_enabled", False),
    )


def label_slots(pairs: list[tuple[list[Any], Any]]) -> tuple[list[list[str]], Any, Any, Any, Any]:
    """The detectors' view of joined labels: per label its slots (``""`` and ``key=value``), its
    prediction's ``ts``, its own ``ts``, whether the class was wrong (NaN: no class) and the absolute
    error (NaN: no value). ``pairs`` are the join's ``(prediction record, [label, value, ts])``; the
    record's segment is a dict (or, in older records, ``[key, value]`` pairs with the whole version
    as ``["", ""]``) and its last field is the prediction's ``ts``."""
    n = len(pairs)
    slots: list[list[str]] = []
    pred_ts = np.zeros(n, np.int64)
    label_ts = np.zeros(n, np.int64)
    wrong = np.full(n, np.nan)
    abs_err = np.full(n, np.nan)
    for i, (rec, fb) in enumerate(pairs):
        seg = rec[2]
        items = seg.items() if isinstance(seg, dict) else [(k, v) for k, v in seg if (k, v) != ("", "")]
        slots.append(["", *(f"{k}={v}" for k, v in items if v is not None)])
        pred_ts[i] = int(rec[-1])
        label_ts[i] = int(fb[2])
        if rec[3] is not None and fb[0] is not None:
            wrong[i] = float(rec[3] != fb[0])
        if rec[6] is not None and fb[1] is not None:
            abs_err[i] = abs(float(rec[6]) - float(fb[1]))
    return slots, pred_ts, label_ts, wrong, abs_err
