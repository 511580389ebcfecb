"""Sharded runs: split one eval or compare into n deterministic slices that run on separate machines (a GitHub
Actions `matrix`), then merge their artifacts into exactly the report the unsharded run would have written.

The slice
---------
Shard i of n gets, in every split, the tasks at positions i-1, i-1+n, i-1+2n, ... of the split's task ids in
sorted order: every sample of a task, and both skills of a compare, stay in one shard (the gate is paired by
task), and the slices differ in size by at most one task per split.

What a shard writes (its run directory is the artifact)
-------------------------------------------------------
`shard.json` (the manifest: kind, i/n, the config hash, the skills' hashes, the splits and this shard's tasks,
its spend and wall time), `skills/*.md` (the texts compared, so the merge job needs only the artifacts and the
checkout), `cache/rollouts/..` (every rollout the shard used, hit or paid, as cache entries under the same
content keys), `trajectories.jsonl` and `spend.jsonl`. A shard decides nothing and writes no report.json.

The sequential gate
-------------------
`gate.mode: sequential` draws its samples in rounds and stops as soon as the evidence suffices, a decision over
all tasks at once. A shard cannot see the other shards, so it draws, for each of its val tasks, the samples the
test would ask for if it never stopped early: round 1 samples every task `schedule[0]` times per skill, each
later round tops up the tasks whose pooled outcomes still vary to `schedule[r]` (the test's own per-task rule,
which looks at no other task). That is a superset of what the test requests; the merge job then runs the very
same sequential test over the merged cache, so the decision, the rounds and every number are those of the
unsharded run, and a rollout it finds missing (a shard's answer that stayed empty, say) is paid there. The price
is the rounds an early stop would have saved, on tasks whose outcomes vary; deterministic tasks stop at round 1
as before. The report's `sharding` block says how many rollouts were drawn that the decision did not use.

Warm-up
-------
`run_warm` (`skillopt eval --warm --shard i/n`) draws what an optimize run asks of its starting skill first
(`loop.warm_samples`: the baseline, the incumbent's side of every val round, the confirmation's fresh samples, the
test split, the train rollouts of the unchanged skill) on its slice of each split. Its merge imports them into the
run's cache (the cache directory the workflow hands to the optimize job) and writes the starting skill's eval
report on val and test from them; the optimize run that reads that cache pays nothing for its baseline.

Merging
-------
`read_shards` checks the artifacts (every shard of 1..n present exactly once, all from the same config, tasks,
target and skills) and turns any mismatch into a ConfigError with the fix (exit 2). `import_cache` copies the
entries into the run's cache ("fills the cache": later runs reuse them), `combined_spend` adds the shards'
spend to the merge job's own (a rollout served from a shard's artifact is counted once, where it was paid).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import evaluation
from .calls import DiskCache, RoleSpend, content_key
from .errors import ConfigError
from .evaluation import sequential_settings
from .loop import warm_samples
from .redact import write_json, write_text
from .report import Report
from .rollout import rollout_problem, skill_hash
from .runtime import Runtime
from .sequential import SequentialTest
from .types import Task

FORMAT = 1
MANIFEST = "shard.json"
SKILLS = "skills"
COMMANDS = {"eval": "eval", "compare": "compare", "warm": "eval --warm"}  # the command that writes each kind
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_spec(text: str, what: str = "--shard") -> tuple[int, int]:
    """`"2/4"` -> (2, 4); ConfigError (exit 2) for anything else."""
    m = _SPEC.match(text or "")
    i, n = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if not m or n < 1 or not 1 <= i <= n or n > 256:
        raise ConfigError(f"{what} must be i/n with 1 <= i <= n <= 256 (e.g. 2/4), not {text!r}", None, None,
                          f"pass {what} 1/4, 2/4, 3/4 and 4/4 to four jobs, then merge their run directories")
    return i, n


def check_spec(shard: tuple[int, int]) -> tuple[int, int]:
    i, n = shard
    return parse_spec(f"{i}/{n}", "shard")


def my_tasks(tasks: Sequence[Task], i: int, n: int) -> list[Task]:
    """Shard i of n's tasks of one split: every n-th task id in sorted order, starting at position i-1."""
    return [t for j, t in enumerate(sorted(tasks, key=lambda t: t.id)) if j % n == i - 1]


