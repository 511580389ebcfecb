"""Transfer check: does the final skill also hold on the other targets the team runs (config `transfer:`)?

Each transfer target (another model, provider or agent harness) scores the starting and the final skill on the
val tasks with the sequential test; the per-task gains give a 90% bootstrap interval over tasks. With the
target's non-inferiority `margin` (default 0.05):

- holds         the interval's lower end is above -margin: the skill is not worse there beyond the margin;
- hurts         the interval's upper end is below -margin: the skill costs that target more than the margin
                (the pull request's check fails);
- inconclusive  neither: too few tasks or samples to tell (reported, the check does not fail on it).

SkillOpt reports that trained skills transfer across models and harnesses; this makes a repository check it.
"""

from __future__ import annotations

import random
from typing import Any

from .evaluation import run_sequential, sequential_settings
from .gate import bootstrap_ci
from .runtime import Runtime


def check_transfer(rt: Runtime, baseline: str, best: str) -> list[dict[str, Any]]:
    rows = []
    for i, target in enumerate(rt.cfg.transfer):
        engine = rt.engine_for(target.settings)
        settings = sequential_settings(rt, rt.cfg.gate.alpha, seed=7000 + i)
        result, spent = run_sequential(rt, baseline, best, settings, f"transfer:{target.name}", engine=engine)
        lo, hi = bootstrap_ci([t["delta"] for t in result.per_task], 0.9, 2000, random.Random(f"transfer:{i}"))
        if lo > -target.margin:
            verdict = "holds"
        elif hi < -target.margin:
            verdict = "hurts"
        else:
            verdict = "inconclusive"
        rows.append({"name": target.name, "target": engine.target.name, "margin": target.margin,
                     "baseline": round(result.incumbent_mean, 4), "best": round(result.candidate_mean, 4),
                     "delta": round(result.delta, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4),
                     "p_value": result.p_value, "p_worse": result.p_harm, "verdict": verdict, "rollouts": spent,
                     "n": result.n_tasks, "tasks": [{"id": t["task_id"], "baseline": t["incumbent"],
                                                     "best": t["candidate"], "delta": t["delta"]}
                                                    for t in result.per_task]})
        rt.log(f"transfer to {target.name}: {result.incumbent_mean:.3f} -> {result.candidate_mean:.3f} "
               f"(90% interval {lo:+.3f} … {hi:+.3f}, margin {target.margin:g}): {verdict}")
    return rows
