"""Warming the optimize run's cache in parallel (`skillopt eval --warm --shard i/n`, `api.warm`), then optimizing:
the merged warm-up holds exactly the rollouts the optimize run asks of its starting skill, so its baseline phase
costs no call and the run pays fewer target calls, with the very same result as a cold run.

Against a scripted loopback model whose answers depend on the skill, the task and the sample (noisy, so the
sequential gate draws later rounds on varying tasks), and a scripted optimizer that proposes the helpful rule.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import COUNTRIES, write_project
from model_server import ModelServer, Text

from skillopt_action import api
from skillopt_action.cache import DiskCache
from skillopt_action.cli import main
from skillopt_action.config import load_config
from skillopt_action.loop import warm_samples
from skillopt_action.rollout import skill_hash

CITY = dict(c.split(":") for c in COUNTRIES)
BASE = "# Capitals\n\nAnswer questions about capital cities.\n\n## Answering\n\n- Answer the question.\n"
RULE = "- Be precise: name the city."
EDITS = json.dumps({"analysis": "answers miss the city", "edits": [
    {"op": "add", "anchor": "## Answering", "content": RULE, "rationale": "the scorer wants the city"}]})


def respond(req) -> Text:
    if "You improve a skill document" in (req.system or ""):
        return Text(EDITS)
    h = int(hashlib.sha256(json.dumps(req.json, sort_keys=True).encode()).hexdigest(), 16) % 100
    country = req.last_user_text.split("capital of ")[1].rstrip("?")
    return Text(CITY[country] if h < (85 if "Be precise" in req.text else 35) else "I do not know")


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "k")


@pytest.fixture(scope="module")
def server():
    with ModelServer(responder=respond) as s:
        yield s


def project(root: Path, server) -> Path:
    return write_project(root, base_url=server.openai_base_url, splits=(4, 8, 4), skill=BASE,
                         extra={"gate": {"samples": 2, "alpha": 0.2}, "concurrency": 4})


def target_calls(server) -> int:
    return sum(1 for r in server.requests if r.model == "target-model")


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "trajectories.jsonl").read_text().splitlines()]


def test_warm_samples_are_what_the_optimize_run_asks_of_its_starting_skill(tmp_path, server):
    cfg = load_config(project(tmp_path, server))
    # every round of the default schedule [1, 3, 6, 10], for the decisions and for the fresh confirmation
    assert cfg.gate.schedule == (1, 3, 6, 10)
    assert warm_samples(cfg) == {"train": [0, 1], "val": [*range(10), *range(1000, 1010)], "test": [0, 1]}
    paired = cfg.raw | {"gate": {"mode": "paired", "samples": 3}, "loop": {"ablation": "off"}}
    (tmp_path / ".github" / "skillopt.yml").write_text(json.dumps(paired))
    assert warm_samples(load_config(tmp_path / ".github" / "skillopt.yml")) == {"train": [0], "val": [0, 1, 2],
                                                                               "test": [0, 1, 2]}


def test_after_a_merged_warm_up_the_optimize_baseline_costs_no_call_and_the_result_is_the_same(tmp_path, server):
    # a cold optimize run, in its own copy of the project (its own cache)
    cold_cfg = project(tmp_path / "cold", server)
    n = target_calls(server)
    cold = api.optimize(cold_cfg, out=tmp_path / "cold-run")
    cold_calls = target_calls(server) - n
    assert cold.report.spend["by_role"]["target"]["calls"] == cold_calls > 0
    assert cold.improved and RULE in cold.best_skill

    # the same project elsewhere: two warm-up shards (as two matrix jobs would, each with an empty cache), merged
    cfg = project(tmp_path / "warm", server)
    n = target_calls(server)
    shards = [api.warm(cfg, shard=(i, 2), out=tmp_path / f"warm-{i}", no_cache=True) for i in (1, 2)]
    assert [s.manifest["kind"] for s in shards] == ["warm", "warm"]
    warm_calls = target_calls(server) - n
    assert warm_calls == sum(s.rollouts for s in shards)  # every rollout drawn once, in one shard
    n = target_calls(server)
    merged = api.merge([s.out for s in shards], cfg, out=tmp_path / "merged")
    assert target_calls(server) == n and merged.report.sharding["merge_calls"] == 0
    assert merged.report.sharding["warm"] and set(merged.report.scores) == {"val", "test"}
    assert Path(merged.report.sharding["cache_dir"]) == tmp_path / "warm" / ".skillopt" / "cache"
    assert "Warm-up: 2 shard(s) drew" in merged.report.to_markdown()

    n = target_calls(server)
    warmed = api.optimize(cfg, out=tmp_path / "warm-run")
    warmed_calls = target_calls(server) - n
    # the baseline phase costs nothing, and no rollout of the starting skill is paid again
    baseline = [r for r in rows(warmed.out) if r["phase"] == "baseline:val"]
    assert len(baseline) == 8 and all(r["cached"] for r in baseline)
    start = skill_hash(BASE)
    paid_start = [r for r in rows(warmed.out) if r["skill_hash"] == start and not r["cached"]]
    assert paid_start == []
    cold_start = [r for r in rows(cold.out) if r["skill_hash"] == start and not r["cached"]]
    assert warmed_calls == cold_calls - len(cold_start) and len(cold_start) > 8
    print(f"cold {cold_calls} calls, warm-up {warm_calls} rollouts, warmed run {warmed_calls} calls "
          f"({len(cold_start)} of the starting skill's rollouts off its path)")
    # ... and the very same run: scores, decisions, the skill proposed
    assert warmed.best_skill == cold.best_skill and warmed.improved == cold.improved
    assert warmed.report.scores == cold.report.scores and warmed.report.tasks == cold.report.tasks

    def paid_aside(gates: dict) -> dict:  # a gate reports the rollouts it paid for: fewer after the warm-up
        return {split: {k: v for k, v in g.items() if k != "rollouts"} for split, g in gates.items()}

    assert paid_aside(warmed.report.gates) == paid_aside(cold.report.gates)
    assert [[{k: v for k, v in d.items() if k != "rollouts"} for d in s["decisions"]] for s in warmed.report.steps] \
        == [[{k: v for k, v in d.items() if k != "rollouts"} for d in s["decisions"]] for s in cold.report.steps]
    # what the warm-up drew ahead that this run did not need (later rounds of tasks that did not vary, ...)
    assert len(cold_start) <= warm_calls


def test_cli_eval_warm_then_merge_fills_the_cache(tmp_path, server, capsys):
    cfg = project(tmp_path, server)
    for i in (1, 2):
        assert main(["eval", "--warm", "--shard", f"{i}/2", "--config", str(cfg), "--out", str(tmp_path / f"s{i}"),
                     "--quiet", "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "shard 2/2:" in out and "then: skillopt merge" in out
    cache = tmp_path / ".skillopt" / "cache" / "rollouts"
    assert not cache.exists()
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--config", str(cfg), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "warm-up:" in out and "in the cache" in out
    per_split = warm_samples(load_config(cfg))
    assert len(DiskCache(cache.parent).keys("rollouts")) == 4 * len(per_split["train"]) + 8 * len(per_split["val"]) + 4 * 2
    # a shard of another kind does not merge with a warm-up
    assert main(["eval", "--shard", "1/2", "--config", str(cfg), "--out", str(tmp_path / "e1"), "--quiet"]) == 0
    shutil.rmtree(tmp_path / "s2")
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "e1"), "--config", str(cfg), "--quiet"]) == 2
    assert "the command (eval, compare or a warm-up) differs" in capsys.readouterr().err
