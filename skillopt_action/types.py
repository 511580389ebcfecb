"""Plain data types shared by every layer: tasks, completions, usage, replies, scores, rollouts and edits.

This is the bottom floor: it imports nothing from the package, does no I/O and calls no model. Everything a
target, scorer, the loop or a report passes around is one of these.

- `Task`        one eval task as loaded from a task file (`tasks.py` loads and splits them)
- `Usage`       tokens (and a cost when the provider or agent CLI reports one) of one call
- `Reply`       what a chat model answered: text and usage
- `Completion`  what one rollout produced: the answer, the transcript, usage, and for agent harnesses the
                workspace left behind; everything in it is untrusted data
- `ScoreResult` one scorer's score in [0, 1] with a feedback line; `TaskScore` the weighted task score
- `Rollout`     one (task, sample) run under a skill, with its completion and score
- `Edit`        one bounded text operation an optimizer proposes (`parse_edit` validates untrusted input)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    id: str
    input: Any  # str or tuple of {"role", "content"} dicts
    scorers: tuple = ()  # normalised scorer specs (dicts with at least "type" and "weight")
    reference: Any = None
    split: str | None = None
    metadata: dict = field(default_factory=dict, compare=False, hash=False)
    fixture: str | None = None  # absolute path of the fixture directory
    fixture_digest: str | None = None
    source: str = ""  # "file:line" where the task is defined
    pass_threshold: float | None = None  # overrides the config's threshold for this task

    def messages(self) -> list[dict]:
        if isinstance(self.input, str):
            return [{"role": "user", "content": self.input}]
        return [dict(m) for m in self.input]

    def prompt_text(self) -> str:
        """The task as one string (for CLI agents and reports)."""
        if isinstance(self.input, str):
            return self.input
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in self.input)

    def digest(self) -> str:
        """Content address of what the target sees (input, fixture): the rollout cache key. How the answer is
        scored is keyed separately (`scoring_digest`), so editing a scorer re-scores cached answers for free."""
        payload = {"id": self.id, "input": self.input, "fixture": self.fixture_digest}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def scoring_digest(self) -> str:
        payload = {"reference": self.reference, "scorers": self.scorers, "pass_threshold": self.pass_threshold}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def where(self) -> tuple[str | None, int | None]:
        """(file, line) where the task is defined, for error messages."""
        file, sep, line = (self.source or "").rpartition(":")
        if sep and line.isdigit():
            return file, int(line)
        return (self.source or None), None


# --------------------------------------------------------------------------- model calls


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # set when the provider or CLI reports a cost itself

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Reply:
    text: str
    usage: Usage
    model: str | None = None  # the model identity the provider reported (e.g. a dated snapshot name)


@dataclass
class Completion:
    """What one rollout produced. Everything in it is untrusted data."""

    text: str
    transcript: list[dict] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    error: str | None = None  # set when the run failed (timeout, crash); scorers then score 0
    workspace: str | None = None  # harness targets: the directory to score; removed after scoring
    exit_code: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("workspace")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Completion:
        d = dict(d)
        d["usage"] = Usage(**d.get("usage", {}))
        d.pop("workspace", None)
        return cls(**d)


# --------------------------------------------------------------------------- scores


@dataclass
class ScoreResult:
    score: float
    feedback: str
    scorer: str = ""

    def to_dict(self) -> dict:
        return {"scorer": self.scorer, "score": self.score, "feedback": self.feedback}


@dataclass
class TaskScore:
    score: float
    passed: bool
    results: list[ScoreResult] = field(default_factory=list)

    def feedback(self) -> str:
        return "; ".join(f"{r.scorer}: {r.feedback}" for r in self.results if r.feedback)

    def to_dict(self) -> dict:
        return {"score": self.score, "passed": self.passed, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: dict) -> TaskScore:
        return cls(d["score"], d["passed"], [ScoreResult(r["score"], r["feedback"], r["scorer"]) for r in d["results"]])


@dataclass
class Rollout:
    task_id: str
    sample: int
    skill_hash: str
    completion: Completion
    score: TaskScore
    cached: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"task_id": self.task_id, "sample": self.sample, "skill_hash": self.skill_hash,
                "completion": self.completion.to_dict(), "score": self.score.to_dict(),
                "seconds": round(self.seconds, 3)}


# --------------------------------------------------------------------------- edits

OPS = ("add", "insert_after", "replace", "delete")
SOURCES = ("", "failure", "success")
EDIT_KEYS = ("op", "anchor", "content", "rationale", "source", "support", "tasks")

_WS_RE = re.compile(r"\s+")
_HEADING_ANCHOR_RE = re.compile(r"^\s*(#+)\s*(.*?)\s*#*\s*$", re.DOTALL)


def norm_ws(text: str) -> str:
    """Runs of whitespace (newlines included) collapsed to one space, ends stripped."""
    return _WS_RE.sub(" ", text).strip()


def heading_text(anchor: str) -> tuple[int, str]:
    """('## Output  format ##') -> (2, 'Output format'); plain text -> (0, text)."""
    m = _HEADING_ANCHOR_RE.match(anchor)
    if m and anchor.lstrip().startswith("#"):
        return len(m.group(1)), norm_ws(m.group(2))
    return 0, norm_ws(anchor)


@dataclass
class Edit:
    """One bounded text operation on a skill document (see edits.py for what each op does)."""

    op: str
    anchor: str | None
    content: str = ""
    rationale: str = ""
    source: str = ""
    support: int = 1
    tasks: tuple[str, ...] = ()

    def key(self) -> str:
        """Identity for dedup and the rejected-edit memory.

        Two edits have the same key when op, anchor and content agree after collapsing
        whitespace and case (and, for `add`, ignoring the heading's '#' marks), so
        "## Rules" / "rules" and "Cite  sources.\\n" / "cite sources." are the same edit.
        """
        anchor = self.anchor or ""
        if self.op == "add":
            anchor = heading_text(anchor)[1]
        return json.dumps(
            [self.op, norm_ws(anchor).casefold(), norm_ws(self.content or "").casefold()],
            ensure_ascii=False,
        )

    def to_dict(self) -> dict:
        return {
            "op": self.op,
            "anchor": self.anchor,
            "content": self.content,
            "rationale": self.rationale,
            "source": self.source,
            "support": self.support,
            "tasks": list(self.tasks),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Edit:
        """Inverse of to_dict (validated like parse_edit; raises ValueError on bad data)."""
        return parse_edit(d)


def edit_problem(op: Any, anchor: Any, content: Any) -> str | None:
    """Why (op, anchor, content) is not a well-formed edit, or None."""
    if not isinstance(op, str):
        return f"op must be a string, got {type(op).__name__}"
    if op not in OPS:
        return f"unknown op {op!r}; expected one of {', '.join(OPS)}"
    if anchor is not None and not isinstance(anchor, str):
        return f"anchor must be a string, got {type(anchor).__name__}"
    if not isinstance(content, str):
        return f"content must be a string, got {type(content).__name__}"
    if op != "add" and not (anchor or "").strip():
        return f"{op} needs an anchor: the exact text to find in the skill"
    if op == "add" and anchor and anchor.lstrip().startswith("#"):
        level, text = heading_text(anchor)
        if not text:
            return f"add anchor {anchor!r} is a heading without text"
        if level > 6:
            return f"add anchor {anchor!r} has {level} '#' marks; a Markdown heading has at most 6"
    if op == "delete":
        if content.strip():
            return "delete takes no content (use replace to change text)"
    elif not content.strip():
        if op == "replace":
            return "replace needs content (use delete to remove text)"
        return f"{op} needs content: the text to add"
    return None


def parse_edit(d: Any) -> Edit:
    """Validate an optimizer-provided edit dict and build an Edit. Raises ValueError."""
    if not isinstance(d, dict):
        raise ValueError(f"an edit must be an object with an 'op', got {type(d).__name__}")
    unknown = sorted(str(k) for k in d if k not in EDIT_KEYS)
    if unknown:
        raise ValueError(f"unknown edit field(s): {', '.join(unknown)}; allowed: {', '.join(EDIT_KEYS)}")
    if "op" not in d:
        raise ValueError(f"edit has no 'op'; expected one of {', '.join(OPS)}")
    op = d["op"]
    anchor = d.get("anchor")
    content = d.get("content", "")
    if content is None:
        content = ""
    problem = edit_problem(op, anchor, content)
    if problem:
        raise ValueError(problem)
    rationale = d.get("rationale", "")
    if rationale is None:
        rationale = ""
    if not isinstance(rationale, str):
        raise ValueError(f"rationale must be a string, got {type(rationale).__name__}")
    source = d.get("source", "")
    if source is None:
        source = ""
    if source not in SOURCES:
        raise ValueError(f"source must be 'failure' or 'success', got {source!r}")
    support = d.get("support", 1)
    if isinstance(support, bool) or not isinstance(support, int) or support < 1:
        raise ValueError(f"support must be a positive integer, got {support!r}")
    tasks = d.get("tasks", ())
    if tasks is None:
        tasks = ()
    if isinstance(tasks, str) or not isinstance(tasks, (list, tuple)):
        raise ValueError(f"tasks must be a list of task ids, got {type(tasks).__name__}")
    for t in tasks:
        if not isinstance(t, str):
            raise ValueError(f"tasks must be a list of task id strings, got an item {t!r}")
    return Edit(
        op=op,
        anchor=(anchor or None) if op == "add" else anchor,
        content=content,
        rationale=rationale,
        source=source,
        support=support,
        tasks=tuple(tasks),
    )
