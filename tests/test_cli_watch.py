"""`skillopt watch` as a user meets it: the baseline file in the project root, exit 0 / 6 / 2, the reasons and the
per-task table, --json, --record and --alpha. The target is the scripted model server on 127.0.0.1, whose accuracy
and reported model id the test changes between runs."""

from __future__ import annotations

import json
import re

import pytest
from helpers import COUNTRIES, write_project
from model_server import ModelServer, Text

from skillopt_action.cli import main

CAPITAL = {c.split(":")[0]: c.split(":")[1] for c in COUNTRIES}


class Target:
    def __init__(self):
        self.right = True
        self.model: str | None = None

    def __call__(self, req):
        country = re.search(r"capital of (\w+)", req.last_user_text).group(1)
        return Text(CAPITAL[country] if self.right else "Unsure.", model=self.model)


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test-secret-value")
    monkeypatch.setenv("COLUMNS", "100")


@pytest.fixture
def project(tmp_path, monkeypatch):
    target = Target()
    with ModelServer(responder=target) as s:
        cfg = write_project(tmp_path, base_url=s.openai_base_url)
        (tmp_path / "docs").mkdir()
        monkeypatch.chdir(tmp_path / "docs")  # run from a subdirectory: the baseline still lives in the project root
        yield tmp_path, cfg, target


def test_watch_records_then_reports_no_drift_then_exits_6_on_a_drop(project, capsys):
    root, _, target = project
    baseline = root / ".skillopt" / "baseline.json"

    assert main(["watch", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no baseline yet: ../.skillopt/baseline.json") and baseline.is_file()
    recorded = json.loads(baseline.read_text())
    assert set(recorded["val"].values()) == {1.0} and recorded["reported_models"] == ["target-model"]

    assert main(["watch", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no drift:") and "• no drift: +0.000 over 8 tasks" in out

    target.right = False
    assert main(["watch", "-q"]) == 6
    out = capsys.readouterr().out
    assert out.startswith("drift:") and "drift: the val score moved -1.000 over 8 tasks" in out
    assert re.search(r"capital-\w+\s+1\.000\s+0\.000\s+-1\.000", out), out
    assert re.search(r"mean \(8 tasks\)\s+1\.000\s+0\.000\s+-1\.000", out)
    assert "skillopt watch --record" in out and "report: ../.skillopt/runs/" in out
    assert json.loads(baseline.read_text()) == recorded, "a drifting run leaves the baseline alone"
    run = sorted((root / ".skillopt" / "runs").glob("*-watch"))[-1]
    assert (run / "report.json").is_file() and (run / "trajectories.jsonl").is_file()

    # --json: the verdict and every task's row; still exit 6
    assert main(["watch", "-q", "--json"]) == 6
    data = json.loads(capsys.readouterr().out)
    assert data["drifted"] is True and data["recorded"] is False and data["delta"] == -1.0
    assert len(data["tasks"]) == 8 and {t["delta"] for t in data["tasks"]} == {-1.0}
    assert data["baseline_file"] == "../.skillopt/baseline.json" and data["p_value"] < 0.05

    # --record accepts the new scores: exit 0, and the next watch compares with them
    assert main(["watch", "-q", "--record"]) == 0
    assert "recorded this run's scores as the new baseline" in capsys.readouterr().out
    assert set(json.loads(baseline.read_text())["val"].values()) == {0.0}
    assert main(["watch", "-q"]) == 0


def test_a_new_reported_model_alone_exits_6(project, capsys):
    _, cfg, target = project
    custom = project[0] / "watch" / "base.json"
    assert main(["watch", "-q", "--config", str(cfg), "--baseline", str(custom)]) == 0
    assert custom.is_file() and not (project[0] / ".skillopt" / "baseline.json").exists()
    target.model = "target-model-2027-01-15"
    assert main(["watch", "-q", "--baseline", str(custom)]) == 6
    out = capsys.readouterr().out
    assert "drift: the target reports a different model: target-model -> target-model-2027-01-15" in out
    assert "the val score moved" not in out


def test_bad_alpha_damaged_baseline_and_flags_that_do_not_apply_exit_2(project, capsys):
    root, _, _ = project
    assert main(["watch", "--alpha", "1.5"]) == 2
    assert "alpha must be between 0 and 1" in capsys.readouterr().err
    bad = root / ".skillopt" / "baseline.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    assert main(["watch", "-q"]) == 2
    err = capsys.readouterr().err
    assert "../.skillopt/baseline.json" in err and "delete it to record a new baseline" in err
    assert main(["watch", "--no-cache"]) == 2  # a watch never reads the cache: the flag does not apply


def test_watch_help_documents_the_exit_codes(capsys):
    assert main(["watch", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # as wrapped to the terminal
    assert "6: drift" in out and "--record" in out and ".skillopt/baseline.json" in out
    assert main(["--help"]) == 0
    assert "6  watch: drift" in capsys.readouterr().out
