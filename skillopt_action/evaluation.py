"""Scoring skills on splits: evaluate one skill, or compare a candidate with a base skill through the gate
(how a human edit in a pull request is judged exactly like a bot edit)."""

from __future__ import annotations

from .gate import GateResult, GateSettings
from .gate import compare as gate_compare
from .package import diff as package_diff
from .report import Report, build_report
from .rollout import RolloutEngine, mean_scores, split_mean
from .runtime import Runtime
from .sequential import EARLY_SPEND, FREEZE, SequentialResult, SequentialSettings, SequentialTest
from .types import Rollout, Task


def per_task(base: dict[str, list[Rollout]], best: dict[str, list[Rollout]]) -> list[dict]:
    rows = []
    for tid in base:
        b = sum(r.score.score for r in base[tid]) / len(base[tid])
        c = sum(r.score.score for r in best[tid]) / len(best[tid])
        fb = best[tid][0].score.feedback() if best[tid] else ""
        rows.append({"id": tid, "baseline": round(b, 4), "best": round(c, 4), "delta": round(c - b, 4),
                     "feedback": fb[:300]})
    return rows


def gate_decision(rt: Runtime, inc: dict[str, list[Rollout]], cand: dict[str, list[Rollout]],
                  step_seed: int) -> GateResult:
    """The configured gate on two sets of rollouts of the same tasks, seeded per decision."""
    g = rt.cfg.gate
    mode = "paired" if g.mode == "sequential" else g.mode  # a fixed-sample test describes already-drawn rollouts
    settings = GateSettings(mode=mode, samples=g.samples, min_delta=g.min_delta, alpha=g.alpha, test=g.test,
                            resamples=g.resamples, seed=g.seed * 7919 + step_seed)
    return gate_compare(mean_scores(inc), mean_scores(cand), settings)


def gate_candidate(rt: Runtime, current: str, candidate: str, tasks: list[Task], label: str, *,
                   decision_alpha: float, seed: int) -> dict:
    """One val decision for a whole-skill candidate (a new description, a slow-update block) on `tasks`, through
    the configured gate: a sequential test at `decision_alpha`, or the fixed-sample paired / strict gate. Returns
    {"accepted", "reason", "delta", "p_value", "incumbent_mean", "candidate_mean", "rollouts", "per_task":
    [{"task_id", "incumbent", "candidate"}], "gate": the full gate record}."""
    before = rt.ledger.role_calls("target")
    if rt.cfg.gate.mode == "sequential":
        settings = sequential_settings(rt, decision_alpha, seed=seed)
        result, _ = run_sequential(rt, current, candidate, settings, label, tasks=tasks)
        gate = result.to_dict()
        per = [{"task_id": t["task_id"], "incumbent": t["incumbent"], "candidate": t["candidate"]}
               for t in result.per_task]
        accepted, reason, delta, spent = result.accepted, result.reason, result.delta, result.alpha_spent
        p: float | None = result.p_value
        inc_mean, cand_mean = result.incumbent_mean, result.candidate_mean
    else:
        samples = rt.cfg.gate.samples
        inc = rt.engine.run(current, tasks, samples, label=f"{label}:incumbent")
        cand = rt.engine.run(candidate, tasks, samples, label=f"{label}:candidate")
        g = gate_decision(rt, inc, cand, seed)
        gate = g.to_dict()
        per = [{"task_id": t.task_id, "incumbent": t.incumbent, "candidate": t.candidate} for t in g.per_task]
        accepted, reason, delta, p = g.accepted, g.reason, g.delta, g.p_value
        inc_mean, cand_mean, spent = g.incumbent_mean, g.candidate_mean, 0.0
    return {"accepted": accepted, "reason": reason, "delta": round(delta, 4), "p_value": p,
            "incumbent_mean": inc_mean, "candidate_mean": cand_mean, "mode": rt.cfg.gate.mode, "alpha_spent": spent,
            "rollouts": rt.ledger.role_calls("target") - before, "per_task": per, "gate": gate}