def config_hash(rt: Runtime) -> str:
    """Everything shards must share for their rollouts to merge into one run: the config, every task as the target
    sees it and as it is scored, the split of the tasks, and the target's fingerprint."""
    # scoring digests, not the engine's scoring keys: those name python scorers by absolute path, which differs
    # between runners (a pull request's base is checked out in a fresh directory)
    tasks = sorted((t.id, t.digest(), t.scoring_digest()) for t in rt.tasks)
    splits = {name: sorted(t.id for t in ts) for name, ts in rt.splits.items()}
    return content_key("shard-config", rt.cfg.digest(), tasks, splits, rt.cfg.loop.pass_threshold,
                       rt.engine.target.fingerprint())[:16]


@dataclass
class ShardRun:
    """What a shard produced: its run directory (the artifact to upload) and its manifest."""

    out: Path
    manifest: dict[str, Any]

    @property
    def rollouts(self) -> int:
        return int(self.manifest["rollouts"])

    def write(self, out: str | Path | None = None) -> Path:
        """The shard's files are written as it runs; returns the manifest's path (for symmetry with RunResult)."""
        return self.out / MANIFEST


class _Collector:
    """Runs a shard's rollouts and remembers their cache keys for the export."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.keys: list[str] = []
        self.hits: set[str] = set()  # rollouts this shard found in its cache (paid by an earlier run)
        self._lock = threading.Lock()

    def run(self, jobs: list[tuple[str, Task, int]], label: str) -> list[float]:
        rs = self.rt.engine.run_samples(jobs, label)
        with self._lock:
            for (s, t, i), r in zip(jobs, rs, strict=True):
                key = self.rt.engine.key(s, t, i)
                self.keys.append(key)
                if r.cached:
                    self.hits.add(key)
        return [r.score.score for r in rs]


def _start(rt: Runtime) -> None:
    if rt.cache.root is None:  # --no-cache: the shard's own cache is its artifact (nothing earlier is read)
        rt.cache.root = rt.out / "cache"


def run_eval(rt: Runtime, skill: str, splits: list[str], shard: tuple[int, int]) -> ShardRun:
    """Shard i of n of `evaluate`: its tasks of each split, `gate.samples` times, under `skill`."""
    i, n = check_spec(shard)
    _start(rt)
    col, mine = _Collector(rt), {}
    for split in splits:
        tasks = my_tasks(rt.splits.get(split) or [], i, n)
        mine[split] = [t.id for t in tasks]
        col.run([(skill, t, s) for t in tasks for s in range(rt.cfg.gate.samples)], f"eval:{split}")
    return _finish(rt, "eval", {"skill": skill}, splits, shard, mine, col)


def run_compare(rt: Runtime, base: str, candidate: str, splits: list[str], shard: tuple[int, int]) -> ShardRun:
    """Shard i of n of `compare`: both skills on its tasks; for a sequential val gate, every round the test could
    ask of these tasks (see the module docstring)."""
    i, n = check_spec(shard)
    _start(rt)
    col, mine = _Collector(rt), {}
    g = rt.cfg.gate
    for split in splits:
        tasks = my_tasks(rt.splits.get(split) or [], i, n)
        mine[split] = [t.id for t in tasks]
        if not tasks:
            continue
        if split == "val" and g.mode == "sequential":
            _speculate(rt, col, base, candidate, tasks)
            continue
        jobs = [(base, t, s) for t in tasks for s in range(g.samples)]
        col.run(jobs, f"compare:{split}:baseline")
        if candidate != base:
            col.run([(candidate, t, s) for t in tasks for s in range(g.samples)], f"compare:{split}:best")
    return _finish(rt, "compare", {"base": base, "candidate": candidate}, splits, shard, mine, col)


def run_warm(rt: Runtime, skill: str, shard: tuple[int, int]) -> ShardRun:
    """Shard i of n of a warm-up: the rollouts an optimize run asks of `skill` first (loop.warm_samples), on this
    shard's tasks of train, val and test, in one work queue. Merged, they fill the cache the optimize job reads."""
    i, n = check_spec(shard)
    _start(rt)
    col, mine = _Collector(rt), {}
    samples = warm_samples(rt.cfg)
    jobs = []
    for split in ("val", "test", "train"):
        tasks = my_tasks(rt.splits.get(split) or [], i, n)
        mine[split] = [t.id for t in tasks]
        jobs += [(skill, t, s) for t in tasks for s in samples[split]]
    col.run(jobs, "warm")
    return _finish(rt, "warm", {"skill": skill}, ["train", "val", "test"], shard, mine, col,
                   extra={"warm_samples": samples})


