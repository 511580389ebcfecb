"""The Scorer protocol and the built-in scorers.

A scorer turns (task, completion) into a score in [0, 1] and a short feedback
string. A task lists one or more scorer specs, each `{type: NAME, weight: W, ...}`;
the task's score is the weighted mean, and the task counts as a success for
reflection when that score reaches the pass threshold.

New scorer types register with `register_scorer(name, validate=..., build=...)`:
`validate(spec, file, line) -> spec` checks the user's settings (raising
ConfigError with file:line and a fix) and `build(spec, ctx) -> Scorer`.
"""

from __future__ import annotations

import importlib
import importlib.util

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .tasks import Task
    from .targets import Completion


@dataclass
class ScoreResult:
    score: float
    feedback: str
    scorer: str = ""

    def to_dict(self) -> dict:
        return {"scorer": self.scorer, "score": self.score, "feedback": self.feedback}


class Scorer(Protocol):
    def score(self, task: "Task", completion: "Completion") -> ScoreResult: ...


@dataclass
class ScorerContext:
    project_root: Path
    judge: Any = None  # a providers.ChatModel for llm_rubric (already wrapped with retries/accounting)
    command_timeout: float = 60.0


@dataclass
class ScorerType:
    validate: Callable[[dict, str | None, int | None], dict]
    build: Callable[[dict, ScorerContext], Scorer]
    needs_workspace: bool = False


SCORER_TYPES: dict[str, ScorerType] = {}


def register_scorer(name: str, *, validate, build, needs_workspace: bool = False) -> None:
    SCORER_TYPES[name] = ScorerType(validate, build, needs_workspace)


def validate_spec(spec: dict, file: str | None, line: int | None) -> dict:
    """Check one scorer spec and return it as a plain, normalised dict (with `weight`)."""
    _ensure_registered()
    spec = {k: _plain(v) for k, v in spec.items()}
    kind = spec.get("type")
    if kind not in SCORER_TYPES:
        raise ConfigError(f"unknown scorer type {kind!r}", file, line,
                          f"use one of: {', '.join(sorted(SCORER_TYPES))}")
    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
        raise ConfigError(f"scorer {kind!r}: `weight` must be a positive number", file, line, "write e.g. `weight: 2`")
    spec["weight"] = float(weight)
    return SCORER_TYPES[kind].validate(spec, file, line)


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _ensure_registered() -> None:
    # the built-in scorers below register at import; workspace scorers live with the harness targets
    if "workspace_command" not in SCORER_TYPES and importlib.util.find_spec(f"{__package__}.harness"):
        importlib.import_module(f"{__package__}.harness")


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
    def from_dict(cls, d: dict) -> "TaskScore":
        return cls(d["score"], d["passed"], [ScoreResult(r["score"], r["feedback"], r["scorer"]) for r in d["results"]])


def score_completion(task: "Task", completion: "Completion", ctx: ScorerContext, pass_threshold: float) -> TaskScore:
    """Weighted mean of the task's scorers. A failed run (completion.error) scores 0 everywhere."""
    threshold = task.pass_threshold if task.pass_threshold is not None else pass_threshold
    if completion.error:
        results = [ScoreResult(0.0, f"run failed: {completion.error}", s["type"]) for s in task.scorers]
        return TaskScore(0.0, False, results)
    results, total, weights = [], 0.0, 0.0
    for spec in task.scorers:
        scorer = SCORER_TYPES[spec["type"]].build(spec, ctx)
        r = scorer.score(task, completion)
        r.score = min(1.0, max(0.0, float(r.score)))
        r.scorer = r.scorer or spec["type"]
        results.append(r)
        total += spec["weight"] * r.score
        weights += spec["weight"]
    score = total / weights if weights else 0.0
    return TaskScore(score, score >= threshold, results)
