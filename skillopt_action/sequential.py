"""The sequential gate: does a candidate skill beat the incumbent on the val tasks, at the least cost?

It is a pure state machine. The caller asks `next_requests()` which samples it needs — (side, task id, sample
index) with side "incumbent" or "candidate" — runs those rollouts (incumbent samples are usually cached),
`add()`s their scores, and repeats until `result` is set. Both skills are always compared on the same sample
indices of the same tasks.

Rounds
------
Round r brings the tasks it samples to `schedule[r]` samples per skill (default 1, 3, 6, 10). Round 1 samples
every val task once. Later rounds sample every task until it has `freeze` samples per skill (3 in the loop), and
after that only the tasks whose pooled outcomes (both skills together) still vary: a task where every one of six
or more samples of both skills scored the same is (nearly) deterministic and tells little. Freezing a task after a
single pair of samples would lose most of the evidence where success rates are low (at p = 0.15 two failures in
a row are the common case, also on tasks an edit helps). The choice looks at the pooled values only, never at
which skill produced them, so it does not bias the test.

The test
--------
The statistic is the sum over tasks of (candidate mean − incumbent mean). Its null distribution is exact: under
H0 "the edit changes nothing on any task", the samples of a task are exchangeable between the two skills, so
every way of splitting a task's pooled samples into two equal groups is equally likely (a stratified
permutation test, tasks as strata; the binary case is the Mantel-Haenszel / hypergeometric test). Task
distributions are convolved exactly with big-integer polynomial products, so p-values as small as 1e-12 are
exact, not estimates. Scores that are not 0/1 are rounded to quarters for the test only.

A deterministic task that flips from fail to pass on all of its samples is strong evidence under this test, so
two guards keep one lucky task from deciding: the per-task gains must also pass a task-level sign-flip test at
`task_alpha` (so at least two tasks must improve, and losses count against the gain), and the mean gain must
reach `min_delta`.

Stopping
--------
- efficacy: the one-sided p-value at round r is at most `alpha * spend[r]` (the looks share the decision's
  alpha, a Bonferroni split, so the false-accept rate of the decision is at most `alpha` whatever the data; the
  loop gives the early looks a fifth of it together and the last look the rest, where most of the power is);
- futility: with `effect` (the smallest gain worth finding, 0.1 in the loop), an early look stops once the data
  rule that gain out: the mean gain plus `futility_z` standard errors is below it (each task's variance bounded
  by m(1 - m) of its pooled mean m, shrunk towards 1/2). Without `effect`, a look stops as soon as the candidate
  is not ahead: about a third cheaper on a do-nothing edit, but 9-16 points less power on a +10-point edit (a
  true gain is behind after one sample per task one time in eight). The last round always ends the decision;
- a candidate whose gain is significantly negative (`harm_alpha`) is reported as harmful.

With `futility=False` (the run's final confirmation) the early looks stop only for efficacy or harm: one test per
run, where a real gain dropped early would cost the whole run's finding, and where the extra samples are paid
only when the final skill is not clearly better.

A decision can be resumed (`rounds_done`): re-proposing an inconclusive edit against the same incumbent
continues its test where it stopped, with the samples already drawn and the looks it has left. The alpha is
not reset, so proposing the same edit again cannot fish for noise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from math import comb, gcd

from .gate import sign_flip_p

SIDES = ("incumbent", "candidate")
EARLY_SPEND = 0.2  # the share of a decision's alpha the looks before the last one spend together
FREEZE = 3  # samples per skill after which a task whose pooled outcomes are all equal gets no more
QUANTUM = 4  # non-binary scores are rounded to quarters for the test
TOL = 1e-9


@dataclass(frozen=True)
class SequentialSettings:
    alpha: float = 0.01  # false-accept probability of this decision (all its looks together)
    schedule: tuple[int, ...] = (1, 3, 6, 10)  # samples per task and skill after each round
    spend: tuple[float, ...] = (*[EARLY_SPEND / 3] * 3, 1 - EARLY_SPEND)  # share of alpha per look (sum <= 1)
    min_delta: float = 0.0  # minimum mean gain per task (absolute)
    task_alpha: float = 0.25  # the per-task gains must pass a sign-flip test at this level
    harm_alpha: float = 0.05  # below this one-sided p for a loss, the candidate is called harmful
    no_regression: bool = False  # reject a candidate that makes any single task significantly worse
    regression_alpha: float = 0.05  # per-task level of "significantly worse" for no_regression
    seed: int = 0  # for the sign-flip test's Monte Carlo path (more than 16 non-zero tasks)
    # futility: None stops as soon as the candidate is not ahead; a number is the smallest gain worth finding,
    # and an early look stops only once the data rule that gain out (upper bound below it at `futility_z`)
    effect: float | None = None
    futility_z: float = 2.0
    freeze: int = 1  # a task whose pooled outcomes are all equal after this many samples per skill gets no more
    # False: the early looks never stop for futility, only for efficacy or harm (the run's final confirmation: a
    # single test per run, where dropping a real gain early costs the whole run's finding)
    futility: bool = True
    # True: the two sides of a task were drawn in pairs (index i of one side with index i of the other) whose labels
    # a coin assigned (factorial.py): the exact test flips signs within the pairs instead of permuting the task's
    # pooled samples (the contexts of a pair are not exchangeable across pairs, the coin within a pair is)
    paired: bool = False

    def __post_init__(self) -> None:
        if not self.schedule or list(self.schedule) != sorted(set(self.schedule)) or self.schedule[0] < 1:
            raise ValueError(f"gate schedule must be increasing sample counts >= 1, got {list(self.schedule)}")
        if len(self.spend) != len(self.schedule):
            raise ValueError("gate spend needs one share per round of the schedule")
        if any(s < 0 for s in self.spend) or sum(self.spend) > 1 + TOL:
            raise ValueError(f"gate spend shares must be >= 0 and sum to at most 1, got {list(self.spend)}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"gate alpha must be in (0, 1), got {self.alpha}")
        if self.effect is not None and not 0 < self.effect < 1:
            raise ValueError(f"gate effect must be in (0, 1), got {self.effect}")
        if self.freeze < 1:
            raise ValueError(f"gate freeze must be >= 1 sample, got {self.freeze}")


@dataclass
class SequentialResult:
    accepted: bool
    verdict: str  # accepted | not_better | harmful | inconclusive | regression
    boundary: str  # efficacy | futility | harm | max_rounds | no_regression
    reason: str
    mode: str
    n_tasks: int
    incumbent_mean: float
    candidate_mean: float
    delta: float  # mean over tasks of (candidate mean - incumbent mean)
    p_value: float  # one-sided stratified permutation p for "candidate better", at the last look
    p_harm: float  # one-sided p for "candidate worse"
    task_p: float  # task-level sign-flip p of the per-task gains
    alpha: float  # this decision's alpha
    alpha_spent: float  # the share of it used by the looks taken
    rounds: int
    samples: int  # samples of both skills used by the test (cached ones included)
    wins: int
    losses: int
    ties: int
    per_task: list[dict] = field(default_factory=list)
    test: str = "stratified permutation (exact), sequential"
    min_delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    warning: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def quantise(score: float) -> int:
    return int(round(min(1.0, max(0.0, score)) * QUANTUM))


class SequentialTest:
    """One gate decision between an incumbent and a candidate over `task_ids` (see the module docstring).

    The caller's loop::

        while test.result is None:
            for side, task, index in test.next_requests():
                test.add(side, task, index, score_of(side, task, index))
            test.look()

    `rounds_done` resumes an earlier decision on the same pair of skills: its rounds are replayed from the
    (cached) samples without looking again, and the test goes on with the looks it has left.
    """

    def __init__(self, task_ids: Iterable[str], settings: SequentialSettings, *, rounds_done: int = 0):
        self.tasks = sorted(set(task_ids))
        if not self.tasks:
            raise ValueError("no validation tasks to compare")
        self.settings = settings
        self.scores: dict[str, dict[str, dict[int, float]]] = {s: {t: {} for t in self.tasks} for s in SIDES}
        self.r = 0  # the round whose samples are collected next
        self.first_look = max(0, rounds_done)
        self.result: SequentialResult | None = None
        self.last: dict | None = None  # the statistics of the last look taken (None before the first)
        if self.first_look >= len(settings.schedule):
            self._finish_without_looks()

    def next_requests(self) -> list[tuple[str, str, int]]:
        """The (side, task, index) samples needed before the next look; [] once the decision is made."""
        if self.result is not None:
            return []
        k = self.settings.schedule[self.r]
        chosen = self.tasks if self.r == 0 else [t for t in self.tasks if self._varies(t)]
        return [(s, t, i) for t in chosen for s in SIDES for i in range(k) if i not in self.scores[s][t]]

    def add(self, side: str, task_id: str, index: int, score: float) -> None:
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        self.scores[side][task_id][index] = float(score)

    def look(self) -> SequentialResult | None:
        """The look of the current round, with the samples added so far. Returns (and sets `result`) once the
        decision is made; None when another round is needed."""
        if self.result is not None:
            return self.result
        r = self.r
        self.r += 1
        if r < self.first_look:  # replaying a resumed decision: that look was taken before
            return None
        st = self._stats()
        self.last = st
        s = self.settings
        spent = s.alpha * sum(s.spend[self.first_look: r + 1])
        alpha_r = s.alpha * s.spend[r]
        last = r == len(s.schedule) - 1
        guard = st["task_p"] <= s.task_alpha + TOL
        big_enough = st["delta"] >= s.min_delta - TOL
        n = len(self.tasks)
        if s.no_regression:
            broken = [t for t in st["per_task"] if t["p_worse"] <= s.regression_alpha]
            if broken:
                names = ", ".join(t["task_id"] for t in broken[:5])
                return self._decide(False, "regression", "no_regression", st, spent,
                                    f"rejected at round {r + 1}: makes {len(broken)} task(s) significantly worse "
                                    f"({names}) although the mean changes by {st['delta']:+.3f} (gate.no_regression)")
            dropping = [t for t in st["per_task"] if t["delta"] < -TOL]
            if dropping and not last and st["delta"] > TOL:
                return None  # a task got worse: look again with more samples of it before accepting anything
        if st["delta"] > TOL and st["p"] <= alpha_r and guard and big_enough:
            return self._decide(True, "accepted", "efficacy", st, spent,
                                f"accepted at round {r + 1}: {st['delta']:+.3f} mean gain over {n} tasks "
                                f"({st['wins']} better, {st['losses']} worse), p={fmt_p(st['p'])} <= "
                                f"{fmt_p(alpha_r)} (this round's share of the decision's alpha {s.alpha:.2g})")
        if st["p_harm"] <= s.harm_alpha and st["delta"] < -TOL:
            return self._decide(False, "harmful", "harm", st, spent,
                                f"rejected at round {r + 1}: harmful, {st['delta']:+.3f} mean change over {n} tasks "
                                f"({st['losses']} worse, {st['wins']} better), p(worse)={fmt_p(st['p_harm'])}")
        final = last or not any(self._varies(t) for t in self.tasks)
        if s.effect is not None and not final and s.futility:
            upper = st["delta"] + s.futility_z * st["se"]
            if upper < s.effect - TOL:
                verdict = "not_better" if st["delta"] <= TOL else "inconclusive"
                return self._decide(False, verdict, "futility", st, spent,
                                    f"rejected at round {r + 1}: a gain of {s.effect:.3f} is ruled out, "
                                    f"{st['delta']:+.3f} mean change over {n} tasks ({st['wins']} better, "
                                    f"{st['losses']} worse; upper bound {upper:+.3f})")
        if st["delta"] <= TOL and (final or (s.effect is None and s.futility)):  # no effect: stop once not ahead
            return self._decide(False, "not_better", "futility", st, spent,
                                f"rejected at round {r + 1}: not better, {st['delta']:+.3f} mean change over {n} "
                                f"tasks ({st['wins']} better, {st['losses']} worse)")
        if final:
            why = []
            if st["p"] > alpha_r:
                why.append(f"p={fmt_p(st['p'])} > {fmt_p(alpha_r)}")
            if not guard:
                why.append(f"{st['wins']} task(s) better vs {st['losses']} worse is too few (task-level "
                           f"p={fmt_p(st['task_p'])} > {s.task_alpha:g})")
            if not big_enough:
                why.append(f"gain below min_delta {s.min_delta:.3f}")
            return self._decide(False, "inconclusive", "max_rounds", st, spent,
                                f"rejected after round {r + 1}: inconclusive, {st['delta']:+.3f} mean gain over "
                                f"{n} tasks ({'; '.join(why) or 'more samples cannot change it'})")
        return None

    @property
    def interim_delta(self) -> float:
        """The mean gain at the last look taken (0.0 before any)."""
        return float(self.last["delta"]) if self.last else 0.0

    @property
    def next_look_is_last(self) -> bool:
        return self.result is None and self.r >= len(self.settings.schedule) - 1

    def pause(self, reason: str) -> SequentialResult:
        """End the decision here without accepting (the caller chose not to spend more on it): an inconclusive
        verdict at the rounds taken, which a later test of the same pair can resume (`rounds_done`). Stopping a
        test early never raises its false-accept rate."""
        if self.result is not None:
            return self.result
        if self.last is None:
            raise ValueError("pause() needs at least one look")
        spent = self.settings.alpha * sum(self.settings.spend[self.first_look: self.r])
        return self._decide(False, "inconclusive", "race", self.last, spent, reason)

    # ---- internals

    def _varies(self, task: str) -> bool:
        """Whether a task gets more samples: its pooled outcomes vary, or it has fewer than `freeze` per skill."""
        if min(len(self.scores[side][task]) for side in SIDES) < self.settings.freeze:
            return True
        pooled = {quantise(v) for side in SIDES for v in self.scores[side][task].values()}
        return len(pooled) > 1

    def _finish_without_looks(self) -> None:
        self.result = SequentialResult(
            accepted=False, verdict="inconclusive", boundary="max_rounds", mode="sequential",
            reason="rejected: this edit already used every look of its test against this skill",
            n_tasks=len(self.tasks), incumbent_mean=0.0, candidate_mean=0.0, delta=0.0, p_value=1.0, p_harm=1.0,
            task_p=1.0, alpha=self.settings.alpha, alpha_spent=0.0, rounds=self.first_look, samples=0, wins=0,
            losses=0, ties=len(self.tasks),
            min_delta=self.settings.min_delta)

    def _decide(self, accepted: bool, verdict: str, boundary: str, st: dict, spent: float,
                reason: str) -> SequentialResult:
        self.result = SequentialResult(
            accepted=accepted, verdict=verdict, boundary=boundary, reason=reason, mode="sequential",
            n_tasks=len(self.tasks), incumbent_mean=st["inc_mean"], candidate_mean=st["cand_mean"],
            delta=st["delta"], p_value=st["p"], p_harm=st["p_harm"], task_p=st["task_p"],
            alpha=self.settings.alpha, alpha_spent=spent, rounds=self.r,
            samples=st["samples"], wins=st["wins"], losses=st["losses"], ties=st["ties"],
            per_task=st["per_task"], min_delta=self.settings.min_delta,
            test=("paired sign-flip (exact), sequential" if self.settings.paired
                  else "stratified permutation (exact), sequential"))
        return self.result

    def _sides(self, task: str) -> tuple[list[float], list[float]]:
        """Both skills' samples on the indices both have (the test compares like with like)."""
        inc, cand = self.scores["incumbent"][task], self.scores["candidate"][task]
        common = sorted(set(inc) & set(cand))
        return [inc[i] for i in common], [cand[i] for i in common]

    def _stats(self) -> dict:
        per_task, deltas, inc_means, cand_means, strata = [], [], [], [], []
        samples = 0
        var = 0.0
        for t in self.tasks:
            inc, cand = self._sides(t)
            if not inc or not cand:
                raise ValueError(f"task {t!r} has no sample of both skills; add them before looking")
            samples += len(inc) + len(cand)
            mi, mc = sum(inc) / len(inc), sum(cand) / len(cand)
            # the variance of a score with this pooled mean is at most m(1 - m); shrunk towards 1/2 (Jeffreys) so
            # that a task seen a few times with equal outcomes still counts as uncertain
            m = (sum(inc) + sum(cand) + 0.5) / (len(inc) + len(cand) + 1)
            var += m * (1 - m) * (1 / len(inc) + 1 / len(cand))
            inc_means.append(mi)
            cand_means.append(mc)
            deltas.append(mc - mi)
            stratum = ([quantise(v) for v in inc], [quantise(v) for v in cand])
            test = paired_p if self.settings.paired else stratified_p
            per_task.append({"task_id": t, "incumbent": round(mi, 4), "candidate": round(mc, 4),
                             "delta": round(mc - mi, 4), "samples": len(inc),
                             "p_worse": test([stratum])[1] if mc < mi - TOL else 1.0})
            strata.append(stratum)
        p, p_harm = (paired_p if self.settings.paired else stratified_p)(strata)
        wins = sum(1 for d in deltas if d > TOL)
        losses = sum(1 for d in deltas if d < -TOL)
        return {"delta": sum(deltas) / len(deltas), "inc_mean": sum(inc_means) / len(inc_means),
                "cand_mean": sum(cand_means) / len(cand_means), "p": p, "p_harm": p_harm,
                "task_p": sign_flip_p(deltas, seed=self.settings.seed), "wins": wins, "losses": losses,
                "ties": len(deltas) - wins - losses, "per_task": per_task, "samples": samples,
                "se": var ** 0.5 / len(deltas)}


def fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# --------------------------------------------------------------------------- the exact stratified test


def _subset_sums(values: list[int], k: int) -> dict[int, int]:
    """How many k-subsets of `values` (a multiset of small ints) have each sum."""
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    dist: dict[tuple[int, int], int] = {(0, 0): 1}  # (items taken, sum) -> ways
    for v, m in counts.items():
        nxt: dict[tuple[int, int], int] = {}
        for (taken, s), ways in dist.items():
            for j in range(0, min(m, k - taken) + 1):
                key = (taken + j, s + j * v)
                nxt[key] = nxt.get(key, 0) + ways * comb(m, j)
        dist = nxt
    return {s: w for (taken, s), w in dist.items() if taken == k}


def stratified_p(strata: list[tuple[list[int], list[int]]]) -> tuple[float, float]:
    """One-sided exact p-values (candidate better, candidate worse) of sum_t (mean_c - mean_i) under
    within-task exchangeability. Each stratum is (incumbent values, candidate values) of small non-negative ints;
    the two sides may have different numbers of samples.

    In a stratum of n_i incumbent and n_c candidate values with pooled total P, mean_c - mean_i equals
    S_c (n_i + n_c) / (n_i n_c) - P / n_i, so the statistic is a weighted sum of the candidate sums S_c; each
    stratum's S_c is distributed as the sum of a random n_c-subset of its pooled values, and the weighted sum's
    distribution is the product of the strata's generating polynomials (weights scaled to integers)."""
    informative = [(inc, cand) for inc, cand in strata if len(set(inc) | set(cand)) > 1]
    if not informative:
        return 1.0, 1.0
    rates = [Fraction(len(inc) + len(cand), len(inc) * len(cand)) for inc, cand in informative]
    scale = 1
    for r in rates:
        scale = scale * r.denominator // gcd(scale, r.denominator)
    weights = [int(r * scale) for r in rates]
    g = 0
    for w in weights:
        g = gcd(g, w)
    weights = [w // g for w in weights]
    total_ways = 1
    polys: list[dict[int, int]] = []
    observed = 0
    for (inc, cand), w in zip(informative, weights, strict=True):
        dist = _subset_sums(inc + cand, len(cand))
        polys.append({w * s: ways for s, ways in dist.items()})
        total_ways *= comb(len(inc) + len(cand), len(cand))
        observed += w * sum(cand)
    bits = total_ways.bit_length() + 2
    product = 1
    degree = 0
    for poly in polys:
        packed = 0
        for e, ways in poly.items():
            packed |= ways << (bits * e)
        product *= packed
        degree += max(poly)
    mask = (1 << bits) - 1
    coeffs = [(product >> (bits * e)) & mask for e in range(degree + 1)]
    upper = sum(coeffs[observed:])
    lower = sum(coeffs[: observed + 1])
    return float(Fraction(upper, total_ways)), float(Fraction(lower, total_ways))


def paired_p(strata: list[tuple[list[int], list[int]]]) -> tuple[float, float]:
    """One-sided exact p-values (candidate better, candidate worse) of sum_t (mean_c - mean_i) when the samples of a
    task come in pairs (incumbent value k with candidate value k, same length) and a fair coin chose which member
    of each pair is the candidate's: under H0 every pair's difference flips sign independently.

    A task with m pairs adds its differences with weight 1/m; the weights are scaled to integers, and the sum of the
    flipped differences (shifted to start at 0) is a product of (1 + x^(2 w |d|)) over the pairs whose members
    differ, multiplied out on one big integer (a coefficient per possible sum)."""
    terms: list[int] = []
    observed = 0
    rates = [Fraction(1, len(inc)) for inc, cand in strata if inc]
    scale = 1
    for r in rates:
        scale = scale * r.denominator // gcd(scale, r.denominator)
    for inc, cand in strata:
        if len(inc) != len(cand):
            raise ValueError("paired_p needs the same number of samples on both sides of a task")
        if not inc:
            continue
        w = scale // len(inc)
        for a, b in zip(inc, cand, strict=True):
            if a != b:
                terms.append(w * abs(b - a))
                observed += w * (b - a)
    if not terms:
        return 1.0, 1.0
    g = 0
    for t in terms:
        g = gcd(g, t)
    terms = [t // g for t in terms]
    observed //= g
    shift = sum(terms)  # flipped sum + shift = sum of 2|d| over the pairs whose sign came out positive
    bits = len(terms) + 2
    product = 1
    for t in terms:
        product += product << (bits * 2 * t)
    mask = (1 << bits) - 1
    coeffs = [(product >> (bits * e)) & mask for e in range(2 * shift + 1)]
    target = observed + shift
    total = 1 << len(terms)
    return float(Fraction(sum(coeffs[target:]), total)), float(Fraction(sum(coeffs[: target + 1]), total))


def decision_alpha(run_alpha: float, planned_decisions: float) -> float:
    """Each decision's share of the run's false-accept budget (Bonferroni)."""
    return run_alpha / max(1, planned_decisions)


def confirmation_alpha(run_alpha: float, planned_decisions: float, decision_alpha: float) -> float:
    """The level of the run's final confirmation under `gate.control: final`.

    A run whose edits all do nothing ships a change only if some decision accepts one (a chance of at most
    planned_decisions * decision_alpha, a union bound over every look the run could take) AND the confirmation, on
    fresh samples independent of every decision, passes too. So the confirmation may test at run_alpha divided by
    that chance and the run still ships a do-nothing change with a chance of at most run_alpha. With 12 planned
    decisions at 0.05 that is 0.083 instead of 0.05, which a real gain passes more often; at 20 or more decisions
    it is run_alpha itself. Capped at twice run_alpha, so that a run with few decisions still confirms on real
    evidence."""
    reach = min(1.0, max(1, planned_decisions) * decision_alpha)
    return min(2 * run_alpha, run_alpha / reach)


def power_hint(n_tasks: int) -> str | None:
    """A warning when the val split is too small for the task-level guard ever to pass."""
    if n_tasks < 2:
        return ("with fewer than 2 validation tasks the sequential gate can never accept (at least two tasks "
                "must improve); add validation tasks")
    return None
