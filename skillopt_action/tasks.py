"""Eval tasks: loading YAML/JSONL task files and assigning train/val/test splits.

A task file is YAML (a list of tasks, or a mapping with `tasks:` and optional
`defaults:`) or JSONL (one task object per line). A task has:

  id         unique string
  input      text, or a list of chat messages {role: user|assistant, content}
  reference  optional expected answer (scorers such as `exact` use it)
  scorers    list of scorer specs (see scorers.py); a bare string means {type: NAME}
  split      optional: train | val | test (otherwise assigned by the config's ratios)
  metadata   optional mapping, passed through to reports
  fixture    optional directory (relative to the task file) copied into an agent's workspace
"""

from __future__ import annotations

import glob
import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import ConfigError, ConfigErrors
from .scorers import validate_spec
from .types import Task
from .yamlfile import Located, load

__all__ = ["SPLITS", "Task", "assign_splits", "dir_digest", "load_task_file", "load_tasks"]

SPLITS = ("train", "val", "test")
TASK_KEYS = {"id", "input", "reference", "scorers", "split", "metadata", "fixture", "pass_threshold"}


def _err(msg: str, container: Any, key: Any = None, fix: str | None = None) -> ConfigError:
    file = getattr(container, "file", None)
    line = (
        container.line_of(key)
        if key is not None and hasattr(container, "line_of")
        else getattr(container, "line", None)
    )
    return ConfigError(msg, file, line, fix)


def dir_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _normalise_scorers(raw: Any, container: Any, key: Any) -> tuple:
    if raw is None:
        return ()
    if isinstance(raw, (str, dict)):
        raw = [raw]
    if not isinstance(raw, list):
        raise _err("`scorers` must be a list", container, key, "write `scorers: [{type: exact}]`")
    out = []
    for i, spec in enumerate(raw):
        line = raw.line_of(i) if hasattr(raw, "line_of") else getattr(container, "line", None)
        where = (getattr(container, "file", None), line)
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, dict):
            raise ConfigError("a scorer must be a name or a mapping with `type`", *where,
                              "write `- type: contains` with its settings below")
        out.append(validate_spec(spec, *where))
    return tuple(out)


def _parse_task(raw: Any, file: str, line: int, base_dir: Path, defaults: dict) -> Task:
    if not isinstance(raw, dict):
        raise ConfigError("a task must be a mapping", file, line, "write `- id: my-task` followed by `input: ...`")
    if not isinstance(raw, Located):
        loc = Located(raw)
        loc.file, loc.line = file, line
        raw = loc
    unknown = sorted(set(raw) - TASK_KEYS)
    if unknown:
        raise _err(f"unknown task field {unknown[0]!r}", raw, unknown[0],
                   f"use only: {', '.join(sorted(TASK_KEYS))} (put extra data under `metadata:`)")
    if "id" not in raw:
        raise _err("task has no `id`", raw, None, "add a unique `id: some-name`")
    tid = raw["id"]
    if not isinstance(tid, (str, int)) or isinstance(tid, bool) or str(tid).strip() == "":
        raise _err("`id` must be a non-empty string", raw, "id", "write `id: my-task-1`")
    tid = str(tid)
    if "input" not in raw:
        raise _err(f"task {tid!r} has no `input`", raw, None, "add `input: <the prompt>` or a list of chat messages")
    inp = raw["input"]
    if isinstance(inp, list):
        msgs = []
        for i, m in enumerate(inp):
            ml = inp.line_of(i) if hasattr(inp, "line_of") else raw.line_of("input")
            if not isinstance(m, dict) or set(m) - {"role", "content"} or "content" not in m:
                raise ConfigError(f"task {tid!r}: each input message needs `role` and `content`", file, ml,
                                  "write `- {role: user, content: \"...\"}`")
            if m.get("role", "user") not in ("user", "assistant"):
                raise ConfigError(f"task {tid!r}: message role {m.get('role')!r} is not allowed", file, ml,
                                  "use role user or assistant; the skill is the system prompt")
            msgs.append({"role": m.get("role", "user"), "content": str(m["content"])})
        if not msgs or msgs[-1]["role"] != "user":
            raise _err(f"task {tid!r}: the last input message must be from the user", raw, "input",
                       "end the message list with `- {role: user, content: ...}`")
        inp = tuple(msgs)
    elif isinstance(inp, (str, int, float)) and not isinstance(inp, bool):
        inp = str(inp)
    else:
        raise _err(f"task {tid!r}: `input` must be text or a list of messages", raw, "input",
                   "write `input: \"the prompt\"`")
    split = raw.get("split")
    if split is not None and split not in SPLITS:
        raise _err(f"task {tid!r}: unknown split {split!r}", raw, "split", "use train, val or test")
    scorers = _normalise_scorers(raw["scorers"], raw, "scorers") if "scorers" in raw else defaults.get("scorers", ())
    if not scorers:
        raise _err(f"task {tid!r} has no scorers", raw, None,
                   "add `scorers: [{type: exact}]` to the task, or `defaults: {scorers: [...]}` to the file")
    meta = raw.get("metadata") or {}
    if not isinstance(meta, dict):
        raise _err(f"task {tid!r}: `metadata` must be a mapping", raw, "metadata", "write `metadata: {key: value}`")
    fixture = fixture_digest = None
    if raw.get("fixture") is not None:
        fpath = (base_dir / str(raw["fixture"])).resolve()
        if not fpath.is_dir():
            raise _err(f"task {tid!r}: fixture directory {str(raw['fixture'])!r} not found", raw, "fixture",
                       f"create {fpath} or fix the path (it is relative to the task file)")
        fixture, fixture_digest = str(fpath), dir_digest(fpath)
    pt = raw.get("pass_threshold")
    if pt is not None and (not isinstance(pt, (int, float)) or not 0 <= pt <= 1):
        raise _err(f"task {tid!r}: `pass_threshold` must be a number in [0, 1]", raw, "pass_threshold",
                   "write e.g. `pass_threshold: 0.5`")
    ref = raw.get("reference")
    return Task(id=tid, input=inp, scorers=scorers, reference=ref, split=split, metadata=dict(meta),
                fixture=fixture, fixture_digest=fixture_digest, source=f"{file}:{line}",
                pass_threshold=float(pt) if pt is not None else None)


