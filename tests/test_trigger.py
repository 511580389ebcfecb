"""Trigger training: the `trigger` scorer reads "loaded" from the harness transcript, the front-matter description is
a trainable region with its own budget and the spec's 1,024-character limit, and a description edit is gated on the
val trigger tasks (precision and recall must not fall). End to end through the REAL Claude Code CLI against a
scripted model that loads the skill only when its description names what the query asks for."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
import yaml
from model_server import ModelServer, Text, ToolCall

from skillopt_action import api
from skillopt_action.description import SPEC_LIMIT, changed_chars, check, read_description, set_description
from skillopt_action.errors import ConfigError
from skillopt_action.scorers import validate_spec
from skillopt_action.scorers.trigger import TriggerScorer, load_evidence
from skillopt_action.triggering import rates
from skillopt_action.types import Completion, Task

CLIS_DIR = Path(os.environ.get("SKILLOPT_AGENT_CLIS_DIR") or Path.home() / ".cache" / "skillopt-agent-clis")
CLAUDE = str(CLIS_DIR / "node_modules" / ".bin" / "claude") if (CLIS_DIR / "node_modules" / ".bin" / "claude").exists() \
    else shutil.which("claude")
KEY = "sk-trigger-test-key-0123456789"

SKILL = """---
name: changelog-writer
# kept as it is
description: >
  Records a release in CHANGELOG.md.
  Use it for release tasks.
license: MIT
---

# Changelog writer

