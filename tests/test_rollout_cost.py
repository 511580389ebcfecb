"""What the rollout engine stopped recomputing per rollout (bench/SCALE.md, run 3) must not change what it produces:
the same cache keys (a cache written before is still a hit), the right system prompt for every skill and task, a
python scorer's edited source still re-scores, and a secret that appears after an answer arrived is still masked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jinja2
import pytest
from helpers import write_project
from model_server import ModelServer, Text

from skillopt_action import api, redact, render
from skillopt_action.calls import DiskCache, Ledger, RetryPolicy, content_key
from skillopt_action.config import ModelSettings
from skillopt_action.rollout import RolloutEngine
from skillopt_action.scorers import ScorerContext
from skillopt_action.targets import make_target
from skillopt_action.targets.chat import ChatTarget
from skillopt_action.types import Reply, Task, Usage

KEY = "sk-test-rollout-cost-key-0123456789"


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", KEY)


def capital(req) -> Text:
    return Text(req.last_user_text.split()[-1].rstrip("?") + " is the answer.")


def settings(url: str) -> ModelSettings:
    return ModelSettings(role="target", provider="openai", model="target-model", base_url=url, api_key_env="TEST_KEY",
                         timeout=5)


def engine(target, root: Path) -> RolloutEngine:
    return RolloutEngine(target, ScorerContext(project_root=root), ledger=Ledger(), cache=DiskCache(root / "cache"),
                         policy=RetryPolicy(attempts=1, base_delay=0), concurrency=4)


def test_rollout_keys_are_the_content_keys_they_always_were(tmp_path):
    skills = ["# A\n\nBe brief.\n", "# Ünïcødé ✓\n\n\"quotes\", \\backslashes\\ and\ttabs\n", "x" * 30_000]
    tasks = [Task("t1", "What is the capital of France?"),
             Task("t2", ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}),
                  fixture_digest="abc")]
    with ModelServer(responder=capital) as s:
        eng = engine(make_target(settings(s.openai_base_url)), tmp_path)
        fp = eng.target.fingerprint()
        for _ in range(2):  # the second round comes from the per-skill and per-task memos
            for skill in skills:
                for t in tasks:
                    for sample in (0, 1, 12):
                        assert eng.key(skill, t, sample) == content_key("rollout", fp, skill, t.digest(), sample)


def test_a_second_evaluation_is_all_cache_hits_with_the_same_rows(tmp_path):
    with ModelServer(responder=capital) as s:
        cfg = write_project(tmp_path, base_url=s.openai_base_url, extra={"gate": {"samples": 2}})
        first = api.evaluate(cfg, out=tmp_path / "a")
        n = len(s.requests)
        second = api.evaluate(cfg, out=tmp_path / "b")
        assert len(s.requests) == n == 16, "8 val tasks x 2 samples paid once, then all from the cache"
    assert second.report.scores == first.report.scores

    def rows(run: str) -> list[dict]:
        out = [json.loads(line) for line in (tmp_path / run / "trajectories.jsonl").read_text().splitlines()]
        return sorted(({k: v for k, v in r.items() if k not in ("seconds", "cached")} for r in out),
                      key=lambda r: (r["task_id"], r["sample"]))

    assert rows("a") == rows("b") and len(rows("a")) == 16


def test_each_skill_gets_its_own_system_prompt_and_a_template_reading_the_task_is_rendered_per_task(
        tmp_path, monkeypatch):
    seen: list[str] = []

    class Model:
        settings = settings("http://127.0.0.1:9/v1")

        def fingerprint(self) -> dict:
            return {"model": "m"}

        def complete(self, system, messages, *, seed=0, json_schema=None) -> Reply:
            seen.append(system)
            return Reply("ok", Usage())

    t1, t2 = Task("t1", "one"), Task("t2", "two")
    target = ChatTarget(Model())
    for skill in ("# Skill A\n", "# Skill B\n", "# Skill A\n"):
        for t in (t1, t2):
            target.run(skill, t, 0)
    assert [s.count("# Skill A") for s in seen] == [1, 1, 0, 0, 1, 1]
    assert seen[0] == seen[1] == seen[4] == render.render("target_system.md.j2", skill="# Skill A\n", task=t1)

    (tmp_path / "per_task.md.j2").write_text("{{ skill }}Task: {{ task.id }}\n")
    env = jinja2.Environment(loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(tmp_path)),
                                                         render.environment().loader]),  # type: ignore[list-item]
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    monkeypatch.setattr(render, "environment", lambda: env)
    seen.clear()
    per_task = ChatTarget(Model(), system_template="per_task.md.j2")
    for t in (t1, t2, t1):
        per_task.run("# S\n", t, 0)
    assert seen == ["# S\nTask: t1\n", "# S\nTask: t2\n", "# S\nTask: t1\n"]


def test_an_edited_python_scorer_rescores_within_one_engine(tmp_path):
    (tmp_path / "myscore.py").write_text("def score(completion, task):\n    return 1.0\n")
    t = Task("t1", "q?", scorers=({"type": "python", "function": "myscore:score", "weight": 1.0},))
    with ModelServer(responder=capital) as s:
        eng = engine(make_target(settings(s.openai_base_url)), tmp_path)
        before = eng.scoring_key(t)
        assert eng.scoring_key(t) == before
        (tmp_path / "myscore.py").write_text("def score(completion, task):\n    return 0.0\n")
        assert eng.scoring_key(t) != before


def test_a_secret_that_appears_after_the_answer_arrived_is_still_masked_in_every_file(tmp_path, monkeypatch):
    monkeypatch.delenv("LATE_TOKEN", raising=False)
    late = "late-secret-value-4242"
    with ModelServer(responder=lambda r: Text(f"Paris {late}")) as s:
        eng = RolloutEngine(make_target(settings(s.openai_base_url)), ScorerContext(project_root=tmp_path),
                            ledger=Ledger(), cache=DiskCache(tmp_path / "cache"), policy=RetryPolicy(attempts=1),
                            trajectories=tmp_path / "traj.jsonl")
        eng.open_trajectories(resume=False)
        real_put = eng.cache.put

        def put_after_the_secret_is_known(namespace, key, value):
            os.environ["LATE_TOKEN"] = late  # set between the arrival (masked then) and the writes
            real_put(namespace, key, value)

        monkeypatch.setattr(eng.cache, "put", put_after_the_secret_is_known)
        r = eng.run("# S\n", [Task("t1", "What is the capital of France?")])["t1"][0]
    assert late in r.completion.text, "unknown when the answer arrived"
    files = [tmp_path / "traj.jsonl", *(tmp_path / "cache").rglob("pack-*.jsonl")]
    assert len(files) == 2
    for f in files:
        text = f.read_text()
        assert late not in text and f"Paris {redact.MASK}" in text, f.name


def test_the_spend_journal_lines_are_those_append_json_writes_with_the_role_masked(tmp_path, monkeypatch):
    """Run 5: the journal's line heads are masked once per role, and a charge's numbers are written as JSON does."""
    ledger = Ledger(prices={"m": {"input": 1.0, "output": 2.0}}, journal=tmp_path / "spend.jsonl")
    events = [("reserve", "target"), ("charge", "target", "m", Usage(10, 3)), ("charge", "judge", "x", Usage(1, 2)),
              ("charge", "target", None, Usage(5, 6, cost_usd=0.25)), ("charge", "target", None, Usage(1, 1, 3)),
              ("hit", "judge"), ("retried", "target")]
    for name, *args in events:
        getattr(ledger, name)(*args)
    monkeypatch.setenv("ROLE_TOKEN", "optimizer-role-secret")  # a secret set mid-run, equal to a role's name
    ledger.reserve("optimizer-role-secret")
    ledger.charge("optimizer-role-secret", "m", Usage(2, 2))
    lines = (tmp_path / "spend.jsonl").read_text(encoding="utf-8").splitlines()
    expected = [{"e": "call", "r": "target"}, {"e": "charge", "r": "target", "in": 10, "out": 3, "usd": 16 / 1e6},
                {"e": "charge", "r": "judge", "in": 1, "out": 2, "usd": None},
                {"e": "charge", "r": "target", "in": 5, "out": 6, "usd": 0.25},
                {"e": "charge", "r": "target", "in": 1, "out": 1, "usd": 3}, {"e": "hit", "r": "judge"},
                {"e": "retry", "r": "target"}, {"e": "call", "r": redact.MASK},
                {"e": "charge", "r": redact.MASK, "in": 2, "out": 2, "usd": 6 / 1e6}]
    assert lines == [json.dumps(e, separators=(",", ":")) for e in expected]
    replayed = Ledger()
    assert replayed.open_journal(tmp_path / "spend.jsonl", resume=True) == (len(expected), 0)
    assert (replayed.calls, replayed.usd, replayed.cache_hits) == (ledger.calls, ledger.usd, ledger.cache_hits) == (
        2, 16 / 1e6 + 0.25 + 3 + 6 / 1e6, 1)
