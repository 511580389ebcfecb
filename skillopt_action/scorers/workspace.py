"""Workspace scorers: they read the workspace an agent harness target left behind (`completion.workspace`).

Paths are relative to the workspace and may not leave it.

  workspace_command  run (bash, in the workspace), timeout, score_from: exit_code | stdout, pass_env
  file_exists        path
  file_contains      path, value (text or list: score = fraction found), case_sensitive: false
  file_matches       path, pattern, flags (i, m, s)
  diff_paths         allowed: [globs]. Every path changed, added or deleted since the baseline commit
                     (git diff + untracked files, .gitignore respected), and anything the agent left
                     next to the workspace, must match one of the globs (`*` stays within a directory,
                     `**` crosses directories, a trailing `/` means everything below). The installed
                     skill file is ignored. Otherwise 0, with the offending paths in the feedback.
"""

from __future__ import annotations

import fnmatch
import re
import tempfile
from pathlib import Path

from ..errors import ConfigError
from ..procs import rmtree
from ..text import clip, quote
from ..types import ScoreResult
from ..workspace import changed_paths, inside, outside_entries
from .base import bool_setting, check_keys, register_scorer, texts_setting
from .code import CommandScorer, validate_command
from .text import regex_flags, validate_regex


def _workspace(completion) -> Path | None:
    ws = getattr(completion, "workspace", None)
    return Path(ws) if ws and Path(ws).is_dir() else None


_NO_WS = ("no workspace to inspect: workspace scorers need an agent harness target "
          "(provider command, claude-code or codex)")


def _validate_path_key(spec: dict, file, line, key: str = "path") -> None:
    if key not in spec or not isinstance(spec[key], str) or not spec[key].strip():
        raise ConfigError(f"scorer {spec['type']!r} needs `{key}`: a path relative to the workspace", file, line,
                          f"write e.g. `{key}: src/app.py`")
    p = spec[key]
    if Path(p).is_absolute() or ".." in Path(p).parts:
        raise ConfigError(f"scorer {spec['type']!r}: `{key}` {p!r} must stay inside the workspace", file, line,
                          "give a relative path without `..`, e.g. `src/app.py`")


def _read_ws_file(ws: Path, rel: str) -> tuple[str | None, str]:
    p = inside(ws, rel)
    if p is None:
        return None, f"{rel!r} points outside the workspace"
    if not p.exists():
        return None, f"{rel!r} does not exist"
    if not p.is_file():
        return None, f"{rel!r} is not a file"
    return p.read_text(encoding="utf-8", errors="replace"), ""


class WorkspaceCommandScorer(CommandScorer):
    """The `command` scorer, run inside the agent's workspace (e.g. its test suite)."""

    def score(self, task, completion) -> ScoreResult:
        ws = _workspace(completion)
        if ws is None:
            return ScoreResult(0.0, _NO_WS)
        tmp = Path(tempfile.mkdtemp(prefix="skillopt-wscore-"))
        try:
            answer = tmp / "answer.txt"
            answer.write_bytes((completion.text or "").encode("utf-8", errors="replace"))
            return self.run_command(ws, answer, tmp, extra_env={"SKILLOPT_WORKSPACE": str(ws)})
        finally:
            rmtree(tmp)


register_scorer("workspace_command", validate=validate_command,
                build=lambda spec, ctx: WorkspaceCommandScorer(spec, ctx), needs_workspace=True)


def _validate_file_exists(spec, file, line):
    check_keys(spec, ("path",), file, line)
    _validate_path_key(spec, file, line)
    return spec


class FileExistsScorer:
    def __init__(self, spec):
        self.spec = spec

    def score(self, task, completion) -> ScoreResult:
        ws = _workspace(completion)
        if ws is None:
            return ScoreResult(0.0, _NO_WS)
        rel = self.spec["path"]
        p = inside(ws, rel)
        if p is None:
            return ScoreResult(0.0, clip(f"{rel!r} points outside the workspace"))
        if p.exists():
            return ScoreResult(1.0, f"{rel!r} exists")
        return ScoreResult(0.0, clip(f"{rel!r} does not exist in the workspace"))


register_scorer("file_exists", validate=_validate_file_exists, build=lambda spec, ctx: FileExistsScorer(spec),
                needs_workspace=True)


def _validate_file_contains(spec, file, line):
    check_keys(spec, ("path", "value", "case_sensitive"), file, line)
    _validate_path_key(spec, file, line)
    texts_setting(spec, "value", file, line, required=True)
    bool_setting(spec, "case_sensitive", False, file, line)
    return spec


