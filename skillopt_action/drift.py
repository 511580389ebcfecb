"""Drift watch: has the skill's score moved, or the target model changed, since the stored baseline?

A baseline is a small JSON file (`.skillopt/baseline.json` by default; on GitHub, a file on the bot branch):
the skill's hash, the target's configured and reported model identity, and per-task val scores. `watch`
re-scores the current skill on val with fresh samples and compares task by task (two-sided paired sign-flip
test over tasks): a change beyond noise, or a new reported model identity, is drift.
"""

from __future__ import annotations

import json
import secrets
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
            # two baselines of one skill can be recorded within a second (a drift accepted right after it was
            # reported): the nonce keeps them apart, so an issue about the first does not re-record the second
            "nonce": secrets.token_hex(6),
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
    if common and 2 / 2 ** len(common) >= alpha:  # even every task moving one way could not reach alpha
        reasons.append(f"note: {len(common)} val task(s) are too few for the paired test to call a score change at "
                       f"alpha {alpha:g} (it needs at least {min_tasks(alpha)}); only a model change is detected")
    if stored.get("skill_hash") != current.get("skill_hash"):
        reasons.append("note: the skill itself changed since the baseline was recorded")
    drifted = any(not r.startswith("note:") for r in reasons)
    if not drifted:
        reasons.insert(0, f"no drift: {delta:+.3f} over {len(common)} tasks (p={p:.3g})" if deltas else
                       "no drift: no common tasks to compare")
    return {"drifted": drifted, "reasons": reasons, "delta": delta, "p_value": p, "tasks": len(common)}


def min_tasks(alpha: float) -> int:
    """The fewest tasks with which the two-sided sign-flip test can reach `alpha` (all moving the same way)."""
    n = 1
    while 2 / 2 ** n >= alpha:
        n += 1
    return n


def baseline_id(data: dict[str, Any]) -> str:
    """Which baseline a drift verdict was measured against: the skill's hash, when it was recorded and its nonce
    (baselines stored before the nonce existed have none, and keep the id they had)."""
    nonce = data.get("nonce")
    return f"{str(data.get('skill_hash') or '')[:12]}@{data.get('recorded_at') or ''}" + (f"#{nonce}" if nonce else "")


def rows(stored: dict[str, Any], current: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-task table, worst change first: task, baseline score, current score, change (None for a task only
    one side has: added to or removed from the val split since the baseline)."""
    old, new = stored.get("val") or {}, current.get("val") or {}
    out = []
    for task in sorted(set(old) | set(new)):
        before, after = old.get(task), new.get(task)
        delta = float(after) - float(before) if before is not None and after is not None else None
        out.append({"task": task, "baseline": before, "now": after, "delta": delta})
    return sorted(out, key=lambda r: (r["delta"] is None, r["delta"] if r["delta"] is not None else 0.0, r["task"]))


MAX_ROWS = 20  # per-task rows shown; the rest (the smallest changes) are counted


def view(stored: dict[str, Any], current: dict[str, Any], reasons: list[str], *,
         max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """What the drift table templates print (`_drift_table.md.j2`, `drift.md.j2`): the reasons, the per-task rows
    that changed (worst first, then the unchanged ones, up to `max_rows`), the means over the common tasks, and the
    model identities on both sides. Plain data: the CLI and the GitHub issue render the same view."""
    table = rows(stored, current)
    changed = [r for r in table if r["delta"] is None or abs(r["delta"]) > 1e-12]
    same = [r for r in table if r not in changed]
    shown = (changed + same)[:max_rows]
    common = [r for r in table if r["delta"] is not None]
    before = sum(float(r["baseline"]) for r in common) / len(common) if common else None
    now = sum(float(r["now"]) for r in common) / len(common) if common else None
    return {"reasons": list(reasons), "rows": shown, "hidden": len(table) - len(shown),
            "changed": len(changed), "tasks": len(table), "common": len(common), "mean_before": before, "mean_now": now,
            "delta": now - before if now is not None and before is not None else None,
            "target_before": stored.get("target"), "target_now": current.get("target"),
            "models_before": list(stored.get("reported_models") or []),
            "models_now": list(current.get("reported_models") or []),
            "recorded_at": stored.get("recorded_at"), "skill_before": str(stored.get("skill_hash") or "")[:12],
            "skill_now": str(current.get("skill_hash") or "")[:12], "samples": current.get("samples")}
