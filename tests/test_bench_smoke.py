"""Smoke versions of the benchmarks in bench/: the harnesses run end to end and write well-formed results.

Tiny sizes (a few trials, one seed, a one-step loop); nothing here is timed. The full runs are
`python bench/bench_gate.py` and `python bench/bench_search.py` (results committed in bench/RESULTS-*.md).
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import bench_gate  # noqa: E402
import bench_search  # noqa: E402
import gates  # noqa: E402
import methods  # noqa: E402
import sim  # noqa: E402

HAVE_GEPA = importlib.util.find_spec("gepa") is not None
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def _rows(markdown: str, first_cell: str) -> list[list[str]]:
    rows = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows


# --------------------------------------------------------------------------- the simulator


def test_rules_move_accuracy_by_their_calibrated_points():
    base = sim.base_probabilities("hetero", 0.3, 200, random.Random(1))
    world = sim.World(base, harm_points=0.05)
    rng = random.Random(2)
    everything = range(world.n)
    ref = world.expected([], everything)
    for kind, points in (("helpful10", 0.10), ("helpful5", 0.05), ("neutral", 0.0), ("harmful", -0.05)):
        rule = world.make_rule(1, kind, rng)
        assert len(rule.tasks) == world.n // 2
        assert world.expected([rule], everything) - ref == pytest.approx(points, abs=1e-9), kind
    assert sim.rule_ids("x\n- Rule 12: a.\n- Rule 3: b.\n") == {3, 12}


def test_stream_is_shared_and_cursor_skips_rules_in_the_skill():
    world = sim.World([0.2] * 20, harm=0.4)
    a = sim.Stream(world, seed=5, mix={"neutral": 0.5, "harmful": 0.5}, repeat=0.3, first=("helpful10",))
    b = sim.Stream(world, seed=5, mix={"neutral": 0.5, "harmful": 0.5}, repeat=0.3, first=("helpful10",))
    assert [(a.item(j).id, a.item(j).kind) for j in range(30)] == [(b.item(j).id, b.item(j).kind) for j in range(30)]
    assert a.item(0).kind == "helpful10"
    cursor = sim.Cursor(a)
    assert cursor.next_rule({1}).id != 1



def test_the_scripted_optimizer_gives_rules_per_call_distinct_new_rules_from_the_shared_stream():
    import loopback

    world = sim.World([0.2] * 20, harm=0.4)
    stream = sim.Stream(world, seed=5, mix={"neutral": 0.5, "harmful": 0.5}, repeat=0.3, first=("helpful10",))
    cursor = sim.Cursor(stream)
    first = cursor.next_rule(set())
    second = cursor.next_rule({first.id})  # a repeat of the first is skipped: one call never proposes it twice
    one = loopback.RunSim("w", world, stream)
    assert [r.id for r in one.optimizer_rules("", set(), batch=False)] == [first.id]
    two = loopback.RunSim("w", world, stream, rules_per_call=2)
    assert [r.id for r in two.optimizer_rules("", set(), batch=False)] == [first.id, second.id]
    assert all(r.id != 1 for r in two.optimizer_rules("", {1}, batch=False)), "rules already in the skill are skipped"


# --------------------------------------------------------------------------- gate calibration


def test_skipping_the_report_interval_leaves_every_decision_unchanged():
    unit = bench_gate.Unit("paired", "equal", 20, "neutral", 0, 5, 0.5, steps=3)
    fast = bench_gate.run_unit(unit)[1]
    slow = bench_gate.run_unit(bench_gate.Unit(**{**unit.__dict__, "report_ci": True}))[1]
    assert fast == slow
    assert fast.decisions == 15 and fast.runs == 5  # paired: one decision per step


def test_gate_calibration_separates_a_real_gain_from_noise():
    cells = bench_gate.measure(["strict"], [100], ["equal"], 100, steps=2)
    t = cells[("strict", "equal", 100)].tallies
    assert t["neutral"].runs == 100 and t["neutral"].decisions == 200
    assert t["helpful10"].decisions == 100
    # strict accepts any higher mean: a +10-point rule on 100 tasks nearly always, a neutral one often
    assert t["helpful10"].accepted / 100 > t["neutral"].accepted / 200 + 0.3
    assert t["neutral"].draws == 200 * 300  # each decision draws 3 samples x 100 tasks for the candidate


def test_a_sequential_decision_samples_only_what_can_still_change_it():
    gate = gates.driver("sequential")
    for probs in ([1.0] * 30, [0.0] * 30):  # deterministic tasks: 3 equal samples per skill freeze a task, and then
        incumbent, candidate = gates.Side(probs, "i"), gates.Side(probs, "c")  # a gain of gate.effect is ruled out
        incumbent.predraw(gate.baseline_samples)
        assert gate.decide(incumbent, candidate, seed=0) is False
        assert (incumbent.new_draws, candidate.new_draws) == (60, 90)  # rounds 3 and 4 sample nothing
    better = gates.Side([1.0] * 30, "better")
    worse = gates.Side([0.0] * 30, "worse")
    worse.predraw(gate.baseline_samples)
    assert gate.decide(worse, better, seed=0) is True  # every task flips from fail to pass


def test_bench_gate_writes_its_results_file(tmp_path):
    out, png = tmp_path / "RESULTS-gate.md", tmp_path / "gate.png"
    argv = ["--trials", "4", "--sizes", "20", "--modes", "strict,paired,sequential", "--jobs", "1",
            "--out", str(out), "--png", str(png) if HAVE_MPL else ""]
    assert bench_gate.main(argv) == 0
    text = out.read_text()
    assert "`python bench/bench_gate.py --trials 4" in text
    rows = _rows(text, "equal") + _rows(text, "hetero")
    assert [r[2] for r in rows] == ["strict", "paired", "sequential"] * 2  # difficulties x sizes x modes
    for row in rows:
        for cell in [row[3], *row[5:9]]:
            assert re.fullmatch(r"\d+\.\d %", cell) and 0 <= float(cell[:-2]) <= 100, row
        neutral, plus10 = (int(x) for x in row[9].split(" / "))
        if row[2] == "sequential":
            assert 20 <= neutral <= 2 * 10 * 20 and 20 <= plus10 <= 2 * 10 * 20, row  # at most 10 samples per task
        else:
            assert (neutral, plus10) == (60, 60), row  # fixed gates: 3 samples x 20 tasks of the candidate
            assert row[4] == "6", row  # one decision per step of a 6-step run
    if HAVE_MPL:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "](gate.png)" in text


def test_an_unknown_gate_mode_is_refused_before_any_work():
    with pytest.raises(ValueError, match="unknown gate mode 'nope'"):
        gates.driver("nope")


# --------------------------------------------------------------------------- search at a fixed budget


def test_bench_search_runs_every_method_on_the_same_target(tmp_path):
    out, data = tmp_path / "RESULTS-search.md", tmp_path / "runs.json"
    argv = ["--seeds", "1", "--scenarios", "mix,plus10", "--difficulties", "equal", "--train", "8", "--val", "12",
            "--test", "40", "--epochs", "1", "--ours", "default,strict", "--out", str(out),
            "--png", str(tmp_path / "s.png") if HAVE_MPL else "", "--json", str(data)]
    assert bench_search.main(argv + ([] if HAVE_GEPA else ["--no-gepa"])) == 0
    records = json.loads(data.read_text())
    default = methods.method_label("default")
    names = [default, "ours strict"] + (["GEPA"] if HAVE_GEPA else [])
    assert [r["method"] for r in records] == names * 2
    for r in records:
        assert r["target_calls"] == r["own_target_calls"] > 0, r  # the server saw exactly the calls made
        assert r["optimizer_calls"] >= 1 and r["decisions"] >= r["accepted"] >= 0
        assert 0.0 <= r["test"] <= 1.0 and r["seed_test"] == pytest.approx(0.15)
        assert r["rules"] == r["harmful"] + r["helpful"] + r["neutral"]
        assert r["changed"] == (r["rules"] > 0)
        assert r["test"] != r["seed_test"] or r["helpful"] + r["harmful"] == 0
    for scenario in ("mix", "plus10"):
        ours = next(r for r in records if r["scenario"] == scenario and r["method"] == default)
        for r in records:
            if r["scenario"] == scenario and r["method"] == "GEPA":
                # matched budget: GEPA stops at the first iteration past our loop's target calls
                assert ours["target_calls"] <= r["target_calls"] <= ours["target_calls"] + 12 + 6
    plus10 = [r for r in records if r["scenario"] == "plus10"]
    assert all(r["plus10_kept"] == (r["helpful"] == 1) for r in plus10)
    text = out.read_text()
    assert "`python bench/bench_search.py --seeds 1" in text
    assert len(_rows(text, "equal")) == 2 * len(names)  # one row per method in each table


def test_a_changed_report_shape_is_not_miscounted():
    assert methods.loop_decisions({"steps": [{"gate": None, "accepted": False},
                                                  {"gate": {"p_value": 0.01}, "accepted": True}]}) == (1, 1)
    per_edit = {"steps": [{"decisions": [{"verdict": "accepted"}, {"verdict": "inconclusive"}], "accepted": True,
                           "gate": {"p_value": 0.001}}]}
    assert methods.loop_decisions(per_edit) == (2, 1)
    with pytest.raises(KeyError, match="update loop_decisions"):
        methods.loop_decisions({"steps": [{"edits": []}]})


# --------------------------------------------------------------------------- the gate's power / cost frontier


def test_gate_frontier_reports_each_variant_and_a_real_gain_beats_noise(tmp_path, capsys):
    import gate_frontier

    out = tmp_path / "frontier.md"
    variants = json.dumps([{"label": "default"}, {"label": "no early futility", "futility_z": 99.0}])
    assert gate_frontier.main(["--trials", "30", "--cells", "equal:0.5", "--variants", variants,
                               "--out", str(out)]) == 0
    rows = _rows(out.read_text(), "default") + _rows(out.read_text(), "no early futility")
    assert [r[1] for r in rows] == ["equal p0 0.5"] * 2
    for row in rows:
        neutral, plus10 = (float(c.rstrip("%")) for c in row[2:4])
        assert plus10 > neutral + 30, row  # a +10-point rule is accepted far more often than a neutral edit
        for cell in row[4:6]:
            cand, inc = (int(x) for x in cell.split(" + "))
            assert 40 <= cand <= 10 * 40 and cand == inc, row  # 1 to 10 samples per task, both sides alike
    default_cost, never_cost = (int(r[4].split(" + ")[0]) for r in rows)
    assert never_cost > default_cost  # futility stops neutral decisions early; without it they run longer


def test_gate_frontier_refuses_an_unknown_setting():
    import gate_frontier

    with pytest.raises(SystemExit, match="unknown variant field.*stop_early"):
        gate_frontier.settings_for({"stop_early": 2}, 0.05)


def test_gate_frontier_step_compares_the_designs_and_the_factorial_one_pays_less_per_step(tmp_path, capsys):
    import gate_frontier

    out = tmp_path / "step.md"
    assert gate_frontier.main(["--step", "helpful10,neutral,neutral,harmful", "--trials", "12", "--cells",
                               "equal:0.5", "--out", str(out)]) == 0
    rows = {r[1]: r for r in _rows(out.read_text(), "equal p0 0.5")}
    assert list(rows) == ["race", "separate", "factorial"]
    calls = {design: int(row[5]) for design, row in rows.items()}
    # every test runs to its end under both separate and factorial, but factorial draws two rollouts per (task,
    # sample) for all four instead of one per candidate plus the incumbent's
    assert calls["factorial"] < calls["separate"]
    for row in rows.values():
        plus10, neutral = (float(c.rstrip("%")) for c in row[2:4])
        assert plus10 > neutral + 30, row


def test_gate_frontier_step_refuses_an_unknown_kind():
    import gate_frontier

    with pytest.raises(SystemExit, match="unknown kind.*helpful20"):
        gate_frontier.main(["--step", "helpful20,neutral", "--trials", "1"])
