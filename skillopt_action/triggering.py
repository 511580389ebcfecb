"""Trigger training: one description decision per step (loop.description.train).

1. The step's trigger tasks (queries labelled `expect: load` / `expect: skip`, scorers/trigger.py) are run under
   the current skill in the real harness; "loaded" is read from its transcript.
2. If any query was misjudged, the optimizer proposes a new front-matter description (description.py): at most
   `budget_chars` characters changed and the spec's 1,024-character limit, else it is dropped with the reason.
   It is screened like a body edit (leaked answers, injected text) and checked against the evidence memory.
3. The candidate (the current skill with the new description) goes through the configured gate on the val
   trigger tasks only, and must also keep trigger precision and recall on val from falling: a description that
   wins loads by loading everywhere is rejected.

The body's reflection never sees trigger tasks, and body edits never touch the front matter.
"""

from __future__ import annotations

from typing import Any

from .description import Query, check, propose, read_description, set_description
from .errors import ConfigError
from .evaluation import gate_candidate
from .evidence import EvidenceMemory
from .rollout import skill_hash
from .runtime import Runtime
from .scorers.trigger import is_trigger_task, skill_folder, trigger_expect
from .screen import screen
from .types import Edit, Task

TOL = 1e-9


def split_batch(batch: list[Task]) -> tuple[list[Task], list[Task]]:
    """(body tasks, trigger tasks) of a minibatch."""
    return [t for t in batch if not is_trigger_task(t)], [t for t in batch if is_trigger_task(t)]


def check_training(rt: Runtime, skill: str) -> None:
    """loop.description.train needs a description to train and trigger tasks to train it on."""
    cfg = rt.cfg
    where = (str(cfg.path), cfg.line_of("loop", "description"))
    if read_description(skill) is None:
        raise ConfigError(f"loop.description.train is on, but {cfg.skill} has no front-matter `description:`",
                          *where, "start the skill with `---`, `name: ...`, `description: ...`, `---`")
    for split in ("train", "val"):
        if not any(any(s["type"] == "trigger" for s in t.scorers) for t in rt.splits[split]):
            raise ConfigError(f"loop.description.train is on, but no {split} task has a `trigger` scorer", *where,
                              "add queries with `scorers: [{type: trigger, expect: load}]` (and `expect: skip`) "
                              "to both splits, or turn description training off")


def with_description_of(skill: str, other: str) -> str:
    """`skill` carrying `other`'s description (the ablation rebuilds the body on the final description)."""
    desc = read_description(other)
    return skill if desc is None or desc == read_description(skill) else set_description(skill, desc)


def no_body_step(step: int, epoch: int, batch: list[Task]) -> dict:
    return {"step": step + 1, "epoch": epoch + 1, "train": {"tasks": [t.id for t in batch], "passed": 0, "mean": 0.0},
            "proposals": [], "dropped": [], "warnings": [], "edits": [], "diff": "", "changed_lines": 0,
            "accepted": False, "gate": None, "summary": "only trigger tasks in this step: no body edit"}


def body_val(rt: Runtime) -> list[Task] | None:
    """The val tasks a body decision is made on: val without its trigger tasks (the body is read only after the
    skill loads, so a body edit cannot change what loads it, and each trigger rollout is a full agent run), or None
    (all of val) when val has no trigger task or nothing but trigger tasks."""
    body, trig = split_batch(rt.splits["val"])
    return body if trig and body else None


def rates(per_task: list[dict], by_id: dict[str, Task], side: str) -> dict[str, float | None]:
    """Trigger precision and recall of one side from per-task mean scores (a should-load task's score is how
    often the skill loaded; a should-skip task's, how often it did not)."""
    tp = fn = fp = 0.0
    for row in per_task:
        s, expect = float(row[side]), trigger_expect(by_id[row["task_id"]])
        if expect == "load":
            tp, fn = tp + s, fn + (1 - s)
        elif expect == "skip":
            fp += 1 - s
    recall = tp / (tp + fn) if tp + fn > TOL else None
    precision = tp / (tp + fp) if tp + fp > TOL else None
    return {"precision": None if precision is None else round(precision, 4),
            "recall": None if recall is None else round(recall, 4)}


def _fell(before: float | None, after: float | None) -> bool:
    return before is not None and (after is None or after < before - TOL)


