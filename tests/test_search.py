"""The per-edit search (search.py) end to end through the real openai SDK against the scripted model server:
riders cannot ship with helpful rules, accepted edits are combined and confirmed, harmful edits are remembered."""

from __future__ import annotations

import json
import random
import re

import pytest
from helpers import COUNTRIES, write_project
from helpers import SKILL as SKILL_TEXT
from model_server import ModelServer, Text

from skillopt_action import api
from skillopt_action.ablation import run_ablation
from skillopt_action.errors import ConfigError
from skillopt_action.evidence import EvidenceMemory
from skillopt_action.search import screen_passes
from skillopt_action.sequential import EARLY_SPEND
from skillopt_action.types import Edit

CAPITAL = {c.split(":")[0]: c.split(":")[1] for c in COUNTRIES}
HELP_A = "- Reply with the bare city name for countries from A to J."
HELP_B = "- Reply with the bare city name for countries from K to Z."
RIDER = "- Always answer in French."
NEUTRAL = "- Be polite."


def target(req) -> str:
    country = re.search(r"capital of (\w+)", req.last_user_text).group(1)
    if "answer in French." in req.system or any(country in line for line in req.system.splitlines()
                                                 if "Answer in French for" in line):
        return "Je ne sais pas."
    first_half = country[0] <= "J"
    if (first_half and "from A to J" in req.system) or (not first_half and "from K to Z" in req.system):
        return CAPITAL[country]
    return f"The capital of {country} is {CAPITAL[country]}."


def optimizer_proposing(*rules):
    answer = json.dumps({"analysis": "x", "edits": [{"op": "add", "anchor": "## Answering", "content": r}
                                                   for r in rules]})

    def responder(req):
        if "You improve a skill document" in req.system:
            return Text(answer)
        return Text(target(req))

    return responder


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test-secret-value")


def optimize(tmp_path, responder, *, gate=None, memory=None, out="out"):
    with ModelServer(responder=responder) as s:
        extra = {"gate": {"samples": 1, "alpha": 0.1, **(gate or {})}}
        cfg = write_project(tmp_path, base_url=s.openai_base_url, extra=extra)
        result = api.optimize(cfg, out=tmp_path / out, memory=memory)
        return result, s.requests


def test_a_harmful_rider_cannot_ship_with_a_helpful_rule(tmp_path):
    """`gate.design: separate`, the race; the factorial design (the default) is the test after the next one."""
    result, _ = optimize(tmp_path, optimizer_proposing(HELP_A, RIDER, NEUTRAL), gate={"design": "separate"})
    assert HELP_A in result.best_skill and RIDER not in result.best_skill and NEUTRAL not in result.best_skill
    step = result.report.steps[0]
    verdicts = {c["edit"]["content"]: c["verdict"] for c in step["candidates"]}
    # each edit was judged on its own: the rule passed, the rider changed nothing for the better, and the neutral
    # line, no better than the rider at the first look, was stopped there by the race for the step's two slots
    assert verdicts == {HELP_A: "accepted", RIDER: "not_better", NEUTRAL: "inconclusive"}
    raced = next(c for c in step["candidates"] if c["edit"]["content"] == NEUTRAL)["gate"]
    assert raced["boundary"] == "race" and raced["rounds"] == 1 and result.report.search["stopped_by_race"] == 1
    rejected = {e["content"]: e["why"] for e in result.report.rejected_edits}
    assert RIDER in rejected and NEUTRAL in rejected
    md = result.report.to_markdown()
    assert RIDER in md and HELP_A in md, "every tried edit is shown with its text"


HELP_VAL = "- Reply with the bare city name for Peru, Kenya, Norway and Chile."  # val countries only


