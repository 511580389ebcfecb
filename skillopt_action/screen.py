"""Screening of proposed edits before they are applied: what must never enter a skill, and what a reviewer
should look at twice.

- An edit whose content contains the expected answer (`reference`) of a val or test task is blocked: the gate
  and the final score would then measure memorisation, not a better skill.
- An edit that copies a long run of text verbatim from this step's task outputs is kept but flagged in the
  report: outputs are untrusted, and copied text is how injected instructions would reach the skill.
"""

from __future__ import annotations

import re

from .types import Edit, Task


def _norm(text: object) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())


def screen(edits: list[Edit], held_out: list[Task], outputs: list[str], min_ref: int = 4,
           min_copy: int = 40) -> tuple[list[Edit], list[dict], list[dict]]:
    """Guard against gaming the gate and against injected instructions (see the module docstring).
    Returns (kept, blocked, warnings); blocked/warnings are report rows {"edit", "reason"}."""
    refs = []
    for t in held_out:
        values = t.reference if isinstance(t.reference, list) else [t.reference]
        for v in values:
            if isinstance(v, (str, int, float)) and len(_norm(v)) >= min_ref:
                refs.append((t.id, t.split, _norm(v)))
    norm_outputs = [_norm(o) for o in outputs if o]
    kept, blocked, warnings = [], [], []
    for e in edits:
        content = f" {_norm(e.content)} "
        leak = next(((tid, split, v) for tid, split, v in refs if f" {v} " in content), None)
        if leak:
            blocked.append({"edit": e.to_dict(), "reason": f"blocked: copies the expected answer of {leak[1]} task "
                                                           f"{leak[0]!r} (held-out answers must not enter the skill)"})
            continue
        words = _norm(e.content).split()
        copied = None
        for i in range(max(0, len(words) - 5)):
            chunk = " ".join(words[i:i + 8])
            if len(chunk) >= min_copy and any(chunk in o for o in norm_outputs):
                copied = chunk
                break
        if copied:
            warnings.append({"edit": e.to_dict(), "reason": f"copies task output text verbatim: {copied[:80]!r}"})
        kept.append(e)
    return kept, blocked, warnings
