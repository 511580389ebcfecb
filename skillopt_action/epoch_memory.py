"""Epoch-level memory: the slow update (gated) and the meta memo (optimizer-only). Both off by default.

At the first step of every epoch after the first:

- `loop.meta_memo`: the optimizer reads the gate decisions of the epoch that ended (each edit, its verdict and
  score change) and its previous memo, and writes a short memo on which kinds of edits were accepted or
  rejected. The memo is shown to later reflection prompts (templates/reflect_batch.md.j2, the description
  prompt) and kept in the checkpoint and the step record; it is never written into the skill.

- `loop.slow_update`: `samples` train tasks are run under the skill the previous epoch started with and under the
  current skill (same sample index, so most rollouts are cached). Each task is improved, regressed, still
  failing or stable. The optimizer sees the two skills' difference, the categorised trajectories and the
  current guidance block, and writes a new guidance block (at most `lines` lines) for the section
  `## Guidance from earlier epochs`. Unlike SkillOpt, where this block is written into the skill without
  validation by default, here it is only a candidate: it is screened like any edit and goes through the
  configured gate on val against the current skill. A block that does not help is rejected.
"""

from __future__ import annotations

import random
import re
from typing import Any

from .ask import ask_json
from .diff import diff_stats
from .edits import apply_edits
from .evaluation import gate_candidate
from .evidence import EvidenceMemory
from .markdown import headings, split_lines
from .reflect import trajectory_view
from .render import render
from .rollout import skill_hash
from .runtime import Runtime
from .scorers.trigger import is_trigger_task
from .screen import screen
from .types import Edit, Rollout

GUIDANCE_HEADING = "## Guidance from earlier epochs"
MEMO_MAX_CHARS = 1200
CATEGORIES = ("improved", "regressed", "still_failing", "stable")


def guidance_block(skill: str) -> str:
    """The text under the guidance heading (up to the next heading), stripped; "" when there is none."""
    lines = split_lines(skill)
    found = headings(lines, 0)
    for i, h in enumerate(found):
        if h.text.casefold() == GUIDANCE_HEADING.lstrip("# ").casefold():
            end = found[i + 1].first if i + 1 < len(found) else len(lines)
            return "\n".join(lines[h.last + 1:end]).strip()
    return ""


def category(before: Rollout, after: Rollout) -> str:
    b, a = before.score.passed, after.score.passed
    return "stable" if b and a else "improved" if a else "regressed" if b else "still_failing"


# --------------------------------------------------------------------------- meta memo


def meta_memo(rt: Runtime, epoch: int, memory: EvidenceMemory, steps: range, previous: str) -> dict[str, Any]:
    """Write the memo after epoch `epoch` (1-based) from the decisions of its `steps` (1-based step numbers)."""
    rows = [r for r in memory.records if r.get("step") in steps and "edit" in r]
    record: dict[str, Any] = {"epoch": epoch, "decisions": len(rows), "memo": previous, "error": None}
    if not rows:
        record["summary"] = f"meta memo: no gate decisions in epoch {epoch}, memo unchanged"
        return record
    shown = [{"kind": r.get("kind", "body"), "op": r["edit"]["op"], "anchor": r["edit"].get("anchor") or "",
              "content": r["edit"].get("content", "")[:240], "verdict": r.get("verdict"),
              "delta": r.get("delta")} for r in rows[-24:]]

    def parse(data: dict) -> str:
        memo = data.get("memo")
        if not isinstance(memo, str) or not memo.strip():
            raise ValueError('the answer must be a JSON object with a non-empty "memo" text')
        return memo.strip()[:MEMO_MAX_CHARS]

    schema = {"type": "object", "required": ["memo"], "properties": {"memo": {"type": "string",
                                                                               "maxLength": MEMO_MAX_CHARS}}}
    memo, error = ask_json(rt.optimizer(), render("meta_memo_system.md.j2", max_chars=MEMO_MAX_CHARS),
                           render("meta_memo.md.j2", epoch=epoch, rows=shown, previous=previous), schema, parse,
                           parse_retries=rt.cfg.loop.parse_retries, seed=rt.cfg.split_seed * 100 + 70_000 + epoch,
                           shape='{"memo": "..."}')
    if memo is None:
        record.update(error=error, summary=f"meta memo: {error}; the previous memo is kept")
        return record
    record.update(memo=memo, summary=f"meta memo written from {len(rows)} decision(s) of epoch {epoch}")
    return record


# --------------------------------------------------------------------------- slow update


