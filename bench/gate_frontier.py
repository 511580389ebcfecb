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
from sim import World, base_probabilities  # noqa: E402

from skillopt_action.evaluation import sequential_settings  # noqa: E402
from skillopt_action.sequential import SequentialSettings, SequentialTest  # noqa: E402

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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=400, help="decisions per variant, cell and edit kind")
    ap.add_argument("--cells", default="equal:0.15,hetero:0.5", help="difficulty:p0, comma-separated")
    ap.add_argument("--alpha", type=float, default=0.05, help="the decision's alpha (the loop's default 0.05)")
    ap.add_argument("--variants", default=json.dumps(DEFAULT_VARIANTS), help="JSON list of variants (see above)")
    ap.add_argument("--out", help="write the Markdown table here too")
    a = ap.parse_args(argv)
    variants = json.loads(a.variants)
    cells = [(c.split(":")[0], float(c.split(":")[1])) for c in a.cells.split(",")]
    t0 = time.monotonic()
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
