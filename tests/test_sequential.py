"""The sequential gate (skillopt_action/sequential.py): exact p-values, error control, power, cost, resumption."""

from __future__ import annotations

import itertools
import random

import pytest
from helpers import enumerated_tails

from skillopt_action.sequential import (
    EARLY_SPEND,
    FREEZE,
    SequentialSettings,
    SequentialTest,
    confirmation_alpha,
    stratified_p,
)


def brute_force(strata):
    """P(T >= T_obs), P(T <= T_obs) by enumerating every within-task relabelling."""
    obs = sum(sum(c) / len(c) - sum(i) / len(i) for i, c in strata)
    per_task = []
    for inc, cand in strata:
        pool, n_i, n_c = inc + cand, len(inc), len(cand)
        per_task.append([sum(pool[j] for j in chosen) / n_c - (sum(pool) - sum(pool[j] for j in chosen)) / n_i
                         for chosen in itertools.combinations(range(n_i + n_c), n_c)])
    return enumerated_tails(per_task, obs)


def test_stratified_p_is_exact_against_enumeration():
    rng = random.Random(3)
    for _ in range(60):
        strata = []
        for _ in range(rng.randint(1, 4)):
            k = rng.choice([1, 2, 3])
            strata.append(([rng.randint(0, 4) for _ in range(k)], [rng.randint(0, 4) for _ in range(k)]))
        got, want = stratified_p(strata), brute_force(strata)
        assert got == pytest.approx(want, abs=1e-12), strata


def test_stratified_p_is_exact_with_more_incumbent_than_candidate_samples():
    rng = random.Random(4)
    for _ in range(60):
        strata = []
        for _ in range(rng.randint(1, 4)):
            n_i, n_c = rng.choice([(3, 1), (3, 3), (6, 3), (2, 1), (1, 1)])
            strata.append(([rng.randint(0, 4) for _ in range(n_i)], [rng.randint(0, 4) for _ in range(n_c)]))
        got, want = stratified_p(strata), brute_force(strata)
        assert got == pytest.approx(want, abs=1e-12), strata


def test_four_tasks_that_flip_on_every_sample_are_overwhelming_evidence():
    strata = [([0, 0, 0], [4, 4, 4])] * 4 + [([4, 4, 4], [4, 4, 4])] * 36
    p, p_harm = stratified_p(strata)
    assert p == pytest.approx((1 / 20) ** 4) and p_harm == 1.0


def run(ps, pc, settings, seed, rounds_done=0, cache=None):
    """Drive one decision with Bernoulli samples; returns (result, new candidate+incumbent samples drawn)."""
    rng = random.Random(seed)
    cache = {} if cache is None else cache
    test = SequentialTest([f"t{i:03d}" for i in range(len(ps))], settings, rounds_done=rounds_done)
    drawn = 0
    while test.result is None:
        for side, task, idx in test.next_requests():
            key = (side, task, idx)
            if key not in cache:
                p = (ps if side == "incumbent" else pc)[int(task[1:])]
                cache[key] = 1.0 if rng.random() < p else 0.0
                drawn += 1
            test.add(side, task, idx, cache[key])
        test.look()
    return test.result, drawn


def heterogeneous(n, rng):
    return [rng.betavariate(0.3, 0.3) for _ in range(n)]


def test_a_neutral_edit_is_accepted_at_most_alpha_of_the_time():
    settings = SequentialSettings(alpha=0.05)
    rng = random.Random(11)
    accepted = 0
    for trial in range(300):
        ps = heterogeneous(40, rng) if trial % 2 else [0.5] * 40
        accepted += run(ps, ps, settings, seed=trial)[0].accepted
    # the bound is alpha = 0.05; 300 seeded trials, so allow three standard errors above it
    assert accepted / 300 <= 0.05 + 3 * (0.05 * 0.95 / 300) ** 0.5


def test_a_rule_that_fixes_four_of_forty_tasks_passes_at_a_run_level_alpha_and_cheaply():
    settings = SequentialSettings(alpha=0.05 / 18)  # the run's 0.05 split over 18 decisions
    rng = random.Random(5)
    results = []
    for trial in range(40):
        ps = [rng.choice([0.0, 1.0]) for _ in range(40)]
        fixed = [i for i, p in enumerate(ps) if p == 0.0][:4]
        pc = [1.0 if i in fixed else p for i, p in enumerate(ps)]
        results.append(run(ps, pc, settings, seed=trial))
    assert all(r.accepted for r, _ in results)
    assert max(r.rounds for r, _ in results) <= 2
    assert sum(drawn for _, drawn in results) / len(results) <= 120  # 40 round-1 samples + the 4 varying tasks