class FileContainsScorer:
    def __init__(self, spec):
        self.spec = spec

    def score(self, task, completion) -> ScoreResult:
        ws = _workspace(completion)
        if ws is None:
            return ScoreResult(0.0, _NO_WS)
        text, why = _read_ws_file(ws, self.spec["path"])
        if text is None:
            return ScoreResult(0.0, clip(why))
        cs = self.spec["case_sensitive"]
        hay = text if cs else text.casefold()
        values = self.spec["value"]
        absent = [v for v in values if (v if cs else v.casefold()) not in hay]
        rel = self.spec["path"]
        if not absent:
            return ScoreResult(1.0, clip(f"{rel!r} contains {len(values)} of {len(values)}"))
        return ScoreResult((len(values) - len(absent)) / len(values), clip(
            f"{rel!r} lacks {len(absent)} of {len(values)}: " + ", ".join(quote(v, 50) for v in absent[:5])
            + f"; it starts {quote(text, 120)}"))


register_scorer("file_contains", validate=_validate_file_contains, build=lambda spec, ctx: FileContainsScorer(spec),
                needs_workspace=True)


def _validate_file_matches(spec, file, line):
    check_keys(spec, ("path", "pattern", "flags"), file, line)
    _validate_path_key(spec, file, line)
    # reuse the regex scorer's checks (pattern compiles, flags known) under this scorer's name
    probe = {k: v for k, v in spec.items() if k != "path"}
    checked = validate_regex(probe, file, line)
    spec["flags"] = checked["flags"]
    return spec


class FileMatchesScorer:
    def __init__(self, spec):
        self.spec = spec
        self.rx = re.compile(spec["pattern"], regex_flags(spec["flags"]))

    def score(self, task, completion) -> ScoreResult:
        ws = _workspace(completion)
        if ws is None:
            return ScoreResult(0.0, _NO_WS)
        text, why = _read_ws_file(ws, self.spec["path"])
        if text is None:
            return ScoreResult(0.0, clip(why))
        m = self.rx.search(text)
        rel, shown = self.spec["path"], quote(self.spec["pattern"], 60)
        if m:
            return ScoreResult(1.0, clip(f"{rel!r} matches {shown}: {quote(m.group(0), 60)}"))
        return ScoreResult(0.0, clip(f"pattern {shown} not found in {rel!r}, which starts {quote(text, 120)}"))


register_scorer("file_matches", validate=_validate_file_matches, build=lambda spec, ctx: FileMatchesScorer(spec),
                needs_workspace=True)


def _validate_diff_paths(spec, file, line):
    check_keys(spec, ("allowed",), file, line)
    allowed = spec.get("allowed")
    if isinstance(allowed, str):
        allowed = [allowed]
    if not isinstance(allowed, list) or not all(isinstance(g, str) and g.strip() for g in allowed):
        raise ConfigError("scorer 'diff_paths' needs `allowed`: a list of path globs the agent may change", file,
                          line, "write e.g. `allowed: [\"src/**\", \"README.md\"]` (an empty list [] allows nothing)")
    for g in allowed:
        if Path(g).is_absolute() or ".." in Path(g).parts:
            raise ConfigError(f"scorer 'diff_paths': glob {g!r} must be relative to the workspace", file, line,
                              "write globs like `src/**` or `docs/*.md`")
    spec["allowed"] = list(allowed)
    return spec


def glob_match(path: str, pattern: str) -> bool:
    """`*`, `?`, `[..]` within one path segment; `**` across segments; `dir/` = everything below dir."""
    if pattern.endswith("/"):
        pattern += "**"
    rx, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            rx += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            rx += ".*"
            i += 2
        elif pattern[i] == "*":
            rx += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            rx += "[^/]"
            i += 1
        elif pattern[i] == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                rx += re.escape("[")
                i += 1
            else:
                rx += fnmatch.translate(pattern[i:j + 1])[4:-3]
                i = j + 1
        else:
            rx += re.escape(pattern[i])
            i += 1
    return re.fullmatch(rx, path) is not None


class DiffPathsScorer:
    def __init__(self, spec):
        self.spec = spec

    def score(self, task, completion) -> ScoreResult:
        ws = _workspace(completion)
        if ws is None:
            return ScoreResult(0.0, _NO_WS)
        extra = completion.extra or {}
        skill_rel = extra.get("skill_path")
        changed = [p for p in changed_paths(ws, extra.get("baseline")) if p != skill_rel]
        allowed = self.spec["allowed"]
        bad = [p for p in changed if not any(glob_match(p, g) for g in allowed)] + outside_entries(ws)
        if bad:
            shown = ", ".join(quote(p, 60) for p in bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
            return ScoreResult(0.0, clip(f"changed {len(bad)} path(s) outside the allowed "
                                          f"{', '.join(allowed) or '(none)'}: {shown}"))
        if not changed:
            return ScoreResult(1.0, "no files changed")
        return ScoreResult(1.0, clip(f"all {len(changed)} changed path(s) allowed"))


register_scorer("diff_paths", validate=_validate_diff_paths, build=lambda spec, ctx: DiffPathsScorer(spec),
                needs_workspace=True)
