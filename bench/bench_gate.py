"""Gate calibration: how often each gate mode accepts neutral, helpful and harmful edits, and at what cost.

    python bench/bench_gate.py                       # writes bench/RESULTS-gate.md and bench/gate-calibration.png
    python bench/bench_gate.py --trials 200 --modes strict,paired --out /tmp/g.md --png /tmp/g.png

Every decision goes through the real gate code (`skillopt_action.gate.compare` via bench/gates.py) with the
loop's defaults (3 samples per val task, alpha 0.1, 10,000 resamples). Per cell (difficulty x val size x mode):

- false accept per decision: a neutral candidate (same success probabilities, fresh samples) accepted;
- false accept per run: `--run-decisions` (6, one per step of a 6-step run) neutral decisions in a row against
  one incumbent whose samples are drawn once and reused, as the loop's cache does (an accepted candidate
  becomes the incumbent with its samples); the share of runs in which any decision accepts;
- power: a +5 or +10-point rule accepted; harmful: a -5-point rule accepted (`sim.World`: each rule applies
  to half of the val tasks, calibrated exactly on the trial's val tasks);
- val rollouts per decision: samples drawn during the decision. The incumbent's first `samples` per task are
  the baseline measurement every run makes anyway and are not counted; so a fixed gate pays
  samples x tasks (the candidate) per decision.

Incumbent success probabilities: `--p0` (0.5) for every task (equal), or Beta(p0, 1 - p0) per task (hetero,
many tasks near 0 or 1). Trials are seeded and use common random numbers across modes (the same val tasks,
rule and samples for every mode), so modes differ only by their rule.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from gates import Side, driver, skip_report_ci  # noqa: E402
from sim import DIFFICULTIES, World, base_probabilities  # noqa: E402

KINDS = ("neutral", "helpful5", "helpful10", "harmful")
HARM_POINTS = 0.05


@dataclass(frozen=True)
class Unit:
    """A chunk of trials of one cell and one edit kind (the unit of parallel work)."""

    mode: str
    difficulty: str
    n: int
    kind: str
    start: int
    stop: int
    p0: float
    run_decisions: int
    samples: int
    alpha: float
    report_ci: bool = False


@dataclass
class Tally:
    decisions: int = 0
    accepted: int = 0
    runs: int = 0
    runs_any: int = 0
    draws: int = 0

    def add(self, other: Tally) -> None:
        for f in ("decisions", "accepted", "runs", "runs_any", "draws"):
            setattr(self, f, getattr(self, f) + getattr(other, f))


@dataclass
class Cell:
    tallies: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})


def _world(u: Unit, trial: int) -> tuple[str, list[float], World]:
    key = f"gate:{u.difficulty}:{u.n}:{u.p0}:{u.kind}:{trial}"
    base = base_probabilities(u.difficulty, u.p0, u.n, random.Random(key + ":tasks"))
    return key, base, World(base, harm_points=HARM_POINTS)


def run_unit(u: Unit) -> tuple[Unit, Tally]:
    with contextlib.nullcontext() if u.report_ci else skip_report_ci():
        return u, _run_unit(u)


def _run_unit(u: Unit) -> Tally:
    gate = driver(u.mode, samples=u.samples, alpha=u.alpha)
    t = Tally()
    for trial in range(u.start, u.stop):
        key, base, world = _world(u, trial)
        incumbent = Side(base, key + ":incumbent")
        incumbent.predraw(u.samples)
        if u.kind == "neutral":
            t.runs += 1
            any_accept = False
            for d in range(u.run_decisions):
                candidate = Side(base, f"{key}:candidate{d}")
                accepted = gate.decide(incumbent, candidate, seed=trial * 31 + d)
                t.decisions += 1
                t.draws += incumbent.new_draws + candidate.new_draws
                incumbent.new_draws = 0
                if accepted:
                    t.accepted += 1
                    any_accept = True
                    incumbent = candidate  # the loop keeps the accepted candidate with its cached samples
                    incumbent.new_draws = 0
            t.runs_any += any_accept
        else:
            rule = world.make_rule(1, u.kind, random.Random(key + ":rule"))
            candidate = Side(world.probabilities([rule]), key + ":candidate")
            accepted = gate.decide(incumbent, candidate, seed=trial * 31)
            t.decisions += 1
            t.accepted += accepted
            t.draws += incumbent.new_draws + candidate.new_draws
    return t


def units(modes: Sequence[str], sizes: Sequence[int], difficulties: Sequence[str], trials: int, chunk: int,
          p0: float, run_decisions: int, samples: int, alpha: float, report_ci: bool) -> Iterator[Unit]:
    for mode in modes:
        for difficulty in difficulties:
            for n in sizes:
                for kind in KINDS:
                    for start in range(0, trials, chunk):
                        yield Unit(mode, difficulty, n, kind, start, min(trials, start + chunk), p0, run_decisions,
                                   samples, alpha, report_ci)


def measure(modes: Sequence[str], sizes: Sequence[int], difficulties: Sequence[str], trials: int, *,
            p0: float = 0.5, run_decisions: int = 6, samples: int = 3, alpha: float = 0.1, jobs: int = 1,
            chunk: int = 50, report_ci: bool = False, progress=None) -> dict[tuple[str, str, int], Cell]:
    """Tallies per (mode, difficulty, val size)."""
    for m in modes:
        driver(m)  # unknown modes fail before any work
    work = list(units(modes, sizes, difficulties, trials, chunk, p0, run_decisions, samples, alpha, report_ci))
    cells: dict[tuple[str, str, int], Cell] = {}
    if jobs > 1:
        with Pool(jobs) as pool:
            results = list(_track(pool.imap_unordered(run_unit, work), len(work), progress))
    else:
        results = list(_track(map(run_unit, work), len(work), progress))
    for u, t in results:
        cells.setdefault((u.mode, u.difficulty, u.n), Cell()).tallies[u.kind].add(t)
    return cells


def _track(it, total, progress):
    for i, item in enumerate(it, 1):
        if progress:
            progress(i, total)
        yield item


# --------------------------------------------------------------------------- output


def pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:.1f} %" if n else "n/a"


def table(cells: dict[tuple[str, str, int], Cell], modes: Sequence[str], sizes: Sequence[int],
          difficulties: Sequence[str], run_decisions: int) -> str:
    head = (f"| difficulty | val tasks | gate | false accept / decision | false accept / run ({run_decisions}) "
            f"| power +5 | power +10 | harmful (-5) accepted | val rollouts / decision (neutral / +10) |")
    lines = [head, "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for difficulty in difficulties:
        for n in sizes:
            for mode in modes:
                c = cells[(mode, difficulty, n)].tallies
                neu, h5, h10, harm = c["neutral"], c["helpful5"], c["helpful10"], c["harmful"]
                cost = f"{neu.draws / neu.decisions:.0f} / {h10.draws / h10.decisions:.0f}"
                lines.append(f"| {difficulty} | {n} | {mode} | {pct(neu.accepted, neu.decisions)} | "
                             f"{pct(neu.runs_any, neu.runs)} | {pct(h5.accepted, h5.decisions)} | "
                             f"{pct(h10.accepted, h10.decisions)} | {pct(harm.accepted, harm.decisions)} | {cost} |")
    return "\n".join(lines)


def plot(cells: dict[tuple[str, str, int], Cell], modes: Sequence[str], sizes: Sequence[int],
         difficulties: Sequence[str], run_decisions: int, path: Path) -> None:
    import matplotlib  # optional dependency (the `bench` extra); only needed for the PNG

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(difficulties), figsize=(5.2 * len(difficulties), 3.8), squeeze=False)
    for ax, difficulty in zip(axes[0], difficulties, strict=True):
        for i, mode in enumerate(modes):
            color = f"C{i}"
            fa = [100 * cells[(mode, difficulty, n)].tallies["neutral"].runs_any
                  / max(1, cells[(mode, difficulty, n)].tallies["neutral"].runs) for n in sizes]
            pw = [100 * cells[(mode, difficulty, n)].tallies["helpful10"].accepted
                  / max(1, cells[(mode, difficulty, n)].tallies["helpful10"].decisions) for n in sizes]
            ax.plot(sizes, pw, "-o", color=color, label=f"{mode}: +10 rule accepted")
            ax.plot(sizes, fa, "--s", color=color, label=f"{mode}: neutral accepted in a run of {run_decisions}")
        ax.axhline(95, color="grey", lw=0.8, ls=":")
        ax.axhline(5, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{difficulty} task difficulty")
        ax.set_xlabel("val tasks")
        ax.set_xticks(list(sizes))
        ax.set_ylim(-2, 102)
        ax.set_ylabel("%")
    axes[0][0].legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(cells, modes, sizes, difficulties, args, command: str, seconds: float) -> str:
    today = datetime.date.today().isoformat()
    eq, het = f"every task p = {args.p0}", f"p ~ Beta({args.p0:g}, {1 - args.p0:g}) per task"
    return f"""# Gate calibration

