"""The Scorer protocol and the built-in scorers.

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

Built-in types (every type also accepts `type` and `weight`):

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

import collections
import importlib
import importlib.util
import inspect
import json
import logging
import math
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .tasks import Task
    from .targets import Completion

log = logging.getLogger(__name__)

FEEDBACK_MAX = 300


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
    check_task: Callable[[dict, "Task"], None] | None = None


SCORER_TYPES: dict[str, ScorerType] = {}


def register_scorer(name: str, *, validate, build, needs_workspace: bool = False, check_task=None) -> None:
    SCORER_TYPES[name] = ScorerType(validate, build, needs_workspace, check_task)


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


def _task_where(task: "Task") -> tuple[str | None, int | None]:
    file, sep, line = (task.source or "").rpartition(":")
    if sep and line.isdigit():
        return file, int(line)
    return (task.source or None), None


def _with_task(exc: ConfigError, task: "Task") -> ConfigError:
    """Re-point a build-time ConfigError (which knows no file) at the task that uses the scorer."""
    if exc.file:
        return exc
    file, line = _task_where(task)
    return ConfigError(f"task {task.id!r}: {exc.message}", file, line, exc.fix)


def check_tasks(tasks, ctx: ScorerContext) -> None:
    """Build every scorer of every task once, so `skillopt validate` reports what scoring would hit:
    a missing python module, an llm_rubric without a judge, `exact`/`f1` with no value or reference."""
    _ensure_registered()
    built: set[str] = set()
    for task in tasks:
        for spec in task.scorers:
            kind = SCORER_TYPES.get(spec["type"])
            if kind is None:
                file, line = _task_where(task)
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
                raise _with_task(exc, task) from None


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
        results = [ScoreResult(0.0, _clip(f"run failed: {completion.error}"), s["type"]) for s in task.scorers]
        return TaskScore(0.0, False, results)
    _ensure_registered()
    results, total, weights = [], 0.0, 0.0
    for spec in task.scorers:
        try:
            scorer = SCORER_TYPES[spec["type"]].build(spec, ctx)
            r = scorer.score(task, completion)
        except ConfigError as exc:
            raise _with_task(exc, task) from None
        score = float(r.score)
        r.score = 0.0 if math.isnan(score) else min(1.0, max(0.0, score))
        r.scorer = r.scorer or spec["type"]
        results.append(r)
        total += spec["weight"] * r.score
        weights += spec["weight"]
    score = total / weights if weights else 0.0
    return TaskScore(score, score >= threshold, results)


# --------------------------------------------------------------------------- helpers

def _q(text: Any, limit: int = 80) -> str:
    """Quote untrusted text for feedback: one line, truncated, via repr."""
    s = text if isinstance(text, str) else json.dumps(text, default=str, ensure_ascii=False)
    s = s.strip()
    if len(s) > limit:
        s = s[:limit] + "..."
    return repr(s)


def _tail(text: str, limit: int = 150) -> str:
    s = text.strip()
    if len(s) > limit:
        s = "..." + s[-limit:]
    return repr(s)


def _clip(feedback: str, limit: int = FEEDBACK_MAX) -> str:
    return feedback if len(feedback) <= limit else feedback[: limit - 3] + "..."


def _output(completion: "Completion") -> str:
    return completion.text or ""


ALWAYS_ALLOWED = ("type", "weight")


def _check_keys(spec: dict, allowed: tuple[str, ...], file, line) -> None:
    ok = set(ALWAYS_ALLOWED) | set(allowed)
    for key in spec:
        if key not in ok:
            raise ConfigError(f"scorer {spec['type']!r} has no setting {key!r}", file, line,
                              f"allowed keys for {spec['type']}: {', '.join(sorted(ok))}")


def _bool(spec: dict, key: str, default: bool, file, line) -> None:
    v = spec.get(key, default)
    if not isinstance(v, bool):
        raise ConfigError(f"scorer {spec['type']!r}: `{key}` must be true or false, got {v!r}", file, line,
                          f"write `{key}: {'true' if default else 'false'}`")
    spec[key] = v


def _text(v: Any, what: str, spec: dict, file, line, *, allow_empty: bool = False) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ConfigError(f"scorer {spec['type']!r}: {what} must be text, got {type(v).__name__} {v!r}", file, line,
                          "write it as quoted text, e.g. \"yes\" or \"42\" (YAML reads bare yes/no/null as "
                          "booleans/null)")
    s = str(v)
    if not allow_empty and s == "":
        raise ConfigError(f"scorer {spec['type']!r}: {what} is empty", file, line, "give a non-empty text")
    return s


def _texts(spec: dict, key: str, file, line, *, required: bool) -> None:
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
        spec[key] = [_text(x, f"`{key}` item", spec, file, line) for x in v]
    else:
        spec[key] = [_text(v, f"`{key}`", spec, file, line)]


# --------------------------------------------------------------------------- normalisation

_PUNCT = set(string.punctuation) | set("\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00bf\u00a1")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)


def normalize_answer(text: str, *, lowercase: bool = True) -> str:
    """SQuAD-style: lowercase, drop punctuation, articles and extra whitespace."""
    if lowercase:
        text = text.lower()
    text = "".join(ch if ch not in _PUNCT else " " for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _golds(spec: dict, task: "Task") -> list[str]:
    if "value" in spec:
        return list(spec["value"])
    ref = task.reference
    if ref is None:
        file, line = _task_where(task)
        raise ConfigError(f"task {task.id!r}: scorer {spec['type']!r} has no `value` and the task has no `reference`",
                          file, line, "add `reference: ...` to the task, or `value: ...` to the scorer")
    if isinstance(ref, list):
        return [r if isinstance(r, str) else json.dumps(r) for r in ref]
    return [ref if isinstance(ref, str) else json.dumps(ref) if isinstance(ref, (dict, bool)) else str(ref)]


def _check_gold(spec: dict, task: "Task") -> None:
    golds = _golds(spec, task)
    if not golds:
        file, line = _task_where(task)
        raise ConfigError(f"task {task.id!r}: `reference` is an empty list", file, line,
                          "give at least one reference answer")


# --------------------------------------------------------------------------- exact

def _validate_exact(spec, file, line):
    _check_keys(spec, ("value", "case_sensitive", "normalize"), file, line)
    _texts(spec, "value", file, line, required=False)
    _bool(spec, "case_sensitive", False, file, line)
    _bool(spec, "normalize", True, file, line)
    return spec


class ExactScorer:
    def __init__(self, spec: dict):
        self.spec = spec

    def _norm(self, s: str) -> str:
        if self.spec["normalize"]:
            return normalize_answer(s, lowercase=not self.spec["case_sensitive"])
        s = s.strip()
        return s if self.spec["case_sensitive"] else s.casefold()

    def score(self, task, completion) -> ScoreResult:
        golds = _golds(self.spec, task)
        out = _output(completion)
        got = self._norm(out)
        for g in golds:
            if self._norm(g) == got:
                return ScoreResult(1.0, f"matches {_q(g, 60)}")
        expected = _q(golds[0], 60) if len(golds) == 1 else "one of " + ", ".join(_q(g, 40) for g in golds[:4])
        return ScoreResult(0.0, _clip(f"expected {expected}, got {_q(out, 100)}"))


register_scorer("exact", validate=_validate_exact, build=lambda spec, ctx: ExactScorer(spec), check_task=_check_gold)


# --------------------------------------------------------------------------- f1

def _validate_f1(spec, file, line):
    _check_keys(spec, ("value",), file, line)
    _texts(spec, "value", file, line, required=False)
    return spec


def token_f1(prediction: str, gold: str) -> tuple[float, list[str], list[str]]:
    """Token F1 after normalisation; also the gold tokens missing from and extra in the prediction."""
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g), g, p
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    missing = list((collections.Counter(g) - collections.Counter(p)).elements())
    extra = list((collections.Counter(p) - collections.Counter(g)).elements())
    if same == 0:
        return 0.0, missing, extra
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall), missing, extra


class F1Scorer:
    def __init__(self, spec: dict):
        self.spec = spec

    def score(self, task, completion) -> ScoreResult:
        out = _output(completion)
        best = max(((token_f1(out, g), g) for g in _golds(self.spec, task)), key=lambda x: x[0][0])
        (f1, missing, extra), gold = best
        fb = f"token F1 {f1:.2f} against {_q(gold, 60)}"
        if missing:
            fb += f"; missing {_q(' '.join(missing), 60)}"
        if extra:
            fb += f"; {len(extra)} extra token{'s' if len(extra) != 1 else ''}"
        return ScoreResult(f1, _clip(fb))


register_scorer("f1", validate=_validate_f1, build=lambda spec, ctx: F1Scorer(spec), check_task=_check_gold)


# --------------------------------------------------------------------------- contains / not_contains

def _validate_contains(spec, file, line):
    _check_keys(spec, ("value", "case_sensitive"), file, line)
    _texts(spec, "value", file, line, required=True)
    _bool(spec, "case_sensitive", False, file, line)
    return spec


class ContainsScorer:
    def __init__(self, spec: dict, negate: bool):
        self.spec, self.negate = spec, negate

    def score(self, task, completion) -> ScoreResult:
        out = _output(completion)
        values = self.spec["value"]
        hay = out if self.spec["case_sensitive"] else out.casefold()
        present = [v for v in values if (v if self.spec["case_sensitive"] else v.casefold()) in hay]
        absent = [v for v in values if v not in present]
        n = len(values)
        if not self.negate:
            if not absent:
                return ScoreResult(1.0, f"contains all {n}" if n > 1 else f"contains {_q(values[0], 60)}")
            return ScoreResult(len(present) / n, _clip(
                f"missing {len(absent)} of {n}: " + ", ".join(_q(v, 50) for v in absent[:5])))
        if not present:
            return ScoreResult(1.0, f"none of the {n} forbidden texts present" if n > 1 else
                               f"does not contain {_q(values[0], 60)}")
        return ScoreResult(len(absent) / n, _clip(
            f"contains forbidden {len(present)} of {n}: " + ", ".join(_q(v, 50) for v in present[:5])))


register_scorer("contains", validate=_validate_contains, build=lambda spec, ctx: ContainsScorer(spec, False))
register_scorer("not_contains", validate=_validate_contains, build=lambda spec, ctx: ContainsScorer(spec, True))


# --------------------------------------------------------------------------- regex

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def _validate_regex(spec, file, line):
    _check_keys(spec, ("pattern", "flags", "must_match"), file, line)
    if "pattern" not in spec:
        raise ConfigError("scorer 'regex' needs `pattern`", file, line, "add `pattern: '\\d+ apples'`")
    pattern = spec["pattern"]
    if not isinstance(pattern, str) or pattern == "":
        raise ConfigError("scorer 'regex': `pattern` must be a non-empty text", file, line,
                          "quote it with single quotes: pattern: '^\\d+$'")
    flags = spec.get("flags", "")
    if flags is None:
        flags = ""
    if not isinstance(flags, str) or set(flags) - set(_FLAGS):
        raise ConfigError(f"scorer 'regex': unknown `flags` {flags!r}", file, line,
                          "use a combination of i (ignore case), m (multi-line), s (dot matches newline), "
                          "e.g. `flags: im`")
    spec["flags"] = "".join(sorted(set(flags)))
    _bool(spec, "must_match", True, file, line)
    try:
        re.compile(pattern, _regex_flags(spec["flags"]))
    except re.error as exc:
        pos = f" at position {exc.pos}" if exc.pos is not None else ""
        raise ConfigError(f"scorer 'regex': invalid pattern {pattern!r}: {exc.msg}{pos}", file, line,
                          "fix the regular expression (Python `re` syntax); in YAML use single quotes so "
                          "backslashes stay as written, and escape literal ( [ { . * + ? with a backslash") from None
    return spec


def _regex_flags(flags: str) -> int:
    out = 0
    for ch in flags:
        out |= _FLAGS[ch]
    return out


class RegexScorer:
    def __init__(self, spec: dict):
        self.spec = spec
        self.rx = re.compile(spec["pattern"], _regex_flags(spec["flags"]))

    def score(self, task, completion) -> ScoreResult:
        out = _output(completion)
        m = self.rx.search(out)
        shown = _q(self.spec["pattern"], 60)
        if self.spec["must_match"]:
            if m:
                return ScoreResult(1.0, _clip(f"pattern {shown} matched {_q(m.group(0), 60)}"))
            return ScoreResult(0.0, _clip(f"pattern {shown} not found in {_q(out, 100)}"))
        if m:
            return ScoreResult(0.0, _clip(f"forbidden pattern {shown} matched {_q(m.group(0), 60)}"))
        return ScoreResult(1.0, _clip(f"forbidden pattern {shown} absent"))


register_scorer("regex", validate=_validate_regex, build=lambda spec, ctx: RegexScorer(spec))


# --------------------------------------------------------------------------- json

_FENCE = re.compile(r"```[ \t]*(?:json5?|JSON)?[ \t]*\r?\n(.*?)```", re.DOTALL)
_MAX_JSON_STARTS = 200


def extract_json(text: str, *, extract: bool = True) -> tuple[bool, Any, str]:
    """Find the JSON value in an answer. Returns (found, value, where-or-error)."""
    stripped = text.strip()
    try:
        return True, json.loads(stripped), "whole answer"
    except json.JSONDecodeError as exc:
        whole_error = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if not extract:
        return False, None, whole_error
    for m in _FENCE.finditer(text):
        try:
            return True, json.loads(m.group(1)), "code fence"
        except json.JSONDecodeError:
            continue
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(text) if ch in "{["][:_MAX_JSON_STARTS]
    for i in starts:
        try:
            value, _ = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            continue
        return True, value, "embedded"
    return False, None, "no JSON object or array found"


def _validate_json(spec, file, line):
    _check_keys(spec, ("schema", "fields", "extract"), file, line)
    _bool(spec, "extract", True, file, line)
    if "schema" in spec:
        schema = spec["schema"]
        if not isinstance(schema, (dict, bool)):
            raise ConfigError("scorer 'json': `schema` must be a JSON Schema mapping", file, line,
                              "write e.g. `schema: {type: object, required: [answer]}`")
        import jsonschema

        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.exceptions.SchemaError as exc:
            where = "/".join(str(p) for p in exc.path) or "(top level)"
            raise ConfigError(f"scorer 'json': the schema is not a valid JSON Schema at {where}: {exc.message}",
                              file, line, "fix the schema (see https://json-schema.org/understanding-json-schema/)") from None
    if "fields" in spec:
        fields = spec["fields"]
        if not isinstance(fields, dict) or not fields:
            raise ConfigError("scorer 'json': `fields` must be a non-empty mapping of dotted.path: expected value",
                              file, line, "write e.g. `fields: {answer.city: Paris}`")
        for k in fields:
            if not isinstance(k, str) or not k or any(part == "" for part in k.split(".")):
                raise ConfigError(f"scorer 'json': field path {k!r} is not a dotted path", file, line,
                                  "write paths like `answer.city` or `items.0.name`")
    return spec


_MISSING = object()


def _lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and re.fullmatch(r"-?\d+", part) and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1 and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


class JsonScorer:
    def __init__(self, spec: dict):
        self.spec = spec
        self.validator = None
        if "schema" in spec:
            import jsonschema

            self.validator = jsonschema.validators.validator_for(spec["schema"])(spec["schema"])

    def score(self, task, completion) -> ScoreResult:
        out = _output(completion)
        fields = self.spec.get("fields") or {}
        checks = 1 + (self.validator is not None) + len(fields)
        ok, value, where = extract_json(out, extract=self.spec["extract"])
        if not ok:
            return ScoreResult(0.0, _clip(f"no parseable JSON ({where}); answer starts {_q(out, 80)}"))
        passed, failures = 1, []
        if self.validator is not None:
            errors = sorted(self.validator.iter_errors(value), key=lambda e: list(e.path))
            if errors:
                import jsonschema

                err = jsonschema.exceptions.best_match(errors)
                failures.append(f"schema: {_q(err.message, 90)} at {err.json_path}")
            else:
                passed += 1
        for path, expected in fields.items():
            got = _lookup(value, path)
            if got is _MISSING:
                failures.append(f"{path}: missing (expected {_q(expected, 40)})")
            elif not json_equal(got, expected):
                failures.append(f"{path}: expected {_q(expected, 40)}, got {_q(got, 40)}")
            else:
                passed += 1
        if not failures:
            return ScoreResult(1.0, f"valid JSON; all {checks} checks pass")
        more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        return ScoreResult(passed / checks, _clip(f"{passed}/{checks} checks pass; " + "; ".join(failures[:3]) + more))


register_scorer("json", validate=_validate_json, build=lambda spec, ctx: JsonScorer(spec))


# --------------------------------------------------------------------------- python

_FUNC_REF = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_PY_ARGS = ("task", "output", "reference")


def _validate_python(spec, file, line):
    _check_keys(spec, ("function",), file, line)
    fn = spec.get("function")
    if not isinstance(fn, str) or not _FUNC_REF.fullmatch(fn.strip()):
        raise ConfigError(f"scorer 'python': `function` must look like \"module.path:function_name\", got {fn!r}",
                          file, line, "write e.g. `function: \"evals.scoring:check_answer\"` "
                          "(evals/scoring.py in the project root)")
    spec["function"] = fn.strip()
    return spec


_LOADED_SCORERS: dict[str, tuple[str, int]] = {}
_IMPORT_LOCK = threading.RLock()  # rollouts score in parallel threads; imports must not interleave


def _import_function(ref: str, root: Path) -> Callable:
    with _IMPORT_LOCK:
        return _import_function_locked(ref, root)


def _import_function_locked(ref: str, root: Path) -> Callable:
    module_name, _, attr = ref.partition(":")
    rel = Path(*module_name.split("."))
    fix = (f"create {rel}.py (or {rel}/__init__.py) under the project root {root} defining "
           f"`def {attr.split('.')[-1]}(task, output, reference)`, or fix `function:`")
    root_s = str(Path(root).resolve())
    if root_s in sys.path:
        sys.path.remove(root_s)
    sys.path.insert(0, root_s)  # this project's modules win over same-named ones elsewhere
    source = next((p for p in (Path(root_s) / rel.with_suffix(".py"), Path(root_s) / rel / "__init__.py")
                   if p.is_file()), None)
    loaded = sys.modules.get(module_name)
    if loaded is not None and source is not None:
        # a long-lived process (tests, the Action) may have imported another project's module of that name,
        # or an older version of this one: load the file that is there now
        current = (str(source.resolve()), source.stat().st_mtime_ns)
        if _LOADED_SCORERS.get(module_name) != current or Path(getattr(loaded, "__file__", "") or "").resolve() != source.resolve():
            del sys.modules[module_name]
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
        if source is not None:
            _LOADED_SCORERS[module_name] = (str(source.resolve()), source.stat().st_mtime_ns)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigError(f"scorer 'python': module {module_name!r} not found", None, None, fix) from None
        raise ConfigError(f"scorer 'python': importing {module_name!r} failed: {type(exc).__name__}: {exc}",
                          None, None, "install the missing package or fix the import in your scorer module") from None
    except Exception as exc:  # the user's module failed while importing: report it as their config problem
        raise ConfigError(f"scorer 'python': importing {module_name!r} failed: {type(exc).__name__}: {exc}",
                          None, None, f"fix the error in {rel}.py") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"scorer 'python': {module_name!r} has no {attr!r}", None, None, fix)
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"scorer 'python': {ref!r} is not a function", None, None, fix)
    return obj


def _call_plan(fn: Callable, ref: str) -> tuple[str, ...]:
    """Which of task/output/reference to pass; ConfigError if fn needs anything else."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return _PY_ARGS
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return _PY_ARGS
    names = []
    for p in params:
        if p.name in _PY_ARGS and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(p.name)
        elif p.default is inspect.Parameter.empty and p.kind not in (inspect.Parameter.VAR_POSITIONAL,):
            raise ConfigError(f"scorer 'python': {ref} has a required parameter {p.name!r} that skillopt cannot fill",
                              None, None, "define it as `def fn(task, output, reference)` (keyword arguments)")
    if "output" not in names:
        raise ConfigError(f"scorer 'python': {ref} does not take an `output` parameter", None, None,
                          "define it as `def fn(task, output, reference)`")
    return tuple(names)