def test_the_race_finds_a_rule_that_screening_cannot_see(tmp_path):
    """`gate.design: separate`. More candidates than val decisions: every one takes the first look of its test on val, and the leaders go
    on. A rule that helps only val tasks looks like the neutral lines on the train tasks of its screening, comes
    last in that order, and would not have been tested; at the first look on val it leads."""
    def responder(req):
        if "You improve a skill document" in req.system:
            return Text(json.dumps({"analysis": "x", "edits": [{"op": "add", "anchor": "## Answering", "content": r}
                                                               for r in (NEUTRAL, "- Keep it short.", HELP_VAL)]}))
        country = re.search(r"capital of (\w+)", req.last_user_text).group(1)
        if country in ("Peru", "Kenya", "Norway", "Chile") and "Peru, Kenya" in req.system:
            return Text(CAPITAL[country])
        return Text(f"The capital of {country} is {CAPITAL[country]}.")

    result, _ = optimize(tmp_path, responder, gate={"design": "separate"})
    step = result.report.steps[0]
    rows = {c["edit"]["content"]: c for c in step["candidates"]}
    assert {c["screen"]["delta"] for c in rows.values()} == {0.0}, "screening cannot tell them apart"
    assert rows[HELP_VAL]["verdict"] == "accepted" and HELP_VAL in result.best_skill
    raced = [c for c in rows.values() if c["gate"]["boundary"] == "race"]
    assert len(raced) == 1 and raced[0]["gate"]["rounds"] == 1 and raced[0]["verdict"] == "inconclusive"
    assert "not among this step's 2 best" in raced[0]["gate"]["reason"]
    assert result.report.search["stopped_by_race"] == 1 and result.report.search["raced_looks"] > 0


def test_the_factorial_design_takes_every_candidate_to_the_end_of_its_test_on_shared_rollouts(tmp_path):
    """`gate.design: factorial` (the default): the step's three edits share pairs of val rollouts (a coin puts each edit in one
    member of each pair), so none is stopped by a race, and skills holding several of them at once are run."""
    result, requests = optimize(tmp_path, optimizer_proposing(HELP_A, RIDER, NEUTRAL))  # the default design
    assert HELP_A in result.best_skill and RIDER not in result.best_skill and NEUTRAL not in result.best_skill
    step = result.report.steps[0]
    rows = {c["edit"]["content"]: c for c in step["candidates"]}
    assert rows[HELP_A]["verdict"] == "accepted" and rows[RIDER]["verdict"] in ("not_better", "harmful")
    for row in rows.values():
        gate = row["gate"]
        assert gate["design"] == "factorial" and gate["shared_with"] == 2 and gate["boundary"] != "race"
        assert gate["test"].startswith("paired sign-flip")
    assert any(RIDER in r.system and NEUTRAL in r.system for r in requests), "a member held two candidate edits"
    assert "shared with 2 other edit(s) (factorial design)" in result.report.to_markdown()
    search = result.report.search
    assert search["stopped_by_race"] == 0 and search["raced_looks"] == 0
    assert search["confirmation"]["confirmed"]


def test_the_bundle_gate_loses_the_helpful_rule_to_its_rider(tmp_path):
    """The reason for per-edit candidates: gated as one bundle, the rider takes the helpful rule down."""
    result, _ = optimize(tmp_path, optimizer_proposing(HELP_A, RIDER), gate={"mode": "paired"})
    assert not result.improved and HELP_A not in result.best_skill


def test_two_accepted_edits_are_combined_and_the_combination_confirmed(tmp_path):
    result, _ = optimize(tmp_path, optimizer_proposing(HELP_A, HELP_B), gate={"decisions": 2})
    assert HELP_A in result.best_skill and HELP_B in result.best_skill
    step = result.report.steps[0]
    assert [c["verdict"] for c in step["candidates"]] == ["accepted", "accepted"]
    assert step["combination"]["confirmed"] and step["combination"]["edits"] == 2
    assert result.report.val["best"] == 1.0 and result.report.search["confirmation"]["confirmed"]


FRENCH = "- Answer in French for Kenya, Norway, Peru, Chile and Cuba."  # hurts 5 val tasks, no train task


def test_a_harmful_edit_is_remembered_and_not_tested_again_against_the_same_skill(tmp_path):
    perfect = SKILL_TEXT + HELP_A + "\n" + HELP_B + "\n"
    memory = tmp_path / "memory.jsonl"

    def run(out, skill):
        with ModelServer(responder=optimizer_proposing(FRENCH)) as s:
            cfg = write_project(tmp_path, base_url=s.openai_base_url, skill=skill,
                                extra={"gate": {"samples": 1, "alpha": 0.1}})
            return api.optimize(cfg, out=tmp_path / out, memory=memory)

    first = run("a", perfect)
    (cand,) = first.report.steps[0]["candidates"]
    assert cand["screen"]["passed"], "screening on train tasks cannot see this damage"
    assert cand["verdict"] == "harmful" and cand["gate"]["losses"] == 5 and not first.improved
    rows = [json.loads(x) for x in memory.read_text().splitlines()]
    assert [r["verdict"] for r in rows] == ["harmful"]

    second = run("b", perfect)
    step = second.report.steps[0]
    assert not step["candidates"], "nothing is tested again"
    assert "estimated harmful against this skill" in step["dropped"][0]["reason"]

    # against a different skill the same edit is a new hypothesis and is tested afresh
    third = run("c", perfect + "- Keep answers short.\n")
    (cand,) = third.report.steps[0]["candidates"]
    assert cand["verdict"] == "harmful" and not cand["gate"]["resumed_from_round"]