def description_step(rt: Runtime, n: int, batch: list[Task], current: str, memory: EvidenceMemory, *,
                     decision_alpha: float, memo: str = "") -> dict[str, Any] | None:
    """One description decision for step `n` (1-based); None when the batch has no trigger task."""
    cfg = rt.cfg
    _, trig = split_batch(batch)
    if not trig:
        return None
    old = read_description(current) or ""
    runs = rt.engine.run(current, trig, 1, label=f"step{n}:trigger")
    flat = [rs[0] for rs in runs.values()]
    name = next((skill_folder(str(r.completion.extra.get("skill_path") or "")) for r in flat), None) or "skill"
    queries = [Query(r.task_id, rt.by_id[r.task_id].prompt_text(), trigger_expect(rt.by_id[r.task_id]) or "load",
                     (r.score.score >= 0.5) == (trigger_expect(rt.by_id[r.task_id]) == "load"),
                     r.score.feedback()) for r in flat]
    wrong = sum(1 for r in flat if r.score.score < 0.5)
    record: dict[str, Any] = {"before": old, "train": {"tasks": [t.id for t in trig], "wrong": wrong},
                              "proposed": None, "dropped": None, "gate": None, "accepted": False}
    if not wrong:
        record["summary"] = f"description: all {len(trig)} trigger quer{'y' if len(trig) == 1 else 'ies'} judged right"
        return record
    rejected = [r["edit"]["content"] for r in memory.records if r.get("kind") == "description"
                and r.get("verdict") != "accepted"]
    analysis, new, error = propose(rt.optimizer(), name=name, description=old, queries=queries,
                                   budget_chars=cfg.loop.description.budget_chars, rejected=rejected, memo=memo,
                                   parse_retries=cfg.loop.parse_retries, seed=cfg.split_seed * 100 + n + 50_000)
    record.update(analysis=analysis, proposed=new)
    if new is None:
        record.update(dropped=error, summary=f"description: {error}")
        return record
    why = check(old, new, cfg.loop.description.budget_chars)
    edit = Edit(op="replace", anchor=old or "description", content=new, rationale=analysis[:300],
                source="failure", tasks=tuple(t.id for t in trig))
    current_hash = skill_hash(current)
    why = why or memory.block_reason(edit, current_hash)
    if why is None:
        _, blocked, warnings = screen([edit], rt.splits["val"] + rt.splits["test"],
                                      [r.completion.text for r in flat], skill=current, policy=cfg.edit_policy,
                                      inputs=[(f"the input of train task {t.id!r}", t.prompt_text()) for t in trig])
        record["warnings"] = warnings
        why = blocked[0]["reason"] if blocked else None
    if why is not None:
        record.update(dropped=why, summary=f"description edit dropped: {why}")
        return record
    candidate = set_description(current, new)
    val = [t for t in rt.splits["val"] if is_trigger_task(t)]
    if not val:
        record.update(dropped="there are no trigger tasks in the val split to gate it on",
                      summary="description edit not tested: no val trigger tasks")
        return record
    g = gate_candidate(rt, current, candidate, val, f"step{n}:val:description", decision_alpha=decision_alpha,
                       seed=n * 100 + 77)
    inc, cand = rates(g["per_task"], rt.by_id, "incumbent"), rates(g["per_task"], rt.by_id, "candidate")
    fell = [k for k in ("precision", "recall") if _fell(inc[k], cand[k])]
    accepted = g["accepted"] and not fell
    reason = g["reason"] if not (g["accepted"] and fell) else (
        "rejected: trigger " + " and ".join(f"{k} fell {inc[k]} -> {cand[k]}" for k in fell) + f" ({g['reason']})")
    record.update(gate={**{k: v for k, v in g.items() if k not in ("gate", "per_task")}, "reason": reason,
                        "incumbent": inc, "candidate": cand},
                  accepted=accepted, after=new)
    row = memory.add(edit, current_hash, "accepted" if accepted else ("harmful" if g["delta"] < -TOL else "not_better"),
                     delta=g["delta"], p_value=g["p_value"], step=n, reason=reason, rollouts=g["rollouts"])
    row["kind"] = "description"
    if accepted:
        record["candidate"] = candidate
    record["summary"] = (f"description edit {'accepted' if accepted else 'rejected'}: val trigger "
                         f"{g['incumbent_mean']:.3f} -> {g['candidate_mean']:.3f}, precision {inc['precision']} -> "
                         f"{cand['precision']}, recall {inc['recall']} -> {cand['recall']}")
    return record
