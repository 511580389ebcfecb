"""One step of the per-edit search (the default, `gate.mode: sequential`).

1. Run this step's train minibatch under the current skill; the optimizer reflects on failures and successes.
2. Deduplicate the proposals; drop edits the evidence memory rules out against the current skill (estimated
   harmful, closed by a human, or rejected by an older version); screen them for leaked answers and injected
   text (screen.py).
3. Every remaining edit is its own candidate: the current skill plus that one edit. A rider can no longer ship
   with a helpful rule, and a helpful rule is never judged by its bundle.
4. Screening: each candidate is scored on the train tasks that motivated it plus `loop.screen_size` other tasks
   of this step's minibatch, against fresh samples of the incumbent on the same tasks (shared by the step's
   candidates; the train rollouts themselves were picked for their outcome and would bias the comparison).
   Candidates that do worse there beyond noise stop (the incumbent wins more of the tasks whose outcome differs,
   and a sign test puts that at `SCREEN_ALPHA` or below: one task of seven is noise, and dropping on it lost a
   fifth of the real +10-point rules); the rest go on, the largest screening gain first. This costs a few
   rollouts per candidate instead of a val decision.
5. Val decisions. Under `gate.design: factorial` (the default) the screened candidates with no earlier test
   against the current skill, whose edits apply together, take their whole tests on shared pairs of rollouts
   (factorial.py: a coin per edit and pair, an exact paired sign-flip test per edit). The others (a resumed test,
   a conflicting edit), and every candidate under `separate`, are decided in a race: every one takes the next
   look of its sequential test against the current skill (sequential.py; its first look, unless an earlier test
   of the edit against this skill took some); a look can end a test by itself. Of the tests still open, the
   `gate.decisions` best by the gain at that look go on to their end; the others stop there as inconclusive,
   resumable. Stopping early never raises a test's false-accept rate, and the run's alpha counts each raced look
   at its share (`raced_looks`). Incumbent samples are cached and reused.
6. The accepted edits are combined greedily (largest estimated gain first, within the step's edit budget); a
   combination of two or more must itself pass a confirmation test against the current skill, else the single
   best accepted edit is kept.

Every decision leaves a record in the evidence memory and in the step record of the report.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from math import comb
from typing import Any

from . import factorial, package
from .evaluation import advance_sequential, run_sequential, sequential_settings, start_sequential
from .evidence import EvidenceMemory
from .reflect import merge, reflect
from .rollout import skill_hash
from .runtime import Runtime
from .screen import screen
from .sequential import SequentialResult, SequentialTest
from .triggering import body_val
from .types import Edit, Task

SCREEN_ALPHA = 0.25  # screening drops an edit only when it is worse beyond noise: a sign test at this level


def planned_decisions(rt: Runtime, total_steps: int) -> int:
    """The most val decisions a run can take to their end: the run's alpha is split evenly across them
    (Bonferroni)."""
    g, budget = rt.cfg.gate, rt.cfg.loop.edit_budget
    if g.design == "factorial":  # every candidate's test can run to its end
        return total_steps * rt.cfg.loop.candidates or 1
    return sum(min(g.decisions, budget.at(s, total_steps)[0]) for s in range(total_steps)) or 1


def raced_looks(rt: Runtime, total_steps: int) -> int:
    """The most tests a run can stop after one early look because other candidates of their step led (the race):
    each spends at most one early look's share of its alpha."""
    g, budget = rt.cfg.gate, rt.cfg.loop.edit_budget
    if len(g.schedule) < 2 or g.design == "factorial":
        return 0  # a one-look test has no early look; under factorial every test counts as a whole decision
    return sum(max(0, rt.cfg.loop.candidates - min(g.decisions, budget.at(s, total_steps)[0]))
               for s in range(total_steps))


def race_share(rt: Runtime) -> float:
    """The share of a decision's alpha one early look spends (what a test stopped by the race has spent)."""
    return sequential_settings(rt, rt.cfg.gate.alpha, seed=0).spend[0]  # a share: the same at any alpha


