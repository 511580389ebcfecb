"""Drift watch: has the skill's score moved, or the target model changed, since the stored baseline?

A baseline is a small JSON file (`.skillopt/baseline.json` by default; on GitHub, a file on the bot branch):
the skill's hash, the target's configured and reported model identity, and per-task val scores. `watch`
re-scores the current skill on val with fresh samples and compares task by task (two-sided paired sign-flip
test over tasks): a change beyond noise, or a new reported model identity, is drift.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .gate import sign_flip_p
from .report import Report
from .rollout import skill_hash
from .runtime import Runtime

BASELINE_SCHEMA = 1


def snapshot(rt: Runtime, skill: str, report: Report) -> dict[str, Any]:
    """This run's scores in the baseline format."""
    return {"schema": BASELINE_SCHEMA, "skill_path": rt.cfg.skill, "skill_hash": skill_hash(skill),
            "config_digest": rt.cfg.digest(),
            "target": report.models.get("target"), "reported_models": sorted(rt.engine.reported_models),
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "val": {t["id"]: t["best"] for t in report.tasks.get("val", [])},
            "mean": (report.scores.get("val") or {}).get("best"), "samples": rt.cfg.gate.samples}


def read_baseline(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"the drift baseline cannot be read ({exc})", str(path), None,
                          "delete it to record a new baseline on the next `skillopt watch`") from None
    if not isinstance(data, dict) or not isinstance(data.get("val"), dict):
        raise ConfigError("the drift baseline has no per-task `val` scores", str(path), None,
                          "delete it to record a new baseline on the next `skillopt watch`")
    return data


def compare(stored: dict[str, Any], current: dict[str, Any], alpha: float) -> dict[str, Any]:
    reasons = []
    common = sorted(set(stored["val"]) & set(current["val"]))
    deltas = [float(current["val"][t]) - float(stored["val"][t]) for t in common]
    delta = sum(deltas) / len(deltas) if deltas else None
    p = None
    if deltas:
        p = min(1.0, 2 * min(sign_flip_p(deltas), sign_flip_p([-d for d in deltas])))
        if p < alpha:
            reasons.append(f"the val score moved {delta:+.3f} over {len(common)} tasks (two-sided p={p:.3g} < "
                           f"{alpha:g})")
    if stored.get("target") != current.get("target"):
        reasons.append(f"the configured target changed: {stored.get('target')} -> {current.get('target')}")
    old, new = set(stored.get("reported_models") or []), set(current.get("reported_models") or [])
    if old and new and old != new:
        reasons.append(f"the target reports a different model: {', '.join(sorted(old))} -> "
                       f"{', '.join(sorted(new))}")
    if stored.get("skill_hash") != current.get("skill_hash"):
        reasons.append("note: the skill itself changed since the baseline was recorded")
    drifted = any(not r.startswith("note:") for r in reasons)
    if not drifted:
        reasons.insert(0, f"no drift: {delta:+.3f} over {len(common)} tasks (p={p:.3g})" if deltas else
                       "no drift: no common tasks to compare")
    return {"drifted": drifted, "reasons": reasons, "delta": delta, "p_value": p, "tasks": len(common)}