def _speculate(rt: Runtime, col: _Collector, base: str, candidate: str, tasks: list[Task]) -> None:
    """Every round of the sequential test on these tasks, without its stops: a task is topped up to the next
    round's sample count while its pooled outcomes vary (the test's own rule), whatever the other tasks do."""
    test = SequentialTest([t.id for t in tasks], sequential_settings(rt, rt.cfg.gate.alpha, seed=0))
    texts = {"incumbent": base, "candidate": candidate}
    by_id = {t.id: t for t in tasks}
    for r in range(len(test.settings.schedule)):
        test.r = r  # the round whose requests we want; no look is taken, so the test never stops
        requests = test.next_requests()
        if not requests:
            continue
        scores = col.run([(texts[side], by_id[tid], idx) for side, tid, idx in requests], "compare:val")
        for (side, tid, idx), score in zip(requests, scores, strict=True):
            test.add(side, tid, idx, score)


def _finish(rt: Runtime, kind: str, skills: dict[str, str], splits: list[str], shard: tuple[int, int],
            mine: dict[str, list[str]], col: _Collector, extra: dict[str, Any] | None = None) -> ShardRun:
    """Export the rollouts used into the artifact's cache, write the skills and the manifest."""
    assert rt.cache.root is not None
    export = DiskCache(rt.out / "cache", log=rt.log)
    exported, uncached = set(), 0
    same = rt.cache.root.resolve() == export.root.resolve() if export.root else False
    for key in dict.fromkeys(col.keys):
        entry = rt.cache.get("rollouts", key, valid=rollout_problem)
        if entry is None:
            uncached += 1  # an answer that stayed empty: scored as a failure, never cached; the merge re-runs it
            continue
        if not same:
            export.put("rollouts", key, entry)
        exported.add(key)
    for name, text in skills.items():
        write_text(rt.out / SKILLS / f"{name}.md", text)
    manifest = {
        "format": FORMAT, "kind": kind, "shard": shard[0], "of": shard[1], "config_hash": config_hash(rt),
        "config_digest": rt.cfg.digest(), "skills": {name: skill_hash(text) for name, text in skills.items()},
        "splits": splits, "tasks": mine, "rollouts": len(exported), "uncached": uncached,
        "cache_hits": sorted(col.hits & exported),
        "gate": {"mode": rt.cfg.gate.mode, "samples": rt.cfg.gate.samples, "schedule": list(rt.cfg.gate.schedule)},
        "spend": rt.ledger.to_dict(), "wall_time_s": round(time.monotonic() - rt.t0, 2),
        "skill_name": rt.cfg.name or "", **(extra or {}),
    }
    write_json(rt.out / MANIFEST, manifest)
    rt.log(f"shard {shard[0]}/{shard[1]}: {len(exported)} rollout(s) of "
           f"{sum(len(v) for v in mine.values())} task(s) in {rt.out} ({rt.spend_line()})")
    return ShardRun(rt.out, manifest)