def _coerce_result(value: Any) -> tuple[float, str] | str:
    """The user function's return value as (score, feedback), or an error text."""
    feedback = ""
    if isinstance(value, dict):
        if "score" not in value:
            return "returned a mapping without 'score'"
        feedback = value.get("feedback", "")
        value = value["score"]
    elif isinstance(value, tuple):
        if len(value) != 2:
            return f"returned a tuple of {len(value)} items (expected (score, feedback))"
        value, feedback = value
    if isinstance(value, bool):
        score = 1.0 if value else 0.0
    elif isinstance(value, (int, float)):
        score = float(value)
        if math.isnan(score):
            return "returned NaN"
    else:
        return f"returned {type(value).__name__}, expected bool, number, (number, str) or {{'score', 'feedback'}}"
    return min(1.0, max(0.0, score)), "" if feedback is None else str(feedback)


class PythonScorer:
    def __init__(self, spec: dict, ctx: ScorerContext):
        self.ref = spec["function"]
        self.fn = _import_function(self.ref, ctx.project_root)
        self.args = _call_plan(self.fn, self.ref)

    def score(self, task, completion) -> ScoreResult:
        values = {"task": task, "output": _output(completion), "reference": task.reference}
        try:
            result = self.fn(**{k: values[k] for k in self.args})
        except Exception as exc:  # the user's scorer crashed on this answer: score 0, tell reflector and user
            log.warning("python scorer %s raised %s on task %r: %s", self.ref, type(exc).__name__, task.id, exc)
            return ScoreResult(0.0, _clip(f"{type(exc).__name__}: {exc}"))
        coerced = _coerce_result(result)
        if isinstance(coerced, str):
            log.warning("python scorer %s %s on task %r", self.ref, coerced, task.id)
            return ScoreResult(0.0, _clip(f"scorer {self.ref} {coerced}"))
        score, feedback = coerced
        return ScoreResult(score, _clip(feedback or f"{self.ref} scored {score:.2f}"))


