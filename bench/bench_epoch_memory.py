"""Slow update and meta memo against their absence, on a simulated target, over several seeds.

  python bench/bench_epoch_memory.py [--seeds 5] [--epochs 3]   # prints Markdown; committed in RESULTS-epoch-memory.md

The world (all on a loopback model server, through the real openai SDK and the whole `skillopt optimize` loop):

- 6 kinds of questions, 10 of each (60 tasks; per kind 3 train / 4 val / 3 test, which items go where drawn from the
  run seed, so every kind can pass the val gate). A question of kind K is answered right iff the skill holds the
  rule `RULE-K` and not the harmful rule `NEVER-K`.
- The simulated optimizer reads the failing kinds from the reflection prompt's <task_input> blocks; per failing
  kind (at most the edit budget) it proposes the right rule with p=0.35, a vague rule that changes nothing with
  p=0.45, or a harmful rule for another kind with p=0.20 (drawn from a hash of the run seed and the prompt).
- Meta memo: the simulated optimizer writes a memo listing the styles of edit the gate rejected. ASSUMPTION (the
  effect a memo is meant to have, not a measured property of any real model): when its reflection prompt shows a
  memo naming vague / harmful rules as rejected, those proposals are halved and the share goes to the right rule.
- Slow update: the simulated optimizer reads the still-failing and regressed tasks of the longitudinal
  comparison and writes one guidance block with a line per failing kind (at most `lines`), each line right with
  the same p=0.35, else vague or harmful like a normal proposal. Variant "slow update (useless)": every line
  vague, so the block can never help: the gate must reject it.

Figures per arm: final val and test score of the best skill (mean over seeds, and min-max), target rollouts
paid (cache misses), optimizer calls, and how often an epoch-level block/memo was accepted or written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from model_server import ModelServer, Text  # noqa: E402

from skillopt_action import api  # noqa: E402

KINDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
PER_KIND = {"train": 3, "val": 4, "test": 3}  # per kind, items shuffled across splits by the run seed
P_RIGHT, P_VAGUE = 0.35, 0.45  # harmful: the rest
SKILL = "# Answering\n\nAnswer the question.\n\n## Rules\n\n- Read the question.\n"
KIND_RE = re.compile(r"\[kind:(\w+)\]")


def draw(seed: int, *parts: str) -> random.Random:
    return random.Random(hashlib.sha256("|".join([str(seed), *parts]).encode()).hexdigest())


def line_for(rng: random.Random, kind: str, less_vague: bool = False, less_harm: bool = False) -> str:
    p_vague = P_VAGUE / 2 if less_vague else P_VAGUE
    p_harm = (1 - P_RIGHT - P_VAGUE) / (2 if less_harm else 1)
    p_right = 1 - p_vague - p_harm
    x = rng.random()
    if x < p_right:
        return f"- RULE-{kind}: answer {kind} questions with the {kind} code."
    if x < p_right + p_vague:
        return f"- Take extra care with {kind} questions."
    other = rng.choice([k for k in KINDS if k != kind])
    return f"- NEVER-{other}: do not give codes for {other} questions."


class World:
    def __init__(self, seed: int, useless_slow_update: bool = False):
        self.seed = seed
        self.useless = useless_slow_update

    def __call__(self, req):
        system, text = req.system, req.text
        if "You improve a skill document" in system:
            kinds = sorted(set(KIND_RE.findall(text.split("## Failed tasks", 1)[-1]))) if "## Failed tasks" in text \
                else []
            memo = text.split("## Notes from earlier epochs", 1)[1] if "## Notes from earlier epochs" in text else ""
            budget = int(re.search(r"Propose at most (\d+) edits", text).group(1))
            rng = draw(self.seed, "reflect", text)
            edits = [{"op": "add", "anchor": "## Rules",
                      "content": line_for(rng, k, "vague" in memo, "NEVER-" in memo)} for k in kinds[:budget]]
            return Text(json.dumps({"analysis": "simulated", "edits": edits}))
        if "You write the guidance block" in system:
            body = text.split("## The same tasks under the previous and the current skill", 1)[-1]
            kinds = sorted(set(KIND_RE.findall(body)))
            limit = int(re.search(r"At most (\d+) lines", system).group(1))
            rng = draw(self.seed, "slow", text)
            lines = [f"- Take extra care with {k} questions." if self.useless else line_for(rng, k)
                     for k in kinds[:limit]] or ["- Read the question twice."]
            return Text(json.dumps({"analysis": "simulated", "guidance": "\n".join(lines)}))
        if "You keep a short private memo" in system:
            styles = []
            for line in text.splitlines():
                if line.startswith("- [") and not line.startswith("- [accepted"):
                    if "Take extra care" in line and "vague 'take extra care' rules" not in styles:
                        styles.append("vague 'take extra care' rules")
                    if "NEVER-" in line and "NEVER- rules" not in styles:
                        styles.append("NEVER- rules")
            memo = f"- Rejected by the gate: {', '.join(styles)}." if styles else "- No clear pattern yet."
            return Text(json.dumps({"memo": memo}))
        m = KIND_RE.search(req.last_user_text)
        kind, n = m.group(1), req.last_user_text.rsplit("#", 1)[1].rstrip("?")
        right = f"RULE-{kind}" in system and f"NEVER-{kind}" not in system
        return Text(f"{kind}-{n}" if right else "I am not sure.")


def write_project(root: Path, base_url: str, seed: int, epochs: int, loop: dict) -> Path:
    root.mkdir(parents=True)
    (root / "SKILL.md").write_text(SKILL)
    tasks = []
    for k in KINDS:
        splits = [name for name, n in PER_KIND.items() for _ in range(n)]
        draw(seed, "split", k).shuffle(splits)
        tasks += [{"id": f"{k}-{i}", "input": f"[kind:{k}] What is the {k} code of item #{i}?", "reference": f"{k}-{i}",
                   "split": split, "scorers": [{"type": "exact"}]} for i, split in enumerate(splits)]
    (root / "tasks.yml").write_text(yaml.safe_dump({"tasks": tasks}, sort_keys=False))
    cfg = {"skill": "SKILL.md", "tasks": "tasks.yml",
           "splits": {"seed": seed},
           "target": {"provider": "openai", "model": "sim-target", "base_url": base_url, "api_key_env": "BENCH_KEY"},
           "optimizer": {"provider": "openai", "model": "sim-optimizer", "base_url": base_url,
                         "api_key_env": "BENCH_KEY"},
           "loop": {"epochs": epochs, "batch_size": 9, "minibatch_size": 9, **loop},
           "gate": {"samples": 1},
           "concurrency": 8}
    path = root / "skillopt.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


ARMS = {
    "neither (default)": ({}, False),
    "meta memo": ({"meta_memo": True}, False),
    "slow update": ({"slow_update": {"samples": 8, "lines": 6}}, False),
    "both": ({"meta_memo": True, "slow_update": {"samples": 8, "lines": 6}}, False),
    "slow update (useless block)": ({"slow_update": {"samples": 8, "lines": 6}}, True),
}


def run_arm(tmp: Path, name: str, seed: int, epochs: int) -> dict:
    loop, useless = ARMS[name]
    with ModelServer(responder=World(seed, useless)) as server:
        cfg = write_project(tmp / f"{list(ARMS).index(name)}-{seed}", server.openai_base_url, seed, epochs, loop)
        result = api.optimize(cfg, out=cfg.parent / "out", log=lambda _m: None)
    r = result.report
    by_role = r.spend["by_role"]
    su = [s["slow_update"] for s in r.steps if s.get("slow_update")]
    memos = [s["meta_memo"] for s in r.steps if s.get("meta_memo")]
    return {"val": r.scores["val"]["best"], "test": r.scores["test"]["best"], "val0": r.scores["val"]["baseline"],
            "rollouts": by_role["target"]["calls"], "optimizer": by_role["optimizer"]["calls"],
            "su_accepted": sum(1 for x in su if x["accepted"]), "su_tried": sum(1 for x in su if x.get("gate")),
            "memos": sum(1 for m in memos if m.get("error") is None and m["decisions"])}


def fmt_range(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ({min(xs):.2f}-{max(xs):.2f})"


def table(rows: dict[str, list[dict]], epochs: int) -> None:
    seeds = len(rows["neither (default)"])
    base = rows["neither (default)"]
    print(f"{seeds} seeds, {epochs} epochs x 2 steps, val baseline {statistics.mean(r['val0'] for r in base):.3f}\n")
    print("| arm | final val | final test | val vs default: better / same / worse seeds | target rollouts | "
          "optimizer calls | val gain per 100 rollouts | slow-update blocks accepted / tested | memos written |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rs in rows.items():
        gain = statistics.mean((r["val"] - r["val0"]) * 100 / r["rollouts"] for r in rs)
        su = f"{sum(r['su_accepted'] for r in rs)} / {sum(r['su_tried'] for r in rs)}" if "slow" in name or \
            name == "both" else "-"
        memos = str(sum(r["memos"] for r in rs)) if "memo" in name or name == "both" else "-"
        d = [r["val"] - b["val"] for r, b in zip(rs, base, strict=True)]
        vs = "-" if name == "neither (default)" else \
            f"{sum(x > 1e-9 for x in d)} / {sum(abs(x) <= 1e-9 for x in d)} / {sum(x < -1e-9 for x in d)}"
        print(f"| {name} | {fmt_range([r['val'] for r in rs])} | {fmt_range([r['test'] for r in rs])} | {vs} | "
              f"{statistics.mean(r['rollouts'] for r in rs):.0f} | {statistics.mean(r['optimizer'] for r in rs):.1f} | "
              f"{gain:.3f} | {su} | {memos} |")
    print("\nPer seed (final val):\n")
    print("| arm | " + " | ".join(f"{s}" for s in range(1, seeds + 1)) + " |")
    print("|---|" + "---:|" * seeds)
    for name, rs in rows.items():
        print(f"| {name} | " + " | ".join(f"{r['val']:.2f}" for r in rs) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--raw", help="also write every run's figures to this JSON file")
    ap.add_argument("--from-raw", help="print the tables of an earlier run's --raw file (no runs)")
    args = ap.parse_args()
    if args.from_raw:
        table(json.loads(Path(args.from_raw).read_text()), args.epochs)
        return
    os.environ["BENCH_KEY"] = "bench"
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):  # seed-major: an interrupted run still has whole seeds
            for name in ARMS:
                rows.setdefault(name, []).append(run_arm(Path(tmp), name, seed, args.epochs))
            print(f"seed {seed}: done", file=sys.stderr)
            if args.raw:
                Path(args.raw).write_text(json.dumps(rows, indent=1))
    table(rows, args.epochs)


if __name__ == "__main__":
    main()
