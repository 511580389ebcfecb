"""The rollout engine: run a target on tasks under a skill, score, cache, account, record.

One rollout = (target, skill text, task, sample index). Its content key is a
SHA-256 of the target's fingerprint, the skill, what the target sees of the
task (input, fixture) and the sample index; a cached rollout is reused, so no
identical rollout is ever paid twice, also across runs. Scores are cached with
a second key (scorers, reference, thresholds, python scorer source): changing
how tasks are scored re-scores cached answers without a model call. Rollouts run
with bounded concurrency; transient provider errors are retried with backoff
(calls.with_retries); each rollout is appended to trajectories.jsonl.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .calls import DiskCache, Ledger, RetryPolicy, content_key, with_retries
from .scorers import ScorerContext, score_completion
from .targets import Target
from .types import Completion, Rollout, Task, TaskScore
from .workspace import remove_workspace

__all__ = ["Rollout", "RolloutEngine", "mean_scores", "skill_hash", "split_mean"]


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

    def scoring_key(self, task: Task) -> str:
        """Everything that decides a score besides the answer: scorer specs, reference, thresholds, and the source
        of `python` scorer modules (so editing a scorer invalidates scores, not paid answers)."""
        code = {}
        for spec in task.scorers:
            if spec["type"] == "python" and ":" in spec.get("function", ""):
                path = self.ctx.project_root / (spec["function"].split(":")[0].replace(".", "/") + ".py")
                code[str(path)] = content_key("file", path.read_text(encoding="utf-8")) if path.is_file() else None
        return content_key("scoring", task.scoring_digest(), self.pass_threshold, code)

    def _score(self, task: Task, completion: Completion) -> TaskScore:
        try:
            return score_completion(task, completion, self.ctx, self.pass_threshold)
        finally:
            if completion.workspace and not self.keep_workspaces:
                remove_workspace(completion.workspace)

    def _one(self, skill: str, task: Task, sample: int, label: str) -> Rollout:
        key, scoring = self.key(skill, task, sample), self.scoring_key(task)
        hit = self.cache.get("rollouts", key)
        # a cached answer is reused as is; under changed scorers it is re-scored for free, unless it was scored
        # from an agent's workspace, which is gone: then the rollout runs again
        if hit is not None and (hit.get("scoring") == scoring or not hit.get("workspace")):
            self.ledger.hit("target")
            completion = Completion.from_dict(hit["completion"])
            if hit.get("scoring") == scoring:
                score = TaskScore.from_dict(hit["score"])
            else:
                score = self._score(task, completion)
                self.cache.put("rollouts", key, {**hit, "score": score.to_dict(), "scoring": scoring})
            r = Rollout(task.id, sample, skill_hash(skill), completion, score, cached=True,
                        seconds=hit.get("seconds", 0.0))
        else:
            self.ledger.reserve("target")
            t0 = time.monotonic()
            completion = with_retries(lambda: self.target.run(skill, task, sample), self.policy,
                                      what=f"rollout of {task.id}", on_retry=lambda: self.ledger.retried("target"),
                                      log=self.log)
            had_workspace = completion.workspace is not None
            score = self._score(task, completion)
            self.ledger.charge("target", getattr(self.target, "price_model", None), completion.usage)
            r = Rollout(task.id, sample, skill_hash(skill), completion, score, seconds=time.monotonic() - t0)
            self.cache.put("rollouts", key, {"completion": completion.to_dict(), "score": score.to_dict(),
                                             "scoring": scoring, "workspace": had_workspace, "seconds": r.seconds})
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
        out: dict[str, list[Rollout]] = {t.id: [] for t in tasks}
        for r in self.run_samples([(skill, t, s) for t in tasks for s in range(samples)], label):
            out[r.task_id].append(r)
        return out

    def run_samples(self, jobs: list[tuple[str, Task, int]], label: str = "") -> list[Rollout]:
        """Run the given (skill, task, sample index) rollouts, concurrently; results in the order of `jobs`."""
        done = [0, time.monotonic()]

        def one(job: tuple[str, Task, int]) -> Rollout:
            r = self._one(job[0], job[1], job[2], label)
            with self._write_lock:
                done[0] += 1
                if self.log and time.monotonic() - done[1] >= self.PROGRESS_EVERY and done[0] < len(jobs):
                    done[1] = time.monotonic()
                    self.log(f"  {label or 'rollouts'}: {done[0]}/{len(jobs)} done")
            return r

        if self.concurrency <= 1 or len(jobs) <= 1:
            return [one(job) for job in jobs]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(one, jobs))


def mean_scores(rollouts: dict[str, list[Rollout]]) -> dict[str, list[float]]:
    return {tid: [r.score.score for r in rs] for tid, rs in rollouts.items()}


def split_mean(rollouts: dict[str, list[Rollout]]) -> float:
    per_task = [sum(r.score.score for r in rs) / len(rs) for rs in rollouts.values() if rs]
    return sum(per_task) / len(per_task) if per_task else 0.0