register_scorer("python", validate=_validate_python, build=lambda spec, ctx: PythonScorer(spec, ctx))


# --------------------------------------------------------------------------- command

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def scrubbed_env(keep: set[str] | frozenset[str] = frozenset()) -> dict:
    """The environment without secret-looking variables (model-written code runs here), except `keep`."""
    return {k: v for k, v in os.environ.items() if k in keep or not _SECRET_NAME.search(k)}


def wait_process_group(proc: subprocess.Popen, timeout: float, poll: float = 0.02) -> bool:
    """Wait for a `start_new_session` leader to exit WITHOUT reaping it, so its pid stays the group id for
    `kill_process_group`. Returns True if it timed out."""
    deadline = time.monotonic() + timeout
    while True:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(poll, left))


def kill_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole group (leftover children included); a group that is already gone is fine."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_TAIL_BYTES = 65536


def _validate_command(spec, file, line):
    _check_keys(spec, ("run", "timeout", "score_from", "pass_env"), file, line)
    run = spec.get("run")
    if not isinstance(run, str) or not run.strip():
        raise ConfigError("scorer 'command' needs `run`: a shell command", file, line,
                          "write e.g. `run: python check.py \"$ANSWER_FILE\"`")
    if "timeout" in spec:
        t = spec["timeout"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            raise ConfigError(f"scorer 'command': `timeout` must be a positive number of seconds, got {t!r}",
                              file, line, "write e.g. `timeout: 30`")
        spec["timeout"] = float(t)
    sf = spec.setdefault("score_from", "exit_code")
    if sf not in ("exit_code", "stdout"):
        raise ConfigError(f"scorer 'command': unknown `score_from` {sf!r}", file, line,
                          "use `score_from: exit_code` (0 passes) or `score_from: stdout` (last number printed)")
    pe = spec.setdefault("pass_env", [])
    if isinstance(pe, str):
        pe = spec["pass_env"] = [pe]
    if not isinstance(pe, list) or not all(isinstance(x, str) and x for x in pe):
        raise ConfigError("scorer 'command': `pass_env` must be a list of environment variable names", file, line,
                          "write e.g. `pass_env: [MY_SERVICE_TOKEN]`")
    return spec


def _read_tail(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - _TAIL_BYTES))
        return fh.read().decode("utf-8", errors="replace")


