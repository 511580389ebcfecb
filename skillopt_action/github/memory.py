"""What scheduled runs remember between runs, next to the rejected-edit memory of the core (the example weekly
workflow keeps `.skillopt/memory/` with actions/cache):

- `rejected-edits.jsonl`: edits the gate rejected (written by the core) and edits of bot pull requests a
  human closed without merging (added here, before the optimize run, so they are never proposed again
  against the same skill);
- `pr-creation-refused.json`: GitHub refused to let this token open the pull request. Scheduled runs read it
  and stop before paying for anything or pushing a branch; a run started by hand (workflow_dispatch), or one
  with a different token, tries again, and a pull request that opens clears it.

`closed_rows` and `retry_refused` decide on plain data; the rest reads and writes the two files.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..types import Edit
from .pull_request import ClosedPR

MEMORY_DIR = Path(".skillopt") / "memory"
REJECTED = "rejected-edits.jsonl"
REFUSED = "pr-creation-refused.json"


def edit_key(edit: Mapping[str, Any]) -> str | None:
    try:
        return Edit.from_dict(dict(edit)).key()
    except ValueError:
        return None


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if isinstance(row, dict):
                rows.append(row)
    return rows


def closed_keys(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    """Keys of the edits already remembered as closed by a human."""
    out = set()
    for r in rows:
        key = edit_key(r.get("edit") or {}) if r.get("verdict") == "closed" else None
        if key:
            out.add(key)
    return out


def needs_recording(pr: ClosedPR, known: set[str], bot_closed: bool = False) -> bool:
    """A closed bot PR whose edits are not remembered yet, and that a human closed without merging."""
    if pr.merged or pr.closed_as == "adopted" or bot_closed or not pr.edits:
        return False
    return any(edit_key(e["edit"]) not in known for e in pr.edits)


def closed_rows(pr: ClosedPR, closer: str, known: set[str]) -> list[dict]:
    """Memory rows for the edits of a PR a human closed: `verdict: closed` tells the core never to propose them
    again against the skill they were proposed for (`skill_hash`). `delta` is the gate change the edit had
    when it was proposed (0.0 when unknown): the optimizer's prompt shows it next to every remembered edit."""
    rows = []
    for e in pr.edits:
        try:
            edit = Edit.from_dict(dict(e["edit"]))
        except ValueError:
            continue
        if edit.key() in known:
            continue
        known.add(edit.key())
        delta = e.get("delta")
        rows.append({"edit": edit.to_dict(), "verdict": "closed", "reason": f"closed by @{closer}",
                     "skill_hash": pr.base_hash, "step": None,
                     "delta": round(float(delta), 4) if isinstance(delta, (int, float)) else 0.0})
    return rows


def append_rows(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---- the pull-request refusal


def read_refusal(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def write_refusal(path: Path, *, repository: str, token_login: str, message: str, run_url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    path.write_text(json.dumps({"repository": repository, "token_login": token_login, "message": message,
                                "run_url": run_url, "at": now}, indent=2) + "\n", encoding="utf-8")


def clear_refusal(path: Path) -> bool:
    if path.is_file():
        path.unlink()
        return True
    return False


def retry_refused(refusal: Mapping[str, Any] | None, *, repository: str, event: str, token_login: str) -> bool:
    """Whether this run may try to open the pull request again after GitHub refused it before."""
    if not refusal or refusal.get("repository") != repository:
        return True
    if event == "workflow_dispatch":  # someone started it by hand, e.g. after changing the setting
        return True
    return refusal.get("token_login") != token_login  # a different token (a GitHub App's, a PAT) may be allowed