def step(rt: Runtime, step_index: int, epoch: int, batch: list[Task], current: str, memory: EvidenceMemory,
         total_steps: int, decision_alpha: float, memo: str = "") -> dict[str, Any]:
    cfg = rt.cfg
    n = step_index + 1
    max_ops, max_lines = cfg.loop.edit_budget.at(step_index, total_steps)
    current_hash = skill_hash(current)
    train = rt.engine.run(current, batch, 1, label=f"step{n}:train")
    flat = [rs[0] for rs in train.values()]
    passed = sum(r.score.passed for r in flat)
    proposals = reflect(rt.optimizer(), current, rt.by_id, flat, minibatch_size=cfg.loop.minibatch_size,
                        max_edits=max_ops, max_lines=max_lines, rejected=memory.prompt_rows(),
                        failure_only=cfg.loop.failure_only, parse_retries=cfg.loop.parse_retries,
                        max_chars=cfg.loop.max_trajectory_chars, seed=cfg.split_seed * 100 + step_index,
                        concurrency=min(cfg.concurrency, 4), memo=memo)
    merged, _ = merge(proposals, set())
    kept: list[Edit] = []
    dropped: list[dict] = []
    for e in merged:
        why = memory.block_reason(e, current_hash, max_rounds=len(cfg.gate.schedule))
        if why:
            dropped.append({"edit": e.to_dict(), "reason": why})
        else:
            kept.append(e)
    kept, blocked, warnings = screen(kept, rt.splits["val"] + rt.splits["test"], [r.completion.text for r in flat],
                                     skill=current, policy=cfg.edit_policy,
                                     inputs=[(f"the input of train task {t.id!r}", t.prompt_text()) for t in batch])
    dropped += blocked

    candidates: list[dict[str, Any]] = []
    seen_texts: set[str] = set()
    for e in kept[: cfg.loop.candidates]:
        applied = package.apply(current, [e], max_ops=1, max_lines=max_lines, name=cfg.skill)
        row: dict[str, Any] = {"edit": e.to_dict(), "applied": applied.changed,
                               "reason": applied.results[0].reason if applied.results else "",
                               "diff": applied.diff, "changed_lines": applied.added_lines + applied.removed_lines,
                               "screen": None, "gate": None, "verdict": None, "kept": False}
        candidates.append(row)
        if not applied.changed:
            row["verdict"] = "not_applied"
            continue
        if applied.after in seen_texts:
            row.update(applied=False, reason="same text as an earlier candidate of this step", verdict="duplicate")
            continue
        seen_texts.add(applied.after)
        row["_text"] = applied.after
        row["screen"] = _screen(rt, n, e, applied.after, current, batch)
        if not row["screen"]["passed"]:
            row["verdict"] = "screened_out"
            memory.add(e, current_hash, "screened_out", delta=row["screen"]["delta"], step=n,
                       reason="worse on its screening tasks beyond noise", rollouts=row["screen"]["rollouts"])

    accepted: list[tuple[dict[str, Any], SequentialResult]] = []
    slots = min(cfg.gate.decisions, max_ops)
    decisions = 0

    def finish(row: dict[str, Any], test: SequentialTest, spent: int, resume: int) -> None:
        result = test.result
        assert result is not None
        edit = Edit.from_dict(row["edit"])
        row["gate"] = {**result.to_dict(), "rollouts": spent, "resumed_from_round": resume}
        row["verdict"] = result.verdict
        memory.add(edit, current_hash, result.verdict, delta=result.delta, p_value=result.p_value,
                   rounds=result.rounds, step=n, reason=result.reason, rollouts=spent)
        if result.accepted:
            accepted.append((row, result))

    # The race: every screened candidate takes the next look of its test (its first, or the one after those an
    # earlier test of the same edit against this skill took). A look can end a test by itself (a clear gain, a
    # harm, or a gain worth finding ruled out); of the others only the step's `slots` best by the gain at that look
    # go on to the end of their tests, the rest stop there as inconclusive (resumable if proposed again). Stopping
    # a test early never raises its false-accept rate, and val says far more than a few screening tasks.
    # The most promising go first: a resumed test whose next look is its last takes a slot without racing.
    ordered = sorted(candidates, key=lambda r: -(r["screen"] or {}).get("delta", 0.0))
    if cfg.gate.design == "factorial":
        decisions += _shared(rt, n, step_index, current, ordered, memory, current_hash, decision_alpha, finish)
    racing: list[tuple[dict[str, Any], SequentialTest, int, int, str]] = []
    for row in ordered:
        if row["verdict"] is not None or row["gate"] is not None:
            continue
        edit = Edit.from_dict(row["edit"])
        resume = memory.rounds_done(edit, current_hash)
        decisions += 1
        settings = sequential_settings(rt, decision_alpha, seed=step_index * 100 + decisions)
        test = start_sequential(rt, settings, rounds_done=resume, tasks=body_val(rt))
        label = f"step{n}:val:edit{decisions}"
        if test.result is None and test.next_look_is_last:
            if slots <= 0:
                row["verdict"] = "not_tested"
                row["reason"] = f"this step's {min(cfg.gate.decisions, max_ops)} val decision(s) were used"
                decisions -= 1
                continue
            slots -= 1
            finish(row, test, advance_sequential(rt, test, current, row["_text"], label), resume)
            continue
        spent = advance_sequential(rt, test, current, row["_text"], label, until_round=resume + 1)
        if test.result is not None:
            finish(row, test, spent, resume)
        else:
            racing.append((row, test, spent, resume, label))
    racing.sort(key=lambda x: -x[1].interim_delta)
    for i, (row, test, spent, resume, label) in enumerate(racing):
        if i < slots:
            spent += advance_sequential(rt, test, current, row["_text"], label)
        else:
            test.pause(f"stopped after round {test.r}: {test.interim_delta:+.3f} mean gain, not among this step's "
                       f"{slots} best candidate(s) at that look (the edit can be proposed again: its test resumes)")
        finish(row, test, spent, resume)

    new_skill, combination = _combine(rt, n, current, accepted, max_ops, max_lines, decision_alpha)
    for row in candidates:
        row.pop("_text", None)
    tested = [r for r in candidates if r["gate"]]
    best_row = max(tested, key=lambda r: r["gate"]["delta"]) if tested else None
    summary_gate = combination or (best_row["gate"] if best_row else None)
    n_edits = sum(len(p.edits) for p in proposals)
    n_bad = sum(1 for p in proposals if p.error)
    screened_out = [r for r in candidates if r["verdict"] == "screened_out"]
    record: dict[str, Any] = {
        "step": n, "epoch": epoch + 1, "search": "per-edit", "budget": {"ops": max_ops, "lines": max_lines},
        "train": {"tasks": [t.id for t in batch], "passed": passed,
                  "mean": round(sum(r.score.score for r in flat) / max(1, len(flat)), 4)},
        "proposals": [p.to_dict() for p in proposals], "dropped": dropped, "warnings": warnings,
        "candidates": candidates, "combination": combination,
        "screening": {"candidates": sum(1 for r in candidates if r["screen"]), "screened_out": len(screened_out),
                      "rollouts": sum(r["screen"]["rollouts"] for r in candidates if r["screen"])},
        "decisions": [{"edit": r["edit"], **{k: r["gate"][k] for k in ("verdict", "boundary", "rounds", "rollouts",
                                                                       "delta", "p_value", "alpha", "alpha_spent")}}
                      for r in tested],
        "accepted": new_skill != current, "gate": summary_gate,
        "diff": "", "changed_lines": 0,
    }
    if new_skill != current:
        record["candidate"] = new_skill
        record["accepted_edits"] = [r["edit"] for r, _ in accepted if r.get("kept")]
    record["summary"] = (f"train {passed}/{len(flat)} passed, {len(proposals)} proposal(s)"
                         f"{f' ({n_bad} unusable)' if n_bad else ''}, {n_edits} edit(s), "
                         f"{len(candidates)} candidate(s), {len(screened_out)} screened out, {decisions} val "
                         f"decision(s), {len(accepted)} accepted")
    return record


