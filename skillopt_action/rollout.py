"""The rollout engine: run a target on tasks under a skill, score, cache, account, record.

One rollout = (target, skill text, task, sample index). Its content key is a
SHA-256 of the target's fingerprint, the skill, what the target sees of the
task (input, fixture) and the sample index; a cached rollout is reused, so no
identical rollout is ever paid twice, also across runs. Scores are cached with
a second key (scorers, reference, thresholds, python scorer source): changing
how tasks are scored re-scores cached answers without a model call. Rollouts run
with bounded concurrency; transient provider errors are retried with backoff
(calls.with_retries); each rollout is appended to trajectories.jsonl.

Answers are untrusted and may echo secrets: a completion and its score are masked (redact.py) the moment they
arrive, before scoring, caching, reflection or any file; the cache entry and the trajectory row are written from
those masked dicts (redact.Masked), not masked a second time. An empty answer from a chat target is retried like a
transient error; if it stays empty the rollout is scored as a failure ("empty answer") and never cached, so a
cached rollout is only ever a real answer. A cache entry that fails validation is a miss with one warning.
trajectories.jsonl holds one row per (phase, skill, task, sample): a resumed run does not repeat rows already there.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .calls import DiskCache, EmptyAfterRetries, Ledger, RetryPolicy, charging_empty, content_key, with_retries
from .errors import EmptyAnswer
from .redact import Appender, Masked, Redactor, current, redact_obj, write_text
from .scorers import ScorerContext, score_completion
from .targets import Target
from .throttle import Throttle
from .types import Completion, Rollout, Task, TaskScore, Usage
from .workspace import remove_workspace

__all__ = ["Rollout", "RolloutEngine", "mean_scores", "skill_hash", "split_mean"]


@functools.lru_cache(maxsize=256)
def skill_hash(skill: str) -> str:
    return content_key("skill", skill)[:12]


def rollout_problem(entry: dict) -> str | None:
    """What is wrong with a cached rollout, or None: a valid completion and score, and a real answer."""
    c, sc = entry.get("completion"), entry.get("score")
    if not isinstance(c, dict) or not isinstance(c.get("text"), str):
        return "has no completion text"
    try:
        completion = Completion.from_dict(c)
    except (TypeError, ValueError, AttributeError):
        return "has a malformed completion"
    if not isinstance(sc, dict):
        return "has no score" if sc is None else "has a malformed score"
    try:
        score = TaskScore.from_dict(sc)
        float(score.score)
    except (KeyError, TypeError, ValueError, AttributeError):
        return "has a malformed score"
    if not completion.text.strip() and not completion.error and not entry.get("workspace"):
        return "holds an empty answer"
    return None


def masked(completion: Completion, r: Redactor | None = None) -> Completion:
    """The completion with every secret in its text, transcript, error and extras masked (workspace kept)."""
    r = current() if r is None else r
    error = r.redact(completion.error) if completion.error else completion.error
    return Completion(text=r.redact(completion.text), transcript=redact_obj(completion.transcript, r),
                      usage=completion.usage, error=error,
                      workspace=completion.workspace, exit_code=completion.exit_code,
                      extra=redact_obj(completion.extra, r))


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
        # calls in flight: `concurrency`, lowered while the provider answers 429 (throttle.py)
        self.throttle = Throttle(concurrency, log=log)
        self._fp = target.fingerprint()
        self.reported_models: set[str] = set()  # model identities the target reported in its answers
        self._recorded: set[tuple[str, str, str, int]] = set()
        self._rows = Appender(trajectories) if trajectories is not None else None
        self._key_prefixes: dict[str, hashlib._Hash] = {}
        # id(task) -> (task, digest, scoring key, the digest's JSON and ", " as the rollout key hashes them)
        self._task_cache: dict[int, tuple[Task, str, str | None, bytes]] = {}

    def open_trajectories(self, *, resume: bool) -> int:
        """Start trajectories.jsonl afresh, or (resume) keep its rows, once each, and skip them from now on.
        Returns the number of rows kept."""
        if self.trajectories is None or self._rows is None:
            return 0
        self._rows.reopen()  # the file is replaced below
        self._recorded = set()
        if not resume or not self.trajectories.is_file():
            write_text(self.trajectories, "", durable=False)
            return 0
        rows = []
        for line in self.trajectories.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
                key = (row["phase"], str(row.get("skill_hash", "")), row["task_id"], int(row["sample"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line from a crash of the machine
            if key not in self._recorded:
                self._recorded.add(key)
                rows.append(line)
        write_text(self.trajectories, "".join(r + "\n" for r in rows), durable=False)
        return len(rows)

    def key(self, skill: str, task: Task, sample: int) -> str:
        """content_key("rollout", fingerprint, skill, task digest, sample), computed from a hash state kept per
        skill (the JSON of the fingerprint and the skill is hashed once, not per rollout) and the task's digest
        kept per task: the same bytes are hashed, so the key is the same."""
        prefix = self._key_prefixes.get(skill)
        if prefix is None:
            head = json.dumps(["rollout", self._fp, skill], sort_keys=True, default=str, ensure_ascii=False)
            prefix = hashlib.sha256(head[:-1].encode() + b", ")
            if len(self._key_prefixes) >= 32:
                self._key_prefixes.clear()
            self._key_prefixes[skill] = prefix
        h = prefix.copy()
        h.update(self._task_entry(task)[3])  # the task digest's JSON and ", "
        h.update(f"{sample if type(sample) is int else json.dumps(sample)}]".encode())  # an int's JSON is its str
        return h.hexdigest()

    def _task_keys(self, task: Task) -> tuple[str, str | None]:
        """(task.digest(), scoring key or None when a `python` scorer's source must be read again), once per task
        object (a task is frozen)."""
        got = self._task_entry(task)
        return got[1], got[2]

    def _task_entry(self, task: Task) -> tuple[Task, str, str | None, bytes]:
        got = self._task_cache.get(id(task))
        if got is None or got[0] is not task:
            fixed = not any(spec["type"] == "python" for spec in task.scorers)
            digest = task.digest()
            got = (task, digest, self._scoring_key(task) if fixed else None, f"{json.dumps(digest)}, ".encode())
            self._task_cache[id(task)] = got
        return got

    def scoring_key(self, task: Task) -> str:
        """Everything that decides a score besides the answer: scorer specs, reference, thresholds, and the source
        of `python` scorer modules (so editing a scorer invalidates scores, not paid answers)."""
        return self._task_keys(task)[1] or self._scoring_key(task)

    def _scoring_key(self, task: Task) -> str:
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

    def _attempt(self, skill: str, task: Task, sample: int) -> Completion:
        completion = self.throttle.call(lambda: self.target.run(skill, task, sample))
        if completion.workspace is None and completion.error is None and not completion.text.strip():
            if not getattr(self.target, "retry_empty", True):  # a deterministic model: asking again is futile
                completion.error = "empty answer (the model returned no text)"
                return completion
            raise EmptyAnswer("the target returned an empty answer", completion.usage)
        return completion

    def _one(self, skill: str, task: Task, sample: int, label: str) -> Rollout:
        key, scoring = self.key(skill, task, sample), self.scoring_key(task)
        hit = self.cache.get("rollouts", key, valid=rollout_problem)
        fresh: tuple[Masked, Masked] | None = None
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
            price_model = getattr(self.target, "price_model", None)
            cacheable = True
            try:
                completion = with_retries(
                    charging_empty(lambda: self._attempt(skill, task, sample),
                                   lambda usage: self.ledger.charge("target", price_model, usage)),
                    self.policy, what=f"rollout of {task.id}", on_retry=lambda: self.ledger.retried("target"),
                    log=self.log)
            except EmptyAfterRetries as exc:
                if self.log:
                    self.log(f"warning: {exc}; scored as a failure and not cached")
                completion, cacheable = Completion("", error=f"empty answer ({exc})", usage=Usage()), False
            # masked once, here, on arrival; the cache entry and the trajectory row share these masked dicts, and
            # the writers take them as they are while the secrets are the same (redact.Masked)
            redactor = current()
            completion = masked(completion, redactor)
            had_workspace = completion.workspace is not None
            score_d = redact_obj(self._score(task, completion).to_dict(), redactor)
            score = TaskScore.from_dict(score_d)
            self.ledger.charge("target", price_model, completion.usage)
            r = Rollout(task.id, sample, skill_hash(skill), completion, score, seconds=time.monotonic() - t0)
            fresh = (Masked(completion.to_dict(), redactor), Masked(score_d, redactor))
            if cacheable:  # masked as a whole (our own keys, a hex scoring key): one encoding, no second walk
                self.cache.put("rollouts", key, Masked({"completion": fresh[0].value, "score": score_d,
                                                        "scoring": redactor.redact(scoring),
                                                        "workspace": had_workspace, "seconds": r.seconds}, redactor))
        model = completion.extra.get("model")
        if isinstance(model, str) and model:
            with self._write_lock:
                self.reported_models.add(model)
        self._record(r, label, fresh)
        return r

    def _record(self, r: Rollout, label: str, fresh: tuple[Masked, Masked] | None = None) -> None:
        """Append the rollout's row; `fresh` = its completion and score as masked on arrival (a model call of this
        run), which the row shares with the cache entry. A cached rollout is masked again on the way out."""
        if self._rows is None:
            return
        key = (label, r.skill_hash, r.task_id, r.sample)  # a gate's two skills share the phase, task and sample
        with self._write_lock:
            if key in self._recorded:  # recorded before a crash; the resumed run reproduced it
                return
            self._recorded.add(key)
        row: dict | Masked
        if fresh is None:
            row = {"phase": label, **r.to_dict(), "cached": r.cached}
        else:  # the keys and values of Rollout.to_dict, without copying the transcript again, masked as a whole
            red = fresh[0].redactor
            row = Masked({"phase": red.redact(label), "task_id": red.redact(r.task_id), "sample": r.sample,
                          "skill_hash": red.redact(r.skill_hash), "completion": fresh[0].value,
                          "score": fresh[1].value, "seconds": round(r.seconds, 3), "cached": r.cached}, red)
        self._rows.append_json(row)  # one write: whole lines

    def run(self, skill: str, tasks: list[Task], samples: int = 1, label: str = "", *,
            transcripts: bool = True) -> dict[str, list[Rollout]]:
        """Run every task `samples` times; returns {task_id: [rollout per sample]} in a deterministic order.
        Long phases report progress on the log every PROGRESS_EVERY seconds. `transcripts=False` drops each
        rollout's transcript once it is recorded (a gate needs scores, not conversations: memory stays small)."""
        return self.run_phases([(skill, tasks, samples, label)], transcripts=transcripts)[0]

    def run_phases(self, phases: list[tuple[str, list[Task], int, str]], *,
                   transcripts: bool = True) -> list[dict[str, list[Rollout]]]:
        """Several phases (skill, tasks, samples, label) through one work queue, with no barrier between them
        (a slow last rollout of one phase does not idle the others' slots); one {task_id: [rollouts]} each."""
        jobs = [(skill, t, s, label) for skill, tasks, samples, label in phases for t in tasks for s in range(samples)]
        results = iter(self._run_jobs(jobs, phases[0][3] if len(phases) == 1 else "rollouts", transcripts))
        out = []
        for _skill, tasks, samples, _label in phases:
            d: dict[str, list[Rollout]] = {t.id: [] for t in tasks}
            for _ in range(len(tasks) * samples):
                r = next(results)
                d[r.task_id].append(r)
            out.append(d)
        return out

    def run_samples(self, jobs: list[tuple[str, Task, int]], label: str = "") -> list[Rollout]:
        """Run the given (skill, task, sample index) rollouts, concurrently; results in the order of `jobs`."""
        return self._run_jobs([(skill, task, sample, label) for skill, task, sample in jobs], label)

    def _run_jobs(self, jobs: list[tuple[str, Task, int, str]], what: str, transcripts: bool = True
                  ) -> list[Rollout]:
        """One work queue for all the jobs, `concurrency` workers; results in the order of `jobs`."""
        done = [0, time.monotonic()]

        def one(job: tuple[str, Task, int, str]) -> Rollout:
            r = self._one(*job)
            if not transcripts:
                r.completion.transcript = []
            with self._write_lock:
                done[0] += 1
                if self.log and time.monotonic() - done[1] >= self.PROGRESS_EVERY and done[0] < len(jobs):
                    done[1] = time.monotonic()
                    self.log(f"  {what or 'rollouts'}: {done[0]}/{len(jobs)} done")
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
