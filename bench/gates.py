"""Gate modes as the benchmarks drive them: val samples drawn on demand, decided by skillopt_action's gate code.

A `Side` holds the val samples of one skill: per task a list of 0/1 scores, drawn from the task's success
probability only when a gate asks for them, and kept (an incumbent's samples are reused across decisions, as
the loop's cache does). `Side.new_draws` counts the rollouts a decision paid for.

A gate driver turns two sides into one decision, `driver.decide(incumbent, candidate, seed) -> bool`, with the
settings a user gets from `gate: {mode: <mode>}` (`loop_config`: a config loaded by skillopt_action.config, so
changed defaults reach the bench without an edit here):

- `FixedGate` (strict / paired): `gate.samples` per task on both sides, one call of `gate.compare`; one decision
  per step, and the incumbent's baseline measurement has `gate.samples` per task;
- `SequentialGate`: a `sequential.SequentialTest` fed round by round with the (side, task, index) samples it
  asks for, with the loop's settings (`evaluation.sequential_settings`) at the loop's per-decision alpha (with
  `gate.control: decisions`, the run's alpha split over `search.planned_decisions` for a run of `steps` steps;
  with `final`, the run's alpha, and a run must also pass the final confirmation); the baseline has 1 sample.

Adding a mode is one driver class and one line in `driver()`.

Speed: `gate.compare` always bootstraps a confidence interval for the report (10,000 resamples, most of its
time); it never changes the decision. `skip_report_ci()` replaces it with NaNs in this process, which makes
gate calibration ~10x faster; tests/test_bench_smoke.py checks that decisions are the same with and without.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

from sim import uniform

from skillopt_action import gate as gate_module
from skillopt_action.config import Config, load_config
from skillopt_action.evaluation import sequential_settings
from skillopt_action.gate import GateSettings, compare
from skillopt_action.search import planned_decisions, race_share, raced_looks
from skillopt_action.sequential import SequentialResult, SequentialTest, confirmation_alpha

FIXED_MODES = ("strict", "paired")
MODES = (*FIXED_MODES, "sequential")


def task_key(t: int) -> str:
    return f"t{t:03d}"


class Side:
    """Val samples of one skill over tasks t000..t{n-1}, drawn on demand from `probs`.

    Sample k of task t is 1 when uniform(key, t, k) < probs[t]: the same key gives the same draws whatever order
    a gate asks for them in, so every gate mode sees the same samples (common random numbers)."""

    def __init__(self, probs: Sequence[float], key: str):
        self.probs = list(probs)
        self.key = key
        self.samples: list[list[float]] = [[] for _ in self.probs]
        self.new_draws = 0

    @property
    def n_tasks(self) -> int:
        return len(self.probs)

    def score(self, task: int, k: int) -> float:
        """Sample k (0-based) of task `task`, drawing it (and any before it) if not drawn yet."""
        drawn = self.samples[task]
        while len(drawn) <= k:
            drawn.append(1.0 if uniform(self.key, task, len(drawn)) < self.probs[task] else 0.0)
            self.new_draws += 1
        return drawn[k]

    def predraw(self, samples: int) -> None:
        """Draw `samples` per task without counting them (the baseline measurement the loop makes anyway)."""
        before = self.new_draws
        for t in range(self.n_tasks):
            self.score(t, samples - 1)
        self.new_draws = before

    def scores(self, samples: int) -> dict[str, list[float]]:
        return {task_key(t): [self.score(t, k) for k in range(samples)] for t in range(self.n_tasks)}


@functools.cache
def _loop_config(gate_json: str) -> Config:
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        root = Path(tmp)
        (root / "SKILL.md").write_text("# skill\n", encoding="utf-8")
        cfg = {"skill": "SKILL.md", "tasks": "tasks/*.yml", "gate": json.loads(gate_json)}
        (root / "skillopt.yml").write_text(json.dumps(cfg), encoding="utf-8")  # JSON is YAML
        return load_config(root / "skillopt.yml")


def loop_config(gate: dict) -> Config:
    """The config a user gets with this `gate:` block and defaults for everything else."""
    return _loop_config(json.dumps(gate, sort_keys=True))


class FixedGate:
    """`gate.samples` rollouts per task and skill, one call of gate.compare (strict or paired mode)."""

    def __init__(self, cfg: Config, steps: int):
        g = cfg.gate
        self.name = g.mode
        self.gate = g
        self.baseline_samples = g.samples
        self.decisions_per_run = steps  # one gate decision per step
        self.describe = (f"{g.samples} samples per task and skill, " + (
            "accept a strictly higher mean (no test)" if g.mode == "strict" else
            f"one-sided {g.test} test at alpha {g.alpha:g} per decision, min_delta {g.min_delta:g}"))

    def decide(self, incumbent: Side, candidate: Side, seed: int) -> bool:
        g = self.gate
        settings = GateSettings(mode=g.mode, samples=g.samples, min_delta=g.min_delta, alpha=g.alpha, test=g.test,
                                resamples=g.resamples, seed=seed)
        return compare(incumbent.scores(g.samples), candidate.scores(g.samples), settings).accepted


class SequentialGate:
    """One sequential test per decision, fed the samples it asks for, at the loop's per-decision alpha."""

    def __init__(self, cfg: Config, steps: int):
        self.name = "sequential"
        self.rt = SimpleNamespace(cfg=cfg)  # what the loop's settings helpers read from a Runtime
        self.decisions_per_run = planned_decisions(self.rt, steps)  # type: ignore[arg-type]
        # the loop's alpha units: a test the race stops after one early look spends that look's share only
        self.units = self.decisions_per_run + raced_looks(self.rt, steps) * race_share(self.rt)  # type: ignore[arg-type]
        self.control = cfg.gate.control
        self.run_alpha = cfg.gate.alpha
        self.alpha = cfg.gate.alpha / self.units if self.control == "decisions" else cfg.gate.alpha
        self.baseline_samples = 1  # the loop's baseline val measurement
        spent = (f"over {self.decisions_per_run} decisions ({self.alpha:.2g} each)" if self.control == "decisions"
                 else f"at each of {self.decisions_per_run} decisions and at the final confirmation (control final)")
        self.describe = (f"rounds of {list(cfg.gate.schedule)} samples, run alpha {cfg.gate.alpha:g} {spent}, "
                         f"task_alpha {cfg.gate.task_alpha:g}")

    def decide(self, incumbent: Side, candidate: Side, seed: int, alpha: float | None = None) -> bool:
        return self._test(incumbent, candidate, seed, self.alpha if alpha is None else alpha).accepted

    def confirmed(self, start: Side, final: Side, seed: int) -> bool:
        """The loop's final confirmation on fresh samples of both skills: a mean gain (control decisions), or a
        test at the run's alpha (control final)."""
        fresh_start, fresh_final = Side(start.probs, start.key + ":fresh"), Side(final.probs, final.key + ":fresh")
        alpha = (confirmation_alpha(self.run_alpha, self.units, self.alpha) if self.control == "final"
                 else self.run_alpha)
        result = self._test(fresh_start, fresh_final, seed, alpha)
        if self.control == "final":
            return result.accepted
        return result.delta > 0 and result.verdict != "harmful"

    def _test(self, incumbent: Side, candidate: Side, seed: int, alpha: float) -> SequentialResult:
        settings = sequential_settings(self.rt, alpha, seed=seed)  # type: ignore[arg-type]
        test = SequentialTest([task_key(t) for t in range(incumbent.n_tasks)], settings)
        sides = {"incumbent": incumbent, "candidate": candidate}
        while test.result is None:
            for side, task, index in test.next_requests():
                test.add(side, task, index, sides[side].score(int(task[1:]), index))
            test.look()
        assert test.result is not None
        return test.result


def driver(mode: str, steps: int = 6, gate_extra: dict | None = None) -> FixedGate | SequentialGate:
    """The driver of a gate mode with the loop's settings; a ValueError names the modes this benchmark knows."""
    if mode not in MODES:
        raise ValueError(f"unknown gate mode {mode!r}; this benchmark drives: {', '.join(MODES)}")
    cfg = loop_config({**(gate_extra or {}), "mode": mode})
    return SequentialGate(cfg, steps) if mode == "sequential" else FixedGate(cfg, steps)


@contextlib.contextmanager
def skip_report_ci() -> Iterator[None]:
    """Within the block, gate.compare reports a NaN interval instead of bootstrapping one (decisions unchanged)."""
    original = gate_module._percentile_ci
    gate_module._percentile_ci = lambda *args, **kwargs: (math.nan, math.nan)
    try:
        yield
    finally:
        gate_module._percentile_ci = original
