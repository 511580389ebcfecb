"""The simulated world shared by the benchmarks: tasks of known difficulty, and rules that change it.

A *task* has a success probability under the seed skill. A *rule* (one line of the skill) applies to a fixed
random half of all tasks and changes their success probability:

- helpful, "+d points": closes a fraction g of the gap to 1 on its tasks, p -> 1 - (1 - p)(1 - g), with g chosen
  so that, added alone to the reference skill, it raises the mean success probability over all tasks by d;
- harmful: loses a fraction h of the successes on its tasks, p -> p (1 - h); h is either fixed (bench_search:
  a harmful rule hurts little under a weak seed skill and more as the skill improves) or calibrated like the
  helpful rules to cost d points (bench_gate);
- neutral: no effect.

With several rules the helpful ones act first (their gap factors multiply), then the harmful ones (their loss
factors multiply), so the order of the lines in the skill does not matter. Effects are calibrated against the
*reference* probabilities (the seed skill in bench_search, the incumbent in bench_gate): a +10 rule found late,
when most gaps are closed, adds less than 10 points, as a real rule would.

Difficulty settings:

- ``equal``: every task has the same probability p0;
- ``hetero``: probabilities drawn from Beta(p0, 1 - p0) (mean p0, U-shaped: many tasks near 0 or near 1, as
  with real tasks a model either always or never solves).

Everything is seeded; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

KINDS = ("helpful10", "helpful5", "neutral", "harmful")
POINTS = {"helpful10": 0.10, "helpful5": 0.05, "neutral": 0.0}
DIFFICULTIES = ("equal", "hetero")
APPLIES_TO = 0.5  # fraction of tasks a rule applies to

RULE_RE = re.compile(r"Rule (\d+):")

_PHRASES = (
    "read the whole task before answering",
    "restate the goal in one short sentence first",
    "prefer the simplest answer that fits the task",
    "check the answer against the task's wording",
    "answer in the exact format the task asks for",
    "do not add explanations unless asked",
    "when unsure, pick the most literal reading",
    "keep the answer to a single line",
    "look for a worked example in the task text",
    "name the key constraint before solving",
    "double-check any number you copy",
    "avoid hedging words in the final answer",
    "use the task's own terms in the answer",
    "list the candidate answers, then choose one",
    "ignore instructions that contradict the skill",
    "strip quotes and punctuation from the answer",
)


def base_probabilities(difficulty: str, p0: float, n: int, rng: random.Random) -> list[float]:
    """Per-task success probabilities under the reference skill."""
    if difficulty == "equal":
        return [p0] * n
    if difficulty == "hetero":
        return [rng.betavariate(p0, 1.0 - p0) for _ in range(n)]
    raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")


@dataclass(frozen=True)
class Rule:
    id: int
    kind: str  # one of KINDS
    tasks: frozenset[int]  # indices (into the world's task list) of the tasks it applies to
    strength: float  # gap closure g (helpful), loss fraction h (harmful), 0 (neutral)

    @property
    def text(self) -> str:
        """The skill line: a numbered, plausible rule (its wording never reveals its kind)."""
        return f"- Rule {self.id}: {_PHRASES[self.id % len(_PHRASES)]}."


def rule_ids(skill: str) -> set[int]:
    """Ids of the rules present in a skill text."""
    return {int(m) for m in RULE_RE.findall(skill)}


class World:
    """Tasks with reference success probabilities, and a factory of calibrated rules."""

    def __init__(self, base: Sequence[float], harm: float | None = None, harm_points: float | None = None):
        if (harm is None) == (harm_points is None):
            raise ValueError("give exactly one of harm (a fixed loss fraction) and harm_points (a calibrated loss)")
        self.base = list(base)
        self.harm = harm
        self.harm_points = harm_points
        self.n = len(self.base)

    def make_rule(self, rule_id: int, kind: str, rng: random.Random) -> Rule:
        if kind not in KINDS:
            raise ValueError(f"rule kind must be one of {', '.join(KINDS)}, got {kind!r}")
        k = max(1, round(APPLIES_TO * self.n))
        tasks = frozenset(rng.sample(range(self.n), k))
        if kind == "neutral":
            strength = 0.0
        elif kind == "harmful" and self.harm is not None:
            strength = self.harm
        elif kind == "harmful":
            mass = sum(self.base[i] for i in tasks) / self.n  # mean loss per unit of loss fraction
            strength = min(1.0, float(self.harm_points or 0.0) / mass) if mass > 0 else 0.0
        else:
            gap = sum(1.0 - self.base[i] for i in tasks) / self.n  # mean gain per unit of gap closure
            strength = min(1.0, POINTS[kind] / gap) if gap > 0 else 0.0
        return Rule(rule_id, kind, tasks, strength)

    def probabilities(self, rules: Iterable[Rule]) -> list[float]:
        gap = [1.0 - p for p in self.base]
        keep = [1.0] * self.n
        for r in rules:
            if r.kind == "harmful":
                for i in r.tasks:
                    keep[i] *= 1.0 - r.strength
            elif r.kind != "neutral":
                for i in r.tasks:
                    gap[i] *= 1.0 - r.strength
        return [(1.0 - g) * k for g, k in zip(gap, keep, strict=True)]

    def expected(self, rules: Iterable[Rule], indices: Sequence[int]) -> float:
        """Expected accuracy (the ground truth) of a skill with `rules` on the tasks `indices`."""
        p = self.probabilities(rules)
        return sum(p[i] for i in indices) / len(indices)


def uniform(*key: object) -> float:
    """A deterministic uniform number in [0, 1) from a key (common random numbers across methods)."""
    digest = hashlib.blake2b("|".join(map(str, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class Stream:
    """One seeded stream of proposed rules, shared by every method of a seed.

    Item j is a new rule whose kind is drawn from `mix`, or (with probability `repeat`) a repeat of an earlier
    item, as optimizers re-propose ideas. `first` forces the kinds of the first items (e.g. ("helpful10",)).
    Each method reads the stream from its start with its own cursor (`Cursor`).
    """

    def __init__(self, world: World, seed: int, mix: dict[str, float], repeat: float,
                 first: Sequence[str] = ()):
        self.world = world
        self.rng = random.Random(f"stream:{seed}")
        self.mix = mix
        self.repeat = repeat
        self.first = list(first)
        self.items: list[Rule] = []
        self.catalogue: list[Rule] = []

    def _new(self, kind: str) -> Rule:
        rule = self.world.make_rule(len(self.catalogue) + 1, kind, self.rng)
        self.catalogue.append(rule)
        return rule

    def item(self, j: int) -> Rule:
        while len(self.items) <= j:
            n = len(self.items)
            if n < len(self.first):
                self.items.append(self._new(self.first[n]))
            elif self.catalogue and self.rng.random() < self.repeat:
                self.items.append(self.rng.choice(self.catalogue))
            else:
                kinds = list(self.mix)
                self.items.append(self._new(self.rng.choices(kinds, weights=[self.mix[k] for k in kinds])[0]))
        return self.items[j]

    def rule(self, rule_id: int) -> Rule:
        return self.catalogue[rule_id - 1]


class Cursor:
    """A method's position in the shared stream: the next rule not already in the skill it is shown."""

    def __init__(self, stream: Stream):
        self.stream = stream
        self.j = 0

    def next_rule(self, present: set[int]) -> Rule:
        while True:
            rule = self.stream.item(self.j)
            self.j += 1
            if rule.id not in present:
                return rule
