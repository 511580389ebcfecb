"""The factorial val design (skillopt_action/factorial.py): several candidates' sequential tests from shared pairs of
rollouts, with the exact paired sign-flip test (sequential.paired_p)."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

from helpers import enumerated_tails

from skillopt_action import factorial
from skillopt_action.sequential import SequentialSettings, SequentialTest, paired_p
from skillopt_action.types import Edit

TASKS = [f"t{i:02d}" for i in range(40)]
LOOP = SequentialSettings(alpha=0.05, effect=0.1, freeze=3, paired=True)


def enumerate_pairs(strata):
    """P(T >= T_obs), P(T <= T_obs) over every sign flip of the pairs' differences."""
    pairs = [(len(inc), a, b) for inc, cand in strata for a, b in zip(inc, cand, strict=True)]
    return enumerated_tails([[(b - a) / m, (a - b) / m] for m, a, b in pairs], sum((b - a) / m for m, a, b in pairs))


def test_paired_p_is_exact_against_enumeration():
    rng = random.Random(5)
    for _ in range(80):
        strata = []
        for _task in range(rng.randint(1, 4)):
            m = rng.choice((1, 2, 3))
            strata.append(([rng.randint(0, 4) for _ in range(m)], [rng.randint(0, 4) for _ in range(m)]))
        up, lo = paired_p(strata)
        want_up, want_lo = enumerate_pairs(strata)
        assert abs(up - want_up) < 1e-12 and abs(lo - want_lo) < 1e-12, strata


def test_paired_p_of_identical_sides_is_one_and_unequal_lengths_are_refused():
    assert paired_p([([0, 4], [0, 4]), ([1], [1])]) == (1.0, 1.0)
    try:
        paired_p([([0, 4], [4])])
    except ValueError as exc:
        assert "same number of samples" in str(exc)
    else:
        raise AssertionError("unequal sides must be refused")


def shared_tests(n: int, settings: SequentialSettings = LOOP) -> list[factorial.SharedTest]:
    return [factorial.SharedTest(f"edit{i + 1}", Edit(op="add", anchor="## Rules", content=f"- rule {i + 1}"),
                                 SequentialTest(TASKS, replace(settings, seed=i)))
            for i in range(n)]


def world_draw(effects: dict[str, float], base: float, rng: random.Random, log: list | None = None):
    """Scores a member from the effects of the edits it holds (added to the base success probability)."""
    def draw(jobs):
        out = []
        for keys, task_id, index in jobs:
            p = min(1.0, max(0.0, base + sum(effects.get(k, 0.0) for k in keys)))
            out.append(1.0 if rng.random() < p else 0.0)
            if log is not None:
                log.append((keys, task_id, index))
        return out
    return draw


def test_every_open_test_gets_one_pair_per_task_and_index_with_its_edit_in_exactly_one_member():
    tests = shared_tests(5)
    log: list = []
    factorial.drive(tests, world_draw({}, 0.3, random.Random(1), log), seed=7)
    blocks = {}
    for i in range(0, len(log), 2):
        (keys_a, task_a, idx_a), (keys_b, task_b, idx_b) = log[i], log[i + 1]
        assert (task_a, idx_a) == (task_b, idx_b) and not set(keys_a) & set(keys_b)
        assert (task_a, idx_a) not in blocks, "a (task, index) pair is drawn once"
        blocks[(task_a, idx_a)] = set(keys_a) | set(keys_b)
    for t in tests:
        assert t.test.result is not None and t.test.result.test.startswith("paired sign-flip")
        pairs = [b for b, members in blocks.items() if t.key in members]
        assert t.test.result.samples == 2 * len(pairs), "each pair is one sample of each side"
    # two rollouts per (task, index), however many tests share them
    assert len(log) == 2 * len(blocks)


def test_coins_are_fair_and_independent_across_edits():
    keys = [f"edit{i}" for i in range(4)]
    draws = [[factorial.coin(3, f"t{t}", i, k) for k in keys] for t in range(100) for i in range(10)]
    for j in range(4):
        assert 0.45 < sum(d[j] for d in draws) / len(draws) < 0.55
    for a, b in itertools.combinations(range(4), 2):
        assert 0.45 < sum(d[a] == d[b] for d in draws) / len(draws) < 0.55


def test_a_helpful_edit_among_neutral_and_harmful_ones_is_found_for_far_fewer_rollouts_than_testing_each_alone():
    effects = {"edit1": 0.35, "edit4": -0.2}
    tests = shared_tests(5)
    log: list = []
    factorial.drive(tests, world_draw(effects, 0.3, random.Random(2), log), seed=1)
    verdicts = {t.key: t.test.result.verdict for t in tests}
    assert verdicts["edit1"] == "accepted"
    assert not any(t.test.result.accepted for t in tests if t.key != "edit1")
    assert verdicts["edit4"] in ("harmful", "not_better")
    # the same five tests run one at a time, each against the incumbent (drawn once, shared as a cache would)
    alone = 0
    rng = random.Random(2)
    incumbent: dict[tuple[str, int], float] = {}
    for t in shared_tests(5, replace(LOOP, paired=False)):
        while t.test.result is None:
            for side, task_id, index in t.test.next_requests():
                if side == "incumbent":
                    if (task_id, index) not in incumbent:
                        incumbent[(task_id, index)] = 1.0 if rng.random() < 0.3 else 0.0
                        alone += 1
                    t.test.add(side, task_id, index, incumbent[(task_id, index)])
                else:
                    alone += 1
                    t.test.add(side, task_id, index, 1.0 if rng.random() < 0.3 + effects.get(t.key, 0.0) else 0.0)
            t.test.look()
    assert len(log) < 0.7 * alone, (len(log), alone)


def test_a_do_nothing_edit_is_accepted_at_most_alpha_of_the_time_whatever_the_other_edits_do():
    """The coin makes the paired test exact: a neutral edit shares its pairs with a strongly helpful and a strongly
    harmful edit (which sit on its side half the time) and is still accepted at most alpha of the time."""
    settings = SequentialSettings(alpha=0.1, schedule=(1, 3), spend=(0.2, 0.8), effect=0.1, freeze=3, paired=True)
    accepted = trials = 0
    for trial in range(60):
        tests = [factorial.SharedTest(k, Edit(op="add", anchor="## Rules", content=k),
                                      SequentialTest(TASKS[:20], replace(settings, seed=trial)))
                 for k in ("neutral1", "neutral2", "helpful", "harmful")]
        factorial.drive(tests, world_draw({"helpful": 0.4, "harmful": -0.25}, 0.35, random.Random(trial)),
                        seed=trial)
        for t in tests[:2]:
            trials += 1
            accepted += t.test.result.accepted
    # alpha 0.1 over 120 decisions: 12 expected at worst; 22 would be 3 standard deviations above it
    assert accepted <= 22, accepted


def test_only_edits_that_apply_together_share_rollouts():
    skill = "# S\n\n## Rules\n\n- keep it short\n- be exact\n"
    edits = [Edit(op="add", anchor="## Rules", content="- new rule"),
             Edit(op="delete", anchor="- keep it short", content=""),
             Edit(op="replace", anchor="- keep it short", content="- keep it very short"),
             Edit(op="replace", anchor="- be exact", content="- be precise")]
    assert factorial.compatible(skill, edits, name="SKILL.md") == [0, 1, 3]
