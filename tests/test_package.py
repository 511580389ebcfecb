"""Skill packages: a folder (SKILL.md, references/*.md, scripts) trained as one skill.

Unit level: edits name their file, the budget spans the package, bad file names are refused with the reason,
front matter and protected regions stay untouched, new reference files can be added. End to end: the example
package in examples/package is optimized through the real openai SDK against the scripted model server, and the
run keeps edits in two files; an agent target installs the package's script and runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from model_server import ModelServer, Text, ToolCall

from skillopt_action import api, package
from skillopt_action.config import ModelSettings
from skillopt_action.description import read_description, set_description
from skillopt_action.errors import ConfigError
from skillopt_action.reflect import parse_proposal
from skillopt_action.rollout import skill_hash
from skillopt_action.targets import make_target
from skillopt_action.types import Edit, Task
from skillopt_action.workspace import remove_workspace

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "package"
SKILL_DIR = EXAMPLE / "skills" / "release-notes"
HEADING_RULE = "- Start the notes with a `## <version>` heading line."
STYLE_RULE = "- Start each change line with `Fixed:`, `Added:` or `Changed:`."


def example_text() -> str:
    return package.read(SKILL_DIR)


# --------------------------------------------------------------------------- the package as text


def test_a_folder_is_packed_with_every_file_and_its_hash_covers_the_scripts(tmp_path):
    text = example_text()
    pkg = package.unpack(text)
    assert pkg.main == "SKILL.md" and sorted(pkg.files) == ["SKILL.md", "references/style.md"]
    assert list(pkg.assets) == ["scripts/check_notes.py"] and pkg.assets["scripts/check_notes.py"]["executable"]
    copy = tmp_path / "release-notes"
    shutil.copytree(SKILL_DIR, copy)
    assert package.read(copy) == text, "the same files give the same text (and hash), wherever they are"
    (copy / "scripts" / "check_notes.py").write_text("print('changed')\n")
    assert skill_hash(package.read(copy)) != skill_hash(text), "a changed script is a different skill"
    assert package.main_text(text).startswith("---\nname: release-notes")


def test_a_folder_without_skill_md_or_with_latin1_markdown_is_a_config_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("# x\n")
    with pytest.raises(ConfigError, match="has no SKILL.md"):
        package.read(tmp_path / "empty")
    bad = tmp_path / "bad"
    shutil.copytree(SKILL_DIR, bad)
    (bad / "references" / "style.md").write_bytes("# Caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        package.read(bad)
    assert exc.value.file.endswith("references/style.md") and exc.value.line == 1


def test_edits_in_two_files_share_one_budget_and_the_diff_names_each_file():
    text = example_text()
    edits = [Edit("add", "## Format", HEADING_RULE),
             Edit("add", "## Change lines", STYLE_RULE, file="references/style.md"),
             Edit("add", "## Format", "- One more rule that does not fit the op budget.")]
    rep = package.apply(text, edits, max_ops=2, max_lines=10, name="skills/release-notes")
    assert [r.applied for r in rep.results] == [True, True, False]
    assert rep.results[2].reason == "over op budget (2)"
    after = package.unpack(rep.after)
    assert HEADING_RULE in after.files["SKILL.md"] and STYLE_RULE in after.files["references/style.md"]
    assert "+++ b/skills/release-notes/SKILL.md" in rep.diff
    assert "+++ b/skills/release-notes/references/style.md" in rep.diff
    assert rep.added_lines == 2 and after.assets == package.unpack(text).assets
    # the line budget is summed over the files
    tight = package.apply(text, edits[:2], max_ops=4, max_lines=1, name="skills/release-notes")
    assert [r.applied for r in tight.results] == [True, False]
    assert "across the skill's files" in tight.results[1].reason


def test_bad_file_names_are_refused_with_the_reason_and_protected_text_stays():
    text = example_text()
    edits = [Edit("replace", "import re", "import os", file="scripts/check_notes.py"),
             Edit("add", "", "- x", file="../outside.md"),
             Edit("add", "", "- x", file="docs/new.md"),
             Edit("insert_after", "x", "- y", file="references/new.md"),
             Edit("replace", "Never invent a change", "Invent changes", file="references/style.md"),
             Edit("replace", "name: release-notes", "name: other"),
             Edit("add", "# Examples", "- `## 1.0.0` then `- Fixed: ...`", file="references/examples.md")]
    rep = package.apply(text, edits, max_ops=10, max_lines=50, name="skills/release-notes")
    reasons = [r.reason for r in rep.results]
    assert "installed, never edited" in reasons[0]
    assert "not a path inside the skill folder" in reasons[1]
    assert "references/<name>.md" in reasons[2]
    assert "with an `add` edit" in reasons[3]
    assert "protected" in reasons[4] and "front matter" in reasons[5]
    assert rep.results[6].applied and reasons[6] == ""
    after = package.unpack(rep.after)
    assert after.files["references/examples.md"] == "# Examples\n\n- `## 1.0.0` then `- Fixed: ...`\n"
    assert "new file" in rep.diff or "--- a/skills/release-notes/references/examples.md" in rep.diff


def test_the_description_of_a_package_is_read_and_rewritten_in_its_skill_md_only():
    text = example_text()
    assert read_description(text) == OLD_DESCRIPTION
    new = set_description(text, 'Writes "What\'s new" too.')
    before, after = package.unpack(text), package.unpack(new)
    assert read_description(new) == read_description(after.files["SKILL.md"]) == 'Writes "What\'s new" too.'
    assert after.files["SKILL.md"].split("---\n", 2)[2] == before.files["SKILL.md"].split("---\n", 2)[2]
    assert after.files["references/style.md"] == before.files["references/style.md"] and after.assets == before.assets


def test_a_single_file_skill_refuses_edits_naming_another_file():
    rep = package.apply("# S\n\n## A\n\n- a\n", [Edit("add", "## A", "- b", file="references/x.md")], max_ops=2,
                        max_lines=9, name="AGENTS.md")
    assert not rep.changed and "single file AGENTS.md" in rep.results[0].reason


def test_the_optimizer_answer_keeps_each_edits_file_only_for_packages():
    answer = json.dumps({"analysis": "a", "edits": [
        {"file": "./SKILL.md", "op": "add", "anchor": "## Format", "content": "- a"},
        {"file": "references/style.md", "op": "add", "anchor": "## Change lines", "content": "- b"}]})
    _, edits = parse_proposal(answer, "failure", 4, example_text())
    assert [e.file for e in edits] == ["", "references/style.md"]
    assert Edit("add", "## A", "- b").key() != Edit("add", "## A", "- b", file="references/style.md").key()
    _, plain = parse_proposal(answer, "failure", 4, "# S\n")
    assert [e.file for e in plain] == ["", ""]


# --------------------------------------------------------------------------- end to end


def _prefix(item: str) -> str:
    return {"fix": "Fixed", "add": "Added", "change": "Changed"}.get(item.split()[0], "Changed")


def target_answer(req) -> str:
    m = re.search(r"version (\S+)\. Changes: (.*)\.$", req.last_user_text or "")
    assert m, req.last_user_text
    version, items = m.group(1), m.group(2).split("; ")
    head = f"## {version}" if HEADING_RULE in req.system else f"Release {version}"
    styled = STYLE_RULE in req.system and "File `references/style.md`" in req.system
    return "\n".join([head, *(f"- {_prefix(i)}: {i}" if styled else f"- {i}" for i in items)])


OPTIMIZER = json.dumps({"analysis": "Notes lack the version heading and the change-line prefixes.", "edits": [
    {"file": "SKILL.md", "op": "add", "anchor": "## Format", "content": HEADING_RULE,
     "rationale": "every failing answer lacks the heading"},
    {"file": "references/style.md", "op": "add", "anchor": "## Change lines", "content": STYLE_RULE,
     "rationale": "change lines need their kind"},
    {"file": "scripts/check_notes.py", "op": "replace", "anchor": "import re", "content": "import re  # ok",
     "rationale": "a script edit must be refused"}]})


def responder(req):
    if "You improve a skill document" in (req.system or ""):
        return Text(OPTIMIZER)
    return Text(target_answer(req))


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test-secret-value")
    with ModelServer(responder=responder) as server:
        root = tmp_path / "example"
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".skillopt"))
        cfg = yaml.safe_load((root / "skillopt.yml").read_text())
        for role in ("target", "optimizer"):
            cfg[role].update(base_url=server.openai_base_url, api_key_env="TEST_KEY", timeout=5)
        cfg["retries"] = {"attempts": 2, "base_delay": 0.01, "max_delay": 0.05}
        (root / "skillopt.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        yield root, server


def test_the_example_package_is_optimized_with_kept_edits_in_two_files(project):
    root, server = project
    before = {p: p.read_bytes() for p in (root / "skills").rglob("*") if p.is_file()}
    result = api.optimize(root / "skillopt.yml", out=root / "run")
    assert result.improved and result.report.val["baseline"] == 0.0 and result.report.val["best"] == 1.0
    accepted = result.report.accepted_edits
    assert sorted(e.get("file", "") for e in accepted) == ["", "references/style.md"]
    best = package.unpack(result.best_skill)
    assert HEADING_RULE in best.files["SKILL.md"] and STYLE_RULE in best.files["references/style.md"]
    assert best.assets == package.unpack(result.baseline_skill).assets, "the script is never edited"
    step = result.report.steps[0]
    refused = [c for c in step["candidates"] if c["edit"].get("file") == "scripts/check_notes.py"]
    assert refused and "never edited" in refused[0]["reason"]
    assert "skills/release-notes/SKILL.md" in result.report.diff
    assert "skills/release-notes/references/style.md" in result.report.diff
    # the optimizer saw every Markdown file under its path, and was asked for the file of each edit
    prompt = next(r for r in server.requests if "You improve a skill document" in (r.system or ""))
    assert '<skill_file path="references/style.md">' in prompt.last_user_text and "`file`" in prompt.system
    result.write()
    out = root / "run"
    assert STYLE_RULE in (out / "best_skill" / "references" / "style.md").read_text()
    assert (out / "best_skill" / "scripts" / "check_notes.py").read_bytes() == \
        (SKILL_DIR / "scripts" / "check_notes.py").read_bytes()
    md = (out / "report.md").read_text()
    assert "references/style.md" in md
    assert {p: p.read_bytes() for p in (root / "skills").rglob("*") if p.is_file()} == before, \
        "the user's skill folder is never written"


def test_an_agent_target_gets_the_whole_package_and_can_run_its_script(tmp_path):
    settings = ModelSettings(role="target", provider="command", timeout=60, options={
        "command": "./.agents/skills/notes/scripts/check_notes.py notes.md && ls .agents/skills/notes/references",
        "skill_path": ".agents/skills/notes/SKILL.md"})
    target = make_target(settings, tmp_path)
    fixture = tmp_path / "fixture"
    fixture.mkdir()
    (fixture / "notes.md").write_text("## 1.2.3\n- Fixed: a crash\n")
    task = Task(id="t", input="check", fixture=str(fixture), fixture_digest="x")
    c = target.run(example_text(), task, 0)
    try:
        assert c.error is None, c.error
        assert c.text.split() == ["ok", "style.md"]
        ws = Path(c.workspace)
        assert (ws / ".agents/skills/notes/SKILL.md").read_text().startswith("---\nname: release-notes")
        assert (ws / ".agents/skills/notes/scripts/check_notes.py").stat().st_mode & 0o111
    finally:
        remove_workspace(c.workspace)


def test_a_package_never_overwrites_a_fixture_file_next_to_its_main_file(tmp_path):
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / "style.md").write_text("the fixture's own file\n")
    with pytest.raises(ConfigError, match="would overwrite references/style.md of the task's fixture") as exc:
        package.install(example_text(), tmp_path, "AGENTS.md")
    assert "install: skill" in exc.value.fix
    assert (tmp_path / "references" / "style.md").read_text() == "the fixture's own file\n"
    assert package.install(example_text(), tmp_path, ".agents/skills/notes/SKILL.md") == [
        ".agents/skills/notes/SKILL.md", ".agents/skills/notes/references/style.md",
        ".agents/skills/notes/scripts/check_notes.py"]


# --------------------------------------------------------------------------- the package and its description, through real Claude Code

CLIS_DIR = Path(os.environ.get("SKILLOPT_AGENT_CLIS_DIR") or Path.home() / ".cache" / "skillopt-agent-clis")
CLAUDE = str(CLIS_DIR / "node_modules" / ".bin" / "claude") if (CLIS_DIR / "node_modules" / ".bin" / "claude").exists() \
    else shutil.which("claude")
CLAUDE_KEY = "sk-package-claude-test-0123456789"
OLD_DESCRIPTION = ("Writes the release notes of one version from a list of changes. Use it when a task asks for release "
                   "notes, a changelog entry or a version summary.")
NEW_DESCRIPTION = OLD_DESCRIPTION + " Also use it for the \"What's new\" section of a release announcement."
TOPICS = ("release notes", "what's new")  # what a query may ask for, and a description may name
LISTED = re.compile(r"^- release-notes: (.+)$", re.M)  # Claude Code lists each skill's description to the model


class ClaudeScripted:
    """The model behind the real `claude` agent (Anthropic Messages) and the optimizer (OpenAI chat).

    The agent calls the Skill tool when the query asks for something the listed description names; after the Skill
    tool (Claude Code then sends SKILL.md's body) it reads references/style.md from the skill's base directory, and
    its notes follow the rules it was shown: the `## <version>` heading when SKILL.md has it, the Fixed/Added/Changed
    prefixes when style.md has them. Without the skill it answers plainly. The optimizer proposes the heading rule
    for SKILL.md and the prefix rule for references/style.md (the body), and the description naming "What's new"."""

    def __call__(self, req):
        if req.api == "chat" and "You improve a skill document" in req.system:
            return Text(OPTIMIZER)
        if req.api == "chat":
            return Text(json.dumps({"analysis": "queries about \"What's new\" sections were not loaded",
                                    "description": NEW_DESCRIPTION}))
        if not req.tool_names:
            return Text('{"title": "Task"}')
        query = req.last_user_text.split("</system-reminder>")[-1].strip() if not req.tool_results else ""
        results = req.tool_results
        if not results:
            listed = LISTED.search(req.text)
            description = listed.group(1).lower() if listed else ""
            if any(t in query.lower() and t in description for t in TOPICS):
                return ToolCall("Skill", {"skill": "release-notes"})
            return Text("Answered without the skill.")
        base = re.search(r"Base directory for this skill: (\S+)", req.text)
        if len(results) == 1 and base:
            return ToolCall("Read", {"file_path": base.group(1) + "/references/style.md"})
        m = re.search(r"version (\S+)\. Changes: (.*)\.$", req.text, re.M)
        if not m:
            return Text("Done.")  # a "What's new" query: loading was the point
        version, items = m.group(1), m.group(2).split("; ")
        head = f"## {version}" if HEADING_RULE in req.text else f"Release {version}"
        styled = STYLE_RULE in results[-1]
        return Text("\n".join([head, *(f"- {_prefix(i)}: {i}" if styled else f"- {i}" for i in items)]))


@pytest.mark.e2e
@pytest.mark.skipif(CLAUDE is None, reason="the claude CLI is not installed (see tests/test_harness_cli.py)")
def test_the_example_package_and_its_description_are_trained_in_one_run_through_claude_code(tmp_path, monkeypatch):
    monkeypatch.setenv("PACKAGE_CLAUDE_KEY", CLAUDE_KEY)
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".skillopt"))
    before = {p: p.read_bytes() for p in (root / "skills").rglob("*") if p.is_file()}
    with ModelServer(responder=ClaudeScripted(), require_api_key=CLAUDE_KEY) as server:
        cfg = yaml.safe_load((root / "skillopt-claude.yml").read_text())
        cfg["target"].update(base_url=server.anthropic_base_url, api_key_env="PACKAGE_CLAUDE_KEY", model="claude-test",
                             timeout=120)
        cfg["target"]["options"].update(binary=CLAUDE, config_dir=str(tmp_path / "claude-config"),
                                        base_dir=str(tmp_path / "ws"))
        cfg["optimizer"].update(base_url=server.openai_base_url, api_key_env="PACKAGE_CLAUDE_KEY", timeout=10)
        (root / "skillopt-claude.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        result = api.optimize(root / "skillopt-claude.yml", out=root / "run")
        agent_turns = [r for r in server.requests_for("messages") if r.tool_names and not r.tool_results]
    report = result.report
    # the body: one kept edit in each Markdown file of the package, through the gate
    body = [e for e in report.accepted_edits if e.get("region") != "description"]
    assert sorted(e.get("file") or "SKILL.md" for e in body) == ["SKILL.md", "references/style.md"], report.steps
    best = package.unpack(result.best_skill)
    assert HEADING_RULE in best.files["SKILL.md"] and STYLE_RULE in best.files["references/style.md"]
    assert best.assets == package.unpack(result.baseline_skill).assets, "the script is never edited"
    # the description: the one naming "What's new" passed the trigger gate without losing precision or recall
    (decision,) = [s["description"] for s in report.steps if s.get("description", {}).get("proposed")]
    assert decision["accepted"] is True and decision["after"] == NEW_DESCRIPTION, decision
    assert decision["gate"]["incumbent"] == {"precision": None, "recall": 0.0}
    assert decision["gate"]["candidate"] == {"precision": 1.0, "recall": 1.0}
    assert read_description(package.main_text(result.best_skill)) == NEW_DESCRIPTION
    assert report.improved and report.val["baseline"] < report.val["best"] == 1.0 and report.scores["test"]["best"] == 1.0
    # the real CLI listed both descriptions to the model, in its own words
    assert any(f"- release-notes: {NEW_DESCRIPTION}" in r.text for r in agent_turns)
    assert any(f"- release-notes: {OLD_DESCRIPTION}\n" in r.text for r in agent_turns)
    result.write()
    md = (root / "run" / "report.md").read_text()
    assert "**Description**" in md and "skills/release-notes/references/style.md" in report.diff
    assert "skills/release-notes/SKILL.md" in report.diff
    assert {p: p.read_bytes() for p in (root / "skills").rglob("*") if p.is_file()} == before, \
        "the user's skill folder is never written"
    assert list((tmp_path / "ws").iterdir()) == []