def _shared(rt: Runtime, n: int, step_index: int, current: str, rows: list[dict[str, Any]], memory: EvidenceMemory,
            current_hash: str, decision_alpha: float, finish: Callable[..., None]) -> int:
    """`gate.design: factorial`: the screened candidates with no earlier test against this skill, and whose edits
    apply together, take their whole val tests on shared pairs of rollouts (factorial.py). Returns how many
    decisions that took; the others (a resumed test, an edit that conflicts) go to the race."""
    fresh = [r for r in rows if r["verdict"] is None and not memory.rounds_done(Edit.from_dict(r["edit"]),
                                                                                  current_hash)]
    edits = [Edit.from_dict(r["edit"]) for r in fresh]
    group = [fresh[i] for i in factorial.compatible(current, edits, name=rt.cfg.skill)] if len(fresh) > 1 else []
    if len(group) < 2:
        return 0
    tests = []
    for i, row in enumerate(group):
        settings = replace(sequential_settings(rt, decision_alpha, seed=step_index * 100 + i + 1), paired=True)
        tests.append(factorial.SharedTest(f"edit{i + 1}", Edit.from_dict(row["edit"]),
                                          start_sequential(rt, settings, tasks=body_val(rt))))
    factorial.run(rt, current, tests, f"step{n}:val:shared", name=rt.cfg.skill, seed=rt.cfg.gate.seed * 7919 + n)
    for row, t in zip(group, tests, strict=True):
        finish(row, t.test, round(t.spent), 0)
        row["gate"]["design"] = "factorial"
        row["gate"]["shared_with"] = len(group) - 1
    return len(group)