def test_a_neutral_edit_on_deterministic_tasks_stops_after_one_round():
    ps = [1.0] * 20 + [0.0] * 20
    result, drawn = run(ps, ps, SequentialSettings(alpha=0.01), seed=1)
    assert result.verdict == "not_better" and result.boundary == "futility" and result.rounds == 1
    assert drawn == 80  # one sample per task for each skill, nothing more


def test_one_lucky_task_cannot_decide():
    ps = [1.0] * 39 + [0.0]
    pc = [1.0] * 40
    result, _ = run(ps, pc, SequentialSettings(alpha=0.05), seed=2)
    assert not result.accepted and result.verdict == "inconclusive"
    assert "too few" in result.reason and result.task_p == 0.5


def test_a_harmful_edit_is_called_harmful():
    ps = [1.0] * 40
    pc = [0.0] * 8 + [1.0] * 32
    result, _ = run(ps, pc, SequentialSettings(alpha=0.01), seed=3)
    assert result.verdict == "harmful" and result.losses == 8 and result.delta == pytest.approx(-0.2)


def test_a_resumed_decision_reuses_its_samples_and_only_the_looks_it_has_left():
    # round 1 (index 0) looks like a wash; from index 1 on the candidate wins every task
    def score(side, task, idx):
        t = int(task[1:])
        if idx == 0:
            return float((side == "incumbent") == (t < 5))
        return float(side == "candidate")

    settings = SequentialSettings(alpha=0.01)
    tasks = [f"t{i:03d}" for i in range(10)]
    cache: dict = {}

    def decide(rounds_done):
        test, drawn = SequentialTest(tasks, settings, rounds_done=rounds_done), 0
        while test.result is None:
            for side, task, idx in test.next_requests():
                if (side, task, idx) not in cache:
                    cache[side, task, idx] = score(side, task, idx)
                    drawn += 1
                test.add(side, task, idx, cache[side, task, idx])
            test.look()
        return test.result, drawn

    first, drawn1 = decide(0)
    assert first.verdict == "not_better" and first.rounds == 1 and drawn1 == 20
    again, drawn2 = decide(first.rounds)
    assert again.accepted and again.rounds == 2
    assert drawn2 == 40  # index 0 came from the cache; indices 1-2 of both skills on the 10 varying tasks are new
    # the look already taken is not counted again: only round 2's share of alpha was spent
    assert again.alpha_spent == pytest.approx(settings.alpha * settings.spend[1])
    done, drawn3 = decide(len(settings.schedule))
    assert done.verdict == "inconclusive" and drawn3 == 0 and "every look" in done.reason


def test_settings_are_checked():
    with pytest.raises(ValueError):
        SequentialSettings(schedule=(3, 1))
    with pytest.raises(ValueError):
        SequentialSettings(spend=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError):
        SequentialTest([], SequentialSettings())


def test_no_regression_rejects_a_mean_improving_edit_that_breaks_one_task():
    ps = [0.0] * 6 + [1.0] * 34
    pc = [1.0] * 6 + [0.0] + [1.0] * 33  # fixes six tasks, breaks one
    plain, _ = run(ps, pc, SequentialSettings(alpha=0.01), seed=6)
    assert plain.accepted and plain.delta == pytest.approx(5 / 40)
    strict, _ = run(ps, pc, SequentialSettings(alpha=0.01, no_regression=True), seed=6)
    assert not strict.accepted and strict.verdict == "regression" and strict.boundary == "no_regression"
    assert "t006" in strict.reason and "significantly worse" in strict.reason


def loop_settings(**kw):
    """What the loop runs with (evaluation.sequential_settings at the config's defaults)."""
    schedule = (1, 3, 6, 10)
    spend = (*[EARLY_SPEND / 3] * 3, 1 - EARLY_SPEND)
    return SequentialSettings(**{"alpha": 0.05, "schedule": schedule, "spend": spend, "effect": 0.1,
                                 "freeze": FREEZE, **kw})


