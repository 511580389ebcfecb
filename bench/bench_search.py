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
proposals shared by all methods of a seed (skipping rules already in the skill it is shown). Scenarios:

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

Target and optimizer calls are counted at the server. The score of a returned skill is the simulator's ground
truth: its expected accuracy on 200 test tasks no method ever sees.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests"), str(HERE.parent)]

import model_server  # noqa: E402
import openai  # noqa: E402
from gates import loop_config  # noqa: E402
from model_server import ModelServer, Text  # noqa: E402
from sim import DIFFICULTIES, Cursor, Rule, Stream, World, base_probabilities, rule_ids, uniform  # noqa: E402

from skillopt_action import api  # noqa: E402
from skillopt_action.scorers.text import normalize_answer  # noqa: E402

try:  # GEPA is optional: `pip install 'skillopt-action[bench]'`
    import gepa
    from gepa.core.adapter import EvaluationBatch
except ImportError:  # pragma: no cover - depends on the environment
    gepa = None

KEY_ENV = "SKILLOPT_BENCH_KEY"
SCENARIOS = {
    "mix": {"mix": {"helpful10": 0.15, "helpful5": 0.15, "neutral": 0.5, "harmful": 0.2}, "first": ()},
    "neutral": {"mix": {"neutral": 1.0}, "first": ()},
    "plus10": {"mix": {"neutral": 1.0}, "first": ("helpful10",)},
}
SEED_SKILL = """# Code words

Every task asks for its code word. Answer with the code word only.

## Rules

- Read the task before answering.
"""
WRONG = "I do not know."
WINDOW = 0.06  # seconds of quiet that close a batch of concurrent reflection calls (see RunSim.optimizer_rule)


@dataclass
class Setup:
    n_train: int = 24
    n_val: int = 40
    n_test: int = 200
    p0: float = 0.15
    harm: float = 0.4
    repeat: float = 0.25
    epochs: int = 2
    batch_size: int = 8
    minibatch_size: int = 4
    samples: int = 3
    concurrency: int = 4

    @property
    def n(self) -> int:
        return self.n_train + self.n_val + self.n_test

    def split(self, name: str) -> range:
        a, b = self.n_train, self.n_train + self.n_val
        return {"train": range(0, a), "val": range(a, b), "test": range(b, self.n)}[name]


def task_id(i: int) -> str:
    return f"T{i:03d}"


def reference(i: int) -> str:
    return f"code-{i:03d}"


def task_input(i: int) -> str:
    return f"Task {task_id(i)}: reply with this task's code word."


TASK_RE = re.compile(r"Task T(\d+):")
SKILL_BLOCK_RE = re.compile(r"<skill>\n(.*?)\n</skill>", re.S)
GEPA_INSTRUCTIONS_RE = re.compile(r"instructions to perform a task for me:\n```\n(.*?)\n```\n", re.S)


class RunSim:
    """One method's run on one seed: the world, its cursor in the shared stream, and its calls."""

    def __init__(self, world_seed: str, world: World, stream: Stream):
        self.world_seed = world_seed
        self.world = world
        self.stream = stream
        self.cursor = Cursor(stream)
        self.lock = threading.Condition()
        self.target_calls = 0
        self.optimizer_calls = 0
        self.seen: dict[tuple[str, int], int] = {}
        self.probs: dict[frozenset[int], list[float]] = {}
        self.pending: list[dict] = []
        self.last_arrival = 0.0

    def rules(self, text: str) -> list[Rule]:
        return [self.stream.rule(i) for i in sorted(rule_ids(text))]

    def answer_target(self, system: str, user: str) -> str:
        m = TASK_RE.search(user)
        if not m:
            raise ValueError(f"target request without a task id: {user[:80]!r}")
        i = int(m.group(1))
        ids = frozenset(rule_ids(system))
        skill_key = ",".join(map(str, sorted(ids)))
        with self.lock:
            self.target_calls += 1
            occurrence = self.seen.get((skill_key, i), 0)
            self.seen[(skill_key, i)] = occurrence + 1
            if ids not in self.probs:
                self.probs[ids] = self.world.probabilities(self.stream.rule(r) for r in ids)
            p = self.probs[ids][i]
        # keyed by the rule set, not the text: the same rules in any wording or order draw the same outcomes
        return reference(i) if uniform(self.world_seed, skill_key, i, occurrence) < p else WRONG

    def optimizer_rule(self, sort_key: str, present: set[int], batch: bool) -> Rule:
        """The next stream rule not in `present`. With `batch`, concurrent calls (our loop reflects on a step's
        minibatches in parallel) are collected until WINDOW s pass without a new one, then served in the order
        of their prompts, so which call gets which rule does not depend on thread timing."""
        with self.lock:
            self.optimizer_calls += 1
            if not batch:
                return self.cursor.next_rule(present)
            slot: dict[str, Any] = {"key": sort_key, "present": present, "rule": None}
            self.pending.append(slot)
            self.last_arrival = time.monotonic()
            self.lock.notify_all()
            while slot["rule"] is None:
                quiet = time.monotonic() - self.last_arrival
                if quiet >= WINDOW:
                    for s in sorted(self.pending, key=lambda s: s["key"]):
                        s["rule"] = self.cursor.next_rule(s["present"])
                    self.pending = []
                    self.lock.notify_all()
                else:
                    self.lock.wait(WINDOW - quiet)
            return slot["rule"]


