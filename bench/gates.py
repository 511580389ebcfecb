"""Gate modes as the benchmarks drive them: val samples drawn on demand, decided by skillopt_action's gate code.

A `Side` holds the val samples of one skill: per task a list of 0/1 scores, drawn from the task's success
probability only when a gate asks for them, and kept (an incumbent's samples are reused across decisions, as
the loop's cache does). `Side.new_draws` counts the rollouts a decision paid for.

A gate driver turns two sides into one decision:

    driver.decide(incumbent, candidate, seed) -> bool

`FixedGate` (gate.mode strict / paired) draws `samples` per task on both sides and calls
`skillopt_action.gate.compare`. Adding a mode is one driver class and one entry in `driver()`.

Speed: `compare` always computes a bootstrap confidence interval for the report (10,000 resamples, most of its
time); it never changes the decision. `skip_report_ci()` replaces it with NaNs in this process, which makes
gate calibration ~10x faster; tests/test_bench_smoke.py checks that decisions are the same with and without.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

from sim import uniform

from skillopt_action import gate as gate_module
from skillopt_action.gate import GateSettings, compare

FIXED_MODES = ("strict", "paired")


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
        return {f"t{t:03d}": [self.score(t, k) for k in range(samples)] for t in range(self.n_tasks)}


class FixedGate:
    """`samples` rollouts per task and skill, one call of gate.compare (strict or paired mode)."""

    def __init__(self, mode: str, samples: int = 3, alpha: float = 0.1, min_delta: float = 0.0):
        self.name = mode
        self.mode = mode
        self.samples = samples
        self.alpha = alpha
        self.min_delta = min_delta

    def decide(self, incumbent: Side, candidate: Side, seed: int) -> bool:
        settings = GateSettings(mode=self.mode, samples=self.samples, alpha=self.alpha, min_delta=self.min_delta,
                                seed=seed)
        return compare(incumbent.scores(self.samples), candidate.scores(self.samples), settings).accepted


def driver(mode: str, samples: int = 3, alpha: float = 0.1) -> FixedGate:
    """The driver of a gate mode; a ValueError names the modes this benchmark knows."""
    if mode in FIXED_MODES:
        return FixedGate(mode, samples=samples, alpha=alpha)
    raise ValueError(f"unknown gate mode {mode!r}; this benchmark drives: {', '.join(FIXED_MODES)}")


@contextlib.contextmanager
def skip_report_ci() -> Iterator[None]:
    """Within the block, gate.compare reports a NaN interval instead of bootstrapping one (decisions unchanged)."""
    original = gate_module._percentile_ci
    gate_module._percentile_ci = lambda *args, **kwargs: (math.nan, math.nan)
    try:
        yield
    finally:
        gate_module._percentile_ci = original
