"""Everything a run needs, built once from the config: tasks and splits, the target, the rollout engine,
the optimizer and judge models, the spend ledger, the cache and the retry policy.

The run directory `out` holds what survives a crash: `spend.jsonl` (the ledger's journal: every call is recorded
before it is sent), `trajectories.jsonl` (one row per phase/task/sample) and, for optimize, `state.json`. A new
run starts both afresh; `resume=True` continues them. Every file is written through redact.py: atomically, with
secrets masked. `read_state` turns a damaged checkpoint into a ConfigError (exit 2) that says what to do.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import redact
from .calls import DiskCache, Ledger, ManagedModel, RetryPolicy
from .config import Config, ModelSettings
from .errors import ConfigError
from .providers import make_chat_model
from .rollout import RolloutEngine
from .scorers import ScorerContext
from .targets import make_target
from .tasks import assign_splits, load_tasks
from .types import Edit, Rollout, Task


def stderr_log(msg: str) -> None:
    print(redact.redact(f"[skillopt] {msg}"), file=sys.stderr, flush=True)


def quiet_log(msg: str) -> None:
    """A log that says nothing."""


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename), secrets masked: a reader never sees half a file."""
    redact.write_json(path, data)


def write_text(path: Path, text: str) -> None:
    """Write text atomically (temp file + rename), secrets masked."""
    redact.write_text(path, text)


RESUME_FIX = "run without --resume; cached rollouts are reused"
_STATE_FIELDS: dict[str, tuple[type, str]] = {
    "run_key": (str, "a text"), "baseline": (str, "a text"), "current": (str, "a text"),
    "next_step": (int, "a step number"), "steps": (list, "a list of steps"),
}


def read_state(path: Path) -> dict:
    """The optimize checkpoint, checked; ConfigError (exit 2, with the fix) when it is missing or damaged."""
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist", None, None, "run without --resume")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("the checkpoint is damaged (not UTF-8 text)", str(path), None, RESUME_FIX) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"the checkpoint is damaged (not valid JSON: {exc.msg}, line {exc.lineno})", str(path),
                          None, RESUME_FIX) from None
    if not isinstance(state, dict):
        raise ConfigError("the checkpoint is damaged (not a JSON object)", str(path), None, RESUME_FIX)
    for key, (kind, words) in _STATE_FIELDS.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"the checkpoint is damaged (`{key}` is missing or not {words})", str(path), None,
                              RESUME_FIX)
    memory = state.get("memory", state.get("rejected"))  # version 2 keeps the evidence memory; 1 a blacklist
    if not isinstance(memory, list):
        raise ConfigError("the checkpoint is damaged (`memory` is missing or not a list of records)", str(path),
                          None, RESUME_FIX)
    if state["next_step"] < 0 or not all(isinstance(x, dict) for x in state["steps"] + memory):
        raise ConfigError("the checkpoint is damaged (its steps are not readable)", str(path), None, RESUME_FIX)
    return state


def read_memory(path: Path, log: Callable[[str], None]) -> list[dict]:
    """The rejected-edit memory (JSONL); lines that are not a recorded edit are skipped with one warning."""
    rows, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            Edit.from_dict(row["edit"])
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        rows.append(row)
    if bad:
        log(f"warning: {bad} unreadable line(s) in {path} skipped (it is rewritten at the end of the run)")
    return rows


@dataclass
class Runtime:
    """Everything a run needs, built once from the config. `out` holds the run's trajectories and checkpoint."""

    cfg: Config
    out: Path
    log: Callable[[str], None] = stderr_log
    no_cache: bool = False
    keep_workspaces: bool = False
    tasks: list[Task] = field(default_factory=list)
    splits: dict[str, list[Task]] = field(default_factory=dict)
    resume: bool = False  # continue the journal and trajectories in `out` instead of starting them afresh

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        # the keys the config names are secrets whatever their variables are called
        redact.register_names(m.api_key_env for m in (cfg.target, cfg.optimizer, cfg.judge))
        self.ledger = Ledger(prices=cfg.prices, max_usd=cfg.max_usd, max_calls=cfg.max_calls)
        self.journal_events, skipped = self.ledger.open_journal(self.out / "spend.jsonl", resume=self.resume)
        if skipped:
            self.log(f"warning: {skipped} damaged line(s) in {self.out / 'spend.jsonl'} skipped")
        self.cache = DiskCache(None if self.no_cache else cfg.cache_dir, log=self.log)
        self.policy = RetryPolicy(cfg.retries.attempts, cfg.retries.base_delay, cfg.retries.max_delay)
        if not self.tasks:
            self.tasks = load_tasks(cfg.tasks, cfg.root, str(cfg.path), cfg.line_of("tasks"))
        self.by_id = {t.id: t for t in self.tasks}
        if not self.splits:
            self.splits = assign_splits(self.tasks, cfg.split_ratios, cfg.split_seed)
        self._engines: dict[str, RolloutEngine] = {}
        self._optimizer: ManagedModel | None = None
        self._judge: ManagedModel | None = None
        uses_judge = any(s["type"] == "llm_rubric" for t in self.tasks for s in t.scorers)
        self.scorer_ctx = ScorerContext(project_root=cfg.root, judge=self.judge() if uses_judge else None)
        self.trajectories = self.out / "trajectories.jsonl"
        self.engine = RolloutEngine(make_target(cfg.target, cfg.root), self.scorer_ctx, ledger=self.ledger,
                                    cache=self.cache, policy=self.policy, concurrency=cfg.concurrency,
                                    pass_threshold=cfg.loop.pass_threshold, trajectories=self.trajectories,
                                    keep_workspaces=self.keep_workspaces, log=self.log)
        self.engine.open_trajectories(resume=self.resume)

    def restore_spend(self, state: dict) -> None:
        """On resume: the spend comes from the journal (every call paid up to a crash); a checkpoint written by an
        older version, with no journal, still carries its spend."""
        if not self.journal_events:
            self.ledger.load(state.get("spend") or {})

    def _managed(self, settings: ModelSettings, role: str) -> ManagedModel:
        return ManagedModel(make_chat_model(settings), role, self.ledger, self.cache, self.policy, self.log)

    def optimizer(self) -> ManagedModel:
        if self._optimizer is None:
            self._optimizer = self._managed(self.cfg.optimizer, "optimizer")
        return self._optimizer

    def judge(self) -> ManagedModel:
        if self._judge is None:
            self._judge = self._managed(self.cfg.judge, "judge")
        return self._judge

    def engine_for(self, settings: ModelSettings) -> RolloutEngine:
        """A rollout engine for another target (a `transfer:` entry): same ledger, cache and trajectories."""
        key = json.dumps(settings.fingerprint(), sort_keys=True, default=str)
        if key not in self._engines:
            self._engines[key] = RolloutEngine(
                make_target(settings, self.cfg.root), self.scorer_ctx, ledger=self.ledger, cache=self.cache,
                policy=self.policy, concurrency=self.cfg.concurrency, pass_threshold=self.cfg.loop.pass_threshold,
                trajectories=self.trajectories, keep_workspaces=self.keep_workspaces, log=self.log)
        return self._engines[key]

    def spend_line(self) -> str:
        return f"calls {self.ledger.calls}, cache hits {self.ledger.cache_hits}, ${self.ledger.usd:.4f}"

    def rollouts(self, skill: str, split: str, samples: int, label: str) -> dict[str, list[Rollout]]:
        return self.engine.run(skill, self.splits[split], samples, label=label)
