"""The acceptance gate: does a candidate skill replace the incumbent?

Both skills are scored on the same validation tasks (usually several rollouts
per task and skill). `compare()` turns those scores into one decision.

Modes
-----
``paired`` (default)
    Per task, d_i = mean(candidate scores) - mean(incumbent scores). The
    candidate is accepted only if

    * the mean paired gain mean(d) is positive and at least ``min_delta``, and
    * a one-sided paired test of H0 "no improvement" gives p < ``alpha``.

    Tests:

    ``permutation`` — sign-flip test on the sum of the deltas. Under H0 each
    task's delta is as likely to be +|d_i| as -|d_i|. Tasks with d_i = 0 carry
    no sign information and are left out. With at most
    ``EXACT_MAX_NONZERO`` (16) non-zero deltas all 2^m sign patterns are
    counted exactly, p = #{T* >= T_obs} / 2^m; above that, ``resamples``
    seeded random patterns give p = (1 + #{T* >= T_obs}) / (1 + resamples).
    The smallest possible p with m non-zero tasks is 2^-m, so a tiny
    validation split can never pass (see `max_power_warning`).

    ``bootstrap`` — resample tasks with replacement from the centred deltas
    d_i - mean(d) and count how often the resampled mean reaches the observed
    mean, p = (1 + count) / (1 + resamples). The plain bootstrap is known to
    be over-confident on very small or zero-variance samples (two tasks that
    both gained +0.33 would get p ~ 0); so its p-value is never reported below
    2^-m, the floor of the exact sign-flip test for the same m non-zero
    deltas. Prefer ``permutation``; it is exact for small splits.

    If every delta is zero, p = 1 and the candidate is rejected.

``strict``
    Reproduces the reference SkillOpt gate: accept iff the candidate's mean
    score is strictly higher than the incumbent's (ties, within 1e-9,
    reject). No test, no interval: one lucky draw is enough, which is why this
    mode lets noise in. Kept for comparison runs.

Confidence interval
-------------------
In paired mode `ci_low`/`ci_high` are a two-sided (1 - alpha) percentile
bootstrap interval of the mean paired delta (90% for alpha = 0.1), from
``resamples`` task resamples. Its lower end is therefore a (1 - alpha/2)
lower bound, slightly more cautious than the one-sided test; the decision is
made by the test, the interval is for humans reading the report.

Everything is deterministic for a given ``seed``: task ids are sorted before
any random draw, so the order of the input dicts does not matter.
Pure stdlib, no I/O.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

__all__ = [
    "EXACT_MAX_NONZERO",
    "bootstrap_ci",
    "GateResult",
    "GateSettings",
    "TaskComparison",
    "compare",
    "max_power_warning",
    "min_achievable_p",
    "sign_flip_p",
]

MODES = ("paired", "strict", "sequential")
TESTS = ("permutation", "bootstrap")
DESIGNS = ("separate", "factorial")  # sequential: how a step's candidates draw their val samples (factorial.py)
CONTROLS = ("decisions", "final")  # sequential: where the run's alpha is spent

# Up to this many non-zero deltas the sign-flip p-value is computed exactly.
EXACT_MAX_NONZERO = 16

# Absolute tolerance for float comparisons of scores, deltas and sums.
# Scores live in [0, 1]; means of a few samples (1/3, 2/3, ...) are not exact
# in binary, so "equal" totals may differ in the last bits.
TOL = 1e-9

# Bits per lookup table when summing random sign patterns (2^12 entries each).
_CHUNK_BITS = 12


@dataclass(frozen=True)
class GateSettings:
    mode: str = "paired"  # "paired" | "strict" | "sequential" (sequential.py; `compare` is the fixed-sample gate)
    samples: int = 3  # rollouts per val task per skill (used by the loop, recorded here)
    min_delta: float = 0.0  # minimum mean paired improvement (absolute; scores are in [0, 1])
    alpha: float = 0.1  # paired: per decision; sequential: the whole run's false-accept budget
    test: str = "permutation"  # "permutation" (sign-flip) | "bootstrap"
    resamples: int = 10000  # Monte Carlo resamples when exact enumeration is too big
    seed: int = 0
    schedule: tuple[int, ...] = (1, 3, 6, 10)  # sequential: samples per task and skill after each round
    decisions: int = 2  # sequential: val decisions per step (the run's alpha is split across them)
    task_alpha: float = 0.25  # sequential: the per-task gains must also pass a sign-flip test at this level
    confirm: bool = True  # sequential: re-confirm the final skill against the start on fresh samples
    no_regression: bool = False  # sequential: reject an edit that makes any val task significantly worse
    # sequential: "decisions" splits alpha across the run's decisions (Bonferroni); "final" gives every decision
    # alpha and makes the final confirmation on fresh samples a test at alpha that the run must pass
    control: str = "final"
    # sequential: the smallest mean gain worth finding; an early look stops for futility once the data rule it out
    # (None: stop as soon as the candidate is not ahead: a third cheaper on do-nothing edits, 9-16 points less power)
    effect: float | None = 0.1
    # sequential: "factorial" draws the val samples of a step's candidates that apply together as shared pairs of
    # rollouts (factorial.py); "separate" draws every candidate's samples on its own and races them
    design: str = "factorial"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"gate mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.design not in DESIGNS:
            raise ValueError(f"gate design must be one of {', '.join(DESIGNS)}, got {self.design!r}")
        if self.control not in CONTROLS:
            raise ValueError(f"gate control must be one of {', '.join(CONTROLS)}, got {self.control!r}")
        if self.control == "final" and not self.confirm:
            raise ValueError("gate control 'final' needs gate.confirm: true (the final confirmation is its test)")
        if self.test not in TESTS:
            raise ValueError(f"gate test must be one of {', '.join(TESTS)}, got {self.test!r}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"gate samples must be an integer >= 1, got {self.samples!r}")
        if not _is_real(self.alpha) or not 0.0 < self.alpha < 1.0:
            raise ValueError(f"gate alpha must be a number strictly between 0 and 1, got {self.alpha!r}")
        if not _is_real(self.min_delta) or not 0.0 <= self.min_delta < 1.0:
            raise ValueError(
                f"gate min_delta must be a number in [0, 1) (absolute score gain), got {self.min_delta!r}"
            )
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or self.resamples < 1:
            raise ValueError(f"gate resamples must be an integer >= 1, got {self.resamples!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"gate seed must be an integer, got {self.seed!r}")
        sched = list(self.schedule)
        if not sched or sched != sorted(set(sched)) or sched[0] < 1 or len(sched) > 6:
            raise ValueError(f"gate schedule must be 1 to 6 increasing sample counts >= 1, got {sched}")
        if self.effect is not None and (not _is_real(self.effect) or not 0.0 < self.effect < 1.0):
            raise ValueError(f"gate effect must be a number strictly between 0 and 1, or null, got {self.effect!r}")
        if isinstance(self.decisions, bool) or not isinstance(self.decisions, int) or self.decisions < 1:
            raise ValueError(f"gate decisions must be an integer >= 1, got {self.decisions!r}")
        if not _is_real(self.task_alpha) or not 0.0 < self.task_alpha <= 1.0:
            raise ValueError(f"gate task_alpha must be a number in (0, 1], got {self.task_alpha!r}")


@dataclass
class TaskComparison:
    task_id: str
    incumbent: float  # mean over samples
    candidate: float
    delta: float  # candidate - incumbent


@dataclass
class GateResult:
    accepted: bool
    mode: str
    n_tasks: int
    incumbent_mean: float
    candidate_mean: float
    delta: float  # mean paired difference
    p_value: float | None  # None in strict mode
    ci_low: float | None  # two-sided (1 - alpha) bootstrap CI of the mean delta; None in strict mode
    ci_high: float | None
    wins: int
    losses: int
    ties: int
    per_task: list[TaskComparison]
    reason: str  # one human sentence: why accepted/rejected, with numbers
    # How the numbers above were obtained (None where not applicable, i.e. strict mode).
    test: str | None = None
    alpha: float | None = None
    min_delta: float | None = None
    ci_level: float | None = None
    p_exact: bool | None = None  # True: exact enumeration; False: Monte Carlo / bootstrap estimate
    warning: str | None = field(default=None)  # e.g. the split is too small to ever pass

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- helpers


def _is_real(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _mean(xs: list[float]) -> float:
    return math.fsum(xs) / len(xs)


def _check_scores(side: str, task_id: str, scores: object) -> list[float]:
    if isinstance(scores, (str, bytes)) or not hasattr(scores, "__iter__"):
        raise ValueError(f"{side} scores for task {task_id!r} must be a list of numbers, got {scores!r}")
    out = list(cast(Iterable[Any], scores))
    if not out:
        raise ValueError(f"{side} has no scores for task {task_id!r} (need at least one sample)")
    for s in out:
        if not _is_real(s) or not -TOL <= s <= 1.0 + TOL:
            raise ValueError(f"{side} score {s!r} for task {task_id!r} is not a number in [0, 1]")
    return [float(s) for s in out]


def _describe_ids(ids: set) -> str:
    shown = sorted(map(str, ids))
    text = ", ".join(shown[:5])
    if len(shown) > 5:
        text += f" and {len(shown) - 5} more"
    return text


def _signed_sum_table(values: list[float]) -> list[float]:
    """Entry k = sum over j of (+values[j] if bit j of k is set else -values[j])."""
    table = [0.0]
    for v in values:
        table = [x - v for x in table] + [x + v for x in table]
    return table


def min_achievable_p(n_nonzero: int) -> float:
    """Smallest p-value the exact sign-flip test can give with n non-zero deltas: 2^-n."""
    return 0.5 ** max(n_nonzero, 0)


def _sign_flip_exact(mags: list[float], t_obs: float) -> float:
    """Exact one-sided sign-flip p-value, meet in the middle (2^(m/2) work, not 2^m)."""
    m = len(mags)
    half = m // 2
    left = _signed_sum_table(mags[:half])
    right = sorted(_signed_sum_table(mags[half:]))
    threshold = t_obs - TOL
    n_right = len(right)
    count = 0
    for a in left:
        count += n_right - bisect_left(right, threshold - a)
    return count / float(2**m)


def _sign_flip_monte_carlo(mags: list[float], t_obs: float, resamples: int, rng: random.Random) -> float:
    m = len(mags)
    tables = [_signed_sum_table(mags[i : i + _CHUNK_BITS]) for i in range(0, m, _CHUNK_BITS)]
    mask = (1 << _CHUNK_BITS) - 1
    threshold = t_obs - TOL
    bits = rng.getrandbits
    count = 0
    if len(tables) == 1:
        (table,) = tables
        for _ in range(resamples):
            if table[bits(m)] >= threshold:
                count += 1
    else:
        for _ in range(resamples):
            r = bits(m)
            total = 0.0
            for table in tables:
                total += table[r & mask]
                r >>= _CHUNK_BITS
            if total >= threshold:
                count += 1
    return (1 + count) / (1 + resamples)


def sign_flip_p(deltas: list[float], resamples: int = 10000, seed: int = 0) -> float:
    """One-sided sign-flip p-value that the per-task deltas are centred above 0 (exact up to
    EXACT_MAX_NONZERO non-zero deltas, seeded Monte Carlo above). 1.0 when every delta is zero."""
    nonzero = [d for d in deltas if abs(d) > TOL]
    if not nonzero:
        return 1.0
    mags = [abs(d) for d in nonzero]
    t_obs = math.fsum(nonzero)
    if len(nonzero) <= EXACT_MAX_NONZERO:
        return min(1.0, _sign_flip_exact(mags, t_obs))
    return min(1.0, _sign_flip_monte_carlo(mags, t_obs, resamples, _rng(seed, "sign-flip")))


def _bootstrap_means(deltas: list[float], resamples: int, rng: random.Random) -> list[float]:
    n = len(deltas)
    choices = rng.choices
    return [sum(choices(deltas, k=n)) / n for _ in range(resamples)]


def _bootstrap_p(deltas: list[float], mean_d: float, n_nonzero: int, resamples: int, rng: random.Random) -> float:
    centred = [d - mean_d for d in deltas]
    threshold = mean_d - TOL
    count = sum(1 for t in _bootstrap_means(centred, resamples, rng) if t >= threshold)
    p = (1 + count) / (1 + resamples)
    return max(p, min_achievable_p(n_nonzero))


def _percentile_ci(deltas: list[float], level: float, resamples: int, rng: random.Random) -> tuple[float, float]:
    means = sorted(_bootstrap_means(deltas, resamples, rng))
    tail = (1.0 - level) / 2.0
    lo_idx = min(max(int(math.floor(tail * resamples)), 0), resamples - 1)
    hi_idx = min(max(int(math.ceil((1.0 - tail) * resamples)) - 1, 0), resamples - 1)
    return means[lo_idx], means[hi_idx]


def bootstrap_ci(deltas: list[float], level: float, resamples: int, rng: random.Random) -> tuple[float, float]:
    """A two-sided percentile bootstrap interval (over tasks) of the mean of `deltas`."""
    if not deltas:
        return 0.0, 0.0
    return _percentile_ci(deltas, level, resamples, rng)


def _fmt_p(p: float) -> str:
    return f"{p:.3g}"


def _rng(seed: int, purpose: str) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, independent of PYTHONHASHSEED.
    return random.Random(f"skillopt-gate:{purpose}:{seed}")


# --------------------------------------------------------------------------- public API


def max_power_warning(n_tasks: int, alpha: float, resamples: int | None = None) -> str | None:
    """A warning sentence if a paired gate over `n_tasks` tasks can never accept at `alpha`.

    Even if the candidate wins every task, the exact sign-flip p-value is 2^-n,
    so with 2^-n >= alpha no candidate can pass. (The bootstrap p-value has the
    same floor.) When `resamples` is given and the Monte Carlo path applies
    (more than EXACT_MAX_NONZERO tasks), its floor 1/(1 + resamples) is checked too.
    Returns None when acceptance is possible.
    """
    if n_tasks <= 0:
        return "there are no validation tasks, so the gate can never accept a candidate; add validation tasks"
    floor = min_achievable_p(n_tasks)
    if floor >= alpha:
        needed = n_tasks
        while min_achievable_p(needed) >= alpha:
            needed += 1
        return (
            f"with {n_tasks} validation task{'s' if n_tasks != 1 else ''} the gate can never accept at "
            f"alpha {alpha:g}: even if the candidate wins every task the smallest possible p-value is "
            f"2^-{n_tasks} = {floor:.3g}; use at least {needed} validation tasks or raise alpha"
        )
    if resamples is not None and n_tasks > EXACT_MAX_NONZERO:
        mc_floor = 1.0 / (1 + resamples)
        if mc_floor >= alpha:
            needed = math.ceil(1.0 / alpha)  # 1/(1+R) < alpha  <=>  R > 1/alpha - 1
            return (
                f"with resamples {resamples} the smallest possible p-value is 1/{resamples + 1} = "
                f"{mc_floor:.3g} >= alpha {alpha:g}, so the gate can never accept; use resamples >= {needed}"
            )
    return None


def compare(
    incumbent: dict[str, list[float]],
    candidate: dict[str, list[float]],
    settings: GateSettings,
) -> GateResult:
    """Decide whether `candidate` replaces `incumbent`; see the module docstring."""
    if settings.mode == "sequential":
        raise ValueError("the sequential gate samples as it goes: use sequential.SequentialTest, not gate.compare")
    inc_ids, cand_ids = set(incumbent), set(candidate)
    if inc_ids != cand_ids:
        parts = []
        if inc_ids - cand_ids:
            parts.append(f"missing from the candidate: {_describe_ids(inc_ids - cand_ids)}")
        if cand_ids - inc_ids:
            parts.append(f"missing from the incumbent: {_describe_ids(cand_ids - inc_ids)}")
        raise ValueError("incumbent and candidate were scored on different validation tasks (" + "; ".join(parts) + ")")
    if not inc_ids:
        raise ValueError("no validation tasks to compare: both score dicts are empty")

    per_task: list[TaskComparison] = []
    for tid in sorted(inc_ids, key=str):
        inc = _mean(_check_scores("incumbent", tid, incumbent[tid]))
        cand = _mean(_check_scores("candidate", tid, candidate[tid]))
        per_task.append(TaskComparison(task_id=tid, incumbent=inc, candidate=cand, delta=cand - inc))

    n = len(per_task)
    deltas = [t.delta for t in per_task]
    inc_mean = _mean([t.incumbent for t in per_task])
    cand_mean = _mean([t.candidate for t in per_task])
    mean_d = _mean(deltas)
    wins = sum(1 for d in deltas if d > TOL)
    losses = sum(1 for d in deltas if d < -TOL)
    ties = n - wins - losses
    tally = f"{wins} better, {losses} worse" + (f", {ties} tied" if ties else "")
    task_word = "task" if n == 1 else "tasks"

    common: dict[str, Any] = dict(
        mode=settings.mode,
        n_tasks=n,
        incumbent_mean=inc_mean,
        candidate_mean=cand_mean,
        delta=mean_d,
        wins=wins,
        losses=losses,
        ties=ties,
        per_task=per_task,
    )

    if settings.mode == "strict":
        accepted = cand_mean - inc_mean > TOL
        if accepted:
            reason = (
                f"accepted (strict): candidate mean {cand_mean:.3f} > incumbent mean {inc_mean:.3f} "
                f"over {n} {task_word} ({tally}); no significance test"
            )
        else:
            reason = (
                f"rejected (strict): candidate mean {cand_mean:.3f} is not above incumbent mean "
                f"{inc_mean:.3f} over {n} {task_word} ({tally})"
            )
        return GateResult(accepted=accepted, p_value=None, ci_low=None, ci_high=None, reason=reason, **common)

    # paired mode
    nonzero = [d for d in deltas if abs(d) > TOL]
    m = len(nonzero)
    ci_level = 1.0 - settings.alpha
    warning = max_power_warning(n, settings.alpha, settings.resamples if settings.test == "permutation" else None)
    extra: dict[str, Any] = dict(
        test=settings.test,
        alpha=settings.alpha,
        min_delta=settings.min_delta,
        ci_level=ci_level,
        warning=warning,
    )

    if m == 0:
        reason = (
            f"rejected: candidate scored the same as the incumbent on all {n} {task_word} "
            f"(mean {cand_mean:.3f}), p=1"
        )
        return GateResult(
            accepted=False, p_value=1.0, ci_low=0.0, ci_high=0.0, reason=reason, p_exact=True, **common, **extra
        )

    if settings.test == "permutation":
        mags = [abs(d) for d in nonzero]
        t_obs = math.fsum(nonzero)
        if m <= EXACT_MAX_NONZERO:
            p = _sign_flip_exact(mags, t_obs)
            p_exact = True
        else:
            p = _sign_flip_monte_carlo(mags, t_obs, settings.resamples, _rng(settings.seed, "sign-flip"))
            p_exact = False
    else:
        p = _bootstrap_p(deltas, mean_d, m, settings.resamples, _rng(settings.seed, "bootstrap-test"))
        p_exact = False
    p = min(p, 1.0)
    ci_low, ci_high = _percentile_ci(deltas, ci_level, settings.resamples, _rng(settings.seed, "ci"))

    positive = mean_d > TOL
    big_enough = mean_d >= settings.min_delta - TOL
    significant = p < settings.alpha
    accepted = positive and big_enough and significant

    gain = f"{mean_d:+.3f} mean paired gain over {n} {task_word} ({tally})"
    p_text = f"p={_fmt_p(p)}"
    a_text = (
        f"alpha {settings.alpha:.2f}" if round(settings.alpha, 2) == settings.alpha else f"alpha {settings.alpha:g}"
    )
    if accepted:
        reason = f"accepted: {gain}, {p_text} < {a_text}"
        if settings.min_delta > 0:
            reason += f", at least min_delta {settings.min_delta:.3f}"
    elif not positive:
        reason = (f"rejected: candidate is not better, {mean_d:+.3f} mean paired change over {n} {task_word} "
                  f"({tally}), {p_text}")
    else:
        why = []
        if not big_enough:
            why.append(f"gain {mean_d:+.3f} below min_delta {settings.min_delta:.3f}")
        if not significant:
            why.append(f"not significant, {p_text} >= {a_text}")
        reason = f"rejected: {' and '.join(why)} ({n} {task_word}, {tally})"
    return GateResult(
        accepted=accepted,
        p_value=p,
        ci_low=ci_low,
        ci_high=ci_high,
        reason=reason,
        p_exact=p_exact,
        **common,
        **extra,
    )
