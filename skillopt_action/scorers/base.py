"""The Scorer protocol, the registry of scorer types, and how a task is scored.

A scorer turns (task, completion) into a score in [0, 1] and a short feedback
string. A task lists one or more scorer specs, each `{type: NAME, weight: W, ...}`;
the task's score is the weighted mean, and the task counts as a success for
reflection when that score reaches the pass threshold.

New scorer types register with `register_scorer(name, validate=..., build=...)`:
`validate(spec, file, line) -> spec` checks the user's settings (raising
ConfigError with file:line and a fix) and `build(spec, ctx) -> Scorer`. An
optional `check_task(spec, task)` catches settings that only make sense per task
(e.g. `exact` without a value on a task without a `reference`).

Feedback strings go to the reflector, so they say what was expected and what was
seen; everything taken from a completion is untrusted text and is quoted and
truncated (`repr`, so newlines and control characters cannot forge structure).

Built-in types live in sibling modules: `text` (exact, f1, contains, not_contains, regex),
`structured` (json), `code` (python, command), `rubric` (llm_rubric), `workspace` (workspace_command,
file_exists, file_contains, file_matches, diff_paths). Every type also accepts `type` and `weight`:

  exact        value (default: the task's `reference`; a list means "any of"),
               case_sensitive: false, normalize: true.
               Normalising lowercases (unless case_sensitive), drops punctuation,
               the articles a/an/the and extra whitespace.
  contains     value: text or list of texts, case_sensitive: false.
               Score = fraction of the values found in the output.
  not_contains value: text or list of texts, case_sensitive: false.
               Score = fraction of the values absent (1 when none is present).
  regex        pattern, flags: any of "i", "m", "s", must_match: true.
               `re.search`; with must_match: false the pattern must NOT match.
  json         schema (a JSON Schema), fields: {dotted.path: expected}, extract: true.
               Score = mean of the checks: it parses, it matches the schema (if
               given), each field equals its expected value. With extract the JSON
               is the whole answer, else the first ```json fence that parses, else
               the first {...} or [...] that parses. Path segments that are digits
               index into lists (`items.0.name`).
  f1           value (default: the task's `reference`; a list means "best of").
               SQuAD-style token F1 after the same normalisation as `exact`.
  python       function: "module.path:function_name", imported with the project
               root on sys.path. It is called with keyword arguments

                   fn(task=Task, output=str, reference=Any)

               (a function that declares only some of these names receives just
               those; one that takes **kwargs receives all three) and may return
               a bool, a number, a (number, feedback) tuple or a mapping
               {"score": number, "feedback": str}. An exception inside it scores 0
               with feedback "<ExcType>: message"; a missing module or function is
               a ConfigError.
  command      run: a bash command, timeout: seconds (default: the config's
               command timeout), score_from: exit_code | stdout, pass_env: [NAMES].
               Runs `bash -c RUN` in a fresh temporary directory holding
               `answer.txt` (the answer, also on stdin and in $ANSWER_FILE), with
               $SKILLOPT_PROJECT_ROOT set. exit_code: 0 scores 1, anything else 0.
               stdout: the last number printed is the score, clamped to [0, 1].
               On timeout the whole process group is killed and the score is 0.
               Because the answer is untrusted (and commands often execute it),
               environment variables whose names contain KEY, TOKEN, SECRET,
               PASSWORD, PASSWD or CREDENTIAL are removed unless listed in pass_env.
  llm_rubric   rubric: text, pass_score: optional number in [0, 1].
               A judge model (the config's `judge:`) grades the output against the
               rubric, seeing it as untrusted data between delimiters (see
               templates/judge.md.j2), and answers {"score": 0..1, "reason": ...}.
               With pass_score the score becomes 1 if the judge's score reaches it,
               else 0. An unparseable answer is retried once, then scores 0.
               Provider errors and budget stops propagate.
"""


from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError
from ..text import clip
from ..types import Completion, ScoreResult, Task, TaskScore
from ..yamlfile import kind_of, plain


class Scorer(Protocol):
    def score(self, task: Task, completion: Completion) -> ScoreResult: ...


@dataclass
class ScorerContext:
    project_root: Path
    judge: Any = None  # a ChatModel for llm_rubric (already wrapped with retries/accounting by calls.ManagedModel)
    command_timeout: float = 60.0


@dataclass
class ScorerType:
    validate: Callable[[dict, str | None, int | None], dict]
    build: Callable[[dict, ScorerContext], Scorer]
    needs_workspace: bool = False
    check_task: Callable[[dict, Task], None] | None = None


SCORER_TYPES: dict[str, ScorerType] = {}


def register_scorer(name: str, *, validate: Callable[[dict, str | None, int | None], dict],
                    build: Callable[[dict, ScorerContext], Scorer], needs_workspace: bool = False,
                    check_task: Callable[[dict, Task], None] | None = None) -> None:
    SCORER_TYPES[name] = ScorerType(validate, build, needs_workspace, check_task)