def slow_update(rt: Runtime, epoch: int, previous: str, current: str, memory: EvidenceMemory, *,
                decision_alpha: float) -> dict[str, Any]:
    """The slow update at the start of epoch `epoch` (1-based, >= 2). The record has "candidate" (the new
    skill) when the gate accepted the guidance block."""
    cfg, su = rt.cfg, rt.cfg.loop.slow_update
    pool = sorted((t for t in rt.splits["train"] if not is_trigger_task(t)), key=lambda t: t.id)
    random.Random(f"slow-update:{cfg.split_seed}:{epoch}").shuffle(pool)
    tasks = pool[:su.samples]
    record: dict[str, Any] = {"epoch": epoch, "tasks": [t.id for t in tasks], "categories": {},
                              "guidance": None, "edit": None, "gate": None, "accepted": False, "dropped": None}
    if not tasks:
        record["summary"] = "slow update: no train tasks to compare on"
        return record
    before = rt.engine.run(previous, tasks, 1, label=f"epoch{epoch}:slow_update:previous")
    after = rt.engine.run(current, tasks, 1, label=f"epoch{epoch}:slow_update:current")
    groups: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for t in tasks:
        groups[category(before[t.id][0], after[t.id][0])].append(t.id)
    record["categories"] = groups
    limit = max(400, cfg.loop.max_trajectory_chars // 2)
    shown = [{"category": c, "previous": trajectory_view(rt.by_id[tid], before[tid][0], limit),
              "current": trajectory_view(rt.by_id[tid], after[tid][0], limit)}
             for c in ("regressed", "still_failing", "improved") for tid in groups[c]]
    old_block = guidance_block(current)
    diff, _, _ = diff_stats(previous, current, cfg.skill)

    def parse(data: dict) -> str:
        text = data.get("guidance")
        if not isinstance(text, str) or not text.strip():
            raise ValueError('the answer must be a JSON object with a non-empty "guidance" text')
        lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
        if len(lines) > su.lines:
            raise ValueError(f"the guidance block has {len(lines)} lines; at most {su.lines} are allowed")
        if any(re.match(r"^\s{0,3}#", ln) for ln in lines):
            raise ValueError("the guidance block may not contain headings")
        return "\n".join(lines)

    schema = {"type": "object", "required": ["analysis", "guidance"],
              "properties": {"analysis": {"type": "string", "maxLength": 600},
                             "guidance": {"type": "string", "maxLength": 200 * su.lines}}}
    guidance, error = ask_json(
        rt.optimizer(), render("slow_update_system.md.j2", lines=su.lines, heading=GUIDANCE_HEADING),
        render("slow_update.md.j2", skill=current, diff=diff, old_block=old_block, tasks=shown,
               counts={c: len(v) for c, v in groups.items()}),
        schema, parse, parse_retries=cfg.loop.parse_retries, seed=cfg.split_seed * 100 + 60_000 + epoch,
        shape='{"analysis": "...", "guidance": "- ...\\n- ..."}')
    counts = ", ".join(f"{len(v)} {c.replace('_', ' ')}" for c, v in groups.items())
    if guidance is None:
        record.update(dropped=error, summary=f"slow update ({counts}): {error}")
        return record
    edit = (Edit(op="replace", anchor=old_block, content=guidance, source="failure") if old_block
            else Edit(op="add", anchor=GUIDANCE_HEADING, content=guidance, source="failure"))
    edit.rationale = f"slow update after epoch {epoch - 1}: {counts}"
    record.update(guidance=guidance, edit=edit.to_dict())
    applied = apply_edits(current, [edit], max_ops=1, max_lines=2 * su.lines + 4, name=cfg.skill)
    current_hash = skill_hash(current)
    why = None if applied.changed else (applied.results[0].reason if applied.results else "it changes nothing")
    why = why or memory.block_reason(edit, current_hash)
    if why is None:
        _, blocked, warnings = screen([edit], rt.splits["val"] + rt.splits["test"],
                                      [r[0].completion.text for r in after.values()], skill=current,
                                      policy=cfg.edit_policy)
        record["warnings"] = warnings
        why = blocked[0]["reason"] if blocked else None
    if why is not None:
        record.update(dropped=why, summary=f"slow update ({counts}): block dropped, {why}")
        return record
    g = gate_candidate(rt, current, applied.after, rt.splits["val"], f"epoch{epoch}:val:slow_update",
                       decision_alpha=decision_alpha, seed=epoch * 1000 + 55)
    record.update(gate={k: v for k, v in g.items() if k not in ("gate", "per_task")}, accepted=g["accepted"],
                  diff=applied.diff)
    verdict = "accepted" if g["accepted"] else ("harmful" if g["delta"] < -1e-9 else "not_better")
    row = memory.add(edit, current_hash, verdict, delta=g["delta"], p_value=g["p_value"], reason=g["reason"],
                     rollouts=g["rollouts"])
    row["kind"] = "slow_update"
    if g["accepted"]:
        record["candidate"] = applied.after
    record["summary"] = (f"slow update ({counts}): guidance block {'accepted' if g['accepted'] else 'rejected'}, "
                         f"val {g['incumbent_mean']:.3f} -> {g['candidate_mean']:.3f}")
    return record


# --------------------------------------------------------------------------- the loop's hook


def at_epoch_start(rt: Runtime, state: dict[str, Any], epoch: int, steps_per_epoch: int, memory: EvidenceMemory,
                   *, decision_alpha: float) -> dict[str, Any]:
    """Run the enabled epoch-level mechanisms at the start of 0-based `epoch`; updates `state` ("current",
    "meta_memo", "epoch_starts") and returns what to attach to the step record ({} when nothing ran)."""
    cfg = rt.cfg.loop
    starts = state.setdefault("epoch_starts", {})
    out: dict[str, Any] = {}
    if epoch >= 1 and cfg.meta_memo:
        done = range((epoch - 1) * steps_per_epoch + 1, epoch * steps_per_epoch + 1)
        out["meta_memo"] = meta_memo(rt, epoch, memory, done, state.get("meta_memo", ""))
        state["meta_memo"] = out["meta_memo"]["memo"]
        rt.log(out["meta_memo"]["summary"])
    if epoch >= 1 and cfg.slow_update.enabled and str(epoch - 1) in starts:
        rec = slow_update(rt, epoch + 1, starts[str(epoch - 1)], state["current"], memory,
                          decision_alpha=decision_alpha)
        if rec.get("candidate"):
            state["current"] = rec.pop("candidate")
        out["slow_update"] = rec
        rt.log(rec["summary"])
    starts.setdefault(str(epoch), state["current"])
    return out


def extra_decisions(rt: Runtime, epochs: int, total_steps: int) -> int:
    """Val decisions beyond the body's: one per step for the description, one per later epoch for the slow
    update (the run's alpha is split across all of them)."""
    cfg = rt.cfg.loop
    return (total_steps if cfg.description.train else 0) + (epochs - 1 if cfg.slow_update.enabled else 0)