def _rmtree(path: str) -> None:
    # a command may leave read-only directories behind; make them writable and retry once
    def fix_and_retry(func, p, _exc):
        os.chmod(os.path.dirname(p), 0o700)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, 0o700)
        func(p)

    shutil.rmtree(path, onerror=fix_and_retry)


class CommandScorer:
    def __init__(self, spec: dict, ctx: ScorerContext):
        self.spec = spec
        self.root = Path(ctx.project_root).resolve()
        self.timeout = float(spec.get("timeout", ctx.command_timeout))

    def _env(self, answer_file: Path) -> dict:
        keep = set(self.spec["pass_env"])
        env = scrubbed_env(keep)
        env["ANSWER_FILE"] = str(answer_file)
        env["SKILLOPT_PROJECT_ROOT"] = str(self.root)
        return env

    def score(self, task, completion) -> ScoreResult:
        out = _output(completion)
        tmp = tempfile.mkdtemp(prefix="skillopt-score-")
        try:
            work = Path(tmp) / "work"
            work.mkdir()
            answer = work / "answer.txt"
            answer.write_bytes(out.encode("utf-8", errors="replace"))
            out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
            with open(answer, "rb") as stdin, open(out_path, "wb") as so, open(err_path, "wb") as se:
                try:
                    proc = subprocess.Popen(["bash", "-c", self.spec["run"]], cwd=work, env=self._env(answer),
                                            stdin=stdin, stdout=so, stderr=se, start_new_session=True)
                except FileNotFoundError:
                    raise ConfigError("scorer 'command': `bash` was not found on PATH", None, None,
                                      "install bash, or run skillopt where bash is available") from None
                timed_out = wait_process_group(proc, self.timeout)
                kill_process_group(proc)  # leftovers of the command included
                code = proc.wait()
            stdout, stderr = _read_tail(out_path), _read_tail(err_path)
        finally:
            _rmtree(tmp)
        return self._result(timed_out, code, stdout, stderr)

    def _result(self, timed_out: bool, code: int, stdout: str, stderr: str) -> ScoreResult:
        tail = f"; stderr {_tail(stderr)}" if stderr.strip() else f"; stdout {_tail(stdout)}" if stdout.strip() else ""
        if timed_out:
            return ScoreResult(0.0, _clip(f"timed out after {self.timeout:g}s{tail}"))
        status = f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
        if self.spec["score_from"] == "exit_code":
            if code == 0:
                return ScoreResult(1.0, "command passed (exit code 0)")
            return ScoreResult(0.0, _clip(f"command failed: {status}{tail}"))
        numbers = _NUMBER.findall(stdout)
        if not numbers:
            return ScoreResult(0.0, _clip(f"no number in the command's stdout ({status}){tail}"))
        score = min(1.0, max(0.0, float(numbers[-1])))
        fb = f"score {numbers[-1]} from stdout"
        if code != 0:
            fb += f" ({status}){tail}"
        elif stderr.strip():
            fb += f"; stderr {_tail(stderr)}"
        return ScoreResult(score, _clip(fb))


