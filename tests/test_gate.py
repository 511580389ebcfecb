"""The acceptance gate: right decisions on simulated skills, exact p-values, clear refusals.

The simulations model what a user runs: ~20 validation tasks, 3 Bernoulli
rollouts per task and skill, each task with its own difficulty. They show that
the paired gate accepts a truly better skill almost always, while on a candidate
that is only *noise* it accepts about alpha of the time -- and that the strict
SkillOpt-style gate on the very same data accepts noise far more often.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from fractions import Fraction

import pytest

from skillopt_action.gate import (
    EXACT_MAX_NONZERO,
    GateResult,
    GateSettings,
    compare,
    max_power_warning,
)

# --------------------------------------------------------------------------- helpers


def simulate(seed: int, gain: float, n_tasks: int = 20, samples: int = 3):
    """Per task success probability p_i for the incumbent, p_i + gain for the candidate."""
    rng = random.Random(seed)
    inc: dict[str, list[float]] = {}
    cand: dict[str, list[float]] = {}
    for i in range(n_tasks):
        p = rng.uniform(0.1, 0.7)
        inc[f"task-{i:02d}"] = [float(rng.random() < p) for _ in range(samples)]
        cand[f"task-{i:02d}"] = [float(rng.random() < p + gain) for _ in range(samples)]
    return inc, cand


def from_deltas(deltas: list[float]) -> tuple[dict, dict]:
    """Score dicts whose per-task paired deltas are exactly `deltas` (deltas in [-1, 1])."""
    inc, cand = {}, {}
    for i, d in enumerate(deltas):
        base = 0.0 if d >= 0 else -d
        inc[f"t{i:02d}"] = [base]
        cand[f"t{i:02d}"] = [base + d]
    return inc, cand


def brute_force_sign_flip_p(deltas: list[float]) -> float:
    """Independent reference: enumerate every sign pattern of the non-zero deltas."""
    nz = [d for d in deltas if d != 0]
    t_obs = sum(nz)
    hits = 0
    for signs in itertools.product((1, -1), repeat=len(nz)):
        if sum(s * abs(d) for s, d in zip(signs, nz, strict=True)) >= t_obs - 1e-9:
            hits += 1
    return hits / 2 ** len(nz)


def exact_p_for_thirds(k: list[int]) -> Fraction:
    """Exact sign-flip p for deltas k_i/3 (integers), by convolution over integer sums."""
    nz = [abs(x) for x in k if x != 0]
    dist = {0: 1}
    for v in nz:
        nxt: dict[int, int] = {}
        for s, c in dist.items():
            nxt[s + v] = nxt.get(s + v, 0) + c
            nxt[s - v] = nxt.get(s - v, 0) + c
        dist = nxt
    t_obs = sum(x for x in k if x != 0)
    return Fraction(sum(c for s, c in dist.items() if s >= t_obs), 2 ** len(nz))


# --------------------------------------------------------------------------- the simulations


def test_truly_better_candidate_is_accepted_at_least_90_percent_of_the_time():
    gates = 200
    accepted = 0
    for seed in range(gates):
        inc, cand = simulate(10_000 + seed, gain=0.25)
        result = compare(inc, cand, GateSettings(resamples=2000, seed=seed))
        accepted += result.accepted
    rate = accepted / gates
    print(f"\npower: paired gate accepted a +0.25 candidate in {rate:.3f} of {gates} gates")
    assert rate >= 0.90


def test_noise_candidate_is_rarely_accepted_by_paired_gate_but_often_by_strict():
    gates = 1000
    alpha = 0.1
    paired_accepts = strict_accepts = 0
    for seed in range(gates):
        inc, cand = simulate(seed, gain=0.0)  # identical in distribution
        paired_accepts += compare(inc, cand, GateSettings(alpha=alpha, resamples=1000, seed=seed)).accepted
        strict_accepts += compare(inc, cand, GateSettings(mode="strict")).accepted
    paired_rate = paired_accepts / gates
    strict_rate = strict_accepts / gates
    print(f"\nnull: paired accepted {paired_rate:.3f}, strict accepted {strict_rate:.3f} of {gates} gates")
    # alpha plus ~3 binomial standard errors (sqrt(0.1 * 0.9 / 1000) = 0.0095)
    assert paired_rate <= alpha + 0.03
    assert strict_rate >= 0.3
    assert strict_rate >= 3 * paired_rate


def test_bootstrap_test_also_controls_false_accepts_and_keeps_power():
    gates = 500
    null_accepts = 0
    for seed in range(gates):
        inc, cand = simulate(50_000 + seed, gain=0.0)
        null_accepts += compare(inc, cand, GateSettings(test="bootstrap", resamples=1000, seed=seed)).accepted
    power_accepts = 0
    for seed in range(100):
        inc, cand = simulate(90_000 + seed, gain=0.25)
        power_accepts += compare(inc, cand, GateSettings(test="bootstrap", resamples=1000, seed=seed)).accepted
    null_rate = null_accepts / gates
    power = power_accepts / 100
    print(f"\nbootstrap: null accept rate {null_rate:.3f} ({gates} gates), power {power:.2f} (100 gates)")
    assert null_rate <= 0.1 + 0.04  # alpha plus ~3 standard errors for 500 gates
    assert power >= 0.85


# --------------------------------------------------------------------------- exact p-values


def test_four_tasks_all_better_gives_p_one_sixteenth_and_is_accepted_at_alpha_01():
    inc = {t: [0.0, 0.0, 1.0] for t in "abcd"}
    cand = {t: [1.0, 1.0, 1.0] for t in "abcd"}
    result = compare(inc, cand, GateSettings(alpha=0.1))
    assert result.p_value == pytest.approx(1 / 16, abs=1e-12)
    assert result.p_exact is True
    assert result.accepted
    assert (result.wins, result.losses, result.ties) == (4, 0, 0)
    assert result.delta == pytest.approx(2 / 3)
    assert result.reason.startswith("accepted: +0.667 mean paired gain over 4 tasks (4 better, 0 worse)")
    assert "p=0.0625 < alpha 0.10" in result.reason


def test_same_data_is_rejected_when_alpha_is_at_the_attainable_floor():
    inc = {t: [0.0] for t in "abcd"}
    cand = {t: [1.0] for t in "abcd"}
    result = compare(inc, cand, GateSettings(alpha=0.0625))
    assert result.p_value == pytest.approx(0.0625)
    assert not result.accepted
    assert "not significant, p=0.0625 >= alpha 0.0625" in result.reason


def test_tied_tasks_carry_no_sign_information():
    # 4 wins plus 3 tasks where both skills scored the same: still p = 1/16.
    inc = {"a": [0.0], "b": [0.0], "c": [0.0], "d": [0.0], "e": [1.0], "f": [0.0], "g": [0.5]}
    cand = {"a": [1.0], "b": [1.0], "c": [1.0], "d": [1.0], "e": [1.0], "f": [0.0], "g": [0.5]}
    result = compare(inc, cand, GateSettings())
    assert result.p_value == pytest.approx(1 / 16)
    assert result.ties == 3


def test_exact_p_counts_sign_patterns_that_tie_the_observed_sum():
    # deltas +1, +1, -1/3 from 3-sample means.  Sign patterns reaching T_obs = 5/3:
    # (+,+,+) = 7/3 and (+,+,-) = 5/3 itself -> p = 2/8.
    inc = {"a": [0.0, 0.0, 0.0], "b": [0.0, 0.0, 0.0], "c": [1.0, 1.0, 0.0]}
    cand = {"a": [1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0], "c": [1.0, 0.0, 0.0]}
    result = compare(inc, cand, GateSettings())
    assert result.p_value == pytest.approx(0.25, abs=1e-12)


def test_float_rounding_in_three_sample_means_does_not_make_the_gate_overconfident():
    # Deltas in thirds: +2, +1, +1, +2, +2, -2 (over 3 samples).  T_obs = 6/3; flipping signs keeps
    # T* >= T_obs iff the flipped magnitudes sum to <= 2/3: none, either 1/3, both 1/3s, or one of
    # the four 2/3s -> 8 of 64 patterns, p = 0.125.  Comparing floats without tolerance drops the
    # patterns that tie T_obs and reports p = 0.078 < 0.1, which would wrongly accept.
    k = [2, 1, 1, 2, 2, -2]
    inc, cand = {}, {}
    for i, x in enumerate(k):
        base = max(0, -x)
        inc[f"t{i}"] = [1.0] * base + [0.0] * (3 - base)
        cand[f"t{i}"] = [1.0] * (base + x) + [0.0] * (3 - base - x)
    result = compare(inc, cand, GateSettings(alpha=0.1))
    assert result.p_value == pytest.approx(0.125, abs=1e-12)
    assert not result.accepted


@pytest.mark.parametrize("case", range(6))
def test_exact_p_matches_brute_force_enumeration(case):
    rng = random.Random(case)
    n = rng.randint(5, EXACT_MAX_NONZERO)
    # thirds make repeated magnitudes and exact ties in sums likely
    deltas = [rng.choice([-3, -2, -1, 0, 1, 1, 2, 2, 3]) / 3 for _ in range(n)]
    if not any(deltas):
        deltas[0] = 1 / 3
    inc, cand = from_deltas(deltas)
    result = compare(inc, cand, GateSettings())
    if sum(1 for d in deltas if d != 0) <= EXACT_MAX_NONZERO:
        assert result.p_exact is True
    assert result.p_value == pytest.approx(brute_force_sign_flip_p(deltas), abs=1e-12)


@pytest.mark.parametrize("case", [1, 5, 8])  # exact p = 0.099, 0.072, 0.349
def test_monte_carlo_p_is_close_to_the_exact_value_for_many_tasks(case):
    rng = random.Random(case)
    k = [rng.choice([-2, -1, 1, 1, 2, 3]) for _ in range(24)]  # 24 non-zero deltas -> Monte Carlo path
    exact = float(exact_p_for_thirds(k))
    assert 0.05 < exact < 0.5  # cases where the estimate matters for the decision
    inc, cand = from_deltas([x / 3 for x in k])
    result = compare(inc, cand, GateSettings(resamples=20000, seed=3))
    assert result.p_exact is False
    se = math.sqrt(exact * (1 - exact) / 20000)
    assert abs(result.p_value - exact) < 4 * se + 1 / 20001


# --------------------------------------------------------------------------- decisions and reasons


def test_all_zero_deltas_are_rejected_with_p_one():
    inc = {"a": [1.0, 0.0], "b": [0.5], "c": [0.0]}
    cand = {"a": [0.0, 1.0], "b": [0.5, 0.5, 0.5], "c": [0.0]}
    for test in ("permutation", "bootstrap"):
        result = compare(inc, cand, GateSettings(test=test))
        assert not result.accepted
        assert result.p_value == 1.0
        assert result.ties == 3
        assert "same as the incumbent on all 3 tasks" in result.reason


def test_strict_mode_rejects_ties_and_reports_no_statistics():
    inc = {"a": [1.0], "b": [0.0]}
    cand = {"a": [0.0], "b": [1.0]}  # same mean, different tasks
    result = compare(inc, cand, GateSettings(mode="strict"))
    assert not result.accepted
    assert result.p_value is None and result.ci_low is None and result.ci_high is None
    assert (result.wins, result.losses) == (1, 1)
    assert result.reason.startswith("rejected (strict): candidate mean 0.500 is not above incumbent mean 0.500")


def test_strict_mode_accepts_any_higher_mean_even_one_lucky_task():
    inc = {f"t{i}": [0.0] for i in range(10)}
    cand = dict(inc, t0=[1.0])
    strict = compare(inc, cand, GateSettings(mode="strict"))
    paired = compare(inc, cand, GateSettings())
    assert strict.accepted
    assert not paired.accepted
    assert paired.p_value == pytest.approx(0.5)


def test_min_delta_is_respected():
    # 15 of 20 tasks gain +1/3, others tie: gain 0.25, extremely significant.
    inc = {f"t{i}": [0.0, 0.0, 0.0] for i in range(20)}
    cand = {f"t{i}": ([1.0, 0.0, 0.0] if i < 15 else [0.0, 0.0, 0.0]) for i in range(20)}
    low = compare(inc, cand, GateSettings(min_delta=0.2))
    high = compare(inc, cand, GateSettings(min_delta=0.3))
    exact = compare(inc, cand, GateSettings(min_delta=0.25))  # gain equals min_delta (float 1/3 * 15 / 20)
    assert low.accepted
    assert "at least min_delta 0.200" in low.reason
    assert high.p_value < 0.001
    assert not high.accepted
    assert "gain +0.250 below min_delta 0.300" in high.reason
    assert exact.accepted


def test_negative_change_is_rejected_even_if_alpha_were_huge():
    inc = {"a": [1.0], "b": [1.0], "c": [0.0]}
    cand = {"a": [0.0], "b": [0.0], "c": [0.0]}
    result = compare(inc, cand, GateSettings(alpha=0.99))
    assert not result.accepted
    assert result.delta == pytest.approx(-2 / 3)
    assert result.reason.startswith("rejected: candidate is not better, -0.667 mean paired change over 3 tasks")


def test_not_significant_reason_names_p_and_alpha():
    inc, cand = from_deltas([1 / 3, 1 / 3, -1 / 3, 2 / 3, -1 / 3, 0.0])
    result = compare(inc, cand, GateSettings())
    assert not result.accepted
    assert result.p_value == pytest.approx(brute_force_sign_flip_p([1 / 3, 1 / 3, -1 / 3, 2 / 3, -1 / 3]))
    assert f"p={result.p_value:.3g} >= alpha 0.10" in result.reason
    assert "(6 tasks, 3 better, 2 worse, 1 tied)" in result.reason


def test_bootstrap_cannot_certify_from_one_task():
    # The plain bootstrap of a single +1 delta would give p ~ 0; the floor 2^-1 applies.
    result = compare({"a": [0.0]}, {"a": [1.0]}, GateSettings(test="bootstrap", alpha=0.1))
    assert result.p_value == pytest.approx(0.5)
    assert not result.accepted
    assert result.warning is not None


def test_confidence_interval_brackets_the_gain_and_excludes_zero_for_a_clear_win():
    inc, cand = simulate(123, gain=0.3, n_tasks=30)
    result = compare(inc, cand, GateSettings(alpha=0.1, resamples=4000))
    assert result.ci_level == pytest.approx(0.9)
    assert result.ci_low <= result.delta <= result.ci_high
    assert result.ci_low > 0
    assert result.accepted


def test_sample_counts_may_differ_between_sides():
    inc = {"a": [1.0], "b": [0.0]}
    cand = {"a": [1.0, 1.0, 0.0], "b": [0.0, 1.0, 1.0, 1.0]}
    result = compare(inc, cand, GateSettings())
    by_id = {t.task_id: t for t in result.per_task}
    assert by_id["a"].candidate == pytest.approx(2 / 3)
    assert by_id["a"].delta == pytest.approx(-1 / 3)
    assert by_id["b"].delta == pytest.approx(0.75)
    assert result.incumbent_mean == pytest.approx(0.5)


def test_to_dict_is_json_ready_for_the_report():
    inc, cand = simulate(5, gain=0.2)
    result = compare(inc, cand, GateSettings(resamples=500))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["accepted"] == result.accepted
    assert data["n_tasks"] == 20
    assert len(data["per_task"]) == 20
    assert set(data["per_task"][0]) == {"task_id", "incumbent", "candidate", "delta"}
    assert data["p_value"] == result.p_value
    assert data["reason"] == result.reason


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_results_and_dict_order_does_not_matter():
    inc, cand = simulate(42, gain=0.05, n_tasks=40)  # > 16 non-zero deltas: Monte Carlo and bootstrap
    for test in ("permutation", "bootstrap"):
        settings = GateSettings(test=test, resamples=500, seed=9)
        first = compare(inc, cand, settings)
        again = compare(inc, cand, settings)
        shuffled_keys = list(inc)
        random.Random(1).shuffle(shuffled_keys)
        reordered = compare(
            {k: inc[k] for k in shuffled_keys}, {k: cand[k] for k in reversed(shuffled_keys)}, settings
        )
        assert first.to_dict() == again.to_dict() == reordered.to_dict()
        assert first.p_exact is False


def test_different_seeds_draw_different_monte_carlo_resamples():
    inc, cand = simulate(42, gain=0.05, n_tasks=40)
    p_values = {compare(inc, cand, GateSettings(resamples=300, seed=s)).p_value for s in range(5)}
    assert len(p_values) > 1


# --------------------------------------------------------------------------- bad input


def test_mismatched_task_ids_raise_and_name_the_tasks():
    inc = {"a": [1.0], "b": [0.0], "c": [1.0]}
    cand = {"a": [1.0], "b": [0.0], "z": [1.0]}
    with pytest.raises(ValueError) as err:
        compare(inc, cand, GateSettings())
    assert "missing from the candidate: c" in str(err.value)
    assert "missing from the incumbent: z" in str(err.value)


@pytest.mark.parametrize(
    "scores, fragment",
    [([], "no scores for task 'a'"), ([1.5], "1.5 for task 'a' is not a number in [0, 1]"),
     ([float("nan")], "nan for task 'a'"), ("1", "must be a list of numbers")],
)
def test_bad_scores_raise(scores, fragment):
    with pytest.raises(ValueError) as err:
        compare({"a": [0.0]}, {"a": scores}, GateSettings())
    assert fragment in str(err.value)


def test_empty_task_set_raises():
    with pytest.raises(ValueError, match="no validation tasks"):
        compare({}, {}, GateSettings())


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"mode": "lenient"}, "gate mode must be one of paired, strict"),
     ({"test": "ttest"}, "gate test must be one of permutation, bootstrap"),
     ({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha"),
     ({"min_delta": -0.1}, "min_delta"), ({"resamples": 0}, "resamples"), ({"samples": 0}, "samples")],
)
def test_bad_settings_raise(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        GateSettings(**kwargs)


# --------------------------------------------------------------------------- too-small splits


def test_max_power_warning_for_two_tasks_but_not_ten():
    warning = max_power_warning(2, 0.1)
    assert warning is not None
    assert "2 validation tasks" in warning and "0.25" in warning and "at least 4" in warning
    assert max_power_warning(10, 0.1) is None
    assert max_power_warning(0, 0.1) is not None
    # Monte Carlo floor 1/(1 + resamples) with too few resamples
    assert max_power_warning(30, 0.1, resamples=5) is not None
    assert max_power_warning(30, 0.1, resamples=100) is None


def test_warning_matches_what_the_gate_can_actually_do():
    for n in (3, 4):
        inc = {f"t{i}": [0.0] for i in range(n)}
        cand = {f"t{i}": [1.0] for i in range(n)}  # candidate wins every task by the maximum
        result: GateResult = compare(inc, cand, GateSettings(alpha=0.1))
        warned = max_power_warning(n, 0.1) is not None
        assert result.accepted is (not warned)
        assert result.warning == max_power_warning(n, 0.1, 10000)
