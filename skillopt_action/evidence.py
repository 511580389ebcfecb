"""Evidence memory: what each tested edit did, against which skill, so the search learns instead of blacklisting.

Every gate decision leaves a record: the edit, the hash of the skill it was tested against, the verdict
(accepted | harmful | not_better | inconclusive | screened_out | closed), the estimated effect and p-value, and
how many rounds of its sequential test were used. What a record means for a later proposal of the same edit
against the same skill:

- harmful, or closed (a human closed the pull request that proposed it): never tested again against that skill;
- not_better / inconclusive: may be proposed again; its test resumes where it stopped, with the samples already
  drawn (cached) and only the looks it has left — the evidence accumulates and the alpha is not reset;
- screened_out: may be tried again (screening is a cheap noisy filter, not a verdict);
- against a different skill, an edit is a new hypothesis and is tested afresh.

Rows written by older versions (no verdict) keep their old meaning: never proposed again. With `--memory FILE`
the records carry across runs (JSONL, one record a line, written atomically).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .redact import write_text
from .types import Edit

BLOCKING = ("harmful", "regression", "closed", "legacy", "bundle")
RESUMABLE = ("not_better", "inconclusive")


def record_verdict(row: dict[str, Any]) -> str:
    return str(row.get("verdict") or "legacy")


@dataclass
class EvidenceMemory:
    records: list[dict[str, Any]] = field(default_factory=list)

    # ---- reading

    def _latest(self, key: str, skill_hash: str) -> dict[str, Any] | None:
        found = None
        for row in self.records:
            if row.get("key") != key:
                continue
            if row.get("skill_hash") in (skill_hash, None):
                found = row
        return found

    def block_reason(self, edit: Edit, skill_hash: str, max_rounds: int | None = None) -> str | None:
        """Why `edit` must not be tested again against the skill with this hash, or None. With `max_rounds` (the
        sequential gate's rounds), an edit whose test already used every look against this skill is blocked too:
        re-testing it could only repeat its verdict."""
        row = self._latest(edit.key(), skill_hash)
        if row is None:
            return None
        verdict = record_verdict(row)
        if max_rounds is not None and self.rounds_done(edit, skill_hash) >= max_rounds:
            return f"its test against this skill already used all {max_rounds} rounds ({_effect(row)})"
        if verdict == "legacy":
            return "previously rejected by the gate"
        if verdict == "bundle":
            return "previously rejected by the gate (in a bundle)"
        if verdict == "harmful":
            return f"estimated harmful against this skill ({_effect(row)})"
        if verdict == "regression":
            return f"made a val task significantly worse against this skill ({_effect(row)})"
        if verdict == "closed":
            return str(row.get("reason") or "its pull request was closed without merging")
        return None

    def rounds_done(self, edit: Edit, skill_hash: str) -> int:
        """How many rounds of its sequential test this edit already used against this skill (0: none)."""
        row = self._latest(edit.key(), skill_hash)
        if row is None or record_verdict(row) not in RESUMABLE or row.get("skill_hash") != skill_hash:
            return 0
        return int(row.get("rounds") or 0)

    def prompt_rows(self, limit: int = 12) -> list[dict[str, Any]]:
        """The most recent rejections, for the optimizer's prompt (each with its edit and score change)."""
        rows = [r for r in self.records if record_verdict(r) != "accepted" and "edit" in r
                and r.get("kind", "body") == "body"]  # description / slow-update records have their own prompts
        out = []
        for r in rows[-limit:]:
            out.append({"edit": r["edit"], "delta": float(r.get("delta") or 0.0), "p_value": r.get("p_value"),
                        "verdict": record_verdict(r)})
        return out

    # ---- writing

    def add(self, edit: Edit, skill_hash: str, verdict: str, *, delta: float | None = None,
            p_value: float | None = None, rounds: int = 0, step: int | None = None, reason: str = "",
            rollouts: int = 0) -> dict[str, Any]:
        row = {"key": edit.key(), "edit": edit.to_dict(), "skill_hash": skill_hash, "verdict": verdict,
               "delta": None if delta is None else round(delta, 4), "p_value": p_value, "rounds": rounds,
               "rollouts": rollouts, "step": step, "reason": reason}
        self.records.append(row)
        return row

    def to_list(self) -> list[dict[str, Any]]:
        return list(self.records)

    @classmethod
    def from_list(cls, rows: list[dict[str, Any]]) -> EvidenceMemory:
        return cls([_normalise(r) for r in rows])

    def save(self, path: Path) -> None:
        """Write the records as JSONL, atomically and with secrets masked."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records))


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    """Give a row its edit key (older rows and hand-written ones have none)."""
    if "key" not in row and isinstance(row.get("edit"), dict):
        try:
            row = {**row, "key": Edit.from_dict(row["edit"]).key()}
        except ValueError:
            row = {**row, "key": json.dumps(row["edit"], sort_keys=True)}
    return row


def _effect(row: dict[str, Any]) -> str:
    parts = []
    if row.get("delta") is not None:
        parts.append(f"score change {float(row['delta']):+.3f}")
    if row.get("p_value") is not None:
        parts.append(f"p={float(row['p_value']):.3g}")
    return ", ".join(parts) or "no figures"
