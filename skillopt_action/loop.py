"""The training loop: epochs of train minibatches -> reflect -> bounded edits -> gate, with checkpoints.

State is written to `<out>/state.json` after every step; `resume=True` continues from it. Every rollout and
optimizer call is content-cached, so resuming or re-running never pays for the same call twice.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

from . import package
from .ablation import CONFIRM_OFFSET, run_ablation
from .calls import content_key
from .config import Config
from .epoch_memory import at_epoch_start, extra_decisions
from .errors import BudgetExceeded, ConfigError
from .evaluation import (
    gate_decision,
    regressions,
    run_sequential,
    score_splits,
    sequential_rows,
    sequential_scores,
    sequential_settings,
)
from .evidence import EvidenceMemory
from .gate import max_power_warning
from .reflect import merge, reflect
from .report import Report, build_report
from .rollout import skill_hash, split_mean
from .runtime import Runtime, read_memory, read_state, write_json
from .screen import screen
from .search import planned_decisions, race_share, raced_looks
from .search import step as search_step
from .sequential import confirmation_alpha, power_hint
from .transfer import check_transfer
from .triggering import body_val, check_training, description_step, no_body_step, split_batch, with_description_of
from .types import Edit, Task

STATE_VERSION = 2


def plan(cfg: Config, splits: dict[str, list[Task]], epochs: int) -> tuple[int, int, str | None]:
    """Upper bounds on the calls a run makes (before cache hits), and a warning when budget.max_calls cannot
    cover them, so users learn before paying that their budget buys only part of the run."""
    s, n_val, n_test, n_train = cfg.gate.samples, len(splits["val"]), len(splits["test"]), len(splits["train"])
    steps = epochs * math.ceil(n_train / cfg.loop.batch_size) if n_train else 0
    batch = min(cfg.loop.batch_size, n_train)
    if cfg.gate.mode == "sequential":
        k = cfg.gate.schedule[-1]
        screening = cfg.loop.candidates * batch  # each candidate on at most the whole minibatch
        decisions = min(cfg.gate.decisions, cfg.loop.edit_budget.ops)
        # the race: every other candidate takes one look of its test, at most the last early one (a resumed test);
        # the incumbent's side of that look is among the decisions' samples
        early = cfg.gate.schedule[-2] if len(cfg.gate.schedule) > 1 else 0
        raced = max(0, cfg.loop.candidates - decisions) * n_val * early
        # gate.design factorial: the candidates that apply together share one pair of rollouts per task and
        # sample (the rest, a resumed test or a conflicting edit, take the race above)
        shared = 2 * n_val * k if cfg.gate.design == "factorial" else 0
        per_step = (batch + screening + decisions * 2 * n_val * k + (n_val * k if decisions > 1 else 0)
                    + raced + shared)
        baseline, final = n_val, 2 * n_val * k + 2 * n_test * s
    else:
        per_step = batch + n_val * s
        baseline, final = n_val * s, 2 * n_test * s
    decision = 2 * n_val * (cfg.gate.schedule[-1] if cfg.gate.mode == "sequential" else s)
    extra_target = (steps * (batch + decision) if cfg.loop.description.train else 0) + (
        (epochs - 1) * (2 * cfg.loop.slow_update.samples + decision) if cfg.loop.slow_update.enabled else 0)
    extra_optimizer = (steps if cfg.loop.description.train else 0) + (epochs - 1) * (
        int(cfg.loop.slow_update.enabled) + int(cfg.loop.meta_memo))
    target = baseline + steps * per_step + final + extra_target
    optimizer = (
        steps
        * math.ceil(min(cfg.loop.batch_size, n_train) / cfg.loop.minibatch_size + 1)
        + extra_optimizer
    ) * (1 + cfg.loop.parse_retries)
    warning = None
    if cfg.max_calls is not None and cfg.max_calls < target + optimizer:
        affordable = max(0, (cfg.max_calls - baseline) // max(1, per_step + 2))
        warning = (f"budget.max_calls = {cfg.max_calls} is below the run's worst case (~{target + optimizer} calls): "
                   f"it covers the baseline and about {min(affordable, steps)} of {steps} step(s) before cache hits")
    return target, optimizer, warning


def warm_samples(cfg: Config) -> dict[str, list[int]]:
    """The sample indices of each split that an optimize run asks of its starting skill: what a warm-up
    (`skillopt eval --warm`, shard.run_warm) draws so that they are cache hits when the run starts.

    - val: the baseline (sample 0 with the sequential gate, `gate.samples` otherwise) and the incumbent's side of
      every decision against the unchanged skill. A sequential decision tops a task up to `schedule[-1]` samples
      only while the pooled outcomes of both skills vary, which depends on a candidate no warm-up can know, so
      every val task gets every round (a superset); `gate.samples` for the final scoring when nothing passes.
    - val from CONFIRM_OFFSET: the final confirmation's fresh samples (sequential gate with `gate.confirm`) and
      the ablation's, whose variant without the only kept edit is the starting skill (`loop.ablation` on).
    - train: sample 0, the step's train rollouts until an edit is accepted (step 1's minibatch for certain), and
      with the sequential gate sample 1, the incumbent's fresh samples an edit's screening compares with.
    - test: `gate.samples`, the final scoring of the starting skill.
    """
    g = cfg.gate
    sequential = g.mode == "sequential"
    rounds = g.schedule[-1] if sequential else g.samples
    val = list(range(max(rounds, g.samples)))
    if (sequential and g.confirm) or cfg.loop.ablation != "off":
        val += [CONFIRM_OFFSET + i for i in range(g.schedule[-1])]
    return {"train": [0, 1] if sequential else [0], "val": val, "test": list(range(g.samples))}


def optimize(rt: Runtime, *, skill_text: str | None = None, epochs: int | None = None, resume: bool = False,
             memory: Path | None = None) -> tuple[Report, str, str]:
    """Train the skill; returns (report, baseline skill text, best skill text). Writes only the run's
    checkpoint (state.json), trajectories.jsonl and, when given, the rejected-edit memory."""
    cfg, log = rt.cfg, rt.log
    baseline = skill_text if skill_text is not None else package.read(cfg.skill_path)
    epochs = epochs or cfg.loop.epochs
    state_path = rt.out / "state.json"
    if not rt.splits["train"] or not rt.splits["val"]:
        raise ConfigError(f"optimize needs train and val tasks; have train={len(rt.splits['train'])}, "
                          f"val={len(rt.splits['val'])}", str(cfg.path), cfg.line_of("splits") or cfg.line_of("tasks"),
                          "add tasks, or adjust `splits:` ratios / per-task `split:`")
    sequential = cfg.gate.mode == "sequential"
    if sequential:
        warn = power_hint(len(rt.splits["val"]))
    elif cfg.gate.mode == "paired":
        warn = max_power_warning(len(rt.splits["val"]), cfg.gate.alpha, cfg.gate.resamples)
    else:
        warn = None
    if warn:
        log(f"warning: {warn}")
    # budget, concurrency and retries may change between a stopped run and its --resume
    run_settings = {k: v for k, v in cfg.raw.items() if k not in ("budget", "concurrency", "retries")}
    run_key = content_key("run", run_settings, baseline, epochs)[:16]
    state = None
    if resume:
        state = read_state(state_path)
        if state.get("run_key") != run_key:
            raise ConfigError(
                "cannot resume: the config, the skill or --epochs changed since that run",
                str(state_path),
                None,
                "run without --resume to start over (cached rollouts are still reused)",
            )
        rt.restore_spend(state)
        log(f"resuming at step {state['next_step'] + 1} ({rt.spend_line()} so far)")
    if state is None:
        evidence = EvidenceMemory.from_list(read_memory(memory, log) if memory and memory.is_file() else [])
        if evidence.records:
            log(f"loaded {len(evidence.records)} earlier gate decisions from {memory}")
        state = {"version": STATE_VERSION, "run_key": run_key, "baseline": baseline, "current": baseline,
                 "next_step": 0, "steps": [], "memory": evidence.to_list(), "status": "running"}
    else:  # a checkpoint of version 1 kept only the rejected edits (a blacklist)
        evidence = EvidenceMemory.from_list(state.get("memory", state.get("rejected", [])))
    n_train = len(rt.splits["train"])
    steps_per_epoch = math.ceil(n_train / cfg.loop.batch_size)
    total_steps = epochs * steps_per_epoch
    log(f"tasks: train {n_train}, val {len(rt.splits['val'])}, test {len(rt.splits['test'])}; "
        f"{epochs} epoch(s) x {steps_per_epoch} step(s); gate {cfg.gate.mode}, {cfg.gate.samples} sample(s)/task")
    n_target, n_opt, budget_warning = plan(cfg, rt.splits, epochs)
    log(f"plan: at most {n_target} target rollouts and {n_opt} optimizer calls (cache hits are free)")
    if budget_warning:
        log(f"warning: {budget_warning}")

    def checkpoint():
        state["spend"] = rt.ledger.to_dict()
        state["memory"] = evidence.to_list()
        write_json(state_path, state)

    n_decisions = planned_decisions(rt, total_steps) + extra_decisions(rt, epochs, total_steps)
    n_raced = raced_looks(rt, total_steps) if sequential else 0
    units = n_decisions + n_raced * race_share(rt)  # a raced-out test spends one early look's share of its alpha
    decision_alpha = cfg.gate.alpha / units if cfg.gate.control == "decisions" else cfg.gate.alpha
    confirm_alpha = (confirmation_alpha(cfg.gate.alpha, units, decision_alpha)
                     if cfg.gate.control == "final" else cfg.gate.alpha)
    if cfg.loop.description.train:
        check_training(rt, baseline)
    if sequential:
        raced = f" and {n_raced} first look(s) the race can stop" if n_raced else ""
        where = (f"split over at most {n_decisions} decision(s){raced} ({decision_alpha:.2g} each)"
                 if cfg.gate.control == "decisions" else
                 f"at each of at most {n_decisions} decision(s){raced}, and the final skill must pass a test at "
                 f"{confirm_alpha:.2g} against the starting skill on fresh samples (alpha over the chance that any "
                 "decision accepts a do-nothing edit)")
        log(f"gate sequential: run alpha {cfg.gate.alpha:g} {where}, rounds of {list(cfg.gate.schedule)} sample(s) "
            "per task")
    if not resume:
        checkpoint()  # from the first call on, a killed run can be resumed

    try:
        base_val = rt.rollouts(baseline, "val", 1 if sequential else cfg.gate.samples, "baseline:val")
    except BudgetExceeded as exc:
        raise BudgetExceeded(f"{exc} before the baseline was measured: nothing was optimised. "
                             f"Raise `budget:` or reduce tasks/samples.") from None
    log(f"baseline val {split_mean(base_val):.3f} ({rt.spend_line()})")
    stop_reason = None
    try:
        for step in range(state["next_step"], total_steps):
            epoch, in_epoch = divmod(step, steps_per_epoch)
            order = sorted(rt.splits["train"], key=lambda t: t.id)
            random.Random(cfg.split_seed + epoch * 1000).shuffle(order)
            batch = order[in_epoch * cfg.loop.batch_size:(in_epoch + 1) * cfg.loop.batch_size]
            at_start = at_epoch_start(rt, state, epoch, steps_per_epoch, evidence,
                                      decision_alpha=decision_alpha) if in_epoch == 0 else {}
            current, memo = state["current"], state.get("meta_memo", "")
            body, _ = split_batch(batch)  # trigger tasks train the description, not the body
            if not body:
                record = no_body_step(step, epoch, batch)
            elif sequential:
                record = search_step(rt, step, epoch, body, current, evidence, total_steps, decision_alpha, memo)
            else:
                record = _step(rt, step, epoch, body, current, evidence, total_steps, memo)
            if record["accepted"]:
                state["current"] = record.pop("candidate")
                if sequential:
                    record["diff"], added, removed = package.diff(current, state["current"], cfg.skill)
                    record["changed_lines"] = added + removed
            else:
                record.pop("candidate", None)
            record.update(at_start)
            if cfg.loop.description.train:
                desc = description_step(rt, step + 1, batch, state["current"], evidence,
                                        decision_alpha=decision_alpha, memo=memo)
                if desc is not None:
                    state["current"] = desc.pop("candidate", state["current"])
                    record["description"] = desc
                    log(desc["summary"])
            state["steps"].append(record)
            state["next_step"] = step + 1
            checkpoint()
            g = record.get("gate") or {}
            verdict = "accepted" if record["accepted"] else ("rejected" if g else "no change")
            detail = f" val {g['incumbent_mean']:.3f} -> {g['candidate_mean']:.3f}" + (
                f" p={g['p_value']:.3f}" if g.get("p_value") is not None else "") if g else ""
            log(f"epoch {epoch + 1}/{epochs} step {step + 1}/{total_steps}: {record['summary']};{detail} {verdict} "
                f"({rt.spend_line()})")
    except BudgetExceeded as exc:
        stop_reason = str(exc)
        log(f"stopping early: {exc}; keeping the best skill so far")
    state["status"] = "stopped_budget" if stop_reason else "completed"
    checkpoint()
    best = state["current"]
    confirmation = ablation = transfer = None
    worse: list[dict] = []
    try:
        if sequential and cfg.gate.confirm and best != baseline:
            confirmation, best, scores, tasks, gates = _confirm(rt, baseline, best, confirm_alpha)
        if best != baseline and cfg.loop.ablation != "off" and kept_edits(state["steps"]):
            ablation = run_ablation(rt, with_description_of(baseline, best), kept_edits(state["steps"]),
                                    prune=cfg.loop.ablation == "prune")
            if ablation["skill"] != best:
                best = ablation["skill"]
                confirmation = None  # re-scored below for the pruned skill (its samples are cached)
                if sequential and cfg.gate.confirm:
                    confirmation, best, scores, tasks, gates = _confirm(rt, baseline, best, confirm_alpha)
        if not (sequential and cfg.gate.confirm and confirmation is not None):
            scores, tasks, gates = score_splits(rt, baseline, best, ["val", "test"], "final")
        transfer = check_transfer(rt, baseline, best) if best != baseline and cfg.transfer else None
        worse = regressions(rt, best, tasks, {"val": CONFIRM_OFFSET if confirmation else 0}) if best != baseline else []
    except BudgetExceeded as exc:
        stop_reason = stop_reason or str(exc)
        scores = {"val": {"baseline": round(split_mean(base_val), 4), "best": None, "n": len(base_val)}}
        tasks, gates = {}, {}
        log(f"final scoring skipped: {exc}")
    if memory:
        evidence.save(memory)
    diff, added, removed = package.diff(baseline, best, cfg.skill)
    state["status"] = "stopped_budget" if stop_reason else "completed"
    checkpoint()
    report = build_report(rt, kind="optimize", status=state["status"], stop_reason=stop_reason,
                          baseline=baseline, best=best, scores=scores, tasks=tasks, gates=gates,
                          steps=state["steps"], diff=diff, changed_lines=added + removed,
                          epochs=epochs, total_steps=total_steps,
                          search=_search_summary(state["steps"], cfg.gate.alpha, decision_alpha, confirmation,
                                                 cfg.gate.control, confirm_alpha, n_decisions, n_raced)
                          if sequential else None, ablation=ablation, transfer=transfer, regressions=worse)
    return report, baseline, best


def kept_edits(steps: list[dict]) -> list[Edit]:
    """The body edits in the final skill (slow-update blocks included), in the order they were applied."""
    edits: list[Edit] = []
    for s in steps:
        if (s.get("slow_update") or {}).get("accepted"):
            edits.append(Edit.from_dict(s["slow_update"]["edit"]))
        if not s.get("accepted"):
            continue
        if "candidates" in s:
            edits += [Edit.from_dict(c["edit"]) for c in s["candidates"] if c.get("kept")]
        else:
            edits += [Edit.from_dict(e["edit"]) for e in s.get("edits", []) if e["applied"]]
    return edits


def _confirm(rt: Runtime, baseline: str, best: str, alpha: float) -> tuple[dict, str, dict, dict, dict]:
    """Re-confirm the final skill against the start on fresh samples. The improvement must hold in direction
    (a mean gain > 0 on samples no decision has seen) or, with `gate.control: final`, pass the sequential test at
    `alpha` (sequential.confirmation_alpha: the run's alpha over the chance that any decision accepted a
    do-nothing edit); if it does not, the run proposes nothing."""
    # no early futility stop: a single test per run, and a real gain dropped at an early look would cost the run
    settings = replace(sequential_settings(rt, alpha, seed=424242), futility=False)
    feedback: dict[tuple[str, str], str] = {}
    result, spent = run_sequential(rt, baseline, best, settings, "final:val:confirm", offset=CONFIRM_OFFSET,
                                   feedback=feedback)
    # control "decisions": the decisions spent the run's alpha, so the gain must only hold in direction; control
    # "final": this test at alpha is what bounds the chance that the run ships a change that does nothing
    confirmed = (result.accepted if rt.cfg.gate.control == "final"
                 else result.delta > 0 and result.verdict != "harmful")
    info = {**result.to_dict(), "rollouts": spent, "confirmed": confirmed}
    rt.log(f"confirmation on fresh val samples: {result.reason} -> {'confirmed' if confirmed else 'NOT confirmed'}")
    kept = best if confirmed else baseline
    info["reason"] = (f"confirmed on fresh samples: {result.reason}" if confirmed else
                      f"not confirmed on fresh samples, so nothing is proposed: {result.reason}")
    scores, tasks, gates = score_splits(rt, baseline, kept, ["test"], "final")
    return (info, kept, {"val": sequential_scores(result, confirmed), **scores},
            {"val": sequential_rows(result, confirmed, feedback), **tasks}, {"val": info, **gates})


def _search_summary(steps: list[dict], run_alpha: float, decision_alpha: float, confirmation: dict | None,
                    control: str = "decisions", confirm_alpha: float | None = None,
                    planned: int | None = None, raced: int = 0) -> dict:
    decisions = [d for s in steps for d in s.get("decisions", [])]
    screened = sum((s.get("screening") or {}).get("screened_out", 0) for s in steps)
    screen_cost = sum((s.get("screening") or {}).get("rollouts", 0) for s in steps)
    regions = [g for s in steps for k in ("description", "slow_update")
               if (g := (s.get(k) or {}).get("gate"))]  # description and slow-update decisions share the run's alpha
    spent = sum(d["alpha_spent"] for d in decisions) + sum(g.get("alpha_spent") or 0.0 for g in regions)
    return {
        "decisions": len(decisions),
        "accepted": sum(1 for d in decisions if d["verdict"] == "accepted"),
        "verdicts": {v: sum(1 for d in decisions if d["verdict"] == v)
                     for v in sorted({d["verdict"] for d in decisions})},
        "val_rollouts_per_decision": round(sum(d["rollouts"] for d in decisions) / len(decisions), 1)
        if decisions else 0.0,
        "screened_out": screened, "screening_rollouts": screen_cost,
        "run_alpha": run_alpha, "decision_alpha": decision_alpha,
        "confirm_alpha": run_alpha if confirm_alpha is None else round(confirm_alpha, 6),
        "planned_decisions": planned,
        "raced_looks": raced,
        "stopped_by_race": sum(1 for d in decisions if d.get("boundary") == "race"),
        "control": control,
        "false_accept_bound": round(spent if control == "decisions" else run_alpha, 6),
        "confirmation": confirmation,
    }


def _step(rt: Runtime, step: int, epoch: int, batch: list[Task], current: str, evidence: EvidenceMemory,
          total_steps: int, memo: str = "") -> dict:
    """One step of the bundle search (`gate.mode: paired | strict`): all proposals in one candidate, one gate."""
    cfg = rt.cfg
    max_ops, max_lines = cfg.loop.edit_budget.at(step, total_steps)
    train = rt.engine.run(current, batch, 1, label=f"step{step + 1}:train")
    flat = [rs[0] for rs in train.values()]
    passed = sum(r.score.passed for r in flat)
    proposals = reflect(rt.optimizer(), current, rt.by_id, flat, minibatch_size=cfg.loop.minibatch_size,
                        max_edits=max_ops, max_lines=max_lines, rejected=evidence.prompt_rows(),
                        failure_only=cfg.loop.failure_only, parse_retries=cfg.loop.parse_retries,
                        max_chars=cfg.loop.max_trajectory_chars, seed=cfg.split_seed * 100 + step,
                        concurrency=min(cfg.concurrency, 4), memo=memo)
    current_hash = skill_hash(current)
    merged, _ = merge(proposals, set())
    dropped: list[dict] = []
    for e in list(merged):
        why = evidence.block_reason(e, current_hash)
        if why:
            dropped.append({"edit": e.to_dict(), "reason": why})
            merged.remove(e)
    merged, blocked, warnings = screen(merged, rt.splits["val"] + rt.splits["test"],
                                       [r.completion.text for r in flat], skill=current, policy=cfg.edit_policy,
                                       inputs=[(f"the input of train task {t.id!r}", t.prompt_text()) for t in batch])
    dropped += blocked
    applied = package.apply(current, merged, max_ops=max_ops, max_lines=max_lines, name=cfg.skill)
    record = {
        "step": step + 1,
        "epoch": epoch + 1,
        "budget": {"ops": max_ops, "lines": max_lines},
        "train": {
            "tasks": [t.id for t in batch],
            "passed": passed,
            "mean": round(sum(r.score.score for r in flat) / max(1, len(flat)), 4),
        },
        "proposals": [p.to_dict() for p in proposals],
        "dropped": dropped,
        "warnings": warnings,
        "edits": [{"edit": r.edit.to_dict(), "applied": r.applied, "reason": r.reason} for r in applied.results],
        "diff": applied.diff,
        "changed_lines": applied.added_lines + applied.removed_lines,
        "accepted": False,
        "gate": None,
    }
    n_edits = sum(len(p.edits) for p in proposals)
    n_bad = sum(1 for p in proposals if p.error)
    record["summary"] = (f"train {passed}/{len(flat)} passed, {len(proposals)} proposal(s)"
                         f"{f' ({n_bad} unusable)' if n_bad else ''}, {n_edits} edit(s), "
                         f"{len(applied.applied)} applied")
    if not applied.changed:
        return record
    val = body_val(rt) or rt.splits["val"]
    inc, cand = rt.engine.run_phases([(current, val, cfg.gate.samples, f"step{step + 1}:val:incumbent"),
                                      (applied.after, val, cfg.gate.samples, f"step{step + 1}:val:candidate")],
                                     transcripts=False)
    result = gate_decision(rt, inc, cand, step)
    record["gate"] = result.to_dict()
    record["accepted"] = result.accepted
    record["candidate"] = applied.after
    if not result.accepted:
        for e in applied.applied:
            evidence.add(e, current_hash, "bundle", delta=result.delta, p_value=result.p_value, step=step + 1,
                         reason=f"its bundle was rejected by the {cfg.gate.mode} gate")
    return record