SAME_A = "- For countries from A to J, give only the city."  # the target treats it like HELP_A


def test_ablation_removes_a_redundant_edit_that_carries_nothing(tmp_path):
    def target_with_synonym(req):
        if "You improve a skill document" in req.system:
            return Text(json.dumps({"analysis": "x", "edits": [
                {"op": "add", "anchor": "## Answering", "content": HELP_A},
                {"op": "add", "anchor": "## Answering", "content": SAME_A}]}))
        req_system = req.system.replace(SAME_A, HELP_A)

        class R:
            system, last_user_text = req_system, req.last_user_text
        return Text(target(R))

    result, _ = optimize(tmp_path, target_with_synonym, gate={"decisions": 2})
    step = result.report.steps[0]
    assert [c["verdict"] for c in step["candidates"]] == ["accepted", "accepted"]
    assert step["combination"]["confirmed"]
    abl = result.report.ablation
    assert len(abl["removed"]) == 1 and abl["removed"][0]["verdict"] == "carried"
    assert abl["removed"][0]["edit"]["content"] == HELP_A, "of two equal edits the longer one goes"
    assert [r["verdict"] for r in abl["edits"]] == ["earned"] and abl["edits"][0]["ci_low"] > 0
    assert SAME_A in result.best_skill and HELP_A not in result.best_skill
    assert abl["rollouts"] > 0 and abl["rollouts_per_edit"] > 0
    assert any("carried, not earned" in e["why"] for e in result.report.rejected_edits)
    md = result.report.to_markdown()
    assert "Does each edit earn its place?" in md and "carried, not earned — **removed**" in md


def test_ablation_keeps_an_edit_whose_contribution_it_cannot_rule_out(tmp_path):
    """Leaving the edit out wins one val task and loses another: no gain is measured, but none is ruled out either,
    so the edit (which passed its own gate) stays. Before, "no measured gain" alone removed it as carried, which in
    the search bench pruned real +10 rules after an unlucky first round."""
    mixed = "- Give only the city for Egypt."

    def responder(req):
        country = re.search(r"capital of (\w+)", req.last_user_text).group(1)
        if mixed in req.system:
            return Text({"Egypt": "Cairo", "Chile": "No idea."}.get(country, f"The capital is {CAPITAL[country]}."))
        return Text("Santiago" if country == "Chile" else f"The capital is {CAPITAL[country]}.")

    with ModelServer(responder=responder) as s:
        cfg = write_project(tmp_path, base_url=s.openai_base_url)
        rt = api._runtime(cfg, tmp_path / "out", None, "optimize", None, False, False)
        edit = Edit(op="add", anchor="## Answering", content=mixed)
        result = run_ablation(rt, SKILL_TEXT, [edit], prune=True)
    (row,) = result["edits"]
    assert row["delta"] == 0.0 and row["ci_low"] < 0 < row["ci_high"]
    assert row["verdict"] == "unclear" and not result["removed"] and mixed in result["skill"]