Command: `{command}` ({today}, {seconds / 60:.1f} min on {os.cpu_count()} cores).

{args.trials} seeded trials per cell and edit kind through `skillopt_action.gate.compare` ({args.samples} samples
per val task and skill, alpha {args.alpha}, the loop's defaults otherwise). Incumbent difficulty: equal ({eq}) or
hetero ({het}). A rule applies to half of the val tasks and moves the val mean by exactly the stated points.
"False accept / run" is the share of runs of {args.run_decisions} neutral decisions against one incumbent (samples
drawn once and reused, as the loop's cache does) in which any decision accepts. Rollouts per decision count the
samples drawn during the decision (the incumbent's first {args.samples} per task are the baseline measurement).
With {args.trials} trials a rate near 5 % has a 95 % margin of about
±{196 * (0.05 * 0.95 / args.trials) ** 0.5:.1f} points, near 50 % about ±{196 * (0.25 / args.trials) ** 0.5:.1f}.

{table(cells, modes, sizes, difficulties, args.run_decisions)}

![gate calibration](gate-calibration.png)

Goals of issue 9: neutral accepted <= 5 % per decision and per run of 6 steps; a +10-point rule at 40 val tasks
accepted >= 95 %; <= 120 new val rollouts per decision.
"""


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modes", default="strict,paired", help="comma-separated gate modes (default strict,paired)")
    ap.add_argument("--sizes", default="20,40,100", help="val sizes (default 20,40,100)")
    ap.add_argument("--difficulties", default=",".join(DIFFICULTIES))
    ap.add_argument("--trials", type=int, default=1000, help="trials per cell and edit kind (default 1000)")
    ap.add_argument("--run-decisions", type=int, default=6, help="neutral decisions per run (default 6)")
    ap.add_argument("--p0", type=float, default=0.5, help="incumbent mean success probability (default 0.5)")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--report-ci", action="store_true",
                    help="let gate.compare bootstrap its report-only interval (same decisions, ~10x slower)")
    ap.add_argument("--out", default=str(HERE / "RESULTS-gate.md"))
    ap.add_argument("--png", default=str(HERE / "gate-calibration.png"), help="'' for no chart")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    difficulties = [d for d in args.difficulties.split(",") if d]
    t0 = time.perf_counter()

    def progress(i, total):
        print(f"\r{i}/{total} units, {time.perf_counter() - t0:.0f} s", end="", file=sys.stderr, flush=True)

    cells = measure(modes, sizes, difficulties, args.trials, p0=args.p0, run_decisions=args.run_decisions,
                    samples=args.samples, alpha=args.alpha, jobs=args.jobs, report_ci=args.report_ci,
                    progress=progress)
    print(file=sys.stderr)
    seconds = time.perf_counter() - t0
    command = " ".join(["python bench/bench_gate.py", *(sys.argv[1:] if argv is None else argv)])
    text = markdown(cells, modes, sizes, difficulties, args, command, seconds)
    if args.png:
        plot(cells, modes, sizes, difficulties, args.run_decisions, Path(args.png))
        text = text.replace("](gate-calibration.png)", f"]({Path(args.png).name})")
    else:
        text = text.replace("\n![gate calibration](gate-calibration.png)\n", "")
    Path(args.out).write_text(text, encoding="utf-8")
    print(table(cells, modes, sizes, difficulties, args.run_decisions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
