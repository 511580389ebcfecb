"""Search at a fixed budget: what each method finds on a simulated target, side by side, same seeds and budget.

    python bench/bench_search.py                          # writes bench/RESULTS-search.md and bench/search.png
    python bench/bench_search.py --seeds 2 --ours default,strict,sequential --out /tmp/s.md --png ''

The target is a loopback OpenAI-compatible server (tests/model_server.py) whose accuracy depends on the rules in
the skill (its system prompt), see bench/sim.py: tasks have success probabilities under the seed skill (equal, or
heterogeneous from a U-shaped Beta), and each rule of the skill raises (helpful +5 / +10 points), leaves (neutral)
or lowers (harmful) the success probabilities of the half of the tasks it applies to. It answers a task's code
word with that probability and "I do not know." otherwise, and our `exact` scorer scores the answer. Draws are
common random numbers: the same skill asked the same task for the n-th time gets the same draw in every method.

The optimizer is scripted on the same server: every reflection call gets the next rule of ONE seeded stream of
proposals shared by all methods of a seed (skipping rules already in the skill it is shown); `--rules-per-call N`
gives every call the next N rules instead (a real LLM fills its edit budget). Scenarios:

- ``mix``: 15 % +10 rules, 15 % +5, 50 % neutral, 20 % harmful; with probability 0.25 an item repeats an
  earlier proposal (optimizers re-propose ideas);
- ``neutral``: every proposal is neutral (what a method accepts is noise);
- ``plus10``: the first proposal is a +10 rule, every later one neutral (is a real gain kept?).

Methods, each run in this process against the same server:

- ours (``--ours``, default ``default,strict``): `skillopt_action.api.optimize` on a config written to a temp
  dir, with `gate.mode` set to each listed mode (``default`` leaves the gate settings at the loop's defaults);
  ``--config-extra`` (JSON) is merged into every config;
- GEPA 0.1.4 (``--gepa``, on when installed): `gepa.optimize` with an adapter whose `evaluate` calls the same
  target and whose reflection LM (also on the server) answers "current instructions + the next rule". Its
  budget (`max_metric_calls`) is the target calls the first of our methods used on the same seed and scenario
  (or ``--budget``).

Modules: sim.py (the world and the stream), loopback.py (the server side), methods.py (our loop and GEPA),
this file (the plan, the records, the tables). Target and optimizer calls are counted at the server. The score of
a returned skill is the simulator's ground truth: its expected accuracy on 200 test tasks no method ever sees.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests"), str(HERE.parent)]

from loopback import KEY_ENV, SEED_SKILL, Bench, RunSim, Setup  # noqa: E402
from methods import Outcome, gepa, method_label, run_gepa, run_ours, search_fields  # noqa: E402
from sim import DIFFICULTIES, Stream, World, base_probabilities, uniform  # noqa: E402

SCENARIOS = {
    "mix": {"mix": {"helpful10": 0.15, "helpful5": 0.15, "neutral": 0.5, "harmful": 0.2}, "first": ()},
    "neutral": {"mix": {"neutral": 1.0}, "first": ()},
    "plus10": {"mix": {"neutral": 1.0}, "first": ("helpful10",)},
}


# --------------------------------------------------------------------------- one seed


@dataclass
class Record:
    scenario: str
    difficulty: str
    seed: int
    method: str
    test: float
    seed_test: float
    rules: int
    harmful: int
    helpful: int
    neutral: int
    plus10_kept: bool
    lines: int
    chars: int
    changed: bool
    target_calls: int
    own_target_calls: int
    optimizer_calls: int
    decisions: int
    accepted: int
    seconds: float
    screened_out: int | None = None  # our per-edit search only
    val_rollouts_per_decision: float | None = None
    confirmation: str | None = None  # "confirmed" | "reverted" | None (no confirmation ran)


@dataclass
class Plan:
    scenarios: Sequence[str]
    difficulties: Sequence[str]
    seeds: Sequence[int]
    ours: Sequence[str]
    use_gepa: bool
    setup: Setup = field(default_factory=Setup)
    budget: int | None = None
    extra: dict = field(default_factory=dict)


def world_for(setup: Setup, difficulty: str, seed: int) -> tuple[str, World]:
    world_seed = f"world:{difficulty}:{seed}"
    base = base_probabilities(difficulty, setup.p0, setup.n, random.Random(world_seed))
    return world_seed, World(base, harm=setup.harm)


def run_seed(bench: Bench, plan: Plan, scenario: str, difficulty: str, seed: int) -> list[Record]:
    setup = plan.setup
    world_seed, world = world_for(setup, difficulty, seed)
    spec = SCENARIOS[scenario]
    stream = Stream(world, seed=hash_seed(scenario, difficulty, seed), mix=spec["mix"], repeat=setup.repeat,
                    first=spec["first"])
    test = list(setup.split("test"))
    seed_test = world.expected([], test)
    methods: list[tuple[str, Callable[[str], Outcome]]] = [
        (method_label(m), lambda run, m=m: run_ours(bench, run, setup, m, seed, plan.extra)) for m in plan.ours]
    records: list[Record] = []
    if plan.use_gepa:
        def gepa_run(run: str) -> Outcome:
            budget = plan.budget or (records[0].target_calls if records else None)
            if budget is None:
                raise ValueError("GEPA needs a budget: run one of our methods first, or give --budget")
            return run_gepa(bench, run, setup, seed, budget)
        methods.append(("GEPA", gepa_run))
    for k, (name, fn) in enumerate(methods):
        run = f"{scenario}.{difficulty}.{seed}.{k}"
        sim = RunSim(world_seed, world, stream, setup.rules_per_call)
        bench.register(run, sim)
        t0 = time.perf_counter()
        try:
            out = fn(run)
        finally:
            bench.release(run)
        rules = sim.rules(out.skill)
        kinds = [r.kind for r in rules]
        records.append(Record(
            scenario=scenario, difficulty=difficulty, seed=seed, method=name,
            test=world.expected(rules, test), seed_test=seed_test, rules=len(rules),
            harmful=kinds.count("harmful"), helpful=sum(k.startswith("helpful") for k in kinds),
            neutral=kinds.count("neutral"),
            plus10_kept=any(r.kind == "helpful10" and r.id == 1 for r in rules) if spec["first"] else False,
            lines=len(out.skill.strip().splitlines()), chars=len(out.skill),
            changed=out.skill.strip() != SEED_SKILL.strip(),
            target_calls=sim.target_calls, own_target_calls=out.own_target_calls, optimizer_calls=sim.optimizer_calls,
            decisions=out.decisions, accepted=out.accepted, seconds=time.perf_counter() - t0,
            **search_fields(out.search)))
    return records


def hash_seed(*parts: object) -> int:
    return int(uniform("stream", *parts) * 2**31)


def run_plan(plan: Plan, progress: Callable[[str], None] | None = None) -> list[Record]:
    os.environ.setdefault(KEY_ENV, "bench-loopback-key")
    if plan.use_gepa and gepa is None:
        raise RuntimeError("GEPA is not installed: pip install 'skillopt-action[bench]', or pass --no-gepa")
    records: list[Record] = []
    with Bench() as bench:
        for scenario in plan.scenarios:
            for difficulty in plan.difficulties:
                for seed in plan.seeds:
                    rs = run_seed(bench, plan, scenario, difficulty, seed)
                    records += rs
                    if progress:
                        progress(" | ".join(f"{r.method} {r.test:.3f} ({r.target_calls} calls)" for r in rs)
                                 + f"  [{scenario} {difficulty} seed {seed}]")
        bench.server.check()
    return records


# --------------------------------------------------------------------------- output


def mean_sd(xs: Sequence[float], fmt: str = ".3f") -> str:
    if not xs:
        return "n/a"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.fmean(xs):{fmt}} ± {sd:{fmt}}"


def _methods(records: Sequence[Record]) -> list[str]:
    return list(dict.fromkeys(r.method for r in records))


def _cell(records, scenario, difficulty, method) -> list[Record]:
    return [r for r in records if (r.scenario, r.difficulty, r.method) == (scenario, difficulty, method)]


def mix_table(records: Sequence[Record]) -> str:
    lines = ["| difficulty | method | test score (seed skill) | runs keeping a harmful line | harmful lines | "
             "helpful lines | rules kept | skill lines | target calls | optimizer calls | decisions | accepted |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for difficulty in dict.fromkeys(r.difficulty for r in records if r.scenario == "mix"):
        for method in _methods(records):
            c = _cell(records, "mix", difficulty, method)
            if not c:
                continue
            seed_test = statistics.fmean(r.seed_test for r in c)
            lines.append(
                f"| {difficulty} | {method} | {mean_sd([r.test for r in c])} ({seed_test:.3f}) "
                f"| {sum(r.harmful > 0 for r in c)} of {len(c)} | {mean_sd([r.harmful for r in c], '.1f')} "
                f"| {mean_sd([r.helpful for r in c], '.1f')} | {mean_sd([r.rules for r in c], '.1f')} "
                f"| {mean_sd([r.lines for r in c], '.1f')} | {mean_sd([r.target_calls for r in c], '.0f')} "
                f"| {mean_sd([r.optimizer_calls for r in c], '.0f')} | {mean_sd([r.decisions for r in c], '.1f')} "
                f"| {mean_sd([r.accepted for r in c], '.1f')} |")
    return "\n".join(lines)


def noise_table(records: Sequence[Record]) -> str:
    lines = ["| difficulty | method | neutral accepted per decision | runs ending changed, all proposals neutral "
             "| +10 rule kept | target calls (neutral / plus10) |", "|---|---|---:|---:|---:|---:|"]
    for difficulty in dict.fromkeys(r.difficulty for r in records):
        for method in _methods(records):
            neu = _cell(records, "neutral", difficulty, method)
            p10 = _cell(records, "plus10", difficulty, method)
            if not neu and not p10:
                continue
            dec, acc = sum(r.decisions for r in neu), sum(r.accepted for r in neu)
            fa = f"{100 * acc / dec:.1f} % ({acc}/{dec})" if dec else "n/a"
            changed = f"{sum(r.changed for r in neu)} of {len(neu)}" if neu else "n/a"
            kept = f"{sum(r.plus10_kept for r in p10)} of {len(p10)}" if p10 else "n/a"
            calls = (f"{statistics.fmean(r.target_calls for r in neu):.0f}" if neu else "n/a") + " / " + (
                f"{statistics.fmean(r.target_calls for r in p10):.0f}" if p10 else "n/a")
            lines.append(f"| {difficulty} | {method} | {fa} | {changed} | {kept} | {calls} |")
    return "\n".join(lines)


def search_table(records: Sequence[Record]) -> str:
    """Our per-edit search's own figures (from its report), per scenario."""
    rows = [r for r in records if r.val_rollouts_per_decision is not None or r.screened_out is not None]
    if not rows:
        return ""
    lines = ["| scenario | difficulty | method | val decisions / run | val rollouts / decision | edits screened out "
             "/ run | final confirmation reverted the run |", "|---|---|---|---:|---:|---:|---:|"]
    for scenario in dict.fromkeys(r.scenario for r in rows):
        for difficulty in dict.fromkeys(r.difficulty for r in rows):
            for method in _methods(rows):
                c = [r for r in rows if (r.scenario, r.difficulty, r.method) == (scenario, difficulty, method)]
                if not c:
                    continue
                ran = [r for r in c if r.confirmation]
                reverted = f"{sum(r.confirmation == 'reverted' for r in ran)} of {len(ran)}" if ran else "none ran"
                lines.append(f"| {scenario} | {difficulty} | {method} | {mean_sd([r.decisions for r in c], '.1f')} "
                             f"| {mean_sd([r.val_rollouts_per_decision or 0.0 for r in c], '.0f')} "
                             f"| {mean_sd([r.screened_out or 0 for r in c], '.1f')} | {reverted} |")
    return "\n".join(lines)