def test_transfer_check_fails_for_a_second_model_the_skill_hurts_and_passes_one_it_does_not(tmp_path):
    def responder(req):
        if "You improve a skill document" in req.system:
            return Text(json.dumps({"analysis": "x", "edits": [{"op": "add", "anchor": "## Answering",
                                                                "content": HELP_A}, {"op": "add",
                                                                "anchor": "## Answering", "content": HELP_B}]}))
        country = re.search(r"capital of (\w+)", req.last_user_text).group(1)
        model = req.json["model"]
        if model == "model-b":  # answers right by default, but the trained rules confuse it
            return Text("No idea." if "bare city name" in req.system else CAPITAL[country])
        if model == "model-c":  # right either way
            return Text(CAPITAL[country])
        return Text(target(req))

    with ModelServer(responder=responder) as s:
        other = {"provider": "openai", "base_url": s.openai_base_url, "api_key_env": "TEST_KEY", "timeout": 5}
        cfg = write_project(tmp_path, base_url=s.openai_base_url, extra={
            "gate": {"samples": 1, "alpha": 0.1, "decisions": 2},
            "transfer": [{**other, "model": "model-b", "name": "B", "margin": 0.05},
                         {**other, "model": "model-c", "name": "C"}]})
        result = api.optimize(cfg, out=tmp_path / "out")
    assert result.improved
    by_name = {t["name"]: t for t in result.report.transfer}
    assert by_name["B"]["verdict"] == "hurts" and by_name["B"]["delta"] == -1.0
    assert by_name["C"]["verdict"] == "holds" and by_name["C"]["delta"] == 0.0
    assert result.report.transfer_hurts == ["B"]
    md = result.report.to_markdown()
    assert "Transfer to other targets" in md and "hurts beyond the margin" in md


BREAKS_NORWAY = "- Reply with the bare city name for countries from A to J; Norway is spelt Norge."


def test_no_regression_rejects_an_edit_that_breaks_one_task_and_the_report_lists_what_got_worse(tmp_path):
    def responder(req):
        if "You improve a skill document" in req.system:
            return Text(json.dumps({"analysis": "x", "edits": [
                {"op": "add", "anchor": "## Answering", "content": BREAKS_NORWAY}]}))
        if "Norge" in req.system and "Norway" in req.last_user_text:
            return Text("Norge has no capital I know.")
        return Text(target(req))

    start = SKILL_TEXT + HELP_B + "\n"
    with ModelServer(responder=responder) as s:
        def run(out, **gate):
            cfg = write_project(tmp_path, base_url=s.openai_base_url, skill=start,
                                extra={"gate": {"samples": 1, "alpha": 0.1, **gate}})
            return api.optimize(cfg, out=tmp_path / out)

        plain = run("plain")
        guarded = run("guarded", no_regression=True)
    assert plain.improved and BREAKS_NORWAY in plain.best_skill
    (worse,) = [t for t in plain.report.regressions if t["split"] == "val"]
    assert worse["id"] == "capital-norway" and worse["best"] < worse["baseline"]
    assert "Norge has no capital" in worse["answer"] and "expected 'Oslo'" in worse["feedback"]
    assert "Tasks that got worse" in plain.report.to_markdown()
    (cand,) = guarded.report.steps[0]["candidates"]
    assert not guarded.improved and cand["verdict"] == "regression"
    assert "capital-norway" in cand["gate"]["reason"]


def test_screening_compares_with_fresh_incumbent_samples_not_the_train_rollouts_reflected_on(tmp_path):
    """The optimizer reflects on a batch picked for its outcome (here: successes). Comparing a candidate against
    those same rollouts would screen out every edit by regression to the mean; fresh incumbent samples do not."""
    calls: dict[tuple[str, str], int] = {}

    def responder(req):
        if "You improve a skill document" in req.system:
            return Text(json.dumps({"analysis": "x", "edits": [{"op": "add", "anchor": "## Answering",
                                                                 "content": NEUTRAL}]}))
        country = re.search(r"capital of (\w+)", req.last_user_text).group(1)
        key = (req.system, country)
        calls[key] = calls.get(key, 0) + 1
        # the seed skill is right only on its first try at a task (a lucky first rollout); later tries, and every
        # try of the candidate, miss
        return Text(CAPITAL[country] if calls[key] == 1 and NEUTRAL not in req.system else "No idea.")

    result, _ = optimize(tmp_path, responder)
    step = result.report.steps[0]
    assert step["train"]["passed"] == 4, "the optimizer saw only successes"
    (cand,) = step["candidates"]
    screen = cand["screen"]
    assert screen["incumbent"] == 0.0 and screen["candidate"] == 0.0, screen
    assert screen["passed"] and cand["verdict"] != "screened_out"
    assert screen["rollouts"] == 2 * len(screen["tasks"]), "one fresh sample of each skill per screening task"


