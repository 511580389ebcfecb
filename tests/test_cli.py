"""The `skillopt` command line as a user meets it: help, global flags, validate's one-pass errors and upward
search, paths relative to the current directory, --json, run history with `latest`, the terminal report,
init's .gitignore, and the budget wording. Model calls go to the scripted server on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import pytest
from helpers import write_project
from model_server import ModelServer
from test_loop import responder

from skillopt_action import api, terminal
from skillopt_action.cli import main, parser

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def server():
    with ModelServer(responder=responder) as s:
        yield s


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test-secret-value")
    monkeypatch.setenv("COLUMNS", "100")


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


# ---- help


def test_bare_skillopt_prints_help_with_every_command_and_exit_codes(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "arguments are required" not in out
    for verb in commands():
        assert re.search(rf"^\s+{verb}\s+\S", out, re.M), f"{verb} is listed with a summary"
    assert "exit codes:" in out and "4  a budget cap was hit before the baseline" in out
    assert "global options (before or after the command)" in out


def test_every_command_and_option_has_a_description():
    for verb, p in commands().items():
        assert p.description and len(p.description) > 40, f"`skillopt {verb} --help` has no description"
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"{verb} {action.option_strings} has no help"


def test_eval_help_documents_the_default_split(capsys):
    assert main(["eval", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--split {train,val,test,all}" in out and "val (default" in out
    assert "usage: skillopt eval" in out


def test_readme_commands_table_matches_the_parser():
    text = README.read_text()
    table = text[text.index("## Commands"):text.index("**Exit codes:**")]
    rows = re.findall(r"^\| `skillopt (\w+)([^`]*)` \|", table, re.M)
    assert {verb for verb, _ in rows} == set(commands()), "every command has a row, and only those"
    for verb, usage in rows:
        known = {s for a in commands()[verb]._actions for s in a.option_strings}
        for flag in re.findall(r"--[\w-]+", usage):
            assert flag in known, f"README lists `skillopt {verb} {flag}` but the CLI has no such option"
    common = re.search(r"Global flags[^\n]*", table).group(0)
    for flag in re.findall(r"`(--[\w-]+)", common):
        assert any(flag in {s for a in p._actions for s in a.option_strings} for p in commands().values()), flag


# ---- global flags


def test_global_flags_work_before_and_after_the_command(tmp_path, server, capsys):
    cfg = str(write_project(tmp_path, base_url=server.openai_base_url))
    assert main(["--quiet", "--config", cfg, "validate"]) == 0
    before = capsys.readouterr()
    assert main(["validate", "--config", cfg, "--quiet"]) == 0
    after = capsys.readouterr()
    assert before.out == after.out and "ok:" in before.out
    runs = tmp_path / "runs"
    assert main(["--out", str(runs), "-q", "--config", cfg, "eval"]) == 0
    assert main(["eval", "--config", cfg, "--out", str(runs), "--quiet"]) == 0
    assert capsys.readouterr().err == "", "--quiet before the command silences progress too"
    assert len([d for d in runs.iterdir() if d.name.endswith("-eval")]) == 2


def test_a_global_flag_that_does_not_apply_is_refused(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "validate"]) == 2
    assert "--out does not apply" in capsys.readouterr().err
    assert main(["validate", "--out", str(tmp_path)]) == 2
    assert main(["frobnicate"]) == 2


# ---- validate


BAD_CONFIG = """skill: SKILL.md
tasks: evals/*.yml
loop:
  epoch: 3
  batchsize: 2
gate:
  mode: pairwise
"""
BAD_TASKS = """tasks:
  - id: a
    input: x
    scorer: [exact]
  - id: b
    scorers: [exact]
  - id: c
    input: y
    scorers:
      - type: fuzzy
"""


def broken_project(root: Path) -> None:
    (root / ".git").mkdir(parents=True)
    (root / ".github").mkdir()
    (root / "SKILL.md").write_text("# Skill\n")
    (root / ".github" / "skillopt.yml").write_text(BAD_CONFIG)
    (root / "evals").mkdir()
    (root / "evals" / "a.yml").write_text(BAD_TASKS)
    (root / "evals" / "b.yml").write_text("tasks:\n  - {id: d, input: [x\n")
    (root / "docs" / "deep").mkdir(parents=True)


def test_validate_reports_every_problem_in_one_pass_with_relative_paths(tmp_path, capsys, monkeypatch):
    broken_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 2
    err = capsys.readouterr().err
    expected = [".github/skillopt.yml:4: unknown key 'epoch'", ".github/skillopt.yml:5: unknown key 'batchsize'",
                ".github/skillopt.yml:7: `gate.mode` has invalid value 'pairwise'",
                "evals/a.yml:4: unknown task field 'scorer'", "evals/a.yml:5: task 'b' has no `input`",
                "evals/a.yml:10: unknown scorer type 'fuzzy'", "evals/b.yml:3: invalid YAML"]
    positions = [err.index(f"error: {e}") for e in expected]
    assert positions == sorted(positions), "config problems first, then each task file in line order"
    assert "7 problems found" in err
    assert str(tmp_path) not in err, "no absolute paths when the files are under the current directory"
    assert err.count("fix:") == 7


def test_validate_finds_the_config_from_a_subdirectory(tmp_path, server, capsys, monkeypatch):
    write_project(tmp_path, base_url=server.openai_base_url)
    (tmp_path / ".git").mkdir()
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "docs" / "deep")
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ../../.github/skillopt.yml: skill ../../SKILL.md, 16 tasks")

    broken_project(tmp_path / "other")
    monkeypatch.chdir(tmp_path / "other" / "docs" / "deep")
    assert main(["validate"]) == 2
    assert "error: ../../evals/a.yml:4: unknown task field 'scorer'" in capsys.readouterr().err


def test_validate_without_a_config_says_how_to_start(tmp_path, capsys, monkeypatch):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / ".github").mkdir()  # above the repository root: not searched
    (tmp_path / ".github" / "skillopt.yml").write_text("skill: X\n")
    monkeypatch.chdir(tmp_path / "repo")
    assert main(["validate"]) == 2
    err = capsys.readouterr().err
    assert "no .github/skillopt.yml in" in err and "skillopt init" in err


def test_validate_json_ok_and_errors(tmp_path, server, capsys, monkeypatch):
    cfg = write_project(tmp_path / "good", base_url=server.openai_base_url, extra={"budget": {"max_calls": 5}})
    monkeypatch.chdir(tmp_path / "good")
    assert main(["validate", "--json"]) == 0
    ok = json.loads(capsys.readouterr().out)
    assert ok["ok"] is True and ok["config"] == ".github/skillopt.yml" and ok["skill"] == "SKILL.md"
    assert ok["tasks"] == 16 and ok["splits"] == {"train": 4, "val": 8, "test": 4}
    assert ok["plan"]["max_target_calls"] >= 8 and ok["errors"] == []  # at least the baseline: 8 val tasks x 1
    # the cap (5) cannot pay for the baseline (8 val tasks x 1 sample): say so, not "covers the baseline"
    assert any("cannot cover even the baseline" in w and "at least 8" in w for w in ok["warnings"]), ok["warnings"]
    assert not any("covers the baseline and about" in w for w in ok["warnings"])
    assert cfg.is_file()

    broken_project(tmp_path / "bad")
    monkeypatch.chdir(tmp_path / "bad")
    assert main(["validate", "--json"]) == 2
    bad = json.loads(capsys.readouterr().out)
    assert bad["ok"] is False and bad["config"] == ".github/skillopt.yml" and len(bad["errors"]) == 7
    assert bad["errors"][0] == {"file": ".github/skillopt.yml", "line": 4, "message": "unknown key 'epoch' in loop",
                                "fix": "did you mean `epochs`?"}


# ---- runs: every run keeps its own directory, `latest` points at the newest


def test_each_run_keeps_its_report_and_latest_points_at_the_newest(tmp_path, server, capsys, monkeypatch):
    write_project(tmp_path, base_url=server.openai_base_url)
    runs = tmp_path / ".skillopt" / "runs"
    old = runs / "latest"  # a run directory written by skillopt 0.1 (its default --out)
    old.mkdir(parents=True)
    (old / "report.json").write_text('{"kind": "optimize"}')
    monkeypatch.chdir(tmp_path)
    assert main(["optimize", "--quiet"]) == 0
    first_out = capsys.readouterr().out
    assert main(["optimize", "--quiet"]) == 0
    second_out = capsys.readouterr().out
    dated = [d for d in runs.iterdir() if re.search(r"^\d{8}-\d{6}-optimize(-\d+)?$", d.name)]
    made = sorted((d for d in dated if (d / "state.json").exists()), key=lambda d: d.stat().st_ctime)
    assert len(made) == 2
    first, second = (json.loads((d / "report.json").read_text()) for d in made)
    assert first["spend"]["calls"] > 0 and second["spend"]["calls"] == 0, "the first run's spend is kept"
    assert (runs / "latest").is_symlink() and (runs / "latest").resolve() == made[1].resolve()
    assert f".skillopt/runs/{made[0].name}/best_skill.md" in first_out
    assert f".skillopt/runs/{made[1].name}/report.md" in second_out
    kept = [d for d in dated if not (d / "state.json").exists()]
    assert len(kept) == 1 and json.loads((kept[0] / "report.json").read_text()) == {"kind": "optimize"}, \
        "the old `latest` directory is kept under a dated name"


def test_report_shows_the_latest_run_readably_without_colour_when_piped(tmp_path, server, capsys, monkeypatch):
    write_project(tmp_path, base_url=server.openai_base_url)
    monkeypatch.chdir(tmp_path)
    assert main(["optimize", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "\033[" not in out, "no colour codes when stdout is not a terminal"
    assert "```" not in out and "**" not in out and "<details>" not in out
    assert re.search(r"^Scores\n─+$", out, re.M)
    assert re.search(r"^split\s+tasks\s+", out, re.M) and re.search(r"^val\s+8\s+0\.000\s+1\.000\s+\+1\.000", out, re.M)
    assert re.search(r"^\s+1  █+·*  1\.000  1\.000$", out, re.M), "the score chart as text bars"
    assert re.search(r"^    \+- Reply with the bare city name only\.$", out, re.M), "the skill diff"

    assert main(["report", "--color", "always"]) == 0
    coloured = capsys.readouterr().out
    assert "\033[32m+- Reply with the bare city name only.\033[0m" in coloured
    assert main(["report", "--format", "md", ".skillopt/runs"]) == 0
    assert "```mermaid" in capsys.readouterr().out


def test_report_on_a_directory_without_a_run_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "error: nowhere: no run report here" in err and "fix:" in err


def test_eval_json_and_a_rerun_into_the_same_run_directory_does_not_duplicate_trajectories(tmp_path, server,
                                                                                             capsys):
    cfg = write_project(tmp_path, base_url=server.openai_base_url)
    assert main(["eval", "--config", str(cfg), "--json", "--quiet", "--out", str(tmp_path / "runs")]) == 0
    data = json.loads(capsys.readouterr().out)
    run = Path(data["run_dir"])
    assert run.parent == tmp_path / "runs" and data["report"]["kind"] == "eval"
    assert data["report"]["scores"]["val"] == {"baseline": 0.0, "best": 0.0, "n": 8, "samples": 1}
    # the API writes into a given run directory; running again there replaces its trajectories
    api.evaluate(cfg, out=run)
    api.evaluate(cfg, out=run)
    assert len((run / "trajectories.jsonl").read_text().splitlines()) == 8


# ---- the terminal renderer


def test_terminal_render_tables_lists_details_and_wrapping():
    md = ("# Title\n\nA paragraph with **bold**, `code` and a [link](https://example.com) "
          "that is long enough to be wrapped at forty columns.\n\n"
          "| task | score |\n|---|---:|\n| `a` | 0.50 |\n| `long-name` | 1.00 |\n\n"
          "- item one\n- item two\n\n<details><summary>Edit text</summary>\n\n```\nkeep  spaces\n```\n</details>\n"
          "> quoted\n")
    out = terminal.render(md, colour=False, width=40)
    assert out.startswith("Title\n═════\n")
    assert "a link\n(https://example.com)" in out and all(len(x) <= 40 for x in out.splitlines()[:6])
    assert "task       score\n─────────  ─────\na           0.50\nlong-name   1.00\n" in out
    assert "• item one\n• item two" in out and "▸ Edit text" in out and "    keep  spaces" in out
    assert "│ quoted" in out and "<" not in out
    assert "\033[" in terminal.render(md, colour=True, width=40)


# ---- init


def test_init_adds_skillopt_to_gitignore_once(tmp_path, capsys, monkeypatch):
    (tmp_path / "AGENTS.md").write_text("# Agents\n")
    (tmp_path / ".gitignore").write_text("node_modules/")  # no trailing newline
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert (tmp_path / ".gitignore").read_text().splitlines()[0] == "node_modules/"
    assert (tmp_path / ".gitignore").read_text().splitlines().count(".skillopt/") == 1
    assert "added .skillopt/ (runs and cache) to .gitignore" in capsys.readouterr().err

    other = tmp_path / "other"
    other.mkdir()
    (other / "SKILL.md").write_text("# Skill\n")
    monkeypatch.chdir(other)
    assert main(["init", "--quiet"]) == 0
    assert (other / ".gitignore").read_text().endswith(".skillopt/\n") and capsys.readouterr().err == ""

    third = tmp_path / "third"
    third.mkdir()
    (third / "SKILL.md").write_text("# Skill\n")
    (third / ".gitignore").write_text("/.skillopt\n")
    monkeypatch.chdir(third)
    assert main(["init"]) == 0
    assert (third / ".gitignore").read_text() == "/.skillopt\n", "an existing rule is not duplicated"
    assert os.path.exists(third / ".github" / "skillopt.yml")
