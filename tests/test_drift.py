"""`api.watch`: re-score the current skill with fresh samples and compare with the stored per-task baseline."""

from __future__ import annotations

import json
import re

import pytest
from helpers import COUNTRIES, write_project
from model_server import ModelServer, Text

from skillopt_action import api
from skillopt_action.errors import ConfigError

CAPITAL = {c.split(":")[0]: c.split(":")[1] for c in COUNTRIES}


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test-secret-value")


def test_watch_records_a_baseline_then_detects_a_score_drop_and_a_new_model_identity(tmp_path):
    state = {"right": True, "model": None}

    def responder(req):
        country = re.search(r"capital of (\w+)", req.last_user_text).group(1)
        return Text(CAPITAL[country] if state["right"] else "Unsure.", model=state["model"])

    baseline = tmp_path / ".skillopt" / "baseline.json"
    with ModelServer(responder=responder) as s:
        cfg = write_project(tmp_path, base_url=s.openai_base_url)
        first = api.watch(cfg, baseline=baseline, out=tmp_path / "w1")
        assert first.recorded and not first.drifted and baseline.is_file()
        stored = json.loads(baseline.read_text())
        assert stored["val"] and set(stored["val"].values()) == {1.0}
        assert stored["reported_models"] == ["target-model"]

        calls = len(s.requests)
        same = api.watch(cfg, baseline=baseline, out=tmp_path / "w2")
        assert len(s.requests) > calls, "a watch never answers from the cache"
        assert not same.drifted and same.reasons[0].startswith("no drift")

        state["right"] = False
        dropped = api.watch(cfg, baseline=baseline, out=tmp_path / "w3")
        assert dropped.drifted and dropped.delta == -1.0 and dropped.p_value < 0.05
        assert "moved -1.000" in dropped.reasons[0]

        state.update(right=True, model="target-model-2027-01-01")
        renamed = api.watch(cfg, baseline=baseline, out=tmp_path / "w4")
        assert renamed.drifted and any("reports a different model" in r for r in renamed.reasons)
        assert renamed.report.models["reported"] == ["target-model-2027-01-01"]


def test_a_damaged_baseline_is_a_clear_error(tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text("{not json")
    with ModelServer(responder=lambda req: Text("Paris")) as s:
        cfg = write_project(tmp_path, base_url=s.openai_base_url)
        with pytest.raises(ConfigError) as exc:
            api.watch(cfg, baseline=baseline, out=tmp_path / "w")
    assert "baseline" in str(exc.value) and "delete it" in str(exc.value)
