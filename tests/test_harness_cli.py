"""The claude-code and codex presets driving the REAL CLIs (from npm) against a scripted model server
on 127.0.0.1: tool calls that write into the workspace, the skill installed where the preset says,
answer / usage / cost parsed, narrow permissions, a timeout, and `skillopt optimize` on
examples/harness through the real `claude`.

The binaries come from $SKILLOPT_AGENT_CLIS_DIR/node_modules/.bin (default
~/.cache/skillopt-agent-clis, which .ci/run fills with
`npm install --prefix "$SKILLOPT_AGENT_CLIS_DIR" @anthropic-ai/claude-code @openai/codex`), else PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from model_server import Hang, ModelServer, Text, ToolCall

from skillopt_action import yamlfile
from skillopt_action.config import _model
from skillopt_action.scorers import ScorerContext, score_completion, validate_spec
from skillopt_action.targets import make_target
from skillopt_action.tasks import Task, dir_digest
from skillopt_action.workspace import remove_workspace

CLIS_DIR = Path(os.environ.get("SKILLOPT_AGENT_CLIS_DIR") or Path.home() / ".cache" / "skillopt-agent-clis")
EXAMPLE = Path(__file__).parent.parent / "examples" / "harness"
KEY = "sk-harness-test-key-0123456789"


def find_cli(name: str) -> str | None:
    p = CLIS_DIR / "node_modules" / ".bin" / name
    return str(p) if p.exists() else shutil.which(name)


CLAUDE, CODEX = find_cli("claude"), find_cli("codex")
HOW = (f"npm install --prefix {CLIS_DIR} @anthropic-ai/claude-code @openai/codex "
       "(or set SKILLOPT_AGENT_CLIS_DIR)")
needs_claude = pytest.mark.skipif(CLAUDE is None, reason=f"the claude CLI is not installed: {HOW}")
needs_codex = pytest.mark.skipif(CODEX is None, reason=f"the codex CLI is not installed: {HOW}")
pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)


def settings(tmp_path: Path, target: dict):
    cfg = tmp_path / "skillopt.yml"
    cfg.write_text(yaml.safe_dump({"target": target}, sort_keys=False))
    return _model("target", yamlfile.load(cfg)["target"], str(cfg))


def make_task(tmp_path: Path, prompt: str, scorers: list[dict], tid: str = "t1") -> Task:
    fx = tmp_path / "fixture"
    if not fx.exists():
        fx.mkdir()
        (fx / "CHANGELOG.md").write_text("# Changelog\n\n## [1.0.0] - 2024-01-01\n\n- First.\n")
    return Task(id=tid, input=prompt, scorers=tuple(validate_spec(s, "t.yml", 1) for s in scorers),
                fixture=str(fx), fixture_digest=dir_digest(fx), source="t.yml:1")


def ctx(tmp_path):
    return ScorerContext(project_root=tmp_path, command_timeout=30)


def claude_target(tmp_path, server, **options):
    return make_target(settings(tmp_path, {
        "provider": "claude-code", "model": "claude-test-model", "base_url": server.anthropic_base_url,
        "api_key_env": "HARNESS_TEST_KEY", "timeout": 120,
        "options": {"binary": CLAUDE, "config_dir": str(tmp_path / "claude-config"), "base_dir": str(tmp_path / "ws"),
                    **options}}), tmp_path)


SKILL = """---
name: changelog-writer
description: Records a release in CHANGELOG.md. Use it for release tasks.
---

# Changelog writer

