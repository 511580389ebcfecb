"""Shared val rollouts: the sequential tests of several candidate edits of one step drawn from one set of rollouts
(`gate.design: factorial`, a fold-over factorial design).

Tested one at a time, every candidate edit draws its own val samples: a round of k open tests costs k rollouts per
(task, sample index), plus the incumbent's when they are not cached. Here a round draws, for every (task, sample
index) the open tests need, one *pair* of rollouts, and a fair coin per open edit puts that edit into the first or
the second member of the pair: each member is the incumbent plus the edits its coins gave it. For edit j, the
member holding j is its candidate sample and the other member its incumbent sample. Every open test gets one
pair per (task, index), and a round costs two rollouts per (task, index) however many tests are open.

Why the decision stays exact: if edit j changes nothing (whatever else the skill holds), which member of a pair
carries j is a coin independent of both outcomes, so the sign of every pair's difference is a fair coin, and the
sign-flip test over the pairs (`SequentialSettings.paired`, `sequential.paired_p`) has its stated false-accept
rate whatever the other edits do. The other edits add noise to j's comparison (a helpful one sits on j's side
half the time) but no bias. What j's test measures is j's effect averaged over skills holding each other open edit
half the time; the step's accepted edits are still combined and confirmed together (search._combine), and the
run's final skill against the starting one (loop._confirm).

Only edits that apply together can share rollouts (`compatible`): an edit that deletes a line another one anchors
on is tested on its own. Everything else about a test (its looks, futility and harm stops, alpha shares, freeze
rule) is the sequential test's own: the tests of a step stay in step because they look at the same rounds of the
same pooled samples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import package
from .runtime import Runtime
from .sequential import SequentialTest
from .types import Edit

_UNLIMITED = 10**9


@dataclass
class SharedTest:
    """One edit's test inside a shared design: `spent` is its share of the target calls of the rounds it took
    part in (each round's calls split evenly across the tests open in it)."""

    key: str
    edit: Edit
    test: SequentialTest
    spent: float = 0.0


def compatible(current: str, edits: Sequence[Edit], *, name: str) -> list[int]:
    """The indices of the edits that apply together to `current`, greedily in order: an edit joins when the set
    with it still applies every edit (any subset of such a set applies too, in the same order)."""
    chosen: list[int] = []
    for i in range(len(edits)):
        trial = [edits[j] for j in chosen] + [edits[i]]
        report = package.apply(current, trial, max_ops=len(trial), max_lines=_UNLIMITED, name=name)
        if len(report.results) == len(trial) and all(r.applied for r in report.results):
            chosen.append(i)
    return chosen


def coin(seed: int, task_id: str, index: int, key: str) -> bool:
    """Which member of the pair for (task, index) carries the edit `key`: a fair coin fixed by the design's seed
    (reproducible, and independent of every outcome)."""
    digest = hashlib.blake2b(f"{seed}\x00{task_id}\x00{index}\x00{key}".encode(), digest_size=1).digest()
    return bool(digest[0] & 1)


Draw = Callable[[list[tuple[tuple[str, ...], str, int]]], list[float]]


def drive(tests: Sequence[SharedTest], draw: Draw, *, seed: int) -> None:
    """Run the tests to their ends. `draw` scores a list of (keys of the edits in the skill, task id, sample index)
    rollouts, in order; each round asks it for one pair per (task, index) the open tests need. Counting what a
    round cost is the caller's (`run` splits it across the tests open in that round)."""
    while True:
        open_tests = [t for t in tests if t.test.result is None]
        if not open_tests:
            return
        wanted: dict[tuple[str, int], list[SharedTest]] = {}
        for t in open_tests:
            for _side, task_id, index in t.test.next_requests():
                members = wanted.setdefault((task_id, index), [])
                if t not in members:
                    members.append(t)
        blocks: list[tuple[str, int, list[SharedTest], dict[str, bool]]] = []
        jobs: list[tuple[tuple[str, ...], str, int]] = []
        for (task_id, index), members in sorted(wanted.items()):
            coins = {t.key: coin(seed, task_id, index, t.key) for t in members}
            jobs.append((tuple(t.key for t in members if coins[t.key]), task_id, index))
            jobs.append((tuple(t.key for t in members if not coins[t.key]), task_id, index))
            blocks.append((task_id, index, members, coins))
        scores = draw(jobs)
        for b, (task_id, index, members, coins) in enumerate(blocks):
            first, second = scores[2 * b], scores[2 * b + 1]
            for t in members:
                mine, other = (first, second) if coins[t.key] else (second, first)
                t.test.add("candidate", task_id, index, mine)
                t.test.add("incumbent", task_id, index, other)
        for t in open_tests:
            t.test.look()


def run(rt: Runtime, current: str, tests: Sequence[SharedTest], label: str, *, name: str, seed: int) -> int:
    """Run the tests to their ends on shared pairs of the target's rollouts; returns the target calls paid for
    (cached samples are free), and sets each test's `spent` to its share. The edits must be `compatible`."""
    order = {t.key: i for i, t in enumerate(tests)}
    texts: dict[tuple[str, ...], str] = {(): current}

    def text(keys: tuple[str, ...]) -> str:
        if keys not in texts:
            edits = [tests[order[k]].edit for k in sorted(keys, key=order.__getitem__)]
            report = package.apply(current, edits, max_ops=len(edits), max_lines=_UNLIMITED, name=name)
            if not all(r.applied for r in report.results):
                raise ValueError(f"edits {', '.join(keys)} do not apply together; test them one at a time")
            texts[keys] = report.after
        return texts[keys]

    def draw(jobs: list[tuple[tuple[str, ...], str, int]]) -> list[float]:
        open_tests = [t for t in tests if t.test.result is None]
        before = rt.ledger.role_calls("target")
        rollouts = rt.engine.run_samples([(text(keys), rt.by_id[task_id], index) for keys, task_id, index in jobs],
                                         label)
        share = (rt.ledger.role_calls("target") - before) / len(open_tests)
        for t in open_tests:
            t.spent += share
        return [r.score.score for r in rollouts]

    start = rt.ledger.role_calls("target")
    drive(tests, draw, seed=seed)
    return rt.ledger.role_calls("target") - start
