"""The sequential gate's power / cost frontier: one val decision at a time, straight through `SequentialTest`.

    python bench/gate_frontier.py [--trials 400] [--cells equal:0.15,hetero:0.5] [--out FILE]
           [--variants '[{"label": "...", "futility_z": 2.5}, ...]']

Each variant is the loop's decision rule (`evaluation.sequential_settings`: schedule [1, 3, 6, 10], a fifth of the
alpha at the early looks, tasks frozen after 3 equal samples, `effect` 0.1, futility at 2 standard errors) with
some fields changed: any field of `SequentialSettings` (`futility_z`, `effect`, `schedule`, `alpha`, `freeze`),
plus `early` (the early looks' share of the alpha). For every variant and cell (difficulty:p0 over 40 val tasks,
bench/sim.py's worlds) it runs `--trials` decisions of a neutral edit and of a +10-point rule, each against a fresh
incumbent, and reports the accept rates and the new val rollouts per decision (candidate side; the incumbent's
side is the same again on the first decision against a skill, cached after that).

Why it exists: a decision's futility rule trades power against cost, and bench_gate.py runs the whole loop's
gate per cell (minutes per variant). This answers "what would a different stopping rule cost or buy" in about a
minute per variant, with the same code the loop runs. It does not replace bench_gate.py's calibration.

    python bench/gate_frontier.py --step helpful10,helpful5,neutral,neutral,harmful,neutral [--trials 300]

`--step` measures one step of several candidate edits instead (one per kind listed, all against the same fresh
incumbent, rules as in bench_search: harmful ones lose 40 % of the successes on their tasks), under each way the
loop can test them: `race` (the loop's `gate.design: separate`: every candidate takes its first look, the
`gate.decisions` = 2 best go on), `separate` (every candidate's test to its end, one at a time, the incumbent's
samples shared as the cache shares them) and `factorial` (`gate.design: factorial`, factorial.drive: shared pairs
of rollouts). It reports each kind's accept rate and the target calls per step.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from gates import loop_config  # noqa: E402
from sim import KINDS, World, base_probabilities  # noqa: E402

from skillopt_action import factorial  # noqa: E402
from skillopt_action.evaluation import sequential_settings  # noqa: E402
from skillopt_action.sequential import SequentialSettings, SequentialTest  # noqa: E402
from skillopt_action.types import Edit  # noqa: E402

N_TASKS = 40
DEFAULT_VARIANTS = [
    {"label": "loop default (futility at 2 SE below the effect)"},
    {"label": "futility at 1.64 SE", "futility_z": 1.64},
    {"label": "futility at 2.5 SE", "futility_z": 2.5},
    {"label": "no early futility", "futility_z": 99.0},
    {"label": "a fifth look at 16 samples", "schedule": [1, 3, 6, 10, 16]},
]


def settings_for(variant: dict, alpha: float) -> SequentialSettings:
    """The loop's decision settings (`evaluation.sequential_settings` for a config whose `gate:` block has the
    variant's schedule) with the variant's other fields changed (unknown fields are an error)."""
    names = {f.name for f in fields(SequentialSettings)}
    bad = sorted(set(variant) - names - {"label", "early"})
    if bad:
        raise SystemExit(f"gate_frontier: unknown variant field(s) {', '.join(bad)}; use fields of "
                         f"SequentialSettings ({', '.join(sorted(names))}) or `early`")
    gate = {"schedule": list(variant["schedule"])} if "schedule" in variant else {}
    base = sequential_settings(SimpleNamespace(cfg=loop_config(gate)), alpha, seed=0)  # type: ignore[arg-type]
    given = {key: (tuple(v) if isinstance(v, list) else v) for key, v in variant.items() if key in names}
    if "early" in variant:  # the early looks' share of the alpha, split evenly over them
        k, early = len(base.schedule), float(variant["early"])
        given.setdefault("spend", (1.0,) if k == 1 else (*[early / (k - 1)] * (k - 1), 1.0 - early))
    return replace(base, **given)


def decide(inc_p: Sequence[float], cand_p: Sequence[float], st: SequentialSettings, rng: random.Random
           ) -> tuple[bool, int, int]:
    """One decision: (accepted, new candidate rollouts, new incumbent rollouts)."""
    test = SequentialTest([f"t{i:03d}" for i in range(len(inc_p))], st)
    drawn = {"incumbent": 0, "candidate": 0}
    while test.result is None:
        for side, task, idx in test.next_requests():
            p = (inc_p if side == "incumbent" else cand_p)[int(task[1:])]
            drawn[side] += 1
            test.add(side, task, idx, 1.0 if rng.random() < p else 0.0)
        test.look()
    return test.result.accepted, drawn["candidate"], drawn["incumbent"]


def cell(difficulty: str, p0: float, kind: str, st: SequentialSettings, trials: int) -> dict:
    accepted, cand, inc = 0, [], []
    for trial in range(trials):
        key = f"{difficulty}:{p0}:{kind}:{trial}"
        base = base_probabilities(difficulty, p0, N_TASKS, random.Random(key + ":tasks"))
        world = World(base, harm_points=0.05)
        cand_p = base if kind == "neutral" else world.probabilities([world.make_rule(1, kind,
                                                                                     random.Random(key + ":rule"))])
        a, c, i = decide(base, cand_p, replace(st, seed=trial), random.Random(key + ":draws"))
        accepted += a
        cand.append(c)
        inc.append(i)
    return {"accepted": accepted / trials, "candidate": statistics.mean(cand), "incumbent": statistics.mean(inc)}


DESIGNS = ("race", "separate", "factorial")
RACE_SLOTS = 2  # the loop's gate.decisions


def step(kinds: Sequence[str], difficulty: str, p0: float, design: str, st: SequentialSettings, trial: int
         ) -> tuple[list[bool], int]:
    """One step: a candidate per kind against one fresh incumbent. Returns (accepted per candidate, target calls),
    a (skill, task, index) rollout counted once (the loop's cache)."""
    key = f"{difficulty}:{p0}:{trial}"
    base = base_probabilities(difficulty, p0, N_TASKS, random.Random(key + ":tasks"))
    world = World(base, harm=0.4)
    rules = {f"edit{i + 1}": world.make_rule(i + 1, kind, random.Random(f"{key}:rule{i}"))
             for i, kind in enumerate(kinds)}
    rng = random.Random(key + ":draws")
    probs: dict[frozenset[str], list[float]] = {}
    drawn: dict[tuple[frozenset[str], str, int], float] = {}

    def draw(jobs: list[tuple[tuple[str, ...], str, int]]) -> list[float]:
        out = []
        for keys, task, index in jobs:
            held = frozenset(keys)
            if held not in probs:
                probs[held] = world.probabilities(rules[k] for k in held)
            if (held, task, index) not in drawn:
                drawn[(held, task, index)] = 1.0 if rng.random() < probs[held][int(task[1:])] else 0.0
            out.append(drawn[(held, task, index)])
        return out

    tasks = [f"t{i:03d}" for i in range(N_TASKS)]
    keys = list(rules)
    if design == "factorial":
        shared = [factorial.SharedTest(k, Edit(op="add", anchor="## Rules", content=rules[k].text),
                                       SequentialTest(tasks, replace(st, seed=trial * 100 + i, paired=True)))
                  for i, k in enumerate(keys)]
        factorial.drive(shared, draw, seed=trial)
        return [bool(t.test.result and t.test.result.accepted) for t in shared], len(drawn)
    tests = [SequentialTest(tasks, replace(st, seed=trial * 100 + i)) for i in range(len(keys))]

    def advance(i: int, until: int | None = None) -> None:
        test = tests[i]
        while test.result is None and (until is None or test.r < until):
            requests = test.next_requests()
            scores = draw([((() if side == "incumbent" else (keys[i],)), task, index)
                           for side, task, index in requests])
            for (side, task, index), score in zip(requests, scores, strict=True):
                test.add(side, task, index, score)
            test.look()

    if design == "separate":
        for i in range(len(keys)):
            advance(i)
    else:  # the race
        for i in range(len(keys)):
            advance(i, until=1)
        leaders = sorted((i for i in range(len(keys)) if tests[i].result is None),
                         key=lambda i: -tests[i].interim_delta)[:RACE_SLOTS]
        for i in leaders:
            advance(i)
    return [bool(t.result and t.result.accepted) for t in tests], len(drawn)


def step_table(kinds: Sequence[str], cells: Sequence[tuple[str, float]], st: SequentialSettings, trials: int
               ) -> list[str]:
    names = sorted(set(kinds), key=list(kinds).index)
    lines = ["| cell | design | " + " | ".join(f"{k} accepted" for k in names) + " | target calls per step | "
             "helpful found per 1,000 calls |",
             "|---|---|" + "---:|" * (len(names) + 2)]
    for difficulty, p0 in cells:
        for design in DESIGNS:
            accepted = {k: 0 for k in names}
            calls = 0
            for trial in range(trials):
                verdicts, spent = step(kinds, difficulty, p0, design, st, trial)
                calls += spent
                for kind, ok in zip(kinds, verdicts, strict=True):
                    accepted[kind] += ok
            helpful = sum(v for k, v in accepted.items() if k.startswith("helpful"))
            lines.append(f"| {difficulty} p0 {p0:g} | {design} | "
                         + " | ".join(f"{accepted[k] / (trials * kinds.count(k)):.1%}" for k in names)
                         + f" | {calls / trials:.0f} | {1000 * helpful / max(1, calls):.2f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=400, help="decisions per variant, cell and edit kind")
    ap.add_argument("--cells", default="equal:0.15,hetero:0.5", help="difficulty:p0, comma-separated")
    ap.add_argument("--alpha", type=float, default=0.05, help="the decision's alpha (the loop's default 0.05)")
    ap.add_argument("--variants", default=json.dumps(DEFAULT_VARIANTS), help="JSON list of variants (see above)")
    ap.add_argument("--out", help="write the Markdown table here too")
    ap.add_argument("--step", help="kinds of a step's candidates, comma-separated (helpful10, helpful5, neutral, "
                                   "harmful): compare the ways to test them (race, separate, factorial)")
    a = ap.parse_args(argv)
    variants = json.loads(a.variants)
    cells = [(c.split(":")[0], float(c.split(":")[1])) for c in a.cells.split(",")]
    t0 = time.monotonic()
    if a.step:
        kinds = a.step.split(",")
        bad = sorted(set(kinds) - set(KINDS))
        if bad:
            raise SystemExit(f"gate_frontier: unknown kind(s) {', '.join(bad)} in --step; use {', '.join(KINDS)}")
        lines = [f"One step of {len(kinds)} candidate edits ({', '.join(kinds)}) against a fresh incumbent over "
                 f"{N_TASKS} val tasks, {a.trials} trials per row, decision alpha {a.alpha:g}; a rollout of a "
                 "(skill, task, sample) is paid once.\n"] + step_table(kinds, cells, settings_for({}, a.alpha),
                                                                       a.trials)
        text = "\n".join(lines) + f"\n\n({time.monotonic() - t0:.0f} s)\n"
        print(text)
        if a.out:
            Path(a.out).write_text(text, encoding="utf-8")
        return 0
    lines = [f"Decisions of one edit against a fresh incumbent over {N_TASKS} val tasks, {a.trials} trials per row "
             f"and kind, decision alpha {a.alpha:g}. Rollouts are new val rollouts per decision (candidate + "
             "incumbent).\n",
             "| variant | cell | neutral accepted | +10 accepted | rollouts, neutral | rollouts, +10 |",
             "|---|---|---:|---:|---:|---:|"]
    for v in variants:
        st = settings_for(v, a.alpha)
        for difficulty, p0 in cells:
            n = cell(difficulty, p0, "neutral", st, a.trials)
            h = cell(difficulty, p0, "helpful10", st, a.trials)
            lines.append(f"| {v.get('label', json.dumps(v))} | {difficulty} p0 {p0:g} | {n['accepted']:.1%} | "
                         f"{h['accepted']:.1%} | {n['candidate']:.0f} + {n['incumbent']:.0f} | "
                         f"{h['candidate']:.0f} + {h['incumbent']:.0f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    text = "\n".join(lines) + f"\n\n({time.monotonic() - t0:.0f} s)\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