# --------------------------------------------------------------------------- merging


@dataclass
class Shard:
    path: Path  # the shard's run directory
    manifest: dict[str, Any]

    @property
    def index(self) -> int:
        return int(self.manifest["shard"])


@dataclass
class Shards:
    kind: str
    n: int
    config_hash: str
    skills: dict[str, str]  # name -> text
    splits: list[str]
    members: list[Shard] = field(default_factory=list)
    skill_name: str = ""  # the skill of a config that lists several (`skills:`); "" for a one-skill config


MERGE_FIX = "pass the run directories (or the downloaded artifacts) of every shard of one run, e.g. " \
            "`skillopt merge shards/*`"


def find_manifests(paths: Iterable[str | Path]) -> list[Path]:
    """Every shard.json in the given directories (a shard's run directory, or a directory holding several, such as
    the artifacts of a matrix downloaded side by side). A path without one is an error."""
    found: dict[Path, None] = {}
    for raw in paths:
        p = Path(raw)
        if p.is_file() and p.name == MANIFEST:
            found[p.resolve()] = None
            continue
        if not p.is_dir():
            raise ConfigError("no such directory", str(p), None, MERGE_FIX)
        hits = [p / MANIFEST] if (p / MANIFEST).is_file() else sorted(p.rglob(MANIFEST))
        if not hits:
            raise ConfigError(f"no shard here (no {MANIFEST} in it or below it)", str(p), None,
                              "run `skillopt eval --shard i/n` or `skillopt compare --shard i/n` first, and pass "
                              "the run directories it printed")
        for h in hits:
            found[h.resolve()] = None
    return list(found)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"the shard manifest is damaged ({exc})", str(path), None,
                          "run that shard again (its job in the matrix), then merge") from None
    need = ("format", "kind", "shard", "of", "config_hash", "skills", "splits", "tasks", "spend")
    if not isinstance(data, dict) or any(k not in data for k in need):
        raise ConfigError("not a skillopt shard manifest (fields are missing)", str(path), None,
                          "run that shard again (its job in the matrix), then merge")
    if data["format"] != FORMAT:
        raise ConfigError(f"shard manifest format {data['format']} is not the format {FORMAT} this skillopt "
                          "writes", str(path), None, "run the shards and the merge with the same skillopt version")
    data.setdefault("skill_name", "")  # written since configs list several skills; "" for one skill
    return data