def validate_spec(spec: dict, file: str | None, line: int | None) -> dict:
    """Check one scorer spec and return it as a plain, normalised dict (with `weight`)."""
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


def with_task(exc: ConfigError, task: Task) -> ConfigError:
    """Re-point a build-time ConfigError (which knows no file) at the task that uses the scorer."""
    if exc.file:
        return exc
    file, line = task.where()
    return ConfigError(f"task {task.id!r}: {exc.message}", file, line, exc.fix)


def check_tasks(tasks: list[Task], ctx: ScorerContext) -> None:
    """Build every scorer of every task once, so `skillopt validate` reports what scoring would hit:
    a missing python module, an llm_rubric without a judge, `exact`/`f1` with no value or reference."""
    built: set[str] = set()
    for task in tasks:
        for spec in task.scorers:
            kind = SCORER_TYPES.get(spec["type"])
            if kind is None:
                file, line = task.where()
                raise ConfigError(f"task {task.id!r}: unknown scorer type {spec['type']!r}", file, line,
                                  f"use one of: {', '.join(sorted(SCORER_TYPES))}")
            try:
                if kind.check_task is not None:
                    kind.check_task(spec, task)
                key = json.dumps(spec, sort_keys=True, default=str)
                if key not in built:
                    kind.build(spec, ctx)
                    built.add(key)
            except ConfigError as exc:
                raise with_task(exc, task) from None


def score_completion(task: Task, completion: Completion, ctx: ScorerContext, pass_threshold: float) -> TaskScore:
    """Weighted mean of the task's scorers. A failed run (completion.error) scores 0 everywhere."""
    threshold = task.pass_threshold if task.pass_threshold is not None else pass_threshold
    if completion.error:
        results = [ScoreResult(0.0, clip(f"run failed: {completion.error}"), s["type"]) for s in task.scorers]
        return TaskScore(0.0, False, results)
    results, total, weights = [], 0.0, 0.0
    for spec in task.scorers:
        try:
            scorer = SCORER_TYPES[spec["type"]].build(spec, ctx)
            r = scorer.score(task, completion)
        except ConfigError as exc:
            raise with_task(exc, task) from None
        score = float(r.score)
        r.score = 0.0 if math.isnan(score) else min(1.0, max(0.0, score))
        r.scorer = r.scorer or spec["type"]
        results.append(r)
        total += spec["weight"] * r.score
        weights += spec["weight"]
    score = total / weights if weights else 0.0
    return TaskScore(score, score >= threshold, results)


# --------------------------------------------------------------------------- checks for scorer settings

ALWAYS_ALLOWED = ("type", "weight")


def output_of(completion: Completion) -> str:
    return completion.text or ""


def check_keys(spec: dict, allowed: tuple[str, ...], file: str | None, line: int | None) -> None:
    ok = set(ALWAYS_ALLOWED) | set(allowed)
    for key in spec:
        if key not in ok:
            raise ConfigError(f"scorer {spec['type']!r} has no setting {key!r}", file, line,
                              f"allowed keys for {spec['type']}: {', '.join(sorted(ok))}")


def bool_setting(spec: dict, key: str, default: bool, file: str | None, line: int | None) -> None:
    v = spec.get(key, default)
    if not isinstance(v, bool):
        raise ConfigError(f"scorer {spec['type']!r}: `{key}` must be true or false, got {v!r}", file, line,
                          f"write `{key}: {'true' if default else 'false'}`")
    spec[key] = v


def text_setting(
    v: Any, what: str, spec: dict, file: str | None, line: int | None, *, allow_empty: bool = False
) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ConfigError(f"scorer {spec['type']!r}: {what} must be text, got {kind_of(v)} {plain(v)!r}", file, line,
                          "write it as quoted text, e.g. \"yes\" or \"42\" (YAML reads bare yes/no/null as "
                          "booleans/null)")
    s = str(v)
    if not allow_empty and s == "":
        raise ConfigError(f"scorer {spec['type']!r}: {what} is empty", file, line, "give a non-empty text")
    return s


def texts_setting(spec: dict, key: str, file: str | None, line: int | None, *, required: bool) -> None:
    """`key` is a text or a non-empty list of texts; normalised to a list (or absent)."""
    if key not in spec:
        if required:
            raise ConfigError(f"scorer {spec['type']!r} needs `{key}`", file, line,
                              f"add `{key}: \"text\"` or `{key}: [\"one\", \"two\"]`")
        return
    v = spec[key]
    if isinstance(v, list):
        if not v:
            raise ConfigError(f"scorer {spec['type']!r}: `{key}` is an empty list", file, line,
                              f"list at least one text under `{key}`")
        spec[key] = [text_setting(x, f"`{key}` item", spec, file, line) for x in v]
    else:
        spec[key] = [text_setting(v, f"`{key}`", spec, file, line)]
