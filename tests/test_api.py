"""The public Python API, used as the README shows, against the scripted model server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from helpers import SKILL, write_project
from model_server import ModelServer
from test_loop import RULE, responder

import skillopt_action
from skillopt_action import api
from skillopt_action.errors import ConfigError


@pytest.fixture
def server():
    with ModelServer(responder=responder) as s:
        yield s


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test-secret-value")


def test_readme_example_validate_optimize_write_compare(tmp_path, server):
    cfg = write_project(tmp_path, base_url=server.openai_base_url)
    check = api.validate(cfg)
    assert len(check.tasks) == 16 and len(check.splits["val"]) == 8 and check.max_target_calls > 0

    out = tmp_path / "runs" / "try"
    result = api.optimize(cfg, epochs=1, out=out)
    assert result.improved and RULE in result.best_skill and result.baseline_skill == SKILL
    assert result.report.val["baseline"] == 0.0 and result.report.val["best"] == 1.0
    # nothing but the run's own state is written until the caller asks
    assert not (out / "report.json").exists() and not (out / "best_skill.md").exists()
    assert (out / "state.json").is_file() and (out / "trajectories.jsonl").is_file()
    path = result.write()
    assert path == out / "report.json"
    assert json.loads(path.read_text()) == result.report.to_dict()
    assert (out / "best_skill.md").read_text() == result.best_skill
    assert "xychart-beta" in (out / "report.md").read_text()
    assert (tmp_path / "SKILL.md").read_text() == SKILL, "the user's skill file is never written"

    verdict = api.compare(cfg, base_skill=result.baseline_skill, candidate_skill=result.best_skill,
                          out=tmp_path / "cmp")
    assert verdict.improved and verdict.report.kind == "compare"
    assert verdict.report.gate["reason"].startswith("accepted")
    assert verdict.report.p_value is not None and verdict.report.p_value < 0.1


def test_evaluate_takes_skill_text_and_splits_and_the_package_reexports_the_api(tmp_path, server):
    cfg = write_project(tmp_path, base_url=server.openai_base_url)
    good = SKILL + RULE + "\n"
    res = skillopt_action.evaluate(cfg, skill=good, splits=["val", "test"], out=tmp_path / "eval")
    assert set(res.report.scores) == {"val", "test"}
    assert res.report.scores["val"]["best"] == 1.0 and res.report.kind == "eval" and not res.improved
    assert skillopt_action.optimize is api.optimize and skillopt_action.Report is api.Report


def test_report_round_trips_through_its_json(tmp_path, server):
    cfg = write_project(tmp_path, base_url=server.openai_base_url)
    report = api.optimize(cfg, epochs=1, out=tmp_path / "o").report
    again = api.Report.from_dict(json.loads(report.to_json()))
    assert again == report and again.to_markdown() == report.to_markdown()


def test_bad_config_raises_config_error_with_file_and_line(tmp_path):
    cfg = tmp_path / "skillopt.yml"
    (tmp_path / "SKILL.md").write_text("# s\n")
    cfg.write_text("skill: SKILL.md\ntasks: evals/*.yml\nloop:\n  epocs: 2\n")
    with pytest.raises(ConfigError) as exc:
        api.validate(cfg)
    assert exc.value.line == 4 and "epochs" in str(exc.value)
