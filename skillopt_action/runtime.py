"""Everything a run needs, built once from the config: tasks and splits, the target, the rollout engine,
the optimizer and judge models, the spend ledger, the cache and the retry policy."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .calls import DiskCache, Ledger, ManagedModel, RetryPolicy
from .config import Config, ModelSettings
from .providers import make_chat_model
from .rollout import RolloutEngine
from .scorers import ScorerContext
from .targets import make_target
from .tasks import assign_splits, load_tasks
from .types import Rollout, Task


def stderr_log(msg: str) -> None:
    print(f"[skillopt] {msg}", file=sys.stderr, flush=True)


def quiet_log(msg: str) -> None:
    """A log that says nothing."""


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


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

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        self.ledger = Ledger(prices=cfg.prices, max_usd=cfg.max_usd, max_calls=cfg.max_calls)
        self.cache = DiskCache(None if self.no_cache else cfg.cache_dir)
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