def test_with_an_effect_a_real_gain_behind_after_one_sample_is_not_dropped():
    # the first sample of every task: the candidate happens to be one task behind; from sample 2 on it wins
    # on half the tasks (a +0.5 gain there, +0.25 on the mean)
    def score(side, task, idx):
        t = int(task[1:])
        if idx == 0:
            return float(side == "incumbent" and t == 0)
        return float(side == "candidate" and t % 2 == 0 and idx % 2 == 1)

    def decide(settings):
        test = SequentialTest([f"t{i:03d}" for i in range(40)], settings)
        while test.result is None:
            for side, task, idx in test.next_requests():
                test.add(side, task, idx, score(side, task, idx))
            test.look()
        return test.result

    old = decide(loop_settings(effect=None))
    assert old.verdict == "not_better" and old.rounds == 1  # "not ahead" stops it at once
    new = decide(loop_settings())
    assert new.accepted and new.rounds > 1


def test_with_an_effect_a_clearly_worse_edit_still_stops_after_one_round():
    ps = [0.5] * 40
    pc = [0.5] * 20 + [0.0] * 20
    result, drawn = run(ps, pc, loop_settings(harm_alpha=1e-9), seed=4)
    assert result.boundary == "futility" and result.rounds == 1 and drawn == 80
    assert "ruled out" in result.reason


def test_a_task_is_frozen_only_after_freeze_samples_of_equal_outcomes():
    test = SequentialTest(["a", "b"], loop_settings(effect=None, alpha=0.01, task_alpha=1.0))
    for side in ("incumbent", "candidate"):
        test.add(side, "a", 0, 0.0)
        test.add(side, "b", 0, 0.0)
    test.add("candidate", "b", 0, 1.0)
    test.look()  # round 1: b is ahead
    asked = {(t, i) for _, t, i in test.next_requests()}
    assert {("a", 1), ("a", 2), ("b", 1), ("b", 2)} <= asked  # two equal failures do not freeze task a yet
    for side, t, i in test.next_requests():
        test.add(side, t, i, 1.0 if (t, side) == ("b", "candidate") else 0.0)
    test.look()
    assert test.result is None
    assert {t for _, t, _ in test.next_requests()} == {"b"}  # a: six equal outcomes, frozen; b still varies


def test_loop_settings_find_a_ten_point_rule_at_forty_tasks_most_of_the_time():
    # seed skill 0.15 on every task; the rule lifts half of them to 0.35 (+10 points on the mean)
    ps = [0.15] * 40
    pc = [0.35 if i % 2 == 0 else 0.15 for i in range(40)]
    kept = sum(run(ps, pc, loop_settings(), seed=trial)[0].accepted for trial in range(60))
    old = sum(run(ps, pc, loop_settings(effect=None, schedule=(1, 3, 6), spend=(0.25, 0.25, 0.5), freeze=1),
                  seed=trial)[0].accepted for trial in range(60))
    assert kept >= 0.75 * 60 and kept > old + 10


def test_the_confirmation_level_keeps_the_runs_bound():
    # 12 decisions at 0.05 can together accept a do-nothing edit with a chance of at most 0.6, and the confirmation
    # on fresh samples must pass too: at 0.05 / 0.6 the run ships one with a chance of at most 0.05
    assert confirmation_alpha(0.05, 12, 0.05) == pytest.approx(0.05 / 0.6)
    assert confirmation_alpha(0.05, 12, 0.05) * min(1.0, 12 * 0.05) == pytest.approx(0.05)
    assert confirmation_alpha(0.05, 40, 0.05) == 0.05  # enough decisions: the union bound is 1
    assert confirmation_alpha(0.05, 1, 0.01) == 0.1  # capped at twice the run's alpha


def test_without_early_futility_only_efficacy_or_harm_stops_an_early_look():
    # a real +10 rule (p 0.15 -> 0.35 on half the tasks) behind at the first look is dropped there by the effect
    # rule one time in a few dozen; the final confirmation (futility=False) keeps testing it
    ps = [0.15] * 40
    pc = [0.35 if i % 2 == 0 else 0.15 for i in range(40)]
    with_futility = [run(ps, pc, loop_settings(), seed=trial)[0] for trial in range(80)]
    without = [run(ps, pc, loop_settings(futility=False), seed=trial)[0] for trial in range(80)]
    early = [r for r in with_futility if r.boundary == "futility" and r.rounds < 4]
    assert early, "some decisions stop early for futility with the loop's settings"
    assert not any(r.boundary == "futility" and r.rounds < 4 for r in without)
    assert sum(r.accepted for r in without) > sum(r.accepted for r in with_futility)
    # a clearly worse edit still stops early, as harmful
    worse, _ = run([0.5] * 40, [0.5] * 20 + [0.0] * 20, loop_settings(futility=False), seed=4)
    assert worse.verdict == "harmful" and worse.rounds <= 2
