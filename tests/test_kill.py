"""kill -9 at several moments of a capped run, then --resume: the spend ledger survives the crash.

The `skillopt` process runs as a subprocess against the scripted model server on 127.0.0.1 (through the real
openai SDK). From request K on the server holds every request, so the process is killed with calls in flight;
the kill waits until no new request arrives, so every call the process paid has reached the server. Afterwards:
the journal knows every call (== the server's count), the cap holds across the kill (server count <= cap), the
resumed report's spend equals the server's count, and trajectories.jsonl has one row per phase/task/sample.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import write_project
from model_server import Hang, ModelServer, Text
from test_loop import OPTIMIZER_ANSWER, target_answer

ROOT = Path(__file__).resolve().parent.parent
CAP = 30


class Holding:
    """The capitals model, holding every request after the first `after` (None: answering all)."""

    def __init__(self, after: int | None):
        self.after, self.count, self.lock = after, 0, threading.Lock()

    def __call__(self, req):
        with self.lock:
            self.count += 1
            n = self.count
        if self.after is not None and n > self.after:
            return Hang(20)
        if "You improve a skill document" in req.system:
            return Text(OPTIMIZER_ANSWER)
        return Text(target_answer(req))


def start(argv: list[str], tmp: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TEST_KEY": "sk-test-secret-value"}
    log = open(tmp / f"stderr-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "skillopt_action", *argv], env=env, cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=log)


def logs(tmp: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(tmp.glob("stderr-*.log")))


def kill_when_held(proc: subprocess.Popen, server: ModelServer, after: int, quiet: float = 0.5) -> int:
    """SIGKILL the process once requests past `after` are held and no new one arrived for `quiet` seconds."""
    deadline = time.monotonic() + 90
    while len(server.requests) <= after:
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before request {after + 1}"
        assert time.monotonic() < deadline, "timed out waiting for the run to reach the kill point"
        time.sleep(0.02)
    seen, since = len(server.requests), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.05)
        if len(server.requests) != seen:
            seen, since = len(server.requests), time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    return len(server.requests)


def journal_calls(out: Path) -> int:
    return sum(json.loads(x)["e"] == "call" for x in (out / "latest" / "spend.jsonl").read_text().splitlines())


def rows(out: Path) -> list[tuple]:
    return [(r["phase"], r["skill_hash"], r["task_id"], r["sample"])  # a gate decision has a row of each skill
            for r in map(json.loads, (out / "latest" / "trajectories.jsonl").read_text().splitlines())]


@pytest.mark.parametrize("after", [3, 14, 26])  # in the baseline, in step 1's gate, in step 2 / the final scoring
def test_kill_9_then_resume_keeps_the_cap_and_the_spend_equals_the_servers_count(tmp_path, after):
    holding = Holding(after)
    with ModelServer(responder=holding, max_hang=20) as server:
        cfg = write_project(tmp_path, base_url=server.openai_base_url, extra={"budget": {"max_calls": CAP}})
        out = tmp_path / "out"
        argv = ["optimize", "--config", str(cfg), "--out", str(out), "--epochs", "2", "--quiet"]
        proc = start(argv, tmp_path)
        at_kill = kill_when_held(proc, server, after)
        in_flight = at_kill - after
        assert 1 <= in_flight <= 4, "the kill caught calls in flight (concurrency 4)"
        assert journal_calls(out) == at_kill, "every call paid before the kill is in the journal"
        holding.after = None
        resumed = start([*argv, "--resume"], tmp_path)
        assert resumed.wait(timeout=180) == 0, logs(tmp_path)
        total = len(server.requests)
    report = json.loads((out / "latest" / "report.json").read_text())
    assert total <= CAP, f"the cap held across the kill: server answered {total} calls for a cap of {CAP}"
    assert report["spend"]["calls"] == total, "report.json's spend is the server's count"
    assert report["status"] in ("completed", "stopped_budget")
    assert len(rows(out)) == len(set(rows(out))), "one trajectory row per phase/skill/task/sample"


def test_a_killed_eval_run_again_has_one_row_per_task_and_sample(tmp_path):
    holding = Holding(5)
    with ModelServer(responder=holding, max_hang=20) as server:
        cfg = write_project(tmp_path, base_url=server.openai_base_url)
        out = tmp_path / "ev"
        argv = ["eval", "--config", str(cfg), "--out", str(out), "--split", "all", "--quiet"]
        at_kill = kill_when_held(start(argv, tmp_path), server, 5)
        holding.after = None
        assert start(argv, tmp_path).wait(timeout=120) == 0, logs(tmp_path)
        assert len(server.requests) == at_kill + 16 - 5, "only the rollouts that had no answer are paid again"
    assert sorted(rows(out)) == sorted({r for r in rows(out)}) and len(rows(out)) == 16
