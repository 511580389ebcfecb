"""Sharded runs merged vs the unsharded run, in one run of this script (ratios; the machine is noisy).

  python bench/bench_shard.py [--tasks 96] [--latency 0.05]

A loopback OpenAI-compatible server answers after `latency` seconds, right with a probability that depends on the
skill (0.5 base, 0.75 candidate) drawn from a hash of the request, so the sequential gate needs several rounds.
For `compare` (gate.mode sequential and paired) and `eval`, the unsharded run and n = 1 / 4 / 8 shards (run one
after another here, as a matrix would run them side by side) plus `merge` are timed, and the merged report's
scores, per-task rows and gate decisions are compared with the unsharded run's. The shards' critical path is the
slowest shard plus the merge: the wall time a matrix of n runners would take.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from model_server import Hang, ModelServer, Text  # noqa: E402

from skillopt_action import api  # noqa: E402

BASE = "# Tokens\n\nRepeat the token you are given.\n"
CANDIDATE = BASE + "- Be exact: repeat it verbatim.\n"


def responder(latency: float):
    def respond(req):
        h = int(hashlib.sha256(json.dumps(req.json, sort_keys=True).encode()).hexdigest(), 16) % 100
        token = req.last_user_text.rsplit(" ", 1)[-1]
        good = "verbatim" in req.text
        return Hang(latency, then=Text(token if h < (75 if good else 50) else "no idea"))
    return respond


def project(root: Path, base_url: str, n_tasks: int, mode: str) -> Path:
    (root / ".github").mkdir(parents=True)
    (root / "evals").mkdir()
    (root / "SKILL.md").write_text(BASE)
    tasks = [{"id": f"tok-{i:04d}", "input": f"Repeat the token t{i:04d}", "reference": f"t{i:04d}",
              "split": "val" if i % 4 else "test", "scorers": [{"type": "exact"}]} for i in range(n_tasks)]
    (root / "evals" / "tokens.yml").write_text(yaml.safe_dump({"tasks": tasks}))
    cfg = {"skill": "SKILL.md", "tasks": "evals/*.yml",
           "target": {"provider": "openai", "model": "target-model", "base_url": base_url, "api_key_env": "BENCH_KEY"},
           "optimizer": {"provider": "openai", "model": "optimizer-model", "base_url": base_url,
                         "api_key_env": "BENCH_KEY"},
           "gate": {"mode": mode, "samples": 2, "alpha": 0.05}, "concurrency": 8}
    path = root / ".github" / "skillopt.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(kind: str, config: Path, out: Path, shard: tuple[int, int] | None = None):
    if kind == "eval":
        return api.evaluate(config, splits=["val", "test"], out=out, no_cache=True, shard=shard)
    return api.compare(config, base_skill=BASE, candidate_skill=CANDIDATE, out=out, no_cache=True, shard=shard)


def same(a: api.Report, b: api.Report) -> bool:
    return (a.scores, a.tasks, a.gates, a.improved) == (b.scores, b.tasks, b.gates, b.improved)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=96)
    ap.add_argument("--latency", type=float, default=0.05)
    args = ap.parse_args()
    os.environ["BENCH_KEY"] = "k"
    rows = []
    with ModelServer(responder=responder(args.latency)) as server, tempfile.TemporaryDirectory() as tmp:
        for label, kind, mode in (("compare, sequential gate", "compare", "sequential"),
                                  ("compare, paired gate", "compare", "paired"), ("eval", "eval", "paired")):
            config = project(Path(tmp) / label.replace(" ", "_").replace(",", ""), server.openai_base_url,
                             args.tasks, mode)
            t0 = time.perf_counter()
            whole = run(kind, config, Path(tmp) / f"{kind}-{mode}-whole")
            t_whole = time.perf_counter() - t0
            calls_whole = whole.report.spend["calls"]
            for n in (1, 4, 8):
                dirs, walls = [], []
                for i in range(1, n + 1):
                    out = Path(tmp) / f"{kind}-{mode}-{n}-{i}"
                    t0 = time.perf_counter()
                    run(kind, config, out, shard=(i, n))
                    walls.append(time.perf_counter() - t0)
                    dirs.append(out)
                t0 = time.perf_counter()
                merged = api.merge(dirs, config, out=Path(tmp) / f"{kind}-{mode}-{n}-merged", no_cache=True)
                t_merge = time.perf_counter() - t0
                sh = merged.report.sharding or {}
                rows.append((label, n, same(whole.report, merged.report), t_whole, max(walls), sum(walls) / n,
                             t_merge, calls_whole, merged.report.spend["calls"], sh.get("merge_calls", 0)))
    print(f"{args.tasks} tasks (3/4 val, 1/4 test) x 2 samples, {args.latency * 1000:.0f} ms per call, concurrency 8 "
          "per job; shards run one after another here\n")
    print("| run | shards | merged == unsharded | unsharded s | slowest shard s | mean shard s | merge s | "
          "critical path / unsharded | calls unsharded | calls sharded | calls in merge |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, n, ok, tw, tmax, tmean, tm, cw, cs, cm in rows:
        print(f"| {label} | {n} | {'yes' if ok else 'NO'} | {tw:.2f} | {tmax:.2f} | {tmean:.2f} | {tm:.2f} | "
              f"{(tmax + tm) / tw:.2f} | {cw} | {cs} | {cm} |")
    return 0 if all(r[2] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
