"""Ablation: does each accepted edit earn its place in the final skill?

For every edit in the final skill, leave it out (re-apply the other accepted edits, in order, to the starting
skill) and compare the final skill with that variant on val, on the confirmation's sample indices (the final
skill's samples are cached; only the variants cost new rollouts). Each edit gets its marginal contribution with
a bootstrap interval over tasks and a verdict:

- earned            removing it makes the skill significantly worse (sequential test, `gate.alpha`);
- likely helps      removing it costs something, but not significantly: kept (it passed its own gate);
- unclear           no gain measured, but the interval of its contribution does not rule one out (a noisy
                    comparison that stopped early): kept, since it passed its own gate;
- carried           removing it costs nothing, and the 90 % interval of its contribution rules out a gain above
                    `gate.min_delta`: "carried, not earned";
- entangled         the other edits do not apply without it (they anchor on its text): kept.

With `loop.ablation: prune` (the default) carried edits are removed greedily, smallest contribution first, and
the ablation is repeated on the pruned skill, so of two redundant edits one stays. A shorter skill that scores the
same is the better skill.
"""

from __future__ import annotations

import random
from typing import Any

from . import package
from .evaluation import run_sequential, sequential_settings
from .gate import bootstrap_ci
from .runtime import Runtime
from .triggering import body_val
from .types import Edit

CONFIRM_OFFSET = 1000  # the confirmation's (and the ablation's) fresh sample indices


def build(rt: Runtime, baseline: str, edits: list[Edit]) -> tuple[str, int]:
    """The starting skill with `edits` applied in order; returns the text and how many applied."""
    applied = package.apply(baseline, edits, max_ops=max(1, len(edits)), max_lines=10**6, name=rt.cfg.skill)
    return applied.after, len(applied.applied)


def ablate(rt: Runtime, baseline: str, edits: list[Edit], round_no: int) -> tuple[str, list[dict[str, Any]]]:
    """One pass: the marginal contribution of every edit in the skill built from `edits`."""
    final, n = build(rt, baseline, edits)
    rows = []
    for i, edit in enumerate(edits):
        others = edits[:i] + edits[i + 1:]
        variant, applied = build(rt, baseline, others)
        row: dict[str, Any] = {"edit": edit.to_dict(), "pass": round_no}
        if applied < len(others):
            row.update(verdict="entangled", delta=None, ci_low=None, ci_high=None, rollouts=0,
                       reason="the other accepted edits do not apply without it")
            rows.append(row)
            continue
        settings = sequential_settings(rt, rt.cfg.gate.alpha, seed=round_no * 1000 + i)
        result, spent = run_sequential(rt, variant, final, settings, f"ablation:{round_no}:{i + 1}",
                                       offset=CONFIRM_OFFSET, tasks=body_val(rt))
        deltas = [t["delta"] for t in result.per_task]
        lo, hi = bootstrap_ci(deltas, 0.9, 2000, random.Random(f"ablation:{round_no}:{i}"))
        if result.accepted:
            verdict = "earned"
        elif result.delta > 1e-9:
            verdict = "likely helps"
        elif hi <= rt.cfg.gate.min_delta + 1e-9:
            verdict = "carried"
        else:  # "not better" on samples too few to tell: absence of evidence is not evidence of absence
            verdict = "unclear"
        row.update(verdict=verdict, delta=round(result.delta, 4), ci_low=round(lo, 4), ci_high=round(hi, 4),
                   p_value=result.p_value, rollouts=spent, reason=result.reason)
        rows.append(row)
    return final, rows


def run_ablation(rt: Runtime, baseline: str, edits: list[Edit], prune: bool) -> dict[str, Any]:
    """Ablate every edit; with `prune`, drop carried edits one at a time (smallest contribution first) and
    ablate again. Returns {"skill": the (pruned) skill, "edits": the last pass's rows, "removed": [...],
    "rollouts": total new rollouts}."""
    kept = list(edits)
    removed: list[dict[str, Any]] = []
    total = 0
    round_no = 0
    while True:
        round_no += 1
        skill, rows = ablate(rt, baseline, kept, round_no)
        total += sum(r["rollouts"] for r in rows)
        carried = [(r, e) for r, e in zip(rows, kept, strict=True) if r["verdict"] == "carried"]
        if not prune or not carried:
            break
        worst, edit = min(carried, key=lambda c: (c[0]["delta"], -len(c[1].content)))
        removed.append({**worst, "removed": True})
        kept = [e for e in kept if e is not edit]
        if not kept:
            skill = baseline
            rows = []
            break
    rt.log(f"ablation: {len(edits)} edit(s), {len(removed)} carried and removed, {total} new val rollout(s)")
    return {"skill": skill, "edits": rows, "removed": removed, "rollouts": total,
            "passes": round_no, "rollouts_per_edit": round(total / max(1, len(edits)), 1)}