def read_shards(paths: Iterable[str | Path], skill_name: str | None = None) -> Shards:
    """The shards of one run, checked: same skill, kind, config, skills and shard count; each of 1..n exactly once.
    With `skill_name`: only the shards of that skill of a config listing several (the artifacts of every skill's
    shards, or of a warm-up of every skill, may lie side by side)."""
    manifests = find_manifests(paths)
    if not manifests:
        raise ConfigError("no shard directories given", None, None, MERGE_FIX)
    shards = [Shard(m.parent, _load(m)) for m in manifests]
    if skill_name is not None:
        found = sorted({str(s.manifest["skill_name"]) for s in shards})
        shards = [s for s in shards if s.manifest["skill_name"] == skill_name]
        if not shards:
            raise ConfigError(f"no shard of the skill {skill_name!r} here (the shards are of: "
                              f"{', '.join(repr(n) for n in found)})", str(manifests[0].parent), None,
                              f"run `skillopt compare|eval --skill-name {skill_name} --shard i/n` for every shard, "
                              "and merge their run directories")
    first = shards[0]

    def differ(key: str, what: str, fix: str) -> None:
        odd = [s for s in shards if s.manifest[key] != first.manifest[key]]
        if odd:
            raise ConfigError(f"these shards come from different runs: {what} differs between {first.path} "
                              f"({_show(first.manifest[key])}) and {odd[0].path} ({_show(odd[0].manifest[key])})",
                              str(odd[0].path / MANIFEST), None, fix)

    differ("skill_name", "the skill (of a config listing several)", "merge one skill's shards at a time: pass "
           "--skill-name NAME, or only that skill's run directories")
    differ("kind", "the command (eval, compare or a warm-up)", MERGE_FIX)
    differ("of", "the number of shards", "give every job of the matrix the same n in --shard i/n")
    differ("config_hash", "the config, tasks or target (config hash)", "run every shard on the same commit; "
           "merge only the artifacts of one workflow run")
    differ("skills", "the skill text(s) scored (skill hashes)", "run every shard on the same commit; merge only "
           "the artifacts of one workflow run")
    differ("splits", "the splits scored", "give every shard the same --split / --splits")
    n = int(first.manifest["of"])
    seen: dict[int, Shard] = {}
    for s in shards:
        if s.index in seen:
            raise ConfigError(f"shard {s.index}/{n} was given twice: {seen[s.index].path} and {s.path}",
                              str(s.path / MANIFEST), None, "pass each shard's directory once (of a re-run shard, "
                              "keep the newer artifact only)")
        seen[s.index] = s
    missing = [i for i in range(1, n + 1) if i not in seen]
    if missing:
        names = ", ".join(f"{i}/{n}" for i in missing)
        raise ConfigError(f"shard(s) {names} missing: found {len(seen)} of {n}", None, None,
                          "every job of the matrix must succeed and upload its artifact; re-run the failed job(s) "
                          f"(`skillopt {COMMANDS.get(first.manifest['kind'], first.manifest['kind'])} --shard "
                          f"{missing[0]}/{n}`), then merge all {n}")
    skills = {}
    for name, h in first.manifest["skills"].items():
        path = first.path / SKILLS / f"{name}.md"
        text = path.read_text(encoding="utf-8") if path.is_file() else None
        if text is None or skill_hash(text) != h:
            raise ConfigError(f"the shard's copy of the {name} skill is missing or altered", str(path), None,
                              "run that shard again, then merge")
        skills[name] = text
    return Shards(first.manifest["kind"], n, first.manifest["config_hash"], skills, list(first.manifest["splits"]),
                  sorted(shards, key=lambda s: s.index), str(first.manifest["skill_name"]))


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def check_config(rt: Runtime, shards: Shards) -> None:
    mine = config_hash(rt)
    if mine != shards.config_hash:
        raise ConfigError(f"the shards ran with another config, tasks or target than this checkout (config hash "
                          f"{shards.config_hash} in the shards, {mine} here)", str(rt.cfg.path), None,
                          "run the merge on the same commit (and with the same --config) as the shards")


class MergedCache(DiskCache):
    """The run's cache, counting the rollouts served from the shards' artifacts (paid, or hit, in a shard)."""

    def __init__(self, root: Path | None, imported: set[str], log: Callable[[str], None] | None = None):
        super().__init__(root, log=log)
        self.imported = imported
        self.served: set[str] = set()
        self._lock = threading.Lock()

    def get(self, namespace: str, key: str, valid: Callable[[Any], str | None] | None = None) -> dict | None:
        entry = super().get(namespace, key, valid)
        if entry is not None and namespace == "rollouts" and key in self.imported:
            with self._lock:
                self.served.add(key)
        return entry


def import_cache(rt: Runtime, shards: Shards) -> MergedCache:
    """Copy every shard's rollouts into the run's cache and make the engine read through a counting cache."""
    if rt.cache.root is None:  # --no-cache: the shards' rollouts live in this run's own cache only
        rt.cache.root = rt.out / "cache"
    imported: set[str] = set()
    for s in shards.members:
        src = DiskCache(s.path / "cache", log=rt.log)
        for key in src.keys("rollouts"):
            entry = src.get("rollouts", key, valid=rollout_problem)
            if entry is not None:
                rt.cache.put("rollouts", key, entry)
                imported.add(key)
    merged = MergedCache(rt.cache.root, imported, log=rt.log)
    rt.cache = merged
    rt.engine.cache = merged
    return merged