register_scorer("command", validate=_validate_command, build=lambda spec, ctx: CommandScorer(spec, ctx))


# --------------------------------------------------------------------------- llm_rubric

JUDGE_TEMPLATE = "judge.md.j2"
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
OPEN_TAG, CLOSE_TAG = "<untrusted_output>", "</untrusted_output>"
_TAGS = re.compile(r"<\s*(/?)\s*(untrusted_output|task|reference)\s*>", re.IGNORECASE)
JUDGE_MAX_CHARS = 24000


def neutralise(text: str) -> str:
    """Defang anything that looks like one of the judge prompt's delimiters."""
    return _TAGS.sub(lambda m: f"[{m.group(1)}{m.group(2)} (quoted)]", text)


def _shorten(text: str, limit: int = JUDGE_MAX_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters omitted ...]\n{text[-half:]}"


def _validate_rubric(spec, file, line):
    _check_keys(spec, ("rubric", "pass_score"), file, line)
    rubric = spec.get("rubric")
    if not isinstance(rubric, str) or not rubric.strip():
        raise ConfigError("scorer 'llm_rubric' needs `rubric`: what a good answer does", file, line,
                          "write e.g. `rubric: \"Names the capital and cites one source.\"`")
    if "pass_score" in spec:
        ps = spec["pass_score"]
        if isinstance(ps, bool) or not isinstance(ps, (int, float)) or not 0 <= ps <= 1:
            raise ConfigError(f"scorer 'llm_rubric': `pass_score` must be a number in [0, 1], got {ps!r}", file, line,
                              "write e.g. `pass_score: 0.7`")
        spec["pass_score"] = float(ps)
    return spec


