"""Sharded runs (`--shard i/n`) merged with `skillopt merge` give exactly the unsharded run's report: the same
scores, per-task rows and gate decisions, for n = 1, 4 and 8, for eval, the paired gate and the sequential gate,
against a scripted loopback model whose answers depend on the skill, the task and the sample. Bad merges (a
missing, duplicate or foreign shard) are a clear error with exit code 2."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import COUNTRIES, write_project
from model_server import ModelServer, Text

from skillopt_action import api
from skillopt_action.cli import main
from skillopt_action.errors import ConfigError
from skillopt_action.shard import my_tasks

CITY = dict(c.split(":") for c in COUNTRIES)
BASE = "# Capitals\n\nAnswer questions about capital cities.\n"
CANDIDATE = BASE + "- Be precise: name the city.\n"


def noisy(req) -> Text:
    """Right with probability 0.75 under the candidate skill and 0.5 under the base, drawn from a hash of the whole
    request (skill, task and sample seed), so the sequential gate sees varying tasks and needs several rounds."""
    h = int(hashlib.sha256(json.dumps(req.json, sort_keys=True).encode()).hexdigest(), 16) % 100
    country = req.last_user_text.split("capital of ")[1].rstrip("?")
    good = "Be precise" in req.text
    return Text(CITY[country] if h < (75 if good else 50) else "I do not know")


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "k")


@pytest.fixture(scope="module")
def server():
    with ModelServer(responder=noisy) as s:
        yield s


def project(tmp: Path, server, mode: str, samples: int = 2) -> Path:
    return write_project(tmp, base_url=server.openai_base_url, splits=(2, 10, 4),
                         extra={"gate": {"mode": mode, "samples": samples, "alpha": 0.2}, "concurrency": 4})


def same_result(a: api.Report, b: api.Report) -> None:
    assert a.scores == b.scores
    assert a.tasks == b.tasks
    assert a.gates == b.gates
    assert a.improved == b.improved and a.kind == b.kind


def sharded(config: Path, tmp: Path, n: int, kind: str, **kw) -> list[Path]:
    dirs = []
    for i in range(1, n + 1):
        out = tmp / f"shard-{kind}-{n}-{i}"
        if kind == "eval":
            run = api.evaluate(config, shard=(i, n), out=out, no_cache=True, **kw)
        else:
            run = api.compare(config, shard=(i, n), out=out, no_cache=True, **kw)
        assert isinstance(run, api.ShardRun) and (out / "shard.json").is_file()
        assert not (out / "report.json").exists(), "a shard decides nothing"
        dirs.append(out)
    return dirs


@pytest.mark.parametrize("mode", ["paired", "sequential"])
def test_merged_compare_equals_the_unsharded_compare_for_1_4_8_shards(tmp_path, server, mode):
    config = project(tmp_path, server, mode)
    skills = {"base_skill": BASE, "candidate_skill": CANDIDATE}
    whole = api.compare(config, out=tmp_path / "whole", no_cache=True, **skills)
    assert whole.report.gate is not None
    if mode == "sequential":
        assert whole.report.gate["rounds"] >= 2, "the scripted model must make the test take several rounds"
    unsharded_calls = whole.report.spend["by_role"]["target"]["calls"]
    for n in (1, 4, 8):
        dirs = sharded(config, tmp_path, n, "compare", **skills)
        merged = api.merge(dirs, config, out=tmp_path / f"merged-{n}", no_cache=True)
        same_result(whole.report, merged.report)
        sh = merged.report.sharding
        assert sh is not None and sh["shards"] == n and sh["merge_calls"] == 0, sh
        target = merged.report.spend["by_role"]["target"]
        assert target["cache_hits"] == 0, "a rollout served from a shard is counted once, where it was paid"
        if mode == "paired":
            assert target["calls"] == unsharded_calls and sh["unused"] == 0
        else:  # shards draw every round the test could need: never fewer calls than the unsharded run
            assert target["calls"] == unsharded_calls + sh["unused"] >= unsharded_calls
        assert "Sharded:" in merged.report.to_markdown()


def test_merged_eval_equals_the_unsharded_eval_and_fills_the_cache(tmp_path, server):
    config = project(tmp_path, server, "paired", samples=3)
    whole = api.evaluate(config, splits=["val", "test"], out=tmp_path / "whole", no_cache=True)
    for n in (1, 4, 8):
        dirs = sharded(config, tmp_path, n, "eval", splits=["val", "test"])
        merged = api.merge(dirs, config, out=tmp_path / f"merged-{n}")
        same_result(whole.report, merged.report)
        assert merged.report.spend["calls"] == whole.report.spend["calls"] == 14 * 3
    # the merge filled the project's cache: an ordinary eval now pays nothing
    n_requests = len(server.requests)
    again = api.evaluate(config, splits=["val", "test"], out=tmp_path / "again")
    same_result(whole.report, again.report)
    assert again.report.spend["calls"] == 0 and len(server.requests) == n_requests


def test_shards_split_tasks_evenly_and_keep_a_task_whole(tmp_path, server):
    config = project(tmp_path, server, "paired", samples=2)
    dirs = sharded(config, tmp_path, 4, "compare", base_skill=BASE, candidate_skill=CANDIDATE)
    seen: list[str] = []
    for d in dirs:
        m = json.loads((d / "shard.json").read_text())
        assert 2 <= len(m["tasks"]["val"]) <= 3 and len(m["tasks"]["test"]) == 1
        rows = [json.loads(line) for line in (d / "trajectories.jsonl").read_text().splitlines()]
        tasks = {r["task_id"] for r in rows}
        assert tasks == set(m["tasks"]["val"] + m["tasks"]["test"])
        assert m["rollouts"] == len(tasks) * 2 * 2  # both skills, both samples of every task of the shard
        seen += m["tasks"]["val"]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 10
    cfg = api.load_config(config)
    from_cfg = [t for t in api.validate(cfg).splits["val"]]
    assert [t.id for t in my_tasks(from_cfg, 1, 4)] == sorted(t.id for t in from_cfg)[::4]


def merge_cli(*args: str) -> int:
    return main(["merge", "--quiet", *args])


def test_cli_shard_and_merge_and_their_errors(tmp_path, server, capsys):
    config = project(tmp_path, server, "paired")
    (tmp_path / "base.md").write_text(BASE)
    (tmp_path / "cand.md").write_text(CANDIDATE)
    common = ["--config", str(config), "--base-skill", str(tmp_path / "base.md"), "--skill", str(tmp_path / "cand.md")]
    for i in (1, 2, 3):
        assert main(["compare", *common, "--quiet", "--shard", f"{i}/3", "--out", str(tmp_path / "s" / str(i))]) == 0
    out = capsys.readouterr().out
    assert "shard 3/3:" in out and "skillopt merge" in out
    shards = tmp_path / "s"

    # a missing shard
    assert merge_cli("--config", str(config), str(shards / "1"), str(shards / "2")) == 2
    err = capsys.readouterr().err
    assert "shard(s) 3/3 missing" in err and "fix:" in err

    # a shard given twice (a re-run job's artifact next to the first)
    shutil.copytree(shards / "2", tmp_path / "dup" / "2")
    assert merge_cli("--config", str(config), str(shards), str(tmp_path / "dup")) == 2
    assert "shard 2/3 was given twice" in capsys.readouterr().err

    # a shard of another run: other skills
    (tmp_path / "cand2.md").write_text(CANDIDATE + "- Also be brief.\n")
    other = ["--config", str(config), "--base-skill", str(tmp_path / "base.md"), "--skill", str(tmp_path / "cand2.md")]
    assert main(["compare", *other, "--quiet", "--shard", "3/3", "--out", str(tmp_path / "o")]) == 0
    assert merge_cli("--config", str(config), str(shards / "1"), str(shards / "2"), str(tmp_path / "o")) == 2
    assert "skill hashes" in capsys.readouterr().err

    # a shard count mismatch, a bad --shard, nothing to merge
    assert main(["compare", *common, "--quiet", "--shard", "5/4"]) == 2
    assert "--shard must be i/n" in capsys.readouterr().err
    assert merge_cli("--config", str(config), str(tmp_path / "base.md")) == 2
    assert "no such directory" in capsys.readouterr().err

    # all three merge into the decision; the merge's run directory holds the report
    assert main(["merge", "--config", str(config), "--out", str(tmp_path / "runs"), str(shards)]) == 0
    out = capsys.readouterr().out
    assert "the gate" in out
    report = json.loads((tmp_path / "runs" / "latest" / "report.json").read_text())
    assert report["kind"] == "compare" and report["sharding"]["shards"] == 3


def test_merge_refuses_shards_run_with_another_config(tmp_path, server):
    config = project(tmp_path, server, "paired")
    dirs = sharded(config, tmp_path, 2, "compare", base_skill=BASE, candidate_skill=CANDIDATE)
    raw = yaml.safe_load(config.read_text())
    raw["gate"]["samples"] = 3  # the merge job checked out another commit
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as exc:
        api.merge(dirs, config, out=tmp_path / "m", no_cache=True)
    assert "another config" in str(exc.value) and "same commit" in str(exc.value)
    assert exc.value.exit_code == 2 and not (tmp_path / "m" / "report.json").exists()
