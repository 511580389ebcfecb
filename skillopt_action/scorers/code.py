"""Scorers that run the user's code: `python` (a function in the project) and `command` (a bash command).

The answer is untrusted and commands often execute it: a `command` runs in a fresh temporary directory, in
its own process group (killed on timeout and after it exits), without secret-looking environment variables
unless listed in `pass_env`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import re
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..procs import read_tail, rmtree, run_in_group, scrubbed_env
from ..text import clip, quote_tail
from .base import ScorerContext, ScoreResult, check_keys, output_of, register_scorer

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- python

_FUNC_REF = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_PY_ARGS = ("task", "output", "reference")


def _validate_python(spec, file, line):
    check_keys(spec, ("function",), file, line)
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
        if (
            _LOADED_SCORERS.get(module_name) != current
            or Path(getattr(loaded, "__file__", "") or "").resolve() != source.resolve()
        ):
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
        values = {"task": task, "output": output_of(completion), "reference": task.reference}
        try:
            result = self.fn(**{k: values[k] for k in self.args})
        except Exception as exc:  # the user's scorer crashed on this answer: score 0, tell reflector and user
            log.warning("python scorer %s raised %s on task %r: %s", self.ref, type(exc).__name__, task.id, exc)
            return ScoreResult(0.0, clip(f"{type(exc).__name__}: {exc}"))
        coerced = _coerce_result(result)
        if isinstance(coerced, str):
            log.warning("python scorer %s %s on task %r", self.ref, coerced, task.id)
            return ScoreResult(0.0, clip(f"scorer {self.ref} {coerced}"))
        score, feedback = coerced
        return ScoreResult(score, clip(feedback or f"{self.ref} scored {score:.2f}"))

register_scorer("python", validate=_validate_python, build=lambda spec, ctx: PythonScorer(spec, ctx))


# --------------------------------------------------------------------------- command

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def validate_command(spec: dict, file: str | None, line: int | None) -> dict:
    check_keys(spec, ("run", "timeout", "score_from", "pass_env"), file, line)
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
        tmp = Path(tempfile.mkdtemp(prefix="skillopt-score-"))
        try:
            work = tmp / "work"
            work.mkdir()
            answer = work / "answer.txt"
            answer.write_bytes(output_of(completion).encode("utf-8", errors="replace"))
            with open(answer, "rb") as stdin:
                return self.run_command(work, answer, tmp, stdin=stdin)
        finally:
            rmtree(tmp)

    def run_command(self, cwd: Path, answer: Path, scratch: Path, *, stdin=None,
                    extra_env: dict[str, str] | None = None) -> ScoreResult:
        """Run `run` with bash in `cwd` (its own process group, output in `scratch`) and score its result."""
        out_path, err_path = scratch / "stdout", scratch / "stderr"
        env = {**self._env(answer), **(extra_env or {})}
        with open(out_path, "wb") as so, open(err_path, "wb") as se:
            try:
                res = run_in_group(["bash", "-c", self.spec["run"]], cwd=cwd, env=env, stdin=stdin, stdout=so,
                                   stderr=se, timeout=self.timeout)
            except FileNotFoundError:
                raise ConfigError(f"scorer {self.spec['type']!r}: `bash` was not found on PATH", None, None,
                                  "install bash, or run skillopt where bash is available") from None
        return self._result(res.timed_out, res.exit_code, read_tail(out_path), read_tail(err_path))

    def _result(self, timed_out: bool, code: int, stdout: str, stderr: str) -> ScoreResult:
        tail = (
            f"; stderr {quote_tail(stderr)}"
            if stderr.strip()
            else f"; stdout {quote_tail(stdout)}"
            if stdout.strip()
            else ""
        )
        if timed_out:
            return ScoreResult(0.0, clip(f"timed out after {self.timeout:g}s{tail}"))
        status = f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
        if self.spec["score_from"] == "exit_code":
            if code == 0:
                return ScoreResult(1.0, "command passed (exit code 0)")
            return ScoreResult(0.0, clip(f"command failed: {status}{tail}"))
        numbers = _NUMBER.findall(stdout)
        if not numbers:
            return ScoreResult(0.0, clip(f"no number in the command's stdout ({status}){tail}"))
        score = min(1.0, max(0.0, float(numbers[-1])))
        fb = f"score {numbers[-1]} from stdout"
        if code != 0:
            fb += f" ({status}){tail}"
        elif stderr.strip():
            fb += f"; stderr {quote_tail(stderr)}"
        return ScoreResult(score, clip(fb))


register_scorer("command", validate=validate_command, build=lambda spec, ctx: CommandScorer(spec, ctx))