class Bench:
    """The loopback server and the runs it serves (dispatched by model name: target-/optim-/gepa-<run>)."""

    def __init__(self):
        self.runs: dict[str, RunSim] = {}
        # http.server leaves Nagle's algorithm on: each answer then waits ~40 ms for the client's delayed ACK.
        # Off for the bench (a run makes ~1,000 calls); the replies are the same bytes.
        model_server._Handler.disable_nagle_algorithm = True
        self.server = ModelServer(responder=self.respond)
        self.errors: list[str] = []

    def __enter__(self) -> Bench:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.close()

    def respond(self, req) -> Text:
        role, _, run = (req.model or "").partition("-")
        sim = self.runs[run]
        if role == "target":
            return Text(sim.answer_target(req.system, req.last_user_text))
        if role == "optim":
            m = SKILL_BLOCK_RE.search(req.last_user_text)
            if not m:
                raise ValueError("our reflection prompt has no <skill> block: bench_search must learn its new shape")
            rule = sim.optimizer_rule(req.last_user_text, rule_ids(m.group(1)), batch=True)
            edit = {"op": "add", "anchor": "## Rules", "content": rule.text, "rationale": "scripted proposal"}
            return Text(json.dumps({"analysis": "scripted optimizer: the next rule of the stream", "edits": [edit]}))
        if role == "gepa":
            m = GEPA_INSTRUCTIONS_RE.search(req.last_user_text)
            if not m:
                raise ValueError("GEPA's reflection prompt has no instructions block: check its template")
            current = m.group(1)
            rule = sim.optimizer_rule("", rule_ids(current), batch=False)
            return Text(f"```\n{current.rstrip()}\n{rule.text}\n```")
        raise ValueError(f"unknown model {req.model!r}")

    def register(self, run: str, sim: RunSim) -> None:
        self.runs[run] = sim

    def release(self, run: str) -> None:
        self.runs.pop(run, None)
        self.server.requests.clear()  # the recorder keeps every request; a bench run makes ~10^5


# --------------------------------------------------------------------------- methods


@dataclass
class Outcome:
    skill: str
    decisions: int
    accepted: int
    own_target_calls: int  # the method's own count (our ledger; GEPA's metric calls), checked against the server's
    search: dict | None = None  # our per-edit search: the report's summary (screening, rollouts, confirmation)


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_project(root: Path, setup: Setup, run: str, base_url: str, mode: str, seed: int, extra: dict) -> Path:
    (root / ".github").mkdir(parents=True)
    (root / "SKILL.md").write_text(SEED_SKILL, encoding="utf-8")
    tasks = [{"id": task_id(i), "input": task_input(i), "reference": reference(i), "split": split}
             for split in ("train", "val") for i in setup.split(split)]
    (root / "tasks.yml").write_text(yaml.safe_dump({"defaults": {"scorers": ["exact"]}, "tasks": tasks},
                                                   sort_keys=False), encoding="utf-8")
    model = {"provider": "openai", "base_url": base_url, "api_key_env": KEY_ENV, "timeout": 30}
    gate: dict[str, Any] = {"samples": setup.samples}
    if mode != "default":
        gate["mode"] = mode
    cfg = {
        "skill": "SKILL.md", "tasks": "tasks.yml",
        "splits": {"seed": seed},
        "target": {**model, "model": f"target-{run}"},
        "optimizer": {**model, "model": f"optim-{run}"},
        "loop": {"epochs": setup.epochs, "batch_size": setup.batch_size, "minibatch_size": setup.minibatch_size},
        "gate": gate,
        "concurrency": setup.concurrency,
        "retries": {"attempts": 2, "base_delay": 0.01, "max_delay": 0.05},
        "cache_dir": str(root / "cache"),
    }
    path = root / ".github" / "skillopt.yml"
    path.write_text(yaml.safe_dump(deep_merge(cfg, extra), sort_keys=False), encoding="utf-8")
    return path


def loop_decisions(report: dict) -> tuple[int, int]:
    """(val decisions, accepted decisions) of an optimize report: per-edit search steps list their decisions
    (a combination's confirmation is not one more decision); a bundle step has one gate. Fails loudly on a
    report shape it does not know, so a changed loop cannot be miscounted silently."""
    decisions = accepted = 0
    for step in report["steps"]:
        if isinstance(step.get("decisions"), list):
            decisions += len(step["decisions"])
            accepted += sum(d["verdict"] == "accepted" for d in step["decisions"])
        elif "gate" in step and "accepted" in step:
            if step["gate"] is not None:
                decisions += 1
                accepted += bool(step["accepted"])
        else:
            raise KeyError(f"report step without 'decisions' or 'gate'/'accepted' (keys: {sorted(step)}): "
                           "update loop_decisions")
    return decisions, accepted


