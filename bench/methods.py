"""The methods bench_search compares, each driven through its public entry point against the loopback server:
our loop (`skillopt_action.api.optimize` on a config written to a temp dir) and GEPA 0.1.4 (`gepa.optimize` with
an adapter over the same target and a reflection LM on the same server)."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import yaml
from gates import loop_config
from loopback import KEY_ENV, SEED_SKILL, Bench, Setup, reference, task_id, task_input

from skillopt_action import api
from skillopt_action.scorers.text import normalize_answer

try:  # GEPA is optional: `pip install 'skillopt-action[bench]'`
    import gepa
    from gepa.core.adapter import EvaluationBatch
except ImportError:  # pragma: no cover - depends on the environment
    gepa = None



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
