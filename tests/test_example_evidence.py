"""examples/evidence runs offline and its report shows what the README promises: a carried edit removed by the
ablation, a transfer table for a second model, and the task that got worse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "evidence"


def test_the_evidence_example_shows_ablation_transfer_and_regressions(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, str(EXAMPLE / "run.py"), str(out)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["improved"]
    (removed,) = report["ablation"]["removed"]
    assert removed["verdict"] == "carried" and removed["delta"] == 0.0
    assert [e["verdict"] for e in report["ablation"]["edits"]] == ["earned"]
    (transfer,) = report["transfer"]
    assert transfer["verdict"] == "holds" and transfer["name"].startswith("toy-b")
    (worse,) = report["regressions"]
    assert worse["id"] == "sentence-kenya" and worse["answer"] == "Nairobi"
    best = (out / "best_skill.md").read_text()
    assert best.count("- ") == 2, "the starting line plus the one rule that earned its place"
    md = (out / "report.md").read_text()
    committed = (EXAMPLE / "report.md").read_text()
    # the committed report is such a run: identical but for the wall time and the config digest (the toy server's
    # port is in the config)
    def stable(text):
        return [line for line in text.splitlines() if "wall time" not in line and "Config digest" not in line]

    assert stable(md) == stable(committed)