def _screen(rt: Runtime, n: int, edit: Edit, text: str, current: str, batch: list[Task]) -> dict[str, Any]:
    """Score a candidate on the train tasks that motivated its edit plus a few others of this step's batch.

    The incumbent is scored on fresh samples (index 1), not on the train rollouts the optimizer reflected on: those
    were chosen for their outcome (a batch of failures, or of successes), so comparing against them would favour
    edits motivated by failures and screen out edits motivated by successes (regression to the mean). The
    incumbent's screening samples are shared by every candidate of the step (cached)."""
    motivating = [t for t in batch if t.id in set(edit.tasks)]
    others = [t for t in batch if t not in motivating]
    random.Random(f"{n}:{edit.key()}").shuffle(others)
    tasks = motivating + others[: rt.cfg.loop.screen_size]
    if not tasks:
        return {"tasks": [], "incumbent": 0.0, "candidate": 0.0, "delta": 0.0, "passed": True, "rollouts": 0}
    before = rt.ledger.role_calls("target")
    rs = rt.engine.run_samples([(text, t, 0) for t in tasks] + [(current, t, 1) for t in tasks],
                               label=f"step{n}:screen")
    cand = [r.score.score for r in rs[: len(tasks)]]
    inc = [r.score.score for r in rs[len(tasks):]]
    worse = sum(1 for c, i in zip(cand, inc, strict=True) if c < i - 1e-9)
    better = sum(1 for c, i in zip(cand, inc, strict=True) if c > i + 1e-9)
    p_worse = sign_test_p(worse, better)
    return {"tasks": [t.id for t in tasks], "incumbent": round(sum(inc) / len(tasks), 4),
            "candidate": round(sum(cand) / len(tasks), 4), "delta": round((sum(cand) - sum(inc)) / len(tasks), 4),
            "worse": worse, "better": better, "p_worse": round(p_worse, 4),
            "passed": screen_passes(worse, better),
            "rollouts": rt.ledger.role_calls("target") - before}


def screen_passes(worse: int, better: int) -> bool:
    """Whether a candidate that did worse than the incumbent on `worse` screening tasks and better on `better`
    goes on: it stops only when it is worse beyond noise."""
    return not (worse > better and sign_test_p(worse, better) <= SCREEN_ALPHA)


def sign_test_p(worse: int, better: int) -> float:
    """One-sided sign test over the screening tasks whose outcome differs: the chance, if the edit changed nothing,
    that the incumbent wins at least `worse` of them."""
    n = worse + better
    return sum(comb(n, k) for k in range(worse, n + 1)) / 2 ** n if n else 1.0


def _combine(rt: Runtime, n: int, current: str, accepted: list[tuple[dict[str, Any], SequentialResult]],
             max_ops: int, max_lines: int, decision_alpha: float) -> tuple[str, dict[str, Any] | None]:
    """The skill this step keeps, and the combination's confirmation (None when fewer than two were accepted)."""
    if not accepted:
        return current, None
    ranked = sorted(accepted, key=lambda a: -a[1].delta)
    best_row = ranked[0][0]
    if len(ranked) == 1:
        best_row["kept"] = True
        return best_row["_text"], None
    edits = [Edit.from_dict(r["edit"]) for r, _ in ranked]
    combined = package.apply(current, edits, max_ops=max_ops, max_lines=max_lines, name=rt.cfg.skill)
    applied_keys = {e.key() for e in combined.applied}
    if len(applied_keys) < 2:
        best_row["kept"] = True
        return best_row["_text"], {"edits": len(applied_keys), "confirmed": False,
                                   "reason": "the accepted edits do not apply together within the step's budget; "
                                             "kept the best one"}
    settings = sequential_settings(rt, rt.cfg.gate.alpha, seed=n * 100 + 99)
    result, spent = run_sequential(rt, current, combined.after, settings, f"step{n}:val:combined", tasks=body_val(rt))
    confirmed = result.accepted or (result.delta >= ranked[0][1].delta - 1e-9 and result.verdict != "harmful")
    info = {**result.to_dict(), "rollouts": spent, "edits": len(applied_keys), "confirmed": confirmed,
            "reason": result.reason if confirmed else f"the combination did not hold ({result.reason}); kept the "
                                                      "best single edit"}
    if not confirmed:
        best_row["kept"] = True
        return best_row["_text"], info
    for row, _ in ranked:
        if Edit.from_dict(row["edit"]).key() in applied_keys:
            row["kept"] = True
    return combined.after, info
