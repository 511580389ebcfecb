"""The scheduled run's warm-up (schedule / workflow_dispatch; examples/workflows/skillopt-weekly-sharded.yml).

1. A matrix of jobs with `shard: i/n` each draws its slice of the rollouts the optimize run asks of the default
   branch's skill first (`api.warm`: the baseline, every val round against it, the confirmation's fresh samples,
   test, train) into a run directory (output `shard-path`, uploaded as an artifact).
2. One job with `command: merge` merges the artifacts (downloaded into `shards`) into the call cache and writes
   the skill's eval report from them (output `cache-path`: the cache directory, uploaded as an artifact).
3. The optimize job downloads that cache into its own and runs as usual: its baseline is all cache hits.

A shard job spends only when the optimize job could open its pull request: like the optimize run it calls no
model on a read-only token (unless dry-run), and stops with exit 5 when GitHub refused this workflow's pull
request before. With a `skills:` config each shard warms every skill (one run directory each, under its
`shard-path`) and the merge job merges each skill's shards into the one cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import api
from ..errors import ConfigError
from ..runtime import stderr_log
from .context import Context
from .default_branch import stop_if_refused


def _may_spend(ctx: Context, what: str) -> bool:
    can = ctx.access()
    if not can.writable and not ctx.t.dry_run:
        ctx.read_only(f"skillopt did not run the {what}: {can.reason}, so the optimize job could not open or update "
                      "its pull request, and it called no model. Pass a token with write access in `github-token`, "
                      "or set `dry-run: true` for a report only.", "read-only token: nothing run")
        return False
    stop_if_refused(ctx)
    return True


def shard(ctx: Context) -> None:
    i, n = ctx.t.extra["shard"]
    if not _may_spend(ctx, f"warm-up shard {i}/{n}"):
        return
    config = ctx.workspace / ctx.s.config
    parent = ctx.out_dir(f"warm-{i}-of-{n}")
    total = 0
    for name in api.skills(config):
        run = api.warm(config, shard=(i, n), out=parent / (name or "skill"), log=stderr_log, skill_name=name or None)
        total += run.rollouts
    ctx.result.shard_path = str(parent)
    ctx.result.title = f"warm-up shard {i}/{n}: {total} rollout(s)"
    ctx.log(f"warm-up shard {i}/{n}: {total} rollout(s) in {parent}; the merge job puts them in the cache")


def merge(ctx: Context) -> None:
    if not _may_spend(ctx, "warm-up merge"):
        return
    config = ctx.workspace / ctx.s.config
    where = ctx.workspace / ctx.s.shards
    if not where.is_dir() or not any(where.rglob("shard.json")):
        raise ConfigError(f"no warm-up shard artifacts in `{ctx.s.shards}`: the shard jobs failed or uploaded nothing "
                          "(see their logs)", None, None, "fix the failed shard job(s) and re-run all jobs; the merge "
                          "job must `needs:` them and download their artifacts into the `shards` input's directory")
    rollouts, cache = 0, ""
    for k, name in enumerate(api.skills(config)):
        run = api.merge([where], config, out=ctx.out_dir(f"warm-merge-{name}" if name else "warm-merge"),
                        log=stderr_log, skill_name=name)
        if run.report.kind != "eval" or not (run.report.sharding or {}).get("warm"):
            raise ConfigError(f"the artifacts in `{ctx.s.shards}` are not a warm-up's (`shard: i/n` on a schedule "
                              "or workflow_dispatch run)", None, None, "download only this workflow run's warm-up "
                              "shard artifacts")
        ctx.record(run, primary=k == 0)
        sharding = run.report.sharding or {}
        rollouts += int(sharding.get("rollouts", 0))
        cache = cache or _relative(Path(sharding["cache_dir"]), ctx.workspace)
    ctx.result.cache_path = cache
    ctx.result.title = f"warm-up merged: {rollouts} rollout(s) in the cache for the optimize job"
    ctx.log(f"warm-up merged: {rollouts} rollout(s) in {ctx.result.cache_path}; upload it for the optimize job")


def _relative(path: Path, root: Path) -> str:
    """The path as a workflow's `path:` input wants it: relative to the workspace when inside it."""
    full = path.resolve()
    return Path(os.path.relpath(full, root)).as_posix() if full.is_relative_to(root) else str(full)
