"""Orchestration at the provider's speed, and scale: `skillopt eval` side by side with a bare `openai` client.

    python bench/bench_scale.py                 # the full run (about 10 minutes); prints the Markdown tables
    python bench/bench_scale.py --tiny          # a few tasks, for the CI smoke test (no timing claims)

Everything is measured in ONE run against bench/loopback_server.py (its own process, so it never competes with
the client for the GIL), and every measurement runs in a fresh worker process, so CPU seconds and peak RSS are
that workload's own:

1. Latency-bound: N tasks x 3 samples with 200 ms latency at concurrency 1 / 4 / 16 / 32: wall time over the
   ideal N*S*L/c, for `api.evaluate` (what `skillopt eval` runs) and for a bare `openai.OpenAI` client sending
   the same requests from a ThreadPoolExecutor. Both sides' request counts (from the server) are reported.
2. CPU seconds (user + system) and peak RSS per 1,000 rollouts (the concurrency-32 runs; CPU counts only the
   workload, not the interpreter start and imports; both sides build their SDK client inside the workload).
3. Scale: 1,000 / 3,000 / 10,000 tasks loaded (JSONL), split, evaluated at concurrency 32 against a 5 ms server
   and reported: time and peak RSS, which must grow linearly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
SAMPLES = 3
SKILL = "# Echo\n\nAnswer with the last word of the question only, nothing else.\n"


# --------------------------------------------------------------------------- the loopback server


class Loopback:
    """bench/loopback_server.py in its own process."""

    def __init__(self, latency: float, limit: int | None = None):
        argv = [sys.executable, str(HERE / "loopback_server.py"), "--latency", str(latency)]
        if limit is not None:
            argv += ["--limit", str(limit)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"loopback server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

    def stats(self, reset: bool = False) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.url + "/stats") as r:
            data = json.loads(r.read())
        if reset:
            urllib.request.urlopen(urllib.request.Request(self.url + "/reset", data=b"", method="POST")).read()
        return data

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def __enter__(self) -> Loopback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- workers (one process each)


def write_project(root: Path, url: str, n_tasks: int, samples: int, concurrency: int) -> Path:
    (root / ".github").mkdir(parents=True, exist_ok=True)
    (root / "evals").mkdir(exist_ok=True)
    (root / "SKILL.md").write_text(SKILL, encoding="utf-8")
    with open(root / "evals" / "tasks.jsonl", "w", encoding="utf-8") as f:
        for i in range(n_tasks):
            f.write(json.dumps({"id": f"t{i:05d}", "input": f"Please repeat the token w{i:05d}",
                                "reference": f"w{i:05d}", "split": "val", "scorers": ["exact"]}) + "\n")
    cfg = {"skill": "SKILL.md", "tasks": "evals/*.jsonl",
           "target": {"provider": "openai", "model": "bench-model", "base_url": url, "api_key_env": "BENCH_KEY",
                      "timeout": 30},
           "gate": {"samples": samples}, "concurrency": concurrency,
           "retries": {"attempts": 5, "base_delay": 0.05, "max_delay": 1.0}}
    path = root / ".github" / "skillopt.yml"
    path.write_text(json.dumps(cfg), encoding="utf-8")  # JSON is YAML
    return path


def cpu_split() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def worker_skillopt(url: str, n_tasks: int, samples: int, concurrency: int) -> dict:
    from skillopt_action import api
    from skillopt_action.tasks import assign_splits, load_tasks

    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = write_project(Path(tmp), url, n_tasks, samples, concurrency)
        t0 = time.perf_counter()
        cfg = api.load_config(cfg_path)
        tasks = load_tasks(cfg.tasks, cfg.root, str(cfg.path), cfg.line_of("tasks"))
        assign_splits(tasks, cfg.split_ratios, cfg.split_seed)
        load_s = time.perf_counter() - t0
        (u0, s0), t0 = cpu_split(), time.perf_counter()  # what `skillopt eval` does: load, split, run, report
        result = api.evaluate(cfg_path, out=Path(tmp) / "run")
        wall, (u1, s1) = time.perf_counter() - t0, cpu_split()
        val = result.report.scores["val"]
        rows = sum(1 for _ in open(Path(tmp) / "run" / "trajectories.jsonl", encoding="utf-8"))
    return {"wall": wall, "cpu": u1 - u0 + s1 - s0, "user": u1 - u0, "sys": s1 - s0, "load": load_s,
            "score": val["best"], "rollouts": rows}


def worker_bare(url: str, n_tasks: int, samples: int, concurrency: int) -> dict:
    import openai

    (u0, s0), t0 = cpu_split(), time.perf_counter()  # the client is part of the workload (`skillopt eval` builds one)
    client = openai.OpenAI(api_key="bench", base_url=url, timeout=30, max_retries=0)
    system = ("You are an assistant that follows the skill below when it applies to the user's request.\n\n"
              f"## Skill\n\n{SKILL}")
    jobs = [(i, s) for i in range(n_tasks) for s in range(samples)]

    def one(job: tuple[int, int]) -> float:
        i, _ = job
        resp = client.chat.completions.create(
            model="bench-model", temperature=0.7, max_tokens=512,
            messages=[{"role": "system", "content": system},
                      {"role": "user", "content": f"Please repeat the token w{i:05d}"}])
        return 1.0 if (resp.choices[0].message.content or "").strip() == f"w{i:05d}" else 0.0

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        scores = list(pool.map(one, jobs))
    wall, (u1, s1) = time.perf_counter() - t0, cpu_split()
    return {"wall": wall, "cpu": u1 - u0 + s1 - s0, "user": u1 - u0, "sys": s1 - s0, "load": 0.0,
            "score": sum(scores) / len(scores), "rollouts": len(scores)}


def run_worker(kind: str, server: Loopback, n_tasks: int, samples: int, concurrency: int,
               profile: Path | None = None, sdk_split: bool = False) -> dict:
    """One measurement in a fresh process; adds the server's request count and the process's peak RSS."""
    server.stats(reset=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--url", server.url,
            "--tasks", str(n_tasks), "--samples", str(samples), "--concurrency", str(concurrency)]
    if profile is not None:
        argv += ["--profile", str(profile)]
    if sdk_split:
        argv += ["--sdk-split"]
    # BENCH_CODE=DIR measures another checkout's skillopt_action (e.g. the commit before a change) with this bench
    env = {**os.environ, "BENCH_KEY": "bench", "PYTHONPATH": os.environ.get("BENCH_CODE", str(ROOT))}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["requests"] = server.stats()["requests"]
    return res


def worker_main(a: argparse.Namespace) -> None:
    fn = worker_skillopt if a.worker == "skillopt" else worker_bare
    __import__("skillopt_action.api" if a.worker == "skillopt" else "openai")  # imports are not the workload
    sdk = [0.0]
    if a.sdk_split:  # the thread CPU spent inside the SDK's chat call (the rest is the caller's own)
        import threading

        from openai.resources.chat.completions import Completions
        create, lock = Completions.create, threading.Lock()

        def timed(self: Completions, *args: object, **kw: object) -> object:
            t = time.thread_time()
            try:
                return create(self, *args, **kw)  # type: ignore[arg-type]
            finally:
                with lock:
                    sdk[0] += time.thread_time() - t

        Completions.create = timed  # type: ignore[assignment,method-assign]
    if a.profile:  # cProfile on every thread: one profiler per thread (a profiler follows one call stack), merged;
        import cProfile  # timed by the thread's CPU clock, so a thread waiting for the GIL or a lock costs nothing
        import pstats
        import threading

        profs = [cProfile.Profile(time.thread_time)]

        def start(*_: object) -> None:  # the first event of a new thread switches it to its own profiler
            profs.append(cProfile.Profile(time.thread_time))
            profs[-1].enable()

        threading.setprofile(start)
        profs[0].enable()
        res = fn(a.url, a.tasks, a.samples, a.concurrency)
        profs[0].disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        merged = pstats.Stats(profs[0])
        for prof in profs[1:]:
            merged.add(prof)
        merged.dump_stats(a.profile)
    else:
        res = fn(a.url, a.tasks, a.samples, a.concurrency)
    res["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.sdk_split:
        res["sdk_cpu"] = sdk[0]
    print(json.dumps(res))


# --------------------------------------------------------------------------- the run


def load_line() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} cores"


def bench(tiny: bool = False) -> dict:
    n_tasks = 6 if tiny else 200
    latency = 0.02 if tiny else 0.2
    levels = (1, 4, 16, 32)
    scale_sizes = (20, 60) if tiny else (1000, 3000, 10000)
    result: dict = {"machine": f"{platform.python_implementation()} {platform.python_version()}, "
                               f"{platform.system()} {platform.machine()}", "load_before": load_line(),
                    "latency": latency, "tasks": n_tasks, "samples": SAMPLES, "concurrency": [], "scale": []}
    with Loopback(latency) as server:
        for c in levels:
            ideal = n_tasks * SAMPLES * latency / c
            row = {"c": c, "ideal": ideal}
            for kind in ("skillopt", "bare"):
                row[kind] = run_worker(kind, server, n_tasks, SAMPLES, c)
            result["concurrency"].append(row)
            print(f"  c={c}: skillopt {row['skillopt']['wall']:.2f}s, bare {row['bare']['wall']:.2f}s "
                  f"(ideal {ideal:.2f}s)", file=sys.stderr, flush=True)
    with Loopback(0.005) as server:
        for n in scale_sizes:
            row = {"n": n, **run_worker("skillopt", server, n, 1, 32)}
            result["scale"].append(row)
            print(f"  scale {n}: {row['wall']:.1f}s, {row['rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    result["load_after"] = load_line()
    return result


def table(r: dict) -> str:
    n = r["tasks"] * r["samples"]
    out = [f"Machine: {r['machine']}; before: {r['load_before']}; after: {r['load_after']}.", "",
           f"### Wall time over the ideal: {r['tasks']} tasks x {r['samples']} samples = {n} rollouts, "
           f"{r['latency'] * 1000:.0f} ms latency", "",
           "| concurrency | ideal N·L/c | skillopt eval | bare client | skillopt / bare | requests (skillopt / bare) |",
           "|---:|---:|---:|---:|---:|---|"]
    for row in r["concurrency"]:
        s, b, ideal = row["skillopt"], row["bare"], row["ideal"]
        out.append(f"| {row['c']} | {ideal:.2f} s | {s['wall']:.2f} s ({ideal / s['wall']:.2f} of ideal) | "
                   f"{b['wall']:.2f} s ({ideal / b['wall']:.2f}) | {s['wall'] / b['wall']:.2f} | "
                   f"{s['requests']} / {b['requests']} |")
    top = r["concurrency"][-1]
    out += ["", f"### CPU and memory per 1,000 rollouts (concurrency {top['c']})", "",
            "| client | CPU s per 1,000 rollouts | peak RSS (MB) | score |", "|---|---:|---:|---:|"]
    for kind, label in (("skillopt", "skillopt eval"), ("bare", "bare client")):
        m = top[kind]
        out.append(f"| {label} | {m['cpu'] / m['rollouts'] * 1000:.2f} | {m['rss_mb']:.0f} | {m['score']:.2f} |")
    out += ["", "### Scale: tasks loaded (JSONL), split, evaluated (1 sample, concurrency 32, 5 ms) and reported", "",
            "| tasks | load + split | total wall | per 1,000 tasks | CPU s | peak RSS (MB) | trajectory rows |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in r["scale"]:
        per_k = row["wall"] / row["n"] * 1000
        out.append(f"| {row['n']:,} | {row['load']:.2f} s | {row['wall']:.1f} s | {per_k:.2f} s "
                   f"| {row['cpu']:.1f} | {row['rss_mb']:.0f} | {row['rollouts']:,} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="skillopt eval vs a bare openai client, and 10,000-task scale")
    p.add_argument("--tiny", action="store_true", help="a few tasks (the CI smoke test)")
    p.add_argument("--json", action="store_true", help="print the raw results as JSON after the table")
    p.add_argument("--worker", choices=("skillopt", "bare"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--tasks", type=int, help=argparse.SUPPRESS)
    p.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    p.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    p.add_argument("--profile", help=argparse.SUPPRESS)
    p.add_argument("--sdk-split", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker_main(args)
    else:
        results = bench(args.tiny)
        print(table(results))
        if args.json:
            print(json.dumps(results))
