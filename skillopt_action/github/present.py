"""What the GitHub texts show of a report, reduced to plain rows the templates print (no I/O).

Every edit, accepted or rejected, is shown with its own text, the reason the optimizer gave, the tasks whose
trajectories motivated it, and the gate figures it was judged by: the row's own `gate` when the report has one,
else the gate of the step it was tried in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .. import fmt, screen
from ..render import render

LONG_EDIT_LINES = 6  # longer edit texts are collapsed in <details>
LONG_EDIT_CHARS = 400
MAX_REJECTED = 40  # rejected edits listed in full; the rest are counted
MAX_TASKS = 8


def inline(text: Any) -> str:
    """Untrusted model text for one Markdown line: whitespace collapsed, no HTML, no @-mentions (nobody is
    pinged by what an optimizer wrote)."""
    one = " ".join(str(text or "").split()).replace("<", "&lt;")
    return re.sub(r"@(?=\w)", "@\u200b", one)


def _where(row: Mapping[str, Any]) -> str:
    anchor = (row.get("anchor") or "").strip()
    short = anchor if len(anchor) <= 80 else anchor[:77] + "…"
    short = short.replace("`", "'").replace("\n", " ")
    return {
        "add": f"under `{short}`" if anchor else "at the end",
        "insert_after": f"after `{short}`",
        "replace": f"replacing `{short}`",
        "delete": f"deleting `{short}`",
    }.get(str(row.get("op")), f"at `{short}`" if anchor else "")


def _step_gate(report: Mapping[str, Any], step: Any) -> Mapping[str, Any] | None:
    for s in report.get("steps") or []:
        if s.get("step") == step:
            return s.get("gate")
    return None


def edit_row(report: Mapping[str, Any], row: Mapping[str, Any], verdict: str) -> dict[str, Any]:
    content = str(row.get("content") or "")
    gate = row.get("gate") if isinstance(row.get("gate"), Mapping) else None
    why = str(row.get("why") or "")
    if gate is None and not why.startswith(("not applied", "previously rejected")):
        gate = _step_gate(report, row.get("step"))
    tasks = [str(t).replace("`", "") for t in row.get("tasks") or []]
    return {
        "verdict": verdict,
        "op": str(row.get("op") or "edit"),
        "where": _where(row),
        "content": content.replace("```", "'''"),
        "long": content.count("\n") + 1 > LONG_EDIT_LINES or len(content) > LONG_EDIT_CHARS,
        "rationale": inline(row.get("rationale")),
        "tasks": tasks[:MAX_TASKS],
        "more_tasks": max(0, len(tasks) - MAX_TASKS),
        "why": inline(why),
        "step": row.get("step"),
        "gate": fmt.gate_figures(gate),
    }


def edit_rows(report: Mapping[str, Any]) -> tuple[list[dict], list[dict], int]:
    """(accepted rows, rejected rows shown, rejected rows not shown)."""
    accepted = [edit_row(report, r, "accepted") for r in report.get("accepted_edits") or []]
    rejected_all = report.get("rejected_edits") or []
    rejected = [edit_row(report, r, "rejected") for r in rejected_all[:MAX_REJECTED]]
    return accepted, rejected, max(0, len(rejected_all) - MAX_REJECTED)


def edits_markdown(report: Mapping[str, Any]) -> str:
    """The accepted and rejected edits section of the PR body and the check summary ("" for no edits)."""
    if report.get("kind") != "optimize":
        return ""
    accepted, rejected, hidden = edit_rows(report)
    if not accepted and not rejected:
        return ""
    return render("github_edits.md.j2", accepted=accepted, rejected=rejected, hidden=hidden)


def pr_title(skill_path: str, report: Mapping[str, Any]) -> str:
    val = (report.get("scores") or {}).get("val") or {}
    title = f"skillopt: improve {skill_path}"
    if val.get("best") is not None and val.get("baseline") is not None:
        title += f" (val {fmt.score(val['baseline'])} → {fmt.score(val['best'])})"
    return title + screen.title_note(report)  # a PR that carries a flagged edit says so where reviewers look first


def state_edits(report: Mapping[str, Any]) -> list[dict]:
    """The accepted edits as plain edit dicts, kept in the PR body's hidden state so a human close can be
    remembered as a rejection of exactly these edits; each carries the gate change it was accepted with."""
    keep = ("op", "anchor", "content", "rationale", "source", "support", "tasks")
    out = []
    for r in report.get("accepted_edits") or []:
        edit = {k: r[k] for k in keep if k in r}
        gate = r.get("gate") if isinstance(r.get("gate"), Mapping) else _step_gate(report, r.get("step"))
        out.append({"edit": edit, "delta": (gate or {}).get("delta")})
    return out