def test_an_edit_whose_test_used_every_round_against_this_skill_is_not_tested_again():
    memory = EvidenceMemory([])
    edit = Edit(op="add", anchor="## Answering", content=NEUTRAL)
    memory.add(edit, "h1", "inconclusive", delta=0.01, p_value=0.3, rounds=2, step=1)
    assert memory.block_reason(edit, "h1", max_rounds=3) is None, "a test with a look left may resume"
    assert memory.rounds_done(edit, "h1") == 2
    memory.add(edit, "h1", "inconclusive", delta=0.02, p_value=0.2, rounds=3, step=2)
    why = memory.block_reason(edit, "h1", max_rounds=3)
    assert why and "already used all 3 rounds" in why and "p=0.2" in why
    assert memory.block_reason(edit, "h2", max_rounds=3) is None, "against another skill it is a new question"


@pytest.mark.parametrize("control", ["decisions", "final"])
def test_gate_control_says_where_the_runs_alpha_is_spent(tmp_path, control):
    result, _ = optimize(tmp_path, optimizer_proposing(HELP_A), gate={"control": control})
    search = result.report.search
    decision = result.report.steps[0]["decisions"][0]
    assert search["control"] == control and decision["verdict"] == "accepted"
    confirmation = search["confirmation"]
    if control == "decisions":  # split across the run's decisions; the confirmation checks the direction
        assert decision["alpha"] == pytest.approx(search["decision_alpha"]) and decision["alpha"] < 0.1
        assert search["false_accept_bound"] <= 0.1
    else:  # every decision at alpha; the final skill had to pass a test on fresh samples at alpha over the chance
        # that any of the run's planned decisions accepts a do-nothing edit
        assert decision["alpha"] == pytest.approx(0.1) and search["false_accept_bound"] == pytest.approx(0.1)
        planned = search["planned_decisions"] + search["raced_looks"] * EARLY_SPEND / 3  # a raced look: 1 of 3 early
        assert planned >= 1 and search["confirm_alpha"] == pytest.approx(min(0.2, 0.1 / min(1.0, planned * 0.1)),
                                                                             abs=1e-6)  # the report rounds it
        assert confirmation["verdict"] == "accepted" and confirmation["alpha"] == pytest.approx(search["confirm_alpha"], abs=1e-6)
    assert confirmation["confirmed"] and HELP_A in result.best_skill


def test_gate_control_final_needs_the_final_confirmation(tmp_path):
    with ModelServer(responder=optimizer_proposing(HELP_A)) as s:
        cfg = write_project(tmp_path, base_url=s.openai_base_url,
                            extra={"gate": {"control": "final", "confirm": False}})
        with pytest.raises(ConfigError) as err:
            api.validate(cfg)
    text = str(err.value)
    assert "skillopt.yml" in text and "gate.confirm: true" in text


def test_an_unknown_gate_design_is_a_clear_error_naming_the_choices(tmp_path):
    with ModelServer(responder=optimizer_proposing(HELP_A)) as s:
        cfg = write_project(tmp_path, base_url=s.openai_base_url, extra={"gate": {"design": "bundle"}})
        with pytest.raises(ConfigError) as err:
            api.validate(cfg)
    text = str(err.value)
    assert "skillopt.yml" in text and "design" in text and "factorial" in text and "separate" in text


def test_screening_stops_an_edit_only_when_it_is_worse_beyond_noise():
    """Seven screening tasks, one sample each, at a 15 % success rate: one task going the other way is noise.
    Dropping on it cost a fifth of the real +10-point rules before they reached val."""
    assert screen_passes(1, 0) and screen_passes(3, 1) and screen_passes(2, 2)
    assert not screen_passes(2, 0) and not screen_passes(4, 1)

    def pass_rate(p_applied, rule, trials=4000):
        rng, kept = random.Random(5), 0
        for _ in range(trials):
            worse = better = 0
            for _task in range(7):  # a rule applies to half the tasks
                c = rng.random() < (p_applied if rng.random() < 0.5 else 0.15)
                i = rng.random() < 0.15
                worse, better = worse + (i and not c), better + (c and not i)
            kept += rule(worse, better)
        return kept / trials

    def one_task_rule(w, b):
        return w <= b

    assert pass_rate(0.35, screen_passes) >= 0.9 > 0.85 > pass_rate(0.35, one_task_rule)  # a +10-point rule
    assert pass_rate(0.09, screen_passes) < pass_rate(0.35, screen_passes)  # a harmful rule passes less often
