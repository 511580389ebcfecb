"""Scorers of the answer's text: exact, f1, contains, not_contains, regex (settings: see scorers/base.py)."""

from __future__ import annotations

import collections
import json
import re
import string

from ..errors import ConfigError
from ..text import clip, quote
from ..types import Task
from .base import ScoreResult, bool_setting, check_keys, output_of, register_scorer, texts_setting

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


def expected_answers(spec: dict, task: Task) -> list[str]:
    if "value" in spec:
        return list(spec["value"])
    ref = task.reference
    if ref is None:
        file, line = task.where()
        raise ConfigError(f"task {task.id!r}: scorer {spec['type']!r} has no `value` and the task has no `reference`",
                          file, line, "add `reference: ...` to the task, or `value: ...` to the scorer")
    if isinstance(ref, list):
        return [r if isinstance(r, str) else json.dumps(r) for r in ref]
    return [ref if isinstance(ref, str) else json.dumps(ref) if isinstance(ref, (dict, bool)) else str(ref)]


def check_gold(spec: dict, task: Task) -> None:
    golds = expected_answers(spec, task)
    if not golds:
        file, line = task.where()
        raise ConfigError(f"task {task.id!r}: `reference` is an empty list", file, line,
                          "give at least one reference answer")


# --------------------------------------------------------------------------- exact

def _validate_exact(spec, file, line):
    check_keys(spec, ("value", "case_sensitive", "normalize"), file, line)
    texts_setting(spec, "value", file, line, required=False)
    bool_setting(spec, "case_sensitive", False, file, line)
    bool_setting(spec, "normalize", True, file, line)
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
        golds = expected_answers(self.spec, task)
        out = output_of(completion)
        got = self._norm(out)
        for g in golds:
            if self._norm(g) == got:
                return ScoreResult(1.0, f"matches {quote(g, 60)}")
        expected = quote(golds[0], 60) if len(golds) == 1 else "one of " + ", ".join(quote(g, 40) for g in golds[:4])
        return ScoreResult(0.0, clip(f"expected {expected}, got {quote(out, 100)}"))


register_scorer("exact", validate=_validate_exact, build=lambda spec, ctx: ExactScorer(spec), check_task=check_gold)


# --------------------------------------------------------------------------- f1

def _validate_f1(spec, file, line):
    check_keys(spec, ("value",), file, line)
    texts_setting(spec, "value", file, line, required=False)
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
        out = output_of(completion)
        best = max(((token_f1(out, g), g) for g in expected_answers(self.spec, task)), key=lambda x: x[0][0])
        (f1, missing, extra), gold = best
        fb = f"token F1 {f1:.2f} against {quote(gold, 60)}"
        if missing:
            fb += f"; missing {quote(' '.join(missing), 60)}"
        if extra:
            fb += f"; {len(extra)} extra token{'s' if len(extra) != 1 else ''}"
        return ScoreResult(f1, clip(fb))


register_scorer("f1", validate=_validate_f1, build=lambda spec, ctx: F1Scorer(spec), check_task=check_gold)


# --------------------------------------------------------------------------- contains / not_contains

def _validate_contains(spec, file, line):
    check_keys(spec, ("value", "case_sensitive"), file, line)
    texts_setting(spec, "value", file, line, required=True)
    bool_setting(spec, "case_sensitive", False, file, line)
    return spec


class ContainsScorer:
    def __init__(self, spec: dict, negate: bool):
        self.spec, self.negate = spec, negate

    def score(self, task, completion) -> ScoreResult:
        out = output_of(completion)
        values = self.spec["value"]
        hay = out if self.spec["case_sensitive"] else out.casefold()
        present = [v for v in values if (v if self.spec["case_sensitive"] else v.casefold()) in hay]
        absent = [v for v in values if v not in present]
        n = len(values)
        if not self.negate:
            if not absent:
                return ScoreResult(1.0, f"contains all {n}" if n > 1 else f"contains {quote(values[0], 60)}")
            return ScoreResult(len(present) / n, clip(
                f"missing {len(absent)} of {n}: " + ", ".join(quote(v, 50) for v in absent[:5])))
        if not present:
            return ScoreResult(1.0, f"none of the {n} forbidden texts present" if n > 1 else
                               f"does not contain {quote(values[0], 60)}")
        return ScoreResult(len(absent) / n, clip(
            f"contains forbidden {len(present)} of {n}: " + ", ".join(quote(v, 50) for v in present[:5])))


register_scorer("contains", validate=_validate_contains, build=lambda spec, ctx: ContainsScorer(spec, False))
register_scorer("not_contains", validate=_validate_contains, build=lambda spec, ctx: ContainsScorer(spec, True))


# --------------------------------------------------------------------------- regex

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def validate_regex(spec, file, line):
    check_keys(spec, ("pattern", "flags", "must_match"), file, line)
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
    bool_setting(spec, "must_match", True, file, line)
    try:
        re.compile(pattern, regex_flags(spec["flags"]))
    except re.error as exc:
        pos = f" at position {exc.pos}" if exc.pos is not None else ""
        raise ConfigError(f"scorer 'regex': invalid pattern {pattern!r}: {exc.msg}{pos}", file, line,
                          "fix the regular expression (Python `re` syntax); in YAML use single quotes so "
                          "backslashes stay as written, and escape literal ( [ { . * + ? with a backslash") from None
    return spec


def regex_flags(flags: str) -> int:
    out = 0
    for ch in flags:
        out |= _FLAGS[ch]
    return out


class RegexScorer:
    def __init__(self, spec: dict):
        self.spec = spec
        self.rx = re.compile(spec["pattern"], regex_flags(spec["flags"]))

    def score(self, task, completion) -> ScoreResult:
        out = output_of(completion)
        m = self.rx.search(out)
        shown = quote(self.spec["pattern"], 60)
        if self.spec["must_match"]:
            if m:
                return ScoreResult(1.0, clip(f"pattern {shown} matched {quote(m.group(0), 60)}"))
            return ScoreResult(0.0, clip(f"pattern {shown} not found in {quote(out, 100)}"))
        if m:
            return ScoreResult(0.0, clip(f"forbidden pattern {shown} matched {quote(m.group(0), 60)}"))
        return ScoreResult(1.0, clip(f"forbidden pattern {shown} absent"))


register_scorer("regex", validate=validate_regex, build=lambda spec, ctx: RegexScorer(spec))