def score_splits(rt: Runtime, base_skill: str, best_skill: str, splits: list[str],
                 label: str) -> tuple[dict, dict, dict]:
    """Scores, per-task rows and gate results of `best_skill` against `base_skill` on each split."""
    scores, tasks, gates = {}, {}, {}
    for split in splits:
        if not rt.splits.get(split):
            continue
        samples = rt.cfg.gate.samples
        if best_skill == base_skill:
            base = best = rt.rollouts(base_skill, split, samples, f"{label}:{split}:baseline")
        else:
            base, best = rt.rollouts_of([base_skill, best_skill], split, samples,
                                        [f"{label}:{split}:baseline", f"{label}:{split}:best"])
        scores[split] = {"baseline": round(split_mean(base), 4), "best": round(split_mean(best), 4),
                         "n": len(rt.splits[split]), "samples": samples}
        tasks[split] = per_task(base, best)
        gates[split] = gate_decision(rt, base, best, 10_000 + len(split)).to_dict()
    return scores, tasks, gates


def evaluate(rt: Runtime, skill_text: str, splits: list[str]) -> Report:
    """Score one skill on `splits`."""
    scores, tasks = {}, {}
    for split in splits:
        if not rt.splits.get(split):
            continue
        rs = rt.rollouts(skill_text, split, rt.cfg.gate.samples, f"eval:{split}")
        scores[split] = {"baseline": round(split_mean(rs), 4), "best": round(split_mean(rs), 4),
                         "n": len(rs), "samples": rt.cfg.gate.samples}
        tasks[split] = per_task(rs, rs)
        rt.log(f"{split}: {split_mean(rs):.3f} over {len(rs)} task(s) ({rt.spend_line()})")
    return build_report(rt, kind="eval", status="completed", stop_reason=None, baseline=skill_text, best=skill_text,
                        scores=scores, tasks=tasks, gates={}, steps=[], diff="", changed_lines=0)


def compare(rt: Runtime, base_text: str, candidate_text: str, splits: list[str]) -> Report:
    """Score `candidate_text` against `base_text`; the val gate decides (e.g. a human edit in a PR). In
    sequential mode the val decision is one sequential test at `gate.alpha`; other splits are scored for the
    record."""
    if rt.cfg.gate.mode == "sequential" and "val" in splits and rt.splits.get("val"):
        feedback: dict[tuple[str, str], str] = {}
        result, spent = run_sequential(rt, base_text, candidate_text,
                                       sequential_settings(rt, rt.cfg.gate.alpha, seed=0), "compare:val",
                                       feedback=feedback)
        scores, tasks, gates = score_splits(rt, base_text, candidate_text, [s for s in splits if s != "val"],
                                            "compare")
        scores = {"val": sequential_scores(result), **scores}
        tasks = {"val": sequential_rows(result, kept=True, feedback=feedback), **tasks}
        gates = {"val": {**result.to_dict(), "rollouts": spent}, **gates}
    else:
        scores, tasks, gates = score_splits(rt, base_text, candidate_text, splits, "compare")
    for split, s in scores.items():
        rt.log(f"{split}: base {s['baseline']:.3f} -> candidate {s['best']:.3f} ({rt.spend_line()})")
    diff, added, removed = package_diff(base_text, candidate_text, rt.cfg.skill)
    return build_report(rt, kind="compare", status="completed", stop_reason=None, baseline=base_text,
                        best=candidate_text, scores=scores, tasks=tasks, gates=gates, steps=[], diff=diff,
                        changed_lines=added + removed)


def sequential_settings(rt: Runtime, alpha: float, seed: int) -> SequentialSettings:
    g = rt.cfg.gate
    schedule = tuple(g.schedule)
    if len(schedule) == 1:
        spend: tuple[float, ...] = (1.0,)
    else:  # a fifth of the alpha shared by the early looks (they stop large gains early), the rest at the last
        spend = (*[EARLY_SPEND / (len(schedule) - 1)] * (len(schedule) - 1), 1.0 - EARLY_SPEND)
    return SequentialSettings(alpha=alpha, schedule=schedule, spend=spend, min_delta=g.min_delta,
                              task_alpha=g.task_alpha, no_regression=g.no_regression, seed=g.seed * 7919 + seed,
                              effect=g.effect, freeze=min(FREEZE, schedule[-1]))