def load_task_file(path: Path, problems: list[ConfigError] | None = None) -> list[Task]:
    """The tasks of one YAML/JSONL file. Raises the first ConfigError, or, when `problems` is given, appends
    every bad task's error to it and returns the good tasks (how `skillopt validate` reports all at once)."""
    file = str(path)
    base = path.parent

    def parse(raw: Any, line: int, defaults: dict) -> Task | None:
        if problems is None:
            return _parse_task(raw, file, line, base, defaults)
        try:
            return _parse_task(raw, file, line, base, defaults)
        except ConfigError as exc:
            problems.extend(ConfigErrors.of(exc))
            return None

    if path.suffix == ".jsonl":
        tasks = []
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                error = ConfigError(f"invalid JSON: {exc.msg} (column {exc.colno})", file, n,
                                    "each line must be one complete JSON object")
                if problems is None:
                    raise error from None
                problems.append(error)
                continue
            task = parse(obj, n, {})
            if task is not None:
                tasks.append(task)
        return tasks
    data = load(path)
    defaults: dict = {}
    if isinstance(data, dict):
        extra = sorted(set(data) - {"tasks", "defaults"})
        if extra:
            raise _err(
                f"unknown top-level key {extra[0]!r}",
                data,
                extra[0],
                "a task file has `tasks:` and optional `defaults:`",
            )
        d = data.get("defaults") or {}
        if not isinstance(d, dict) or set(d) - {"scorers"}:
            raise _err("`defaults` may only set `scorers`", data, "defaults", "write `defaults: {scorers: [...]}`")
        if "scorers" in d:
            defaults["scorers"] = _normalise_scorers(d["scorers"], d, "scorers")
        data = data.get("tasks")
        if data is None:
            raise ConfigError("no `tasks:` list", file, 1, "add `tasks:` with a list of tasks")
    if not isinstance(data, list):
        raise ConfigError("a task file must hold a list of tasks", file, getattr(data, "line", 1),
                          "write `tasks:` followed by `- id: ...` entries")
    parsed = [parse(t, data.line_of(i) if hasattr(data, "line_of") else 1, defaults) for i, t in enumerate(data)]
    return [t for t in parsed if t is not None]


def load_tasks(
    patterns: list[str], root: Path, config_file: str | None = None, config_line: int | None = None,
    problems: list[ConfigError] | None = None,
) -> list[Task]:
    """Every task of the files the globs match, with unique ids. Raises the first ConfigError, or, when
    `problems` is given, collects every error of every file in it and returns the tasks that loaded."""
    def report(error: ConfigError) -> None:
        if problems is None:
            raise error
        problems.extend(ConfigErrors.of(error))

    files: list[Path] = []
    for pat in patterns:
        matched = sorted(Path(p) for p in glob.glob(str(root / pat), recursive=True))
        matched = [p for p in matched if p.is_file() and p.suffix in (".yml", ".yaml", ".jsonl")]
        if not matched:
            report(ConfigError(f"task glob {pat!r} matches no .yml/.yaml/.jsonl file (relative to {root})",
                               config_file, config_line, "fix the glob under `tasks:`, or create the task file"))
        files.extend(p for p in matched if p not in files)
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for f in files:
        try:
            loaded = load_task_file(f, problems)
        except ConfigError as exc:  # a whole file is unusable (bad YAML, wrong shape): report it, go on
            report(exc)
            continue
        for t in loaded:
            if t.id in seen:
                file, _, line = t.source.rpartition(":")
                report(ConfigError(f"duplicate task id {t.id!r} (first defined at {seen[t.id]})", file, int(line),
                                   "give every task a unique id"))
                continue
            seen[t.id] = t.source
            tasks.append(t)
    if not tasks and not problems:
        report(ConfigError("no tasks found", config_file, config_line, "add tasks to the task files"))
    return tasks


def assign_splits(tasks: list[Task], ratios: dict[str, float], seed: int) -> dict[str, list[Task]]:
    """Explicit `split:` wins; the rest are ordered by a seeded hash of their id and cut by ratio.

    Hash order (not a shuffle) keeps a task in the same split when other tasks are added.
    """
    out: dict[str, list[Task]] = {s: [] for s in SPLITS}
    free: list[Task] = []
    for t in tasks:
        (out[t.split] if t.split else free).append(t)
    free.sort(key=lambda t: hashlib.sha256(f"{seed}:{t.id}".encode()).hexdigest())
    total = sum(ratios.get(s, 0.0) for s in SPLITS) or 1.0
    n = len(free)
    counts = {s: int(round(n * ratios.get(s, 0.0) / total)) for s in ("val", "test")}
    for s in ("val", "test"):
        if ratios.get(s, 0) > 0 and counts[s] == 0 and n >= 3:
            counts[s] = 1
    while counts["val"] + counts["test"] > n:
        counts["test" if counts["test"] >= counts["val"] else "val"] -= 1
    i = 0
    for s in ("val", "test"):
        out[s].extend(free[i:i + counts[s]])
        i += counts[s]
    out["train"].extend(free[i:])
    return {s: sorted(v, key=lambda t: t.id) for s, v in out.items()}
