"""The rollout engine: run a target on tasks under a skill, score, cache, account, record.

One rollout = (target, skill text, task, sample index). Its content key is a
SHA-256 of the target's fingerprint, the skill, the task's digest (input,
reference, scorers, fixture) and the sample index; a cached rollout is reused
as is (output, score, feedback), so no identical rollout is ever paid twice,
also across runs. Rollouts run with bounded concurrency; transient provider
errors are retried with backoff (calls.with_retries); each rollout is appended
to trajectories.jsonl.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .calls import DiskCache, Ledger, RetryPolicy, content_key, with_retries
from .scorers import ScorerContext, TaskScore, score_completion
from .targets import Completion, Target
from .tasks import Task


@dataclass
class Rollout:
    task_id: str
    sample: int
    skill_hash: str
    completion: Completion
    score: TaskScore
    cached: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"task_id": self.task_id, "sample": self.sample, "skill_hash": self.skill_hash,
                "completion": self.completion.to_dict(), "score": self.score.to_dict(), "seconds": round(self.seconds, 3)}


def skill_hash(skill: str) -> str:
    return content_key("skill", skill)[:12]


class RolloutEngine:
    PROGRESS_EVERY = 15.0  # seconds
    def __init__(self, target: Target, scorer_ctx: ScorerContext, *, ledger: Ledger, cache: DiskCache,
                 policy: RetryPolicy, concurrency: int = 4, pass_threshold: float = 1.0,
                 trajectories: Path | None = None, keep_workspaces: bool = False,
                 log: Callable[[str], None] | None = None):
        self.target, self.ctx, self.ledger, self.cache, self.policy = target, scorer_ctx, ledger, cache, policy
        self.concurrency, self.pass_threshold = concurrency, pass_threshold
        self.trajectories, self.keep_workspaces, self.log = trajectories, keep_workspaces, log
        self._write_lock = threading.Lock()
        self._fp = target.fingerprint()

    def key(self, skill: str, task: Task, sample: int) -> str:
        return content_key("rollout", self._fp, skill, task.digest(), sample)

    def _one(self, skill: str, task: Task, sample: int, label: str) -> Rollout:
        key = self.key(skill, task, sample)
        hit = self.cache.get("rollouts", key)
        if hit is not None:
            self.ledger.hit("target")
            r = Rollout(task.id, sample, skill_hash(skill), Completion.from_dict(hit["completion"]),
                        TaskScore.from_dict(hit["score"]), cached=True, seconds=hit.get("seconds", 0.0))
        else:
            self.ledger.reserve("target")
            t0 = time.monotonic()
            completion = with_retries(lambda: self.target.run(skill, task, sample), self.policy,
                                      what=f"rollout of {task.id}", on_retry=lambda: self.ledger.retried("target"),
                                      log=self.log)
            try:
                score = score_completion(task, completion, self.ctx, self.pass_threshold)
            finally:
                if completion.workspace and not self.keep_workspaces:
                    from .harness import remove_workspace

                    remove_workspace(completion.workspace)
            self.ledger.charge("target", getattr(self.target, "price_model", None), completion.usage)
            r = Rollout(task.id, sample, skill_hash(skill), completion, score, seconds=time.monotonic() - t0)
            self.cache.put("rollouts", key, {"completion": completion.to_dict(), "score": score.to_dict(),
                                             "seconds": r.seconds})
        self._record(r, label)
        return r

    def _record(self, r: Rollout, label: str) -> None:
        if self.trajectories is None:
            return
        line = json.dumps({"phase": label, **r.to_dict(), "cached": r.cached}, ensure_ascii=False)
        with self._write_lock, open(self.trajectories, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def run(self, skill: str, tasks: list[Task], samples: int = 1, label: str = "") -> dict[str, list[Rollout]]:
        """Run every task `samples` times; returns {task_id: [rollout per sample]} in a deterministic order.
        Long phases report progress on the log every PROGRESS_EVERY seconds."""
        jobs = [(t, s) for t in tasks for s in range(samples)]
        out: dict[str, list[Rollout]] = {t.id: [] for t in tasks}
        done = [0, time.monotonic()]

        def one(job):
            r = self._one(skill, job[0], job[1], label)
            with self._write_lock:
                done[0] += 1
                if self.log and time.monotonic() - done[1] >= self.PROGRESS_EVERY and done[0] < len(jobs):
                    done[1] = time.monotonic()
                    self.log(f"  {label or 'rollouts'}: {done[0]}/{len(jobs)} done")
            return r

        if self.concurrency <= 1 or len(jobs) <= 1:
            results = [one(job) for job in jobs]
        else:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                results = list(pool.map(one, jobs))
        for r in results:
            out[r.task_id].append(r)
        return out


def mean_scores(rollouts: dict[str, list[Rollout]]) -> dict[str, list[float]]:
    return {tid: [r.score.score for r in rs] for tid, rs in rollouts.items()}


def split_mean(rollouts: dict[str, list[Rollout]]) -> float:
    per_task = [sum(r.score.score for r in rs) / len(rs) for rs in rollouts.values() if rs]
    return sum(per_task) / len(per_task) if per_task else 0.0