def run_ours(bench: Bench, run: str, setup: Setup, mode: str, seed: int, extra: dict) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        cfg = write_project(Path(tmp) / "project", setup, run, bench.server.openai_base_url, mode, seed, extra)
        result = api.optimize(cfg, out=Path(tmp) / "out")
        report = result.report.to_dict()
        decisions, accepted = loop_decisions(report)
        return Outcome(result.best_skill, decisions, accepted, report["spend"]["by_role"]["target"]["calls"],
                       report.get("search"))


class _Quiet:
    def log(self, message: str) -> None:
        del message


class _Decisions:
    """GEPA callback: a decision is a proposal judged on its minibatch; accepted ones join the candidate pool."""

    def __init__(self):
        self.accepted = 0
        self.rejected = 0

    def on_candidate_accepted(self, event) -> None:
        self.accepted += 1

    def on_candidate_rejected(self, event) -> None:
        self.rejected += 1


class SimAdapter:
    """A GEPA adapter over the loopback target: the candidate's one component is the skill (the system prompt);
    answers are scored like our `exact` scorer."""

    propose_new_texts = None

    def __init__(self, client: openai.OpenAI, model: str, concurrency: int):
        self.client = client
        self.model = model
        self.pool = ThreadPoolExecutor(concurrency)

    def _answer(self, skill: str, task: dict) -> str:
        messages = [{"role": "system", "content": skill}, {"role": "user", "content": task["input"]}]
        reply = self.client.chat.completions.create(model=self.model, messages=messages)
        return reply.choices[0].message.content or ""

    def evaluate(self, batch, candidate, capture_traces=False):
        outputs = list(self.pool.map(lambda t: self._answer(candidate["skill"], t), batch))
        scores = [1.0 if normalize_answer(o) == normalize_answer(t["reference"]) else 0.0
                  for o, t in zip(outputs, batch, strict=True)]
        traces = None
        if capture_traces:
            traces = [{"input": t["input"], "output": o, "reference": t["reference"], "score": s}
                      for o, t, s in zip(outputs, batch, scores, strict=True)]
        return EvaluationBatch(outputs=outputs, scores=scores, trajectories=traces)

    def make_reflective_dataset(self, candidate, eval_batch, components_to_update):
        rows = [{"Inputs": tr["input"], "Generated Outputs": tr["output"],
                 "Feedback": "correct" if tr["score"] else f"wrong: the expected answer is {tr['reference']}"}
                for tr in eval_batch.trajectories]
        return {name: rows for name in components_to_update}


def run_gepa(bench: Bench, run: str, setup: Setup, seed: int, budget: int) -> Outcome:
    if gepa is None:
        raise RuntimeError("GEPA is not installed: pip install 'skillopt-action[bench]' (gepa==0.1.4)")
    client = openai.OpenAI(base_url=bench.server.openai_base_url, api_key=os.environ[KEY_ENV], max_retries=1)

    def reflection_lm(prompt) -> str:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        reply = client.chat.completions.create(model=f"gepa-{run}", messages=messages)
        return reply.choices[0].message.content or ""

    def data(split: str) -> list[dict]:
        return [{"id": task_id(i), "input": task_input(i), "reference": reference(i)} for i in setup.split(split)]

    adapter = SimAdapter(client, f"target-{run}", setup.concurrency)
    counter = _Decisions()
    try:
        result = gepa.optimize(seed_candidate={"skill": SEED_SKILL}, trainset=data("train"), valset=data("val"),
                               adapter=adapter, reflection_lm=reflection_lm, max_metric_calls=budget, seed=seed,
                               logger=_Quiet(), callbacks=[counter], raise_on_exception=True)
    finally:
        adapter.pool.shutdown()
        client.close()
    return Outcome(result.best_candidate["skill"], counter.accepted + counter.rejected, counter.accepted,
                   int(result.total_metric_calls or 0))


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
        sim = RunSim(world_seed, world, stream)
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


def method_label(mode: str) -> str:
    """'ours <mode>', and for 'default' the mode the loop defaults to, e.g. 'ours sequential (default)'."""
    return f"ours {loop_config({}).gate.mode} (default)" if mode == "default" else f"ours {mode}"


def search_fields(search: dict | None) -> dict:
    if not search:
        return {}
    confirmation = search.get("confirmation")
    return {"screened_out": search.get("screened_out"),
            "val_rollouts_per_decision": search.get("val_rollouts_per_decision"),
            "confirmation": None if not confirmation else "confirmed" if confirmation.get("confirmed") else "reverted"}


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
    ap.add_argument("--out", default=str(HERE / "RESULTS-search.md"))
    ap.add_argument("--png", default=str(HERE / "search.png"), help="'' for no chart")
    ap.add_argument("--json", help="also write every run's record to this JSON file")
    args = ap.parse_args(argv)
    setup = Setup(n_train=args.train, n_val=args.val, n_test=args.test, epochs=args.epochs, samples=args.samples)
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
