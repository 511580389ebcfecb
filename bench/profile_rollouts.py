"""Where our CPU per rollout goes: `api.evaluate` against the bare `openai` client, through bench_scale's workers.

    python bench/profile_rollouts.py ab [--rounds 5] [--latency 0.005]   # CPU per 1,000 rollouts, interleaved
    python bench/profile_rollouts.py profile [--latency 0.005]           # cProfile of every thread, both clients
    python bench/profile_rollouts.py split [--rounds 5]                  # CPU inside the SDK call vs outside it
    python bench/profile_rollouts.py procs --concurrency 16 --latency 0.2   # is the gap to the ideal one process's?

Both modes run bench/bench_scale.py's workers (a fresh process per measurement, 200 tasks x 3 samples at
concurrency 32 by default) against bench/loopback_server.py in its own process.

- `ab` alternates skillopt / bare workers for `--rounds` rounds and prints user and system CPU seconds per 1,000
  rollouts (medians). Set `BENCH_CODE=<checkout>` and pass `--other` to add a third worker per round running that
  checkout's skillopt_action (e.g. main before a change): CPU per rollout is robust to other load on the machine.
- `split` times, with each thread's CPU clock, the SDK's `chat.completions.create` inside both workers: the CPU
  outside that call is the caller's own (our engine, or the bare client's thread pool). The SDK's part is the same
  in both, so the difference of the outside parts is our overhead per rollout, with far less noise than the totals.
- `procs` runs the bare client's requests from one process and, split evenly, from two (forked after `openai` is
  imported, so neither pays the import), alternating for `--rounds` rounds, and reads the loopback server's own CPU
  from /proc. If two processes (two GILs) do not get closer to the ideal than one, the remaining gap is not our
  process's GIL but the machine: the SDK's CPU per call and the server's, on the same cores.
- `profile` runs each worker under cProfile on **every** thread (one profile per thread, merged; bench_scale's
  `--profile`), then prints the own time per rollout by area (our modules, the SDK and httpx, json, the
  interpreter's thread pool, system calls) and the top functions by own time. cProfile inflates Python-heavy code
  more than system calls, so compare areas between the two clients, not with wall-clock figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pstats
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import Loopback, run_worker  # noqa: E402

# area -> substrings of "file:function" (first match wins; order matters)
AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("file system calls (open/write/rename/mkdir/stat)",
     ("{built-in method posix.", "{built-in method io.open", "{method 'write' of '_io", "{method 'read' of '_io",
      "{method 'close' of '_io")),
    ("json encode/decode", ("json/", "{built-in method _json", "{method 'encode' of", "{method 'decode' of")),
    ("hashing", ("{built-in method _hashlib", "{method 'hexdigest'", "{method 'update' of '_hashlib",
                 "{method 'copy' of '_hashlib")),
    ("regular expressions", ("{method 'sub' of 're.", "{method 'search' of 're.", "{method 'match' of 're.",
                             "re/__init__", "{method 'finditer'")),
    ("skillopt_action: masking (redact.py)", ("skillopt_action/redact.py",)),
    ("skillopt_action: spend ledger and cache (calls.py)", ("skillopt_action/calls.py",)),
    ("skillopt_action: rollout engine (rollout.py)", ("skillopt_action/rollout.py",)),
    ("skillopt_action: throttle (throttle.py)", ("skillopt_action/throttle.py",)),
    ("skillopt_action: scorers", ("skillopt_action/scorers/",)),
    ("skillopt_action: types (to_dict/from_dict)", ("skillopt_action/types.py",)),
    ("skillopt_action: chat target, provider, render", ("skillopt_action/targets/", "skillopt_action/providers.py",
                                                       "skillopt_action/render.py", "jinja2/")),
    ("skillopt_action: other modules", ("skillopt_action/",)),
    ("openai SDK", ("openai/",)),
    ("httpx / httpcore / h11 / sockets", ("httpx", "httpcore", "h11/", "socket", "ssl", "anyio", "{method 'recv",
                                          "{method 'send", "{method 'sendall")),
    ("pydantic", ("pydantic",)),
    ("thread pool, locks, queues", ("concurrent/futures", "threading.py", "queue.py", "{method 'acquire'",
                                    "{method 'release'", "{method 'put'", "{method 'get' of '_queue")),
]


def area(key: tuple[str, int, str]) -> str:
    name = f"{key[0]}:{key[2]}"
    for label, needles in AREAS:
        if any(n in name for n in needles):
            return label
    return "other (typing, dataclasses, copy, builtins)"


def summarize(path: str, rollouts: int, top: int) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """({area: own µs per rollout}, [(own µs per rollout, function)]) from a merged profile."""
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    areas: dict[str, float] = {}
    funcs = []
    for key, (_cc, _nc, tt, _ct, _callers) in stats.items():
        us = tt / rollouts * 1e6
        areas[area(key)] = areas.get(area(key), 0.0) + us
        funcs.append((us, f"{Path(key[0]).name}:{key[1]}:{key[2]}"))
    funcs.sort(reverse=True)
    return areas, funcs[:top]


def cmd_profile(a: argparse.Namespace) -> None:
    n = a.tasks * a.samples
    with tempfile.TemporaryDirectory() as tmp, Loopback(a.latency) as server:
        res = {}
        for kind in ("skillopt", "bare"):
            prof = Path(tmp) / f"{kind}.pstats"
            m = run_worker(kind, server, a.tasks, a.samples, a.concurrency, profile=prof)
            res[kind] = (m, *summarize(str(prof), n, a.top))
            if a.keep:
                Path(a.keep).mkdir(parents=True, exist_ok=True)
                (Path(a.keep) / prof.name).write_bytes(prof.read_bytes())
    labels = sorted({k for r in res.values() for k in r[1]}, key=lambda k: -res["skillopt"][1].get(k, 0.0))
    print(f"Own time per rollout under cProfile (µs), {n} rollouts, concurrency {a.concurrency}, "
          f"{a.latency * 1000:g} ms server\n")
    print("| area | skillopt eval | bare client | difference |\n|---|---:|---:|---:|")
    for k in labels:
        s, b = res["skillopt"][1].get(k, 0.0), res["bare"][1].get(k, 0.0)
        print(f"| {k} | {s:.0f} | {b:.0f} | {s - b:+.0f} |")
    ts, tb = sum(res["skillopt"][1].values()), sum(res["bare"][1].values())
    print(f"| **total** | **{ts:.0f}** | **{tb:.0f}** | **{ts - tb:+.0f}** |")
    for kind in ("skillopt", "bare"):
        m = res[kind][0]
        print(f"\n{kind}: CPU {m['cpu'] / m['rollouts'] * 1e6:.0f} µs per rollout under the profiler "
              f"(user {m.get('user', 0) / m['rollouts'] * 1e6:.0f}, system {m.get('sys', 0) / m['rollouts'] * 1e6:.0f})"
              f"; top functions by own time (µs per rollout):")
        for us, f in res[kind][2]:
            print(f"  {us:7.1f}  {f}")


def cmd_split(a: argparse.Namespace) -> None:
    got: dict[str, list[tuple[float, float, float]]] = {"skillopt": [], "bare": []}
    with Loopback(a.latency) as server:
        for rnd in range(a.rounds):
            for kind in got:
                m = run_worker(kind, server, a.tasks, a.samples, a.concurrency, sdk_split=True)
                n = m["rollouts"]
                got[kind].append((m["cpu"] / n * 1e6, m["sdk_cpu"] / n * 1e6, (m["cpu"] - m["sdk_cpu"]) / n * 1e6))
            print(f"  round {rnd + 1}: " + ", ".join(f"{k} outside the SDK {v[-1][2]:.0f} µs" for k, v in got.items()),
                  file=sys.stderr, flush=True)
    print(f"CPU µs per rollout, inside and outside the SDK's chat call: {a.tasks} x {a.samples} rollouts, "
          f"concurrency {a.concurrency}, {a.latency * 1000:g} ms server, medians of {a.rounds} interleaved rounds\n")
    print("| worker | total | inside the SDK call | outside (the caller's own) |\n|---|---:|---:|---:|")
    for kind, label in (("skillopt", "skillopt eval"), ("bare", "bare client")):
        cols = [statistics.median(x[i] for x in got[kind]) for i in range(3)]
        print(f"| {label} | " + " | ".join(f"{c:.0f}" for c in cols) + " |")


def cmd_ab(a: argparse.Namespace) -> None:
    kinds = ["skillopt", "bare"] + (["other"] if a.other else [])
    got: dict[str, list[tuple[float, float, float]]] = {k: [] for k in kinds}
    with Loopback(a.latency) as server:
        for rnd in range(a.rounds):
            for kind in kinds:
                env_code = os.environ.get("BENCH_CODE")
                if kind == "skillopt" and env_code:  # this checkout, whatever BENCH_CODE says
                    os.environ["BENCH_CODE"] = str(Path(__file__).resolve().parent.parent)
                try:
                    m = run_worker("bare" if kind == "bare" else "skillopt", server, a.tasks, a.samples, a.concurrency)
                finally:
                    if env_code is not None:
                        os.environ["BENCH_CODE"] = env_code
                per_k = 1000 / m["rollouts"]
                got[kind].append((m["cpu"] * per_k, m.get("user", 0.0) * per_k, m.get("sys", 0.0) * per_k))
            print(f"  round {rnd + 1}: " + ", ".join(f"{k} {got[k][-1][0]:.2f}" for k in kinds), file=sys.stderr,
                  flush=True)
    label = {"skillopt": "this checkout", "bare": "bare client", "other": f"BENCH_CODE={os.environ.get('BENCH_CODE')}"}
    print(f"CPU s per 1,000 rollouts: {a.tasks} x {a.samples} rollouts, concurrency {a.concurrency}, "
          f"{a.latency * 1000:g} ms server, {a.rounds} interleaved rounds\n")
    print("| worker | " + " | ".join(f"round {i + 1}" for i in range(a.rounds))
          + " | median (user + system) | median user | median system |")
    print("|---|" + "---:|" * (a.rounds + 3))
    for k in kinds:
        tot = [x[0] for x in got[k]]
        print(f"| {label[k]} | " + " | ".join(f"{t:.2f}" for t in tot) + f" | **{statistics.median(tot):.2f}** | "
              f"{statistics.median(x[1] for x in got[k]):.2f} | {statistics.median(x[2] for x in got[k]):.2f} |")


def _bare_share(url: str, jobs: int, concurrency: int) -> None:
    import openai

    client = openai.OpenAI(api_key="bench", base_url=url, timeout=30, max_retries=0)

    def one(i: int) -> str:
        resp = client.chat.completions.create(
            model="bench-model", temperature=0.7, max_tokens=512,
            messages=[{"role": "system", "content": "You follow the skill below.\n\n## Skill\n\n" + "x" * 2000},
                      {"role": "user", "content": f"Please repeat the token w{i:05d}"}])
        return resp.choices[0].message.content or ""

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(jobs)))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cmd_procs(a: argparse.Namespace) -> None:
    import openai  # noqa: F401  (imported before the fork, so no child pays for it)

    n, c = a.tasks * a.samples, a.concurrency
    ideal = n * a.latency / c
    fork = multiprocessing.get_context("fork")
    got: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    with Loopback(a.latency) as server:
        for rnd in range(a.rounds):
            for procs in got:
                server_cpu, t0 = _cpu_seconds(server.proc.pid), time.perf_counter()
                children = [fork.Process(target=_bare_share, args=(server.url, n // procs, c // procs))
                            for _ in range(procs)]
                for ch in children:
                    ch.start()
                for ch in children:
                    ch.join()
                wall = time.perf_counter() - t0
                got[procs].append((ideal / wall, (_cpu_seconds(server.proc.pid) - server_cpu) / n * 1000))
            done = ", ".join(f"{k} process(es) {v[-1][0]:.3f} of ideal" for k, v in got.items())
            print(f"  round {rnd + 1}: {done}", file=sys.stderr, flush=True)
    print(f"The bare client from one process and from two: {n} requests, concurrency {c} in all, "
          f"{a.latency * 1000:g} ms server (ideal {ideal:.2f} s), {a.rounds} interleaved rounds\n")
    print("| processes | " + " | ".join(f"round {i + 1}" for i in range(a.rounds))
          + " | median of ideal | server CPU ms per request |")
    print("|---|" + "---:|" * (a.rounds + 2))
    for procs, rows in got.items():
        print(f"| {procs} | " + " | ".join(f"{r[0]:.3f}" for r in rows)
              + f" | **{statistics.median(r[0] for r in rows):.3f}** | {statistics.median(r[1] for r in rows):.2f} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("ab", "split", "profile", "procs"))
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--latency", type=float, default=0.005, help="server latency in seconds (default 5 ms)")
    p.add_argument("--rounds", type=int, default=5, help="ab: interleaved rounds")
    p.add_argument("--other", action="store_true", help="ab: also run BENCH_CODE's skillopt_action each round")
    p.add_argument("--top", type=int, default=25, help="profile: functions listed per client")
    p.add_argument("--keep", help="profile: copy the merged .pstats files to this directory")
    args = p.parse_args()
    {"ab": cmd_ab, "split": cmd_split, "profile": cmd_profile, "procs": cmd_procs}[args.mode](args)
