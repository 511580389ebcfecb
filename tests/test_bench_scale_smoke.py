"""bench/bench_scale.py in its tiny mode: it runs end to end and produces every row of its tables, and skillopt
and the bare client send the same requests. No timing is asserted (the bench measures; tests do not)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_scale_tiny_produces_every_row_and_both_clients_send_the_same_requests():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_scale.py"), "--tiny", "--json"],
                         capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    table, raw = out.stdout.rsplit("\n{", 1)
    results = json.loads("{" + raw)
    levels = [row["c"] for row in results["concurrency"]]
    assert levels == [1, 4, 16, 32]
    n = results["tasks"] * results["samples"]
    for row in results["concurrency"]:
        s, b = row["skillopt"], row["bare"]
        assert s["requests"] == b["requests"] == n, "one request per rollout on both sides, none retried"
        assert s["rollouts"] == b["rollouts"] == n and s["score"] == b["score"] == 1.0
        assert s["cpu"] > 0 and s["rss_mb"] > 0 and b["rss_mb"] > 0
    assert [r["n"] for r in results["scale"]] == [20, 60]
    assert all(r["rollouts"] == r["n"] and r["requests"] == r["n"] for r in results["scale"])
    for c in levels:
        assert re.search(rf"^\| {c} \| [\d.]+ s \| [\d.]+ s \([\d.]+ of ideal\) \| [\d.]+ s", table, re.M), table
    assert "| skillopt eval |" in table and "| bare client |" in table
    assert re.search(r"^\| 60 \| [\d.]+ s \| [\d.]+ s \|", table, re.M)
    assert "load average" in table