def run_sequential(rt: Runtime, incumbent: str, candidate: str, settings: SequentialSettings, label: str, *,
                   rounds_done: int = 0, offset: int = 0, engine: RolloutEngine | None = None,
                   feedback: dict[tuple[str, str], str] | None = None,
                   tasks: list[Task] | None = None) -> tuple[SequentialResult, int]:
    """Run one sequential val decision to its end; returns the result and the target calls it paid for (cached
    samples are free). `offset` shifts the sample indices (fresh samples for a confirmation); `engine` runs
    another target than the config's (a transfer check); `feedback`, when given, receives the scorers' feedback on
    each side's lowest-numbered sample of every task; `tasks` limits the test to some val tasks (default: all)."""
    test = start_sequential(rt, settings, rounds_done=rounds_done, tasks=tasks)
    spent = advance_sequential(rt, test, incumbent, candidate, label, offset=offset, engine=engine,
                               feedback=feedback)
    assert test.result is not None
    return test.result, spent


def start_sequential(rt: Runtime, settings: SequentialSettings, *, rounds_done: int = 0,
                     tasks: list[Task] | None = None) -> SequentialTest:
    """A sequential val decision over `tasks` (default: all val tasks), before any sample."""
    return SequentialTest([t.id for t in (rt.splits["val"] if tasks is None else tasks)], settings,
                          rounds_done=rounds_done)


def advance_sequential(rt: Runtime, test: SequentialTest, incumbent: str, candidate: str, label: str, *,
                       until_round: int | None = None, offset: int = 0, engine: RolloutEngine | None = None,
                       feedback: dict[tuple[str, str], str] | None = None) -> int:
    """Draw samples and take looks until the decision is made, or (with `until_round`) until that many rounds
    were taken; returns the target calls paid for."""
    texts = {"incumbent": incumbent, "candidate": candidate}
    engine = engine or rt.engine
    before = rt.ledger.role_calls("target")
    while test.result is None and (until_round is None or test.r < until_round):
        requests = test.next_requests()
        if requests:
            jobs = [(texts[side], rt.by_id[tid], offset + idx) for side, tid, idx in requests]
            for (side, tid, idx), r in zip(requests, engine.run_samples(jobs, label), strict=True):
                test.add(side, tid, idx, r.score.score)
                if feedback is not None and ((side, tid) not in feedback or idx == 0):
                    feedback[(side, tid)] = r.score.feedback()
        test.look()
    return rt.ledger.role_calls("target") - before


def sequential_scores(result: SequentialResult, kept: bool = True) -> dict:
    """A split's score row from a sequential decision (the means over the samples the test drew)."""
    return {"baseline": round(result.incumbent_mean, 4),
            "best": round(result.candidate_mean if kept else result.incumbent_mean, 4),
            "n": result.n_tasks, "samples": max((t["samples"] for t in result.per_task), default=0)}


def sequential_rows(result: SequentialResult, kept: bool, feedback: dict[tuple[str, str], str] | None = None
                    ) -> list[dict]:
    """Per-task rows of a split from a sequential decision; `feedback` ({(side, task id): scorer feedback},
    filled by `run_sequential`) gives each row the kept side's feedback on its first sample."""
    side = "candidate" if kept else "incumbent"
    fb = feedback or {}
    return [{"id": t["task_id"], "baseline": t["incumbent"], "best": t["candidate"] if kept else t["incumbent"],
             "delta": t["delta"] if kept else 0.0, "feedback": fb.get((side, t["task_id"]), "")[:300]}
            for t in result.per_task]


def regressions(rt: Runtime, best: str, rows: dict[str, list[dict]], offsets: dict[str, int]) -> list[dict]:
    """Tasks that got worse under `best`, with the key lines of its trajectory (the answer and the scorers'
    feedback), read back from the cache (the rollouts were already paid for)."""
    out = []
    for split, task_rows in rows.items():
        worse = [t for t in task_rows if t["delta"] < 0 and t["id"] in rt.by_id]
        if not worse:
            continue
        jobs = [(best, rt.by_id[t["id"]], offsets.get(split, 0)) for t in worse]
        for t, r in zip(worse, rt.engine.run_samples(jobs, f"regressions:{split}"), strict=True):
            text = r.completion.error or r.completion.text or ""
            out.append({"split": split, "id": t["id"], "baseline": t["baseline"], "best": t["best"],
                        "delta": t["delta"], "answer": text[:300], "feedback": r.score.feedback()[:300]})
    return sorted(out, key=lambda x: x["delta"])