def plot(records: Sequence[Record], path: Path) -> None:
    import matplotlib  # optional dependency (the `bench` extra); only needed for the PNG

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mix = [r for r in records if r.scenario == "mix"]
    difficulties = list(dict.fromkeys(r.difficulty for r in mix))
    methods = _methods(mix)
    fig, ax = plt.subplots(figsize=(1.6 + 2.2 * len(difficulties), 3.6))
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        xs, ys, es = [], [], []
        for i, d in enumerate(difficulties):
            c = [r.test for r in mix if r.difficulty == d and r.method == method]
            xs.append(i + (j - (len(methods) - 1) / 2) * width)
            ys.append(statistics.fmean(c))
            es.append(statistics.stdev(c) if len(c) > 1 else 0.0)
        ax.bar(xs, ys, width * 0.9, yerr=es, capsize=3, label=method, color=f"C{j}")
    for i, d in enumerate(difficulties):
        seed = statistics.fmean(r.seed_test for r in mix if r.difficulty == d)
        ax.hlines(seed, i - 0.45, i + 0.45, colors="black", linestyles=":", label="seed skill" if i == 0 else None)
    ax.set_xticks(range(len(difficulties)), [f"{d} difficulty" for d in difficulties])
    ax.set_ylabel("test score of the returned skill")
    ax.set_ylim(0, 1)
    ax.set_title("mix of proposals, matched target-call budget (mean ± sd over seeds)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.0f} %" if n else "n/a"


def verdicts(records: Sequence[Record], default: str) -> str:
    """The issue-9 goals checked for our default method, and where it loses to GEPA, from the numbers above."""
    out = []
    for difficulty in dict.fromkeys(r.difficulty for r in records):
        ours = [r for r in records if (r.method, r.difficulty) == (default, difficulty)]
        if not ours:
            continue
        checks = []
        neu = [r for r in ours if r.scenario == "neutral"]
        if neu:
            dec, acc = sum(r.decisions for r in neu), sum(r.accepted for r in neu)
            changed = sum(r.changed for r in neu)
            checks.append(f"neutral accepted per decision {_pct(acc, dec)} (goal <= 5 %): "
                          f"{'met' if dec and acc <= 0.05 * dec else 'NOT met'}")
            checks.append(f"runs changed with only neutral proposals {changed} of {len(neu)} (goal <= 5 %): "
                          f"{'met' if changed <= 0.05 * len(neu) else 'NOT met'}")
        p10 = [r for r in ours if r.scenario == "plus10"]
        if p10:
            kept = sum(r.plus10_kept for r in p10)
            checks.append(f"+10 rule kept {kept} of {len(p10)} (goal >= 95 %): "
                          f"{'met' if kept >= 0.95 * len(p10) else 'NOT met'}")
        mix = {r.seed: r for r in records if (r.method, r.difficulty, r.scenario) == (default, difficulty, "mix")}
        gepa_mix = {r.seed: r for r in records if (r.method, r.difficulty, r.scenario) == ("GEPA", difficulty, "mix")}
        both = sorted(set(mix) & set(gepa_mix))
        if both:
            diffs = [mix[k].test - gepa_mix[k].test for k in both]
            wins = sum(d >= 0 for d in diffs)
            harmful = sum(mix[k].harmful > 0 for k in both)
            met = statistics.fmean(diffs) >= 0 and harmful == 0
            checks.append(f"mix: test score minus GEPA's on the same seed {mean_sd(diffs)} (ours >= GEPA on {wins} "
                          f"of {len(both)} seeds), harmful line kept in {harmful} of {len(both)} runs (goal: >= "
                          f"GEPA with 0 harmful): {'met' if met else 'NOT met'}")
        if checks:
            out.append(f"- **{difficulty}**: " + "; ".join(checks) + ".")
    return "\n".join(out)


def markdown(records: Sequence[Record], plan: Plan, command: str, seconds: float, png: str | None) -> str:
    s = plan.setup
    steps = s.epochs * -(-s.n_train // s.batch_size)
    budget_from = f"`{method_label(plan.ours[0])}`" if plan.ours else None
    default = method_label("default")
    budget = (f"`max_metric_calls` = {plan.budget}" if plan.budget else
              f"`max_metric_calls` = the target calls {budget_from} made on the same seed and scenario")
    extra = f" Config extra for our loop: `{json.dumps(plan.extra)}`." if plan.extra else ""
    if s.rules_per_call > 1:
        extra += (f" The scripted optimizer returns {s.rules_per_call} rules per call to both methods (our loop: "
                  f"{s.rules_per_call} edits; GEPA: one candidate holding them all, as a rewrite would).")
    parts = [f"""# Search at a fixed budget

Command: `{command}` ({datetime.date.today().isoformat()}, {seconds / 60:.1f} min on {os.cpu_count()} cores).

Simulated target (bench/sim.py) on a loopback server; {len(plan.seeds)} seed(s) per cell, and the same worlds,
stream of proposals and seeds for every method. Tasks: {s.n_train} train, {s.n_val} val, {s.n_test} test (ground
truth only). Seed skill: success probability {s.p0} on every task (equal) or Beta({s.p0:g}, {1 - s.p0:g}) per task
(hetero). A rule applies to half of all tasks; helpful rules are calibrated to +5 / +10 points over the seed skill;
a harmful rule makes {s.harm:.0%} of the successes on its tasks fail (-{50 * s.harm * s.p0:.0f} points on the seed
skill, more as the skill improves). Our loop: {steps} steps ({s.epochs} epochs, batch {s.batch_size}, minibatch
{s.minibatch_size}), gate settings of `gate: {{mode: <mode>}}`, `gate.samples` {s.samples}, concurrency
{s.concurrency}.{extra} GEPA 0.1.4: `gepa.optimize` with its defaults (minibatch 3, Pareto candidate selection,
strict minibatch improvement), {budget}. Values are mean ± sd over seeds; calls are counted at the server."""]
    if any(r.scenario == "mix" for r in records):
        parts.append(f"""## Realistic mix of proposals (15 % +10, 15 % +5, 50 % neutral, 20 % harmful, 25 % repeats)

{mix_table(records)}""" + (f"\n\n![test score by method]({png})" if png else ""))
    if any(r.scenario in ("neutral", "plus10") for r in records):
        parts.append(f"""## Noise and power

"neutral": every proposal is neutral, so an accepted decision accepts noise. "plus10": the first proposal is a
+10 rule, every later one neutral. A decision is one val gate decision for our loop, and one proposal judged on
its minibatch for GEPA (accepted = it joins the candidate pool and is scored on val).

{noise_table(records)}""")
    if search_table(records):
        parts.append(f"## Our per-edit search, from its reports\n\n{search_table(records)}")
    checks = verdicts(records, default)
    if checks:
        parts.append(f"## Issue 9 goals for `{default}`, from the tables above\n\n{checks}")
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=12, help="seeds per cell (default 12)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--difficulties", default=",".join(DIFFICULTIES))
    ap.add_argument("--ours", default="default,paired,strict",
                    help="our gate modes, comma-separated; 'default' = the loop's default gate "
                         "(default: default,paired,strict)")
    ap.add_argument("--gepa", dest="gepa", action="store_true", default=gepa is not None,
                    help="also run GEPA (default: when installed)")
    ap.add_argument("--no-gepa", dest="gepa", action="store_false")
    ap.add_argument("--budget", type=int, help="GEPA's max_metric_calls (default: the first of our methods' calls)")
    ap.add_argument("--config-extra", default="{}", help="JSON merged into every config of our loop")
    ap.add_argument("--epochs", type=int, default=Setup.epochs, help="epochs of our loop (default 2: 6 steps)")
    ap.add_argument("--train", type=int, default=Setup.n_train, help="train tasks (default 24)")
    ap.add_argument("--val", type=int, default=Setup.n_val, help="val tasks (default 40)")
    ap.add_argument("--test", type=int, default=Setup.n_test, help="test tasks, ground truth only (default 200)")
    ap.add_argument("--samples", type=int, default=Setup.samples, help="our gate samples per val task (default 3)")
    ap.add_argument("--rules-per-call", type=int, default=Setup.rules_per_call,
                    help="rules the scripted optimizer returns per call, for both methods (default 1; a real LLM "
                         "returns up to its edit budget; keep it <= 2, our loop's smallest edit budget)")
    ap.add_argument("--out", default=str(HERE / "RESULTS-search.md"))
    ap.add_argument("--png", default=str(HERE / "search.png"), help="'' for no chart")
    ap.add_argument("--json", help="also write every run's record to this JSON file")
    args = ap.parse_args(argv)
    if args.rules_per_call < 1:
        raise SystemExit("--rules-per-call must be at least 1")
    setup = Setup(n_train=args.train, n_val=args.val, n_test=args.test, epochs=args.epochs, samples=args.samples,
                  rules_per_call=args.rules_per_call)
    plan = Plan(scenarios=[s for s in args.scenarios.split(",") if s],
                difficulties=[d for d in args.difficulties.split(",") if d],
                seeds=range(args.first_seed, args.first_seed + args.seeds),
                ours=[m for m in args.ours.split(",") if m], use_gepa=args.gepa, setup=setup, budget=args.budget,
                extra=json.loads(args.config_extra))
    for s in plan.scenarios:
        if s not in SCENARIOS:
            raise SystemExit(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    t0 = time.perf_counter()
    records = run_plan(plan, progress=lambda line: print(line, file=sys.stderr, flush=True))
    seconds = time.perf_counter() - t0
    command = " ".join(["python bench/bench_search.py", *(sys.argv[1:] if argv is None else argv)])
    png = None
    if args.png and any(r.scenario == "mix" for r in records):
        plot(records, Path(args.png))
        png = Path(args.png).name
    Path(args.out).write_text(markdown(records, plan, command, seconds, png), encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in records], indent=1), encoding="utf-8")
    print(mix_table(records) + "\n\n" + noise_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