def combined_spend(shard_spends: list[dict], own: dict, served: int) -> dict:
    """The shards' spend plus the merge job's, without counting twice a rollout served from a shard's artifact."""
    roles: dict[str, RoleSpend] = {}
    for spend in [*shard_spends, own]:
        for role, values in (spend.get("by_role") or {}).items():
            r = roles.setdefault(role, RoleSpend())
            for k, v in values.items():
                setattr(r, k, getattr(r, k) + v)
    if "target" in roles:
        roles["target"].cache_hits = max(0, roles["target"].cache_hits - served)
    total = RoleSpend()
    for r in roles.values():
        for k, v in r.__dict__.items():
            setattr(total, k, getattr(total, k) + v)
    return {**total.to_dict(), "by_role": {k: v.to_dict() for k, v in sorted(roles.items())}}


def sequential_rollouts(rt: Runtime, shards: Shards, cache: MergedCache, report: Report, base: str,
                        candidate: str) -> None:
    """A sequential val gate reports the rollouts its test paid for; in the merge job they were paid in the
    shards: count those the test used that a shard paid (not found in its own cache), as the unsharded run would."""
    gate = report.gates.get("val")
    if not gate or gate.get("mode") != "sequential" or "rollouts" not in gate:
        return
    hits = {k for s in shards.members for k in s.manifest.get("cache_hits", [])}
    texts = {"incumbent": base, "candidate": candidate}
    used = {rt.engine.key(texts[side], rt.by_id[t["task_id"]], i) for t in gate.get("per_task", [])
            for side in texts for i in range(int(t["samples"]))}
    gate["rollouts"] += len((used & cache.imported) - hits)


def summary(rt: Runtime, shards: Shards, cache: MergedCache, merge_calls: int) -> dict:
    """The report's `sharding` block (a warm-up's also names the cache it filled)."""
    warm = {"warm": True, "cache_dir": str(rt.cache.root)} if shards.kind == "warm" else {}
    return {"shards": shards.n, "config_hash": shards.config_hash,
            "rollouts": len(cache.imported), "used": len(cache.served),
            "unused": len(cache.imported - cache.served), "merge_calls": merge_calls,
            "wall_time_s": [s.manifest.get("wall_time_s", 0.0) for s in shards.members], **warm}


def merge(rt: Runtime, found: Shards) -> tuple[Report, str, str]:
    """The merge job: import the shards' rollouts into the cache, run the same evaluation over it (a warm-up: the
    starting skill on val and test), count the spend once. Returns (report, base skill, best skill)."""
    cache = import_cache(rt, found)
    before = rt.ledger.role_calls("target")
    if found.kind in ("eval", "warm"):
        text = found.skills["skill"]
        splits = found.splits if found.kind == "eval" else [s for s in ("val", "test") if rt.splits.get(s)]
        report = evaluation.evaluate(rt, text, splits)
        base, best = text, text
    else:
        base, best = found.skills["base"], found.skills["candidate"]
        report = evaluation.compare(rt, base, best, found.splits)
        sequential_rollouts(rt, found, cache, report, base, best)
    merge_calls = rt.ledger.role_calls("target") - before
    report.spend = combined_spend([s.manifest["spend"] for s in found.members], rt.ledger.to_dict(),
                                  len(cache.served))
    report.sharding = summary(rt, found, cache, merge_calls)
    rt.log(f"merged {found.n} shard(s): {len(cache.served)} of {len(cache.imported)} shard rollouts used, "
           f"{merge_calls} paid here" + (f"; the warm-up's rollouts are in {rt.cache.root}" if found.kind == "warm"
                                         else ""))
    return report, base, best