def parse_judge(text: str) -> tuple[float, str] | None:
    ok, value, _ = extract_json(text or "")
    if not ok or not isinstance(value, dict):
        return None
    score = value.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        return None
    reason = value.get("reason", "")
    return float(score), reason if isinstance(reason, str) else json.dumps(reason)


class RubricScorer:
    def __init__(self, spec: dict, ctx: ScorerContext):
        if ctx.judge is None:
            raise ConfigError("llm_rubric needs a `judge:` model in the config", None, None,
                              "add `judge: {provider: openai, model: ...}` to .github/skillopt.yml")
        self.spec, self.judge = spec, ctx.judge

    def prompts(self, task, completion) -> tuple[str, list[dict]]:
        from .render import render

        ref = task.reference
        reference = None if ref is None else ref if isinstance(ref, str) else json.dumps(ref, ensure_ascii=False)
        common = dict(rubric=self.spec["rubric"], task_text=neutralise(_shorten(task.prompt_text())),
                      reference=None if reference is None else neutralise(_shorten(reference)),
                      output=neutralise(_shorten(_output(completion))), open_tag=OPEN_TAG, close_tag=CLOSE_TAG)
        system = render(JUDGE_TEMPLATE, part="system", **common)
        user = render(JUDGE_TEMPLATE, part="user", **common)
        return system, [{"role": "user", "content": user}]

    def score(self, task, completion) -> ScoreResult:
        system, messages = self.prompts(task, completion)
        reply = self.judge.complete(system, messages, seed=0, json_schema=JUDGE_SCHEMA)
        parsed = parse_judge(reply.text)
        if parsed is None:
            retry = messages + [
                {"role": "assistant", "content": reply.text or ""},
                {"role": "user", "content": 'That was not the required JSON. Reply with exactly one JSON object '
                                            '{"score": <number from 0 to 1>, "reason": "<short reason>"} and nothing else.'},
            ]
            reply = self.judge.complete(system, retry, seed=0, json_schema=JUDGE_SCHEMA)
            parsed = parse_judge(reply.text)
        if parsed is None:
            return ScoreResult(0.0, _clip(f"judge answer unparseable: {_q(reply.text or '', 80)}"))
        judged, reason = parsed
        fb = f"judge {judged:.2f}: {_q(reason, 220)}"
        if "pass_score" in self.spec:
            verdict = "pass" if judged >= self.spec["pass_score"] else "fail"
            return ScoreResult(float(judged >= self.spec["pass_score"]),
                               _clip(f"{verdict} (judge {judged:.2f} vs pass_score {self.spec['pass_score']:g}): "
                                     f"{_q(reason, 200)}"))
        return ScoreResult(judged, _clip(fb))


register_scorer("llm_rubric", validate=_validate_rubric, build=lambda spec, ctx: RubricScorer(spec, ctx))