- Put the new release at the top.
"""
OLD = "Records a release in CHANGELOG.md. Use it for release tasks."
PHRASE = "release notes"
GOOD = OLD + " Also use it to write release notes."


# --------------------------------------------------------------------------- the description region (pure)

def test_the_description_is_read_and_rewritten_without_touching_the_rest_of_the_front_matter():
    assert read_description(SKILL) == OLD  # a folded YAML scalar, read as YAML reads it
    new = set_description(SKILL, 'Says "hi": twice')
    assert read_description(new) == 'Says "hi": twice'
    assert new.startswith("---\nname: changelog-writer\n# kept as it is\ndescription: \"Says \\\"hi\\\": twice\"\n"
                          "license: MIT\n---\n")
    assert new.endswith(SKILL.split("---\n", 2)[2])  # the body is byte for byte the same
    with pytest.raises(ValueError, match="no front-matter `description:`"):
        set_description("# No front matter\n", "x")


def test_a_description_edit_over_the_spec_limit_or_its_budget_is_dropped_with_the_reason():
    assert changed_chars("abc", "abXc") == 1 and changed_chars("abc", "xyz") == 6
    assert check(OLD, GOOD, 80) is None
    assert check(OLD, GOOD, 10) == (f"the proposed description changes {changed_chars(OLD, GOOD)} characters, over "
                                    "the description budget of 10")
    huge = OLD + " x" * 500
    assert check(OLD, huge, 5000) == f"the proposed description has {len(huge)} characters, over the Agent Skills " \
                                     f"limit of {SPEC_LIMIT:,}"
    assert check(OLD, "", 100).startswith("the proposed description is empty")
    assert check(OLD, OLD, 100) == "the proposed description is the current one"


# --------------------------------------------------------------------------- the scorer (transcripts)

def completion(*calls: tuple[str, object], skill_path=".claude/skills/changelog-writer/SKILL.md") -> Completion:
    return Completion("ok", [{"role": "assistant", "type": "tool_use", "content": {"name": n, "input": i}}
                             for n, i in calls], extra={"agent": "claude-code", "skill_path": skill_path})


def score(expect: str, c: Completion, **spec) -> tuple[float, str]:
    s = validate_spec({"type": "trigger", "expect": expect, **spec}, "t.yml", 3)
    task = Task(id="q", input="q", scorers=(s,))
    r = TriggerScorer(s).score(task, c)
    return r.score, r.feedback


def test_loading_is_read_from_the_transcript_skill_tool_read_or_shell():
    assert score("load", completion(("Skill", {"skill": "changelog-writer"}))) == (
        1.0, "loaded as expected (the agent called the Skill tool for 'changelog-writer')")
    assert score("load", completion(("Read", {"file_path": "/ws/.claude/skills/changelog-writer/SKILL.md"})))[0] == 1
    codex = completion(("shell", "cat .agents/skills/changelog-writer/SKILL.md"),
                       skill_path=".agents/skills/changelog-writer/SKILL.md")
    assert score("load", codex)[0] == 1.0
    # another skill, or reading another file, is not loading this one
    other = completion(("Skill", {"skill": "other"}), ("Read", {"file_path": "CHANGELOG.md"}))
    assert score("load", other) == (0.0, "the skill 'changelog-writer' should have been loaded for this query but "
                                         "was not (no Skill tool use naming it, no read of its SKILL.md)")
    assert score("skip", other) == (1.0, "not loaded, as expected")
    s, fb = score("skip", completion(("Skill", {"skill": "changelog-writer"})))
    assert s == 0.0 and "should NOT have been loaded" in fb
    # the answer text saying so is not evidence
    assert load_evidence(Completion("I used changelog-writer/SKILL.md"), "changelog-writer",
                         ".claude/skills/changelog-writer/SKILL.md") is None


def test_a_skill_installed_as_claude_md_cannot_be_triggered_and_bad_settings_name_the_fix():
    s, fb = score("load", completion(("Read", {"file_path": "CLAUDE.md"}), skill_path="CLAUDE.md"))
    assert s == 0.0 and "install: skill" in fb
    with pytest.raises(ConfigError) as e:
        validate_spec({"type": "trigger", "expect": "yes"}, "evals/q.yml", 7)
    assert e.value.line == 7 and "expect: load" in e.value.fix


def test_precision_and_recall_come_from_per_task_means():
    by_id = {f"l{i}": Task(id=f"l{i}", input="", scorers=({"type": "trigger", "expect": "load"},)) for i in range(2)}
    by_id |= {"s": Task(id="s", input="", scorers=({"type": "trigger", "expect": "skip"},))}
    per = [{"task_id": "l0", "incumbent": 0.0, "candidate": 1.0}, {"task_id": "l1", "incumbent": 1.0,
                                                                  "candidate": 1.0},
           {"task_id": "s", "incumbent": 1.0, "candidate": 0.0}]
    assert rates(per, by_id, "incumbent") == {"precision": 1.0, "recall": 0.5}
    assert rates(per, by_id, "candidate") == {"precision": round(2 / 3, 4), "recall": 1.0}


# --------------------------------------------------------------------------- real Claude Code

LOAD = ["Draft the release notes for version 2.0.", "Write release notes for the 1.3 release.",
        "Please prepare release notes for v0.9.", "Compose the release notes for version 4.1.",
        "We need release notes for 3.2, please.", "Summarise the release notes for 1.0.",
        "Produce release notes for version 5.5.", "Create the release notes for 0.1."]
SKIP = ["What is the capital of France?", "Fix the typo in README.md.", "Explain what a mutex is.",
        "Rename the variable x to count."]
BODY = [f"Record version {v} in the changelog." for v in ("2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7")]
BODY_RULE = "- Follow the Keep a Changelog format."


class Scripted:
    """The model behind the real `claude` agent (Anthropic Messages) and the optimizer (OpenAI chat). The agent
    calls the Skill tool for a release-notes request only when the skill's description (which Claude Code lists to
    the model) mentions release notes; it always loads it for a changelog task, and follows the format rule once
    the loaded body (the Skill tool's result) carries it. The optimizer answers the body's reflection with the
    format rule and the description's with the queued descriptions."""

    def __init__(self, first_proposal: str):
        self.lock = threading.Lock()
        self.proposals = [first_proposal, GOOD]

    def __call__(self, req):
        if req.api == "chat" and "You improve a skill document" in req.system:
            return Text(json.dumps({"analysis": "no format", "edits": [
                {"op": "add", "anchor": "# Changelog writer", "content": BODY_RULE}]}))
        if req.api == "chat":
            with self.lock:
                desc = self.proposals.pop(0) if len(self.proposals) > 1 else self.proposals[0]
            return Text(json.dumps({"analysis": "the description never mentions release notes",
                                    "description": desc}))
        if not req.tool_names:
            return Text('{"title": "Task"}')
        if req.tool_results:
            return Text("Recorded in Keep a Changelog format." if "Keep a Changelog" in req.text else "Recorded.")
        if PHRASE in req.last_user_text and "Also use it to write release notes" in req.text \
                or "in the changelog" in req.last_user_text:
            return ToolCall("Skill", {"skill": "changelog-writer"})
        return Text("Answered directly.")


def write_trigger_project(root: Path, server: ModelServer, tmp: Path) -> Path:
    (root / "skills" / "changelog-writer").mkdir(parents=True)
    (root / "skills" / "changelog-writer" / "SKILL.md").write_text(SKILL)
    tasks = []
    splits = {"train": (LOAD[:3], SKIP[:1], BODY[:2]), "val": (LOAD[3:7], SKIP[1:3], BODY[2:6]),
              "test": (LOAD[7:], SKIP[3:], BODY[6:])}
    for split, (loads, skips, body) in splits.items():
        for expect, queries in (("load", loads), ("skip", skips)):
            for i, q in enumerate(queries):
                tasks.append({"id": f"{split}-{expect}-{i}", "input": q, "split": split,
                              "scorers": [{"type": "trigger", "expect": expect}]})
        tasks += [{"id": f"{split}-body-{i}", "input": q, "split": split,
                   "scorers": [{"type": "contains", "value": "Keep a Changelog format"}]} for i, q in enumerate(body)]
    (root / "evals").mkdir()
    (root / "evals" / "triggers.yml").write_text(yaml.safe_dump({"tasks": tasks}, sort_keys=False))
    cfg = {
        "skill": "skills/changelog-writer/SKILL.md", "tasks": "evals/*.yml",
        "target": {"provider": "claude-code", "model": "claude-test-model", "base_url": server.anthropic_base_url,
                   "api_key_env": "TRIGGER_TEST_KEY", "timeout": 120,
                   "options": {"binary": CLAUDE, "config_dir": str(tmp / "claude-config"),
                               "base_dir": str(tmp / "ws"), "max_turns": 4}},
        "optimizer": {"provider": "openai", "model": "optimizer-model", "base_url": server.openai_base_url,
                      "api_key_env": "TRIGGER_TEST_KEY"},
        "loop": {"epochs": 1, "batch_size": 2, "minibatch_size": 2, "parse_retries": 0,
                 "description": {"train": True, "budget_chars": 60}},
        "gate": {"mode": "paired", "samples": 1, "alpha": 0.1},
        "concurrency": 4, "budget": {"max_usd": 50},
    }
    path = root / "skillopt.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.mark.e2e
@pytest.mark.skipif(CLAUDE is None, reason="the claude CLI is not installed (see tests/test_harness_cli.py)")
def test_a_description_edit_that_makes_claude_code_load_the_skill_passes_the_trigger_gate_beside_body_training(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIGGER_TEST_KEY", KEY)
    over_limit = GOOD + " " + "Use it for anything at all. " * 40
    with ModelServer(responder=Scripted(over_limit), require_api_key=KEY) as server:
        cfg = write_trigger_project(tmp_path / "project", server, tmp_path)
        result = api.optimize(cfg, out=tmp_path / "out")
        agent_turns = [r for r in server.requests_for("messages") if r.tool_names and not r.tool_results]
        reflections = [r for r in server.requests_for("chat") if "You improve a skill document" in r.system]
    report = result.report
    decisions = [s["description"] for s in report.steps if s.get("description", {}).get("proposed")]
    assert len(decisions) == 2, report.steps
    # first: the optimizer's description is over the spec's limit: dropped with the reason, never tested
    assert decisions[0]["dropped"].startswith("the proposed description has") and "limit of 1,024" in \
        decisions[0]["dropped"]
    assert decisions[0]["gate"] is None and not decisions[0]["accepted"]
    # then: the description that names release notes passes the trigger gate on the val trigger tasks
    d = decisions[1]
    assert d["accepted"] is True and d["after"] == GOOD, d
    assert d["gate"]["incumbent"] == {"precision": None, "recall": 0.0}
    assert d["gate"]["candidate"] == {"precision": 1.0, "recall": 1.0}
    assert d["gate"]["incumbent_mean"] == pytest.approx(2 / 6) and d["gate"]["candidate_mean"] == 1.0
    assert read_description(result.best_skill) == GOOD
    # the body was trained too, on the body tasks only: its gate never ran a trigger query
    assert BODY_RULE in result.best_skill and result.best_skill.split("---\n", 2)[2] != SKILL.split("---\n", 2)[2]
    body_gates = [s["gate"] for s in report.steps if s.get("gate")]
    assert body_gates and all(g["n_tasks"] == 4 for g in body_gates)
    assert not any(q in r.text for r in reflections for q in LOAD + SKIP)
    assert report.improved and report.scores["val"]["best"] == 1.0 and report.scores["test"]["best"] == 1.0
    # the real CLI listed the trained description to the model in its own words
    assert any(GOOD in r.text for r in agent_turns) and any(OLD in r.text and GOOD not in r.text
                                                            for r in agent_turns)
    md = report.to_markdown()
    assert "**Description**" in md and "limit of 1,024" in md
    assert (tmp_path / "project" / "skills" / "changelog-writer" / "SKILL.md").read_text() == SKILL
    assert list((tmp_path / "ws").iterdir()) == []


def test_description_training_without_a_description_or_trigger_tasks_is_refused_before_any_rollout(tmp_path):
    def project(skill: str, expects: dict[str, str]) -> Path:
        root = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        root.mkdir()
        (root / "SKILL.md").write_text(skill)
        tasks = [{"id": f"{split}-{i}", "input": "q", "split": split,
                  "scorers": [{"type": "trigger", "expect": e} if e else {"type": "contains", "value": "x"}]}
                 for split, e in expects.items() for i in range(2)]
        (root / "tasks.yml").write_text(yaml.safe_dump({"tasks": tasks}))
        cfg = {"skill": "SKILL.md", "tasks": "tasks.yml",
               "target": {"provider": "command", "options": {"command": ["true"]}},
               "optimizer": {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
               "loop": {"description": {"train": True}}}
        (root / "skillopt.yml").write_text(yaml.safe_dump(cfg))
        return root / "skillopt.yml"

    with pytest.raises(ConfigError) as e:
        api.optimize(project("# No front matter\n", {"train": "load", "val": "skip"}), out=tmp_path / "o1")
    assert "has no front-matter `description:`" in e.value.message and e.value.line is not None
    with pytest.raises(ConfigError) as e:
        api.optimize(project(SKILL, {"train": "load", "val": ""}), out=tmp_path / "o2")
    assert "no val task has a `trigger` scorer" in e.value.message and "expect: skip" in e.value.fix
    assert all(not p.read_text() for p in (tmp_path / "o1").rglob("trajectories.jsonl"))  # nothing was run


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("codex") is None and not (CLIS_DIR / "node_modules" / ".bin" / "codex").exists(),
                    reason="the codex CLI is not installed (see tests/test_harness_cli.py)")
def test_a_real_codex_run_that_reads_the_skill_folder_counts_as_loaded(tmp_path, monkeypatch):
    from test_harness_cli import CODEX, codex_target

    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)
    with ModelServer() as server:
        server.reply(ToolCall("exec_command", {"cmd": "cat .agents/skills/changelog-writer/SKILL.md"}),
                     Text("Loaded the skill."), Text("Answered directly."))
        tgt, cache = codex_target(tmp_path, server, monkeypatch, install="skill")
        assert CODEX
        load = Task(id="q1", input="Draft release notes.", scorers=(validate_spec(
            {"type": "trigger", "expect": "load"}, "t.yml", 1),))
        skip = Task(id="q2", input="Explain a mutex.", scorers=(validate_spec(
            {"type": "trigger", "expect": "skip"}, "t.yml", 2),))
        try:
            read, direct = tgt.run(SKILL, load, 0), tgt.run(SKILL, skip, 0)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    assert read.error is None and direct.error is None, (read.error, direct.error)
    hit = TriggerScorer(load.scorers[0]).score(load, read)
    assert hit.score == 1.0 and "ran a command reading .agents/skills/changelog-writer/SKILL.md" in hit.feedback
    assert TriggerScorer(skip.scorers[0]).score(skip, read).score == 0.0  # the same run, had it been a skip query
    assert TriggerScorer(skip.scorers[0]).score(skip, direct).score == 1.0
    assert TriggerScorer(load.scorers[0]).score(load, direct).score == 0.0
