"""The gate inside real `compare` runs: a target whose answers ignore the skill (identical distribution)
must rarely pass the paired gate, while SkillOpt's strict rule lets noise through far more often."""

from __future__ import annotations

import hashlib
import json

import pytest
from helpers import write_project
from model_server import ModelServer, Text

from skillopt_action.cli import main


def coin(req) -> Text:
    # right or wrong at random, seeded by the full request (skill + task + sample): the skill text changes
    # the draw but not the odds
    h = int(hashlib.sha256(json.dumps(req.json, sort_keys=True).encode()).hexdigest(), 16)
    country = req.last_user_text.split("capital of ")[1].rstrip("?")
    from helpers import COUNTRIES

    city = dict(c.split(":") for c in COUNTRIES)[country]
    return Text(city if h % 2 else "I do not know")


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "k")


def accept_rate(tmp_path, server, mode: str, runs: int) -> float:
    cfg = write_project(tmp_path / mode, base_url=server.openai_base_url, splits=(0, 12, 0),
                        extra={"gate": {"mode": mode, "samples": 2, "alpha": 0.1}, "concurrency": 8})
    accepted = 0
    for i in range(runs):
        base, cand = tmp_path / mode / f"base{i}.md", tmp_path / mode / f"cand{i}.md"
        base.write_text(f"# Capitals\n\nVariant {i}.\n")
        cand.write_text(f"# Capitals\n\nVariant {i}.\n- Be precise.\n")
        out = tmp_path / mode / f"out{i}"
        assert main(["compare", "--config", str(cfg), "--out", str(out), "--quiet", "--no-cache", "--splits", "val",
                     "--base-skill", str(base), "--skill", str(cand)]) == 0
        accepted += json.loads((out / "latest" / "report.json").read_text())["improved"]
    return accepted / runs


def test_noise_rarely_passes_the_paired_gate_but_often_the_strict_one(tmp_path):
    with ModelServer(responder=coin) as server:
        paired = accept_rate(tmp_path, server, "paired", 30)
        strict = accept_rate(tmp_path, server, "strict", 30)
    print(f"noise accepted: paired {paired:.0%}, strict {strict:.0%}")
    assert paired <= 0.2, f"paired gate accepted noise in {paired:.0%} of runs (alpha 10%)"
    assert strict >= 0.25 and strict >= 2.5 * max(paired, 0.05), (paired, strict)
