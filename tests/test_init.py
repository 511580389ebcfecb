"""`skillopt init` detects the repository's layout and writes a config listing what it found; it never
overwrites a config (it says what it found instead)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from skillopt_action import api
from skillopt_action.cli import main
from skillopt_action.config import load_config, load_configs

SKILL = "---\nname: {name}\ndescription: Does {name} things.\n---\n\n# {name}\n\n- Be exact.\n"


def layout(root: Path) -> None:
    for base, name in ((".claude/skills", "release"), (".agents/skills", "review"), (".github/skills", "triage")):
        (root / base / name).mkdir(parents=True)
        (root / base / name / "SKILL.md").write_text(SKILL.format(name=name))
    (root / ".agents/skills/review/references").mkdir()
    (root / ".agents/skills/review/references/checklist.md").write_text("# Checklist\n")
    (root / ".claude/skills/not-a-skill").mkdir()  # no SKILL.md: not listed
    (root / "AGENTS.md").write_text("# Agents\n")
    (root / "CLAUDE.md").write_text("# Claude\n")
    (root / ".github" / "copilot-instructions.md").write_text("# Copilot\n")


def test_init_lists_every_skill_of_the_layout_each_with_its_own_tasks(tmp_path, monkeypatch, capsys):
    layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    err = capsys.readouterr().err
    assert "found .claude/skills/release (Claude Code skill), .agents/skills/review (agent skill)" in err
    cfg = yaml.safe_load((tmp_path / ".github" / "skillopt.yml").read_text())
    assert [(s["name"], s["skill"]) for s in cfg["skills"]] == [
        ("release", ".claude/skills/release"), ("review", ".agents/skills/review"),
        ("triage", ".github/skills/triage"), ("agents", "AGENTS.md"), ("claude", "CLAUDE.md"),
        ("copilot-instructions", ".github/copilot-instructions.md")]
    assert "skill" not in cfg
    configs = load_configs(tmp_path / ".github" / "skillopt.yml")
    assert [c.name for c in configs] == ["release", "review", "triage", "agents", "claude", "copilot-instructions"]
    for c in configs:
        assert (tmp_path / "evals" / c.name / "tasks.yml").is_file()
        check = api.validate(c)
        assert check.tasks and check.config.tasks == [f"evals/{c.name}/*.yml"]
    review = api.read_skill(tmp_path / ".agents/skills/review")
    assert "references/checklist.md" in review, "a skill folder is trained as a package"


def test_init_with_one_skill_folder_writes_a_one_skill_config(tmp_path, monkeypatch):
    (tmp_path / ".claude/skills/release").mkdir(parents=True)
    (tmp_path / ".claude/skills/release/SKILL.md").write_text(SKILL.format(name="release"))
    monkeypatch.chdir(tmp_path)
    assert main(["init", "-q"]) == 0
    cfg = load_config(tmp_path / ".github" / "skillopt.yml")
    assert cfg.skill == ".claude/skills/release" and cfg.name == ""
    assert (tmp_path / "evals" / "tasks.yml").is_file()


def test_init_never_overwrites_a_config_and_says_what_it_found(tmp_path, monkeypatch, capsys):
    layout(tmp_path)
    (tmp_path / ".github" / "skillopt.yml").write_text("skill: AGENTS.md\ntasks: evals/*.yml\n")
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 2
    err = capsys.readouterr().err
    assert "skillopt.yml: already exists; not overwriting" in err
    assert "skillopt found .claude/skills/release (Claude Code skill)" in err and "CLAUDE.md (CLAUDE.md)" in err
    assert (tmp_path / ".github" / "skillopt.yml").read_text() == "skill: AGENTS.md\ntasks: evals/*.yml\n"
    assert not (tmp_path / "evals").exists()


@pytest.mark.parametrize("given", ["CLAUDE.md", ".agents/skills/review"])
def test_init_with_skill_trains_only_that_one(tmp_path, monkeypatch, given):
    layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["init", "-q", "--skill", given]) == 0
    assert load_config(tmp_path / ".github" / "skillopt.yml").skill == given