- Marker rule ZEBRA-42: write NOTES.md too.
"""


# --------------------------------------------------------------------------- claude-code

@needs_claude
def test_claude_code_loads_the_project_skill_writes_in_the_workspace_and_reports_usage(tmp_path):
    outside = tmp_path / "outside.txt"
    with ModelServer(require_api_key=KEY) as server:
        server.when(lambda r: r.api == "messages" and not r.tool_names, Text('{"title": "Release"}'))
        server.reply(ToolCall("Skill", {"skill": "changelog-writer"}),
                     ToolCall("Read", {"file_path": "CHANGELOG.md"}),
                     ToolCall("Write", {"file_path": "NOTES.md", "content": "Release notes for 1.1.0\n"}),
                     ToolCall("Write", {"file_path": str(outside), "content": "escaped\n"}),
                     ToolCall("Bash", {"command": "touch via-bash.txt"}),
                     Text("Released 1.1.0 and wrote NOTES.md."))
        t = make_task(tmp_path, "Release 1.1.0.", [
            {"type": "file_contains", "path": "NOTES.md", "value": "Release notes for 1.1.0"},
            {"type": "diff_paths", "allowed": ["NOTES.md"]}])
        tgt = claude_target(tmp_path, server)
        c = tgt.run(SKILL, t, 0)
        agent_requests = [r for r in server.requests_for("messages") if r.tool_names]
    ws = Path(c.workspace)
    assert c.error is None, c.error
    assert c.text == "Released 1.1.0 and wrote NOTES.md."
    # installed as a project skill, discovered by the CLI (its description is offered to the model),
    # and loaded through the Skill tool (its body reaches the model on the next turn)
    assert (ws / ".claude" / "skills" / "changelog-writer" / "SKILL.md").read_text() == SKILL
    assert "changelog-writer: Records a release in CHANGELOG.md" in agent_requests[0].text
    assert "ZEBRA-42" not in agent_requests[0].text and "ZEBRA-42" in agent_requests[1].text
    assert agent_requests[0].model == "claude-test-model"
    # the file the model wrote is scored in the workspace
    s = score_completion(t, c, ctx(tmp_path), 1.0)
    assert s.score == 1.0, s.feedback()
    # narrow permissions: no write outside the workspace, no shell
    assert not outside.exists() and not (ws / "via-bash.txt").exists()
    assert sorted(d["tool_name"] for d in c.extra["permission_denials"]) == ["Bash", "Write"]
    # the transcript keeps the tool calls; usage and cost come from the result object
    calls = [m["content"]["name"] for m in c.transcript if m.get("type") == "tool_use"]
    assert calls == ["Skill", "Read", "Write", "Write", "Bash"]
    assert c.usage.input_tokens > 1000 and c.usage.output_tokens > 0 and c.usage.cost_usd > 0
    assert c.extra["subtype"] == "success" and c.extra["num_turns"] >= 5
    # the key reached the server (require_api_key) but nothing we keep
    assert KEY not in json.dumps(c.to_dict()) and KEY not in json.dumps(tgt.fingerprint())
    assert tgt.fingerprint()["command"][1].startswith("2.")  # the CLI's version is part of the cache key
    remove_workspace(c.workspace)
    assert list((tmp_path / "ws").iterdir()) == []


@needs_claude
def test_claude_code_with_claude_md(tmp_path):
    with ModelServer() as server:
        server.when(lambda r: r.api == "messages" and not r.tool_names, Text('{"title": "T"}'))
        server.reply(ToolCall("Edit", {"file_path": "CHANGELOG.md", "old_string": "# Changelog\n",
                                       "new_string": "# Changelog\n\n## [1.1.0] - 2026-01-01\n"}),
                     ToolCall("Read", {"file_path": "CHANGELOG.md"}),
                     ToolCall("Edit", {"file_path": "CHANGELOG.md", "old_string": "# Changelog\n",
                                       "new_string": "# Changelog\n\n## [1.1.0] - 2026-01-01\n"}),
                     Text("done"))
        t = make_task(tmp_path, "Release 1.1.0.", [
            {"type": "file_matches", "path": "CHANGELOG.md", "pattern": r"^## \[1\.1\.0\] - \d{4}", "flags": "m"}])
        c = claude_target(tmp_path, server, install="claude_md").run("# Project rules\n\nMarker ZEBRA-43.\n", t, 0)
        first = [r for r in server.requests_for("messages") if r.tool_names][0]
    assert c.error is None, c.error
    assert (Path(c.workspace) / "CLAUDE.md").read_text() == "# Project rules\n\nMarker ZEBRA-43.\n"
    assert "ZEBRA-43" in first.text  # Claude Code read CLAUDE.md from the workspace on its own
    # an Edit before a Read is refused by the CLI and shows in the transcript as a tool error
    assert any(m["role"] == "tool" and m["content"].startswith("[error]") for m in c.transcript)
    assert score_completion(t, c, ctx(tmp_path), 1.0).score == 1.0


@needs_claude
def test_claude_code_that_hangs_is_killed_and_scored_zero(tmp_path):
    with ModelServer(max_hang=60) as server:
        server.when(lambda r: r.api == "messages" and not r.tool_names, Text('{"title": "T"}'))
        server.when(lambda r: r.api == "messages" and bool(r.tool_names), Hang(60))
        t = make_task(tmp_path, "Release 1.1.0.", [{"type": "file_exists", "path": "CHANGELOG.md"}])
        tgt = make_target(settings(tmp_path, {
            "provider": "claude-code", "model": "m", "base_url": server.anthropic_base_url,
            "api_key_env": "HARNESS_TEST_KEY", "timeout": 4,
            "options": {"binary": CLAUDE, "config_dir": str(tmp_path / "cc")}}), tmp_path)
        t0 = time.monotonic()
        c = tgt.run(SKILL, t, 0)
        took = time.monotonic() - t0
    assert took < 20
    assert c.error.startswith("timed out after 4s")
    s = score_completion(t, c, ctx(tmp_path), 1.0)
    assert s.score == 0.0 and "run failed: timed out after 4s" in s.feedback()
    remove_workspace(c.workspace)


# --------------------------------------------------------------------------- codex

def codex_target(tmp_path, server, monkeypatch, **options):
    # the generated CODEX_HOME goes under $XDG_CACHE_HOME (Codex warns about homes under /tmp)
    cache = Path.home() / ".cache" / f"skillopt-test-{os.getpid()}-{tmp_path.name}"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    tgt = make_target(settings(tmp_path, {
        "provider": "codex", "model": "gpt-test-model", "base_url": server.openai_base_url,
        "api_key_env": "HARNESS_TEST_KEY", "timeout": 120,
        "options": {"binary": CODEX, "base_dir": str(tmp_path / "ws"), **options}}), tmp_path)
    return tgt, cache


@needs_codex
def test_codex_reads_agents_md_runs_a_sandboxed_command_and_reports_usage(tmp_path, monkeypatch):
    with ModelServer(require_api_key=KEY) as server:
        server.reply(ToolCall("exec_command", {"cmd": "printf 'Release notes for 1.1.0\\n' > NOTES.md"}),
                     ToolCall("exec_command", {"cmd": f"printf x > {tmp_path}/outside.txt"}),
                     Text("Wrote NOTES.md."))
        t = make_task(tmp_path, "Release 1.1.0.", [
            {"type": "file_contains", "path": "NOTES.md", "value": "Release notes for 1.1.0"},
            {"type": "diff_paths", "allowed": ["NOTES.md"]}])
        tgt, cache = codex_target(tmp_path, server, monkeypatch)
        try:
            c = tgt.run("# Repo rules\n\nMarker ZEBRA-44.\n", t, 0)
            reqs = server.requests_for("responses")
            home_cfg = (tgt.codex_home / "config.toml").read_text()
            url = server.openai_base_url
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    ws = Path(c.workspace)
    assert c.error is None, c.error
    assert c.text == "Wrote NOTES.md."
    assert (ws / "AGENTS.md").read_text() == "# Repo rules\n\nMarker ZEBRA-44.\n"
    assert "ZEBRA-44" in reqs[0].text and reqs[0].model == "gpt-test-model"
    assert score_completion(t, c, ctx(tmp_path), 1.0).score == 1.0
    # workspace-write sandbox: the write outside the workspace failed
    assert not (tmp_path / "outside.txt").exists()
    shells = [m for m in c.transcript if m.get("type") == "tool_use"]
    # the transcript records the shell calls as tool uses (Codex sometimes reports the sandbox-refused one only
    # as an error event, so one or two)
    assert shells and {m["content"]["name"] for m in shells} == {"shell"} and len(shells) <= 2
    assert c.usage.input_tokens > 100 and c.usage.output_tokens > 0
    assert f'base_url = "{url}"' in home_cfg and 'env_key = "HARNESS_TEST_KEY"' in home_cfg
    assert KEY not in home_cfg and KEY not in json.dumps(c.to_dict())
    remove_workspace(c.workspace)


@needs_codex
def test_codex_skill_folder_install(tmp_path, monkeypatch):
    with ModelServer() as server:
        server.reply(ToolCall("exec_command", {"cmd": "printf ok > done.txt"}), Text("ok"))
        t = make_task(tmp_path, "Do it.", [{"type": "file_exists", "path": "done.txt"}])
        tgt, cache = codex_target(tmp_path, server, monkeypatch, install="skill")
        try:
            c = tgt.run(SKILL, t, 0)
            first = server.requests_for("responses")[0]
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    assert c.error is None, c.error
    assert (Path(c.workspace) / ".agents" / "skills" / "changelog-writer" / "SKILL.md").read_text() == SKILL
    assert "changelog-writer" in first.text  # Codex lists the workspace skill to the model
    assert score_completion(t, c, ctx(tmp_path), 1.0).score == 1.0


# --------------------------------------------------------------------------- skillopt optimize, real claude

RULE = ("- Head the release `## [X.Y.Z] - YYYY-MM-DD` and group the changes under `### Added` and "
        "`### Fixed`, one `- ` bullet per change.")
OPTIMIZER_ANSWER = json.dumps({"analysis": "entries lack the Keep a Changelog heading and sections", "edits": [
    {"op": "add", "anchor": "## Writing the entry", "content": RULE, "rationale": "the checks want this format"}]})
PROMPT = re.compile(r"Release version (\S+) of (\S+): record in the changelog that we added (.+?) and fixed (.+?)\.")


def scripted(req):
    """The model behind both the real `claude` agent (Anthropic Messages) and the optimizer (OpenAI chat)."""
    if req.api == "chat":
        return Text(OPTIMIZER_ANSWER)
    if not req.tool_names:
        return Text('{"title": "Release"}')
    done = len(req.tool_results)
    if done == 0:
        return ToolCall("Skill", {"skill": "changelog-writer"})
    if done == 1:
        return ToolCall("Read", {"file_path": "CHANGELOG.md"})
    if done == 2:
        version, _, added, fixed = PROMPT.search(req.text).groups()
        if "## [X.Y.Z] - YYYY-MM-DD" in req.text:  # the trained rule reached the agent via the skill
            entry = f"## [{version}] - 2026-01-15\n\n### Added\n\n- {added}\n\n### Fixed\n\n- {fixed}\n\n"
        else:
            entry = f"## {version}\n\n- Added {added}, fixed {fixed}.\n\n"
        return ToolCall("Edit", {"file_path": "CHANGELOG.md", "old_string": "# Changelog\n\n",
                                 "new_string": "# Changelog\n\n" + entry})
    return Text("Recorded the release in CHANGELOG.md.")


@needs_claude
def test_optimize_trains_the_example_skill_through_real_claude(tmp_path, monkeypatch):
    from skillopt_action.cli import main

    project = tmp_path / "harness"
    shutil.copytree(EXAMPLE, project)
    original = (project / "skills" / "changelog-writer" / "SKILL.md").read_text()
    with ModelServer(responder=scripted) as server:
        cfg = yaml.safe_load((project / "skillopt.yml").read_text())
        cfg["target"].update(model="claude-test-model", base_url=server.anthropic_base_url,
                             api_key_env="HARNESS_TEST_KEY")
        cfg["target"]["options"].update(binary=CLAUDE, config_dir=str(tmp_path / "claude-config"),
                                        base_dir=str(tmp_path / "ws"))
        cfg["optimizer"].update(model="optimizer-model", base_url=server.openai_base_url,
                                api_key_env="HARNESS_TEST_KEY")
        cfg["budget"] = {"max_usd": 50}
        (project / "skillopt.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        out = tmp_path / "out"
        code = main(["optimize", "--config", str(project / "skillopt.yml"), "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "latest" / "report.json").read_text())
    assert report["improved"] is True, report["steps"]
    best = (out / "latest" / "best_skill.md").read_text()
    assert RULE in best and best.startswith("---\nname: changelog-writer\n")
    assert (project / "skills" / "changelog-writer" / "SKILL.md").read_text() == original
    # per-task workspace scores: before, only diff_paths passed; after, every workspace check passes
    val = report["tasks"]["val"]
    assert len(val) == 4
    for row in val:
        assert row["baseline"] == pytest.approx(1 / 3, abs=1e-3) and row["best"] == 1.0, row
        assert "workspace_command: command passed" in row["feedback"]
    md = (out / "latest" / "report.md").read_text()
    assert "release-" in md
    # the agent transcripts (tool calls) went into the trajectories; workspaces were removed
    lines = [json.loads(x) for x in (out / "latest" / "trajectories.jsonl").read_text().splitlines()]
    base = [x for x in lines if x["phase"] == "baseline:val"]
    assert len(base) == 4 and all("- YYYY-MM-DD" in json.dumps(x["score"]) for x in base)
    tools = {m["content"]["name"] for x in lines for m in x["completion"]["transcript"] if m.get("type") == "tool_use"}
    assert tools == {"Skill", "Read", "Edit"}
    assert list((tmp_path / "ws").iterdir()) == []
    for f in (out / "latest").iterdir():
        if f.is_file():
            assert KEY not in f.read_text(errors="replace")
