"""Config and task files: defaults, and errors that name file:line and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import dedent

from skillopt_action.cli import main
from skillopt_action.config import CONFIG_SCHEMA, load_config, schema_json
from skillopt_action.errors import ConfigError
from skillopt_action.tasks import assign_splits, load_task_file, load_tasks


def project(tmp_path: Path, config: str, tasks: str | None = None) -> Path:
    (tmp_path / ".github").mkdir()
    (tmp_path / "SKILL.md").write_text("# Skill\n")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "t.yml").write_text(tasks or dedent("""
        tasks:
          - id: a
            input: hi
            reference: hello
            scorers: [exact]
    """))
    p = tmp_path / ".github" / "skillopt.yml"
    p.write_text(dedent(config))
    return p


def error(fn, *args) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        fn(*args)
    return e.value


def test_minimal_config_gets_sensible_defaults(tmp_path):
    cfg = load_config(project(tmp_path, """
        skill: SKILL.md
        tasks: evals/*.yml
        target:
          provider: openai
          model: gpt-4.1-mini
    """))
    assert cfg.root == tmp_path.resolve() and cfg.skill_path.read_text() == "# Skill\n"
    assert cfg.optimizer.model == "gpt-4.1-mini" and cfg.judge.provider == "openai"
    assert cfg.target.api_key_env == "OPENAI_API_KEY"
    assert cfg.gate.mode == "sequential" and cfg.gate.alpha == 0.05 and cfg.gate.samples >= 1 and cfg.loop.epochs >= 1
    assert cfg.cache_dir == tmp_path.resolve() / ".skillopt/cache"


@pytest.mark.parametrize("body,line,needle,fix", [
    ("skill: SKILL.md\ntasks: evals/*.yml\nloop:\n  epoch: 3\n", 4, "unknown key 'epoch'", "did you mean `epochs`"),
    ("skill: SKILL.md\ntasks: evals/*.yml\ngate:\n  mode: pairwise\n", 4, "invalid value 'pairwise'", "`paired`"),
    ("skill: SKILL.md\ntasks: evals/*.yml\nloop:\n  epochs: two\n", 4, "must be an integer, not a string", "epochs"),
    ("skill: SKILL.md\ntasks: evals/*.yml\ngate:\n  alpha: 1.5\n", 4, "must be < 1", "alpha"),
    ("tasks: evals/*.yml\n", 1, "missing required key 'skill'", "skill: SKILL.md"),
    ("skill: NOPE.md\ntasks: evals/*.yml\n", 1, "skill file 'NOPE.md' not found", "relative to the repository root"),
    ("skill: SKILL.md\ntasks: nothing/*.yml\n", 2, "matches no", "fix the glob"),
    ("skill: SKILL.md\ntasks: evals/*.yml\ntarget:\n  provider: openai\n", 4, "`target.model` is required", "model:"),
    ("skill: SKILL.md\ntasks: evals/*.yml\nskill: X.md\n", 3, "duplicate key 'skill'", "remove one"),
    ("skill: SKILL.md\ntasks: evals/*.yml\ntarget:\n  provider: codex\n", 3, "`optimizer:` is required", "chat model"),
    ("skill: SKILL.md\ntasks: [evals/*.yml\n", 3, "invalid YAML", "indentation"),
])
def test_config_errors_name_file_line_and_fix(tmp_path, capsys, body, line, needle, fix):
    path = project(tmp_path, body)
    assert main(["validate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}:" in err, err
    assert needle in err and fix in err, err


@pytest.mark.parametrize("tasks,line,needle", [
    ("tasks:\n  - id: a\n    input: x\n    scorers: [exact]\n    reference: y\n  - id: a\n    input: z\n    scorers: [exact]\n    reference: q\n",
     6, "duplicate task id 'a'"),
    ("tasks:\n  - id: a\n    input: x\n    scorers:\n      - type: fuzzy\n", 5, "unknown scorer type 'fuzzy'"),
    ("tasks:\n  - id: a\n    scorers: [exact]\n", 2, "has no `input`"),
    ("tasks:\n  - id: a\n    input: x\n    scorer: [exact]\n", 4, "unknown task field 'scorer'"),
    ("tasks:\n  - id: a\n    input: x\n    scorers:\n      - type: regex\n        pattern: '(unclosed'\n", 5, "regex"),
    ("tasks:\n  - id: a\n    input: x\n    split: dev\n    scorers: [exact]\n", 4, "unknown split 'dev'"),
])
def test_task_errors_name_file_line(tmp_path, capsys, tasks, line, needle):
    path = project(tmp_path, "skill: SKILL.md\ntasks: evals/*.yml\n", tasks)
    assert main(["validate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"evals/t.yml:{line}:" in err and needle in err, err
    assert "fix:" in err


def test_jsonl_tasks_report_the_line(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"id": "a", "input": "x", "scorers": ["exact"], "reference": "y"}\n\n{"id": "b", "input": \n')
    e = error(load_task_file, f)
    assert e.line == 3 and "invalid JSON" in e.message
    f.write_text('{"id": "a", "input": "x", "scorers": [{"type": "contains", "value": "y"}]}\n')
    assert load_task_file(f)[0].scorers[0]["type"] == "contains"


def test_chat_message_inputs_and_defaults(tmp_path):
    f = tmp_path / "t.yml"
    f.write_text(dedent("""
        defaults:
          scorers: [{type: contains, value: ok}]
        tasks:
          - id: chat
            input:
              - {role: user, content: "hi"}
              - {role: assistant, content: "hello"}
              - {role: user, content: "say ok"}
    """))
    (t,) = load_task_file(f)
    assert t.messages()[-1] == {"role": "user", "content": "say ok"} and t.scorers[0]["type"] == "contains"


def test_splits_are_deterministic_explicit_and_stable_when_tasks_are_added(tmp_path):
    f = tmp_path / "t.yml"
    body = "tasks:\n" + "".join(f"  - {{id: t{i}, input: q, reference: a, scorers: [exact]}}\n" for i in range(40))
    f.write_text(body + "  - {id: pinned, input: q, reference: a, scorers: [exact], split: test}\n")
    tasks = load_tasks(["t.yml"], tmp_path)
    ratios = {"train": 0.5, "val": 0.25, "test": 0.25}
    a = assign_splits(tasks, ratios, 3)
    assert [t.id for t in a["val"]] == [t.id for t in assign_splits(tasks, ratios, 3)["val"]]
    assert "pinned" in [t.id for t in a["test"]]
    assert (len(a["train"]), len(a["val"])) == (20, 10)
    f.write_text(f.read_text() + "  - {id: new, input: q, reference: a, scorers: [exact]}\n")
    b = assign_splits(load_tasks(["t.yml"], tmp_path), ratios, 3)
    moved = {t.id for t in a["val"]} ^ {t.id for t in b["val"]}
    assert len(moved - {"new"}) <= 1, "adding one task moves at most one other task across the val boundary"
    assert {t.id for t in a["val"]} != {t.id for t in assign_splits(tasks, ratios, 4)["val"]}


def test_published_schema_matches_the_code():
    published = Path(__file__).parent.parent / "skillopt_action" / "schema" / "skillopt.schema.json"
    assert published.read_text() == schema_json(), "run `skillopt schema > skillopt_action/schema/skillopt.schema.json`"
    assert json.loads(published.read_text())["required"] == CONFIG_SCHEMA["required"]


def test_validate_ok_and_init(tmp_path, capsys, monkeypatch):
    (tmp_path / "AGENTS.md").write_text("# Agents\n")
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert "skill: AGENTS.md" in (tmp_path / ".github/skillopt.yml").read_text()
    assert main(["validate"]) == 0
    assert "ok:" in capsys.readouterr().out
    before = (tmp_path / ".github/skillopt.yml").read_text()
    assert main(["init"]) == 2, "init never overwrites"
    assert (tmp_path / ".github/skillopt.yml").read_text() == before


@pytest.mark.parametrize("schedule,expected", [
    ("constant", [(4, 24)] * 4),
    ("linear", [(4, 24), (3, 20), (3, 16), (2, 12)]),
    ("cosine", [(4, 24), (4, 21), (2, 15), (2, 12)]),
])
def test_edit_budget_schedule_decays_ops_and_lines_to_the_minimum(schedule, expected):
    from skillopt_action.config import EditBudget

    b = EditBudget(ops=4, lines=24, min_ops=2, min_lines=12, schedule=schedule)
    assert [b.at(step, 4) for step in range(4)] == expected
    assert b.at(0, 1) == (4, 24), "a single step gets the full budget"


def test_validate_refuses_workspace_scorers_with_a_chat_target(tmp_path, capsys):
    tasks = "tasks:\n  - id: a\n    input: x\n    scorers:\n      - {type: file_exists, path: NOTES.md}\n"
    path = project(tmp_path, "skill: SKILL.md\ntasks: evals/*.yml\n", tasks)
    assert main(["validate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "evals/t.yml:2:" in err and "workspace scorer 'file_exists'" in err and "claude-code" in err


def test_validate_reports_a_missing_agent_cli(tmp_path, capsys):
    cfg = ("skill: SKILL.md\ntasks: evals/*.yml\ntarget:\n  provider: claude-code\n  options:\n"
           "    binary: /nonexistent/claude\noptimizer: {provider: local}\n")
    path = project(tmp_path, cfg)
    assert main(["validate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "npm install" in err
