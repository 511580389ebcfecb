"""Epoch-level memory (epoch_memory.py) end to end through the real openai SDK against the scripted model server:
a slow-update guidance block enters the skill only through the gate (a helpful one is kept, a useless one is
rejected), the meta memo reaches later reflection prompts and never the skill, and both are off by default."""

from __future__ import annotations

import json
import re

import pytest
from helpers import COUNTRIES, write_project
from model_server import ModelServer, Text

from skillopt_action import api
from skillopt_action.epoch_memory import GUIDANCE_HEADING, guidance_block

CAPITAL = {c.split(":")[0]: c.split(":")[1] for c in COUNTRIES}
BARE = "- Reply with the bare city name only."
POLITE = "- Be polite."
MEMO = "MEMO-7Q: short format rules were accepted; politeness rules were rejected."


def responder(guidance: str, body_rule: str = POLITE):
    def respond(req):
        if "You improve a skill document" in req.system:
            return Text(json.dumps({"analysis": "x", "edits": [{"op": "add", "anchor": "## Answering",
                                                                "content": body_rule}]}))
        if "You write the guidance block" in req.system:
            return Text(json.dumps({"analysis": "the failures persist", "guidance": guidance}))
        if "You keep a short private memo" in req.system:
            return Text(json.dumps({"memo": MEMO}))
        country = re.search(r"capital of (\w+)", req.last_user_text).group(1)
        return Text(CAPITAL[country] if "bare city name" in req.system else f"The capital is {CAPITAL[country]}.")
    return respond


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test-secret-value")


def optimize(tmp_path, respond, loop: dict):
    with ModelServer(responder=respond) as s:
        cfg = write_project(tmp_path, base_url=s.openai_base_url,
                            extra={"loop": {"epochs": 2, "batch_size": 4, "minibatch_size": 4, **loop},
                                   "gate": {"samples": 1, "alpha": 0.1}})
        result = api.optimize(cfg, out=tmp_path / "out")
        return result, s.requests


def test_a_slow_update_block_that_helps_passes_the_gate_and_enters_the_skill(tmp_path):
    result, requests = optimize(tmp_path, responder(BARE), {"slow_update": True})
    report = result.report
    su = report.steps[1]["slow_update"]
    assert report.steps[0].get("slow_update") is None  # nothing to compare with in the first epoch
    assert su["epoch"] == 2 and su["accepted"] is True, su
    # the previous epoch's skill and the current one are the same here: every compared task still fails
    assert len(su["categories"]["still_failing"]) == 4 and not su["categories"]["improved"]
    assert su["gate"]["candidate_mean"] == 1.0 and su["gate"]["incumbent_mean"] == 0.0
    assert guidance_block(result.best_skill) == BARE and GUIDANCE_HEADING in result.best_skill
    assert report.scores["val"]["best"] == 1.0 and report.improved
    assert [e["content"] for e in report.accepted_edits if e.get("region") == "guidance"] == [BARE]
    # the block's decision spent part of the run's alpha, and the bound counts it
    assert 0 < su["gate"]["alpha_spent"] <= report.search["false_accept_bound"] <= 0.1
    # the optimizer saw the categorised trajectories of the previous and the current skill
    ask = next(r for r in requests if "You write the guidance block" in r.system)
    assert "4 still failing" in ask.text and "The capital is" in ask.text


def test_a_slow_update_block_that_does_not_help_is_rejected_by_the_gate(tmp_path):
    result, _ = optimize(tmp_path, responder(POLITE + "\n- Be brief."), {"slow_update": {"samples": 4, "lines": 3}})
    su = result.report.steps[1]["slow_update"]
    assert su["guidance"] == POLITE + "\n- Be brief." and su["accepted"] is False
    assert su["gate"]["delta"] == 0.0 and su["gate"]["accepted"] is False and su["gate"]["reason"]
    assert GUIDANCE_HEADING not in result.best_skill and "Be brief" not in result.best_skill
    assert result.report.improved is False
    [row] = [e for e in result.report.rejected_edits if e.get("region") == "guidance"]
    assert row["content"] == POLITE + "\n- Be brief." and row["why"].startswith("gate: ")
    md = result.report.to_markdown()
    assert "Slow update" in md and "rejected" in md


def test_a_guidance_block_over_its_line_budget_is_refused_with_the_reason(tmp_path):
    too_long = "\n".join(f"- Rule {i}." for i in range(5))
    result, requests = optimize(tmp_path, responder(too_long), {"slow_update": {"lines": 3}, "parse_retries": 1})
    su = result.report.steps[1]["slow_update"]
    assert su["accepted"] is False and su["gate"] is None
    assert "the guidance block has 5 lines; at most 3 are allowed" in su["dropped"]
    assert sum("You write the guidance block" in r.system for r in requests) == 2  # asked again once, then dropped


def test_the_meta_memo_reaches_later_reflection_prompts_and_never_the_skill(tmp_path):
    result, requests = optimize(tmp_path, responder(BARE, body_rule=BARE), {"meta_memo": True})
    memo = result.report.steps[1]["meta_memo"]
    assert memo["memo"] == MEMO and memo["decisions"] >= 1
    reflections = [r for r in requests if "You improve a skill document" in r.system]
    memo_ask = next(i for i, r in enumerate(requests) if "You keep a short private memo" in r.system)
    # the memo prompt saw the first epoch's verdicts; reflections after it carry the memo, earlier ones do not
    assert "[accepted" in requests[memo_ask].text and BARE in requests[memo_ask].text
    before = [r for r in reflections if requests.index(r) < memo_ask]
    after = [r for r in reflections if requests.index(r) > memo_ask]
    assert before and after
    assert all(MEMO not in r.text for r in before) and all(MEMO in r.text for r in after)
    result.write()
    assert "MEMO-7Q" not in result.best_skill and "MEMO-7Q" not in (result.out / "best_skill.md").read_text()
    assert "MEMO-7Q" not in result.report.diff


def test_slow_update_and_meta_memo_are_off_by_default(tmp_path):
    result, requests = optimize(tmp_path, responder(BARE), {})
    assert not any("You write the guidance block" in r.system or "You keep a short private memo" in r.system
                   for r in requests)
    assert all("slow_update" not in s and "meta_memo" not in s for s in result.report.steps)
