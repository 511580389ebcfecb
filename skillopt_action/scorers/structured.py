"""The `json` scorer: the answer parses as JSON, matches a schema, and has expected field values."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from ..errors import ConfigError
from ..text import clip, quote
from .base import ScoreResult, bool_setting, check_keys, output_of, register_scorer

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
    check_keys(spec, ("schema", "fields", "extract"), file, line)
    bool_setting(spec, "extract", True, file, line)
    if "schema" in spec:
        schema = spec["schema"]
        if not isinstance(schema, (dict, bool)):
            raise ConfigError("scorer 'json': `schema` must be a JSON Schema mapping", file, line,
                              "write e.g. `schema: {type: object, required: [answer]}`")
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)  # type: ignore[arg-type]
        except jsonschema.exceptions.SchemaError as exc:
            where = "/".join(str(p) for p in exc.path) or "(top level)"
            raise ConfigError(
                f"scorer 'json': the schema is not a valid JSON Schema at {where}: {exc.message}",
                file,
                line,
                "fix the schema (see https://json-schema.org/understanding-json-schema/)",
            ) from None
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
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


class JsonScorer:
    def __init__(self, spec: dict):
        self.spec = spec
        self.validator = None
        if "schema" in spec:
            self.validator = jsonschema.validators.validator_for(spec["schema"])(spec["schema"])

    def score(self, task, completion) -> ScoreResult:
        out = output_of(completion)
        fields = self.spec.get("fields") or {}
        checks = 1 + (self.validator is not None) + len(fields)
        ok, value, where = extract_json(out, extract=self.spec["extract"])
        if not ok:
            return ScoreResult(0.0, clip(f"no parseable JSON ({where}); answer starts {quote(out, 80)}"))
        passed, failures = 1, []
        if self.validator is not None:
            errors = sorted(self.validator.iter_errors(value), key=lambda e: list(e.path))
            if errors:
                err = jsonschema.exceptions.best_match(errors)
                failures.append(f"schema: {quote(err.message, 90)} at {err.json_path}")
            else:
                passed += 1
        for path, expected in fields.items():
            got = _lookup(value, path)
            if got is _MISSING:
                failures.append(f"{path}: missing (expected {quote(expected, 40)})")
            elif not json_equal(got, expected):
                failures.append(f"{path}: expected {quote(expected, 40)}, got {quote(got, 40)}")
            else:
                passed += 1
        if not failures:
            return ScoreResult(1.0, f"valid JSON; all {checks} checks pass")
        more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        return ScoreResult(passed / checks, clip(f"{passed}/{checks} checks pass; " + "; ".join(failures[:3]) + more))


register_scorer("json", validate=_validate_json, build=lambda spec, ctx: JsonScorer(spec))
