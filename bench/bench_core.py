"""Speed of the core, as ratios measured in one run (machines here are noisy; absolute times are not compared).

  python bench/bench_core.py            # prints a Markdown table; results are committed in bench/RESULTS.md

1. Concurrency: the same 48 rollouts against a loopback model server that answers after 50 ms,
   with `concurrency: 1` vs `concurrency: 8`.
2. Cache: a full `skillopt optimize` run (loopback server, 50 ms per call) vs the same run again, served
   entirely from the content-addressed cache.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from helpers import COUNTRIES, write_project  # noqa: E402
from model_server import Hang, ModelServer, Text  # noqa: E402

from skillopt_action.cli import main  # noqa: E402

LATENCY = 0.05
CAPITAL = dict(c.split(":") for c in COUNTRIES)


def responder(req):
    if "You improve a skill document" in req.system:
        body = {"analysis": "verbose", "edits": [{"op": "add", "anchor": "## Answering",
                                                  "content": "- Reply with the bare city name only."}]}
        return Hang(LATENCY, then=Text(json.dumps(body)))
    country = req.last_user_text.split("capital of ")[1].rstrip("?")
    city = CAPITAL[country]
    return Hang(LATENCY, then=Text(city if "bare city name" in req.system else f"It is {city}."))


def timed(argv) -> float:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0, argv
    return time.perf_counter() - t0


def bench() -> list[tuple[str, float, float, str]]:
    os.environ["TEST_KEY"] = "bench"
    rows = []
    with ModelServer(responder=responder) as server, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        times = {}
        for conc in (1, 8):
            cfg = write_project(tmp / f"c{conc}", base_url=server.openai_base_url, splits=(0, 16, 0),
                                extra={"concurrency": conc, "gate": {"samples": 3}})
            times[conc] = timed(["eval", "--config", str(cfg), "--out", str(tmp / f"c{conc}/out"), "--quiet",
                                 "--no-cache"])
        rows.append(("48 rollouts, concurrency 8 vs 1", times[1], times[8], f"{times[1] / times[8]:.1f}x faster"))
        cfg = write_project(tmp / "cache", base_url=server.openai_base_url, extra={"gate": {"samples": 2}})
        n0 = len(server.requests)
        first = timed(["optimize", "--config", str(cfg), "--out", str(tmp / "cache/a"), "--quiet"])
        n = len(server.requests) - n0
        again = timed(["optimize", "--config", str(cfg), "--out", str(tmp / "cache/b"), "--quiet"])
        assert len(server.requests) == n0 + n
        rows.append(
            (f"optimize run ({n} calls) vs cached rerun (0 calls)", first, again, f"{first / again:.0f}x faster")
        )
    return rows


if __name__ == "__main__":
    print("| benchmark | baseline (s) | improved (s) | ratio |\n|---|---:|---:|---|")
    for name, a, b, ratio in bench():
        print(f"| {name} | {a:.2f} | {b:.2f} | {ratio} |")
