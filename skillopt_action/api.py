"""The public Python API: what the `skillopt` CLI and the GitHub Action call, and what your scripts can call.

    from skillopt_action import api

    check = api.validate(".github/skillopt.yml")             # raises ConfigError (file:line + fix) on bad input
    result = api.optimize(".github/skillopt.yml", epochs=1, out="runs/try")
    print(result.improved, result.report.val)                 # {'baseline': 0.33, 'best': 0.5, 'n': 8, ...}
    result.write()                                            # best_skill.md, report.json, report.md in runs/try
    gate = api.compare(".github/skillopt.yml", base_skill=old_text, candidate_skill=new_text)
    print(gate.report.gate["reason"])

Every function takes the config as a path or a loaded `Config`; without one, `.github/skillopt.yml` is looked
for in the current directory and its parents (up to the repository root), as git finds `.git`. Each returns a
`RunResult` whose `report` is a typed `report.Report`.

Run directories: `out` is the run's directory, used as given. Otherwise every run gets its own directory
`<runs>/<YYYYmmdd-HHMMSS>-<kind>/` in a runs directory (`runs`, default `<project>/.skillopt/runs`) whose
`latest` points at the newest, so a re-run never overwrites an earlier run's report and spend;
`optimize(resume=True)` then continues the newest optimize run there. Nothing is written except the run
directory (trajectories, the optimize checkpoint) until you call `RunResult.write()`. Errors are
`errors.SkillOptError` subclasses whose `exit_code` the CLI documents: ConfigError (2; `ConfigErrors` when
`validate` found several), ProviderError (3), BudgetExceeded (4).

Fan-out: `evaluate(..., shard=(i, n))` and `compare(..., shard=(i, n))` run one deterministic slice of the
rollouts on this machine and return a `ShardRun` (its run directory is the artifact); `merge(dirs)` turns the
n artifacts into the unsharded run's report and decision (shard.py explains how, also for the sequential gate).
`warm(..., shard=(i, n))` draws what an optimize run asks of its starting skill first; merged, it fills the cache.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from . import drift, evaluation, loop, package
from . import shard as sharding
from .config import CHAT_PROVIDERS, DEFAULT_CONFIG, Config, load_config, project_root_for, skill_names
from .errors import ConfigError, ConfigErrors
from .gate import max_power_warning
from .report import Report
from .runtime import Runtime, quiet_log, write_json, write_text
from .scorers import SCORER_TYPES, ScorerContext, check_tasks
from .shard import ShardRun
from .shard import parse_spec as parse_shard
from .targets import make_target
from .tasks import assign_splits, load_tasks
from .types import Task
from .yamlfile import Located, load

__all__ = ["Config", "Report", "RunResult", "ShardRun", "Validation", "WatchResult", "compare", "evaluate",
           "find_config", "find_run", "load_config", "merge", "optimize", "parse_shard", "runs_home", "skills",
           "validate", "warm", "watch"]

Log = Callable[[str], None]
RUNS = Path(".skillopt") / "runs"  # under the project root: one directory per run, and `latest`
LATEST = "latest"
BASELINE = Path(".skillopt") / "baseline.json"  # under the project root: the drift watch's stored scores
KINDS = ("optimize", "eval", "compare", "watch")
_RUN_NAME = re.compile(r"^(\d{8}-\d{6})-(optimize|eval|compare|watch)(?:-(\d+))?$")


@dataclass
class RunResult:
    """What a run produced. `write()` puts it on disk (the CLI does; your script may not need to)."""

    report: Report
    baseline_skill: str  # the skill text the run started from (compare: the base skill)
    best_skill: str  # the best skill found (eval: the same text; compare: the candidate)
    out: Path  # the run directory (trajectories.jsonl, and state.json for optimize)

    @property
    def improved(self) -> bool:
        """optimize: a changed skill passed the gate; compare: the candidate passed the gate."""
        return self.report.improved

    def write(self, out: str | Path | None = None) -> Path:
        """Write report.json, report.md and (for optimize) best_skill.md into `out` (default: the run
        directory); a skill package's best version is the folder best_skill/. Returns the path of report.json."""
        target = Path(out) if out is not None else self.out
        path = self.report.write(target)
        if self.report.kind == "optimize":
            if package.is_package(self.best_skill):
                _write_folder(target / "best_skill", package.contents(self.best_skill))
            else:
                write_text(target / "best_skill.md", self.best_skill)
        return path


def _write_folder(dest: Path, files: dict[str, bytes]) -> None:
    """A skill package's files under `dest`: text through redact (masked, atomic), binary assets as they are."""
    for rel, data in files.items():
        try:
            write_text(dest / rel, data.decode("utf-8"))
        except UnicodeDecodeError:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)


@dataclass
class Validation:
    """A config and its tasks, checked the way a run would use them."""

    config: Config
    tasks: list[Task]
    splits: dict[str, list[Task]]
    max_target_calls: int  # worst case of one optimize run, before cache hits
    max_optimizer_calls: int
    warnings: list[str] = field(default_factory=list)


def find_config(start: str | Path | None = None) -> Path:
    """The nearest `.github/skillopt.yml`: in `start` (default: the current directory) or a parent, stopping at
    the repository root (the first directory with `.git`). Raises ConfigError when there is none."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / DEFAULT_CONFIG).is_file():
            return d / DEFAULT_CONFIG
        if (d / ".git").exists():
            break
    raise ConfigError(f"no {DEFAULT_CONFIG} in {here} or its parent directories (up to the repository root)",
                      None, None, "run `skillopt init` next to your skill file, or pass --config PATH")


def _config(config: Config | str | Path | None, skill_name: str | None = None) -> Config:
    if isinstance(config, Config):
        return config
    return load_config(config if config is not None else find_config(), skill_name)


def skills(config: str | Path | None = None) -> list[str]:
    """The names of the skills a config lists under `skills:`, in order; [""] for a one-skill config. Each is run
    on its own: pass the name as `skill_name` to the other functions."""
    return skill_names(config if config is not None else find_config())


def runs_home(config: Config | str | Path | None = None, skill_name: str | None = None) -> Path:
    """Where runs without an explicit `out` go: `<project root>/.skillopt/runs` (a skill of a `skills:` config:
    `.skillopt/runs/<name>`)."""
    cfg = _config(config, skill_name)
    return cfg.root / RUNS / cfg.name if cfg.name else cfg.root / RUNS


def _runs_in(home: Path) -> list[Path]:
    """Run directories directly under `home`, oldest first."""
    if not home.is_dir():
        return []
    found = []
    for d in home.iterdir():
        m = _RUN_NAME.match(d.name)
        if m and d.is_dir() and not d.is_symlink():
            found.append(((m.group(1), int(m.group(3) or 1)), d))
    return [d for _, d in sorted(found)]


def find_run(path: str | Path, kind: str | None = None) -> Path | None:
    """The run `path` names: `path` itself when it holds a run (report.json or state.json), else the run its
    `latest` points at, else (for `kind`) the newest run of that kind under it. None when there is none."""
    p = Path(path)
    holds = (p / "report.json").is_file() or (p / "state.json").is_file()
    if holds and (kind is None or _kind_of(p) in (kind, None)):
        return p
    latest = p / LATEST
    target = None
    if latest.is_symlink() or latest.is_dir():
        target = latest.resolve()
    elif latest.is_file():
        target = p / latest.read_text(encoding="utf-8").strip()
    if target is not None and target.is_dir() and (kind is None or _kind_of(target) == kind):
        return target
    runs = [d for d in _runs_in(p) if kind is None or _kind_of(d) == kind]
    return runs[-1] if runs else None


def _kind_of(run: Path) -> str | None:
    m = _RUN_NAME.match(run.name)
    return m.group(2) if m else None


def _run_dir(home: Path, kind: str, *, resume: bool = False) -> Path:
    """A fresh run directory `<home>/<YYYYmmdd-HHMMSS>-<kind>[-n]/` (created now), or with `resume` the newest
    optimize run in `home` (or `home` itself when it is one)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if resume:
        found = find_run(home, "optimize")
        if found is None or not (found / "state.json").is_file():
            raise ConfigError(f"nothing to resume: no optimize run with a checkpoint (state.json) in {home}", None,
                              None, "run without --resume, or pass the --out of the run to continue")
        return found
    home.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    n = 1
    while True:
        d = home / (f"{stamp}-{kind}" + (f"-{n}" if n > 1 else ""))
        try:
            d.mkdir()
            return d
        except FileExistsError:
            n += 1


def _mark_latest(run: Path) -> None:
    """Point `<runs directory>/latest` at `run` (a relative symlink; a text file naming the run where the file
    system has no symlinks). A real directory called `latest` (the run directory of skillopt 0.1) is kept:
    it is renamed to a dated run directory first."""
    home, link = run.parent, run.parent / LATEST
    if link.is_dir() and not link.is_symlink():
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(link.stat().st_mtime))
        n, dest = 1, home / f"{stamp}-optimize"
        while dest.exists():
            n += 1
            dest = home / f"{stamp}-optimize-{n}"
        link.rename(dest)
    tmp = home / f".{LATEST}.{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(run.name, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        if tmp.is_symlink():
            tmp.unlink()
        if link.is_symlink():
            link.unlink()
        link.write_text(run.name + "\n", encoding="utf-8")


def _runtime(config: Config | str | Path | None, out: str | Path | None, runs: str | Path | None, kind: str,
             log: Log | None, no_cache: bool, keep_workspaces: bool, resume: bool = False,
             skill_name: str | None = None) -> Runtime:
    if out is not None and runs is not None:
        raise ValueError("pass `out` (the run's own directory) or `runs` (a directory of runs), not both")
    cfg = _config(config, skill_name)
    # tasks first: a config or task error must not leave an empty run directory behind
    tasks = load_tasks(cfg.tasks, cfg.root, str(cfg.path), cfg.line_of("tasks"))
    splits = assign_splits(tasks, cfg.split_ratios, cfg.split_seed)
    home: Path | None = None
    if out is None:
        home = Path(runs) if runs is not None else cfg.root / RUNS
        home = home / cfg.name if cfg.name else home  # each skill of a `skills:` config keeps its own runs
        out_dir = _run_dir(home, kind, resume=resume)
    else:
        out_dir = Path(out)
    try:
        rt = Runtime(cfg, out_dir, log=log or quiet_log, no_cache=no_cache, keep_workspaces=keep_workspaces,
                     tasks=tasks, splits=splits, resume=resume)
    except BaseException:
        if home is not None and not resume and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    if home is not None and out_dir.parent == home:
        _mark_latest(out_dir)
    return rt


def _task_globs(path: Path) -> tuple[list[str], Path, int | None] | None:
    """The `tasks:` globs of a config that did not load, so validate can still check the task files."""
    try:
        raw = load(path)
    except ConfigError:
        return None
    if not isinstance(raw, Located):
        return None
    globs = raw.get("tasks")
    if isinstance(globs, str):
        globs = [globs]
    if not isinstance(globs, list) or not globs or not all(isinstance(g, str) for g in globs):
        return None
    return list(globs), project_root_for(path), raw.line_of("tasks")


def budget_warning(cfg: Config, splits: dict[str, list[Task]], plan_warning: str | None) -> str | None:
    """loop.plan's warning, worded right when the cap cannot even pay for the baseline."""
    if cfg.max_calls is None or plan_warning is None:
        return plan_warning
    n_val, samples = len(splits["val"]), cfg.gate.samples
    if cfg.max_calls < n_val * samples:
        return (f"budget.max_calls = {cfg.max_calls} cannot cover even the baseline ({n_val} val task(s) x "
                f"{samples} sample(s) = {n_val * samples} calls): optimize would stop with exit 4 before measuring "
                f"anything; raise budget.max_calls to at least {n_val * samples}")
    return plan_warning


def validate(config: Config | str | Path | None = None, skill_name: str | None = None) -> Validation:
    """Load and check the config, every task file and every scorer; find the agent CLI of a harness target.
    Every problem is collected in one pass: raises ConfigError (one problem) or ConfigErrors (several), each
    with file:line and a fix."""
    problems: list[ConfigError] = []
    cfg: Config | None = None
    path = config.path if isinstance(config, Config) else Path(config) if config is not None else find_config()
    try:
        cfg = _config(config if isinstance(config, Config) else path, skill_name)
    except ConfigError as exc:
        problems.extend(ConfigErrors.of(exc))
    later: list[ConfigError] = []
    where = (cfg.tasks, cfg.root, cfg.line_of("tasks")) if cfg is not None else _task_globs(path)
    tasks = load_tasks(where[0], where[1], str(path), where[2], later) if where is not None else []
    ctx = ScorerContext(project_root=cfg.root if cfg is not None else project_root_for(path), judge=object())
    for t in tasks:
        try:
            check_tasks([t], ctx)
        except ConfigError as exc:
            later.extend(ConfigErrors.of(exc))
    if cfg is not None and cfg.target.provider in CHAT_PROVIDERS:
        for t in tasks:
            ws = [s["type"] for s in t.scorers if SCORER_TYPES[s["type"]].needs_workspace]
            if ws:
                file, line = t.where()
                later.append(ConfigError(
                    f"task {t.id!r} uses the workspace scorer {ws[0]!r}, but the target {cfg.target.provider!r} is "
                    "a chat model with no workspace", file, line,
                    "use an agent target (provider: claude-code, codex or command), or a text scorer"))
    elif cfg is not None:
        try:
            make_target(cfg.target, cfg.root)  # finds the agent binary: a missing CLI is reported now, not mid-run
        except ConfigError as exc:
            later.extend(ConfigErrors.of(exc))
    # the config's own problems first (in file order), then the tasks' by file and line
    ordered = problems + sorted(later, key=lambda p: (p.file or "", p.line or 0))
    if ordered:
        raise ordered[0] if len(ordered) == 1 else ConfigErrors(ordered)
    assert cfg is not None
    splits = assign_splits(tasks, cfg.split_ratios, cfg.split_seed)
    n_target, n_opt, plan_warning = loop.plan(cfg, splits, cfg.loop.epochs)
    warning = budget_warning(cfg, splits, plan_warning)
    warnings = [warning] if warning else []
    if cfg.gate.mode == "paired":
        power = max_power_warning(len(splits["val"]), cfg.gate.alpha, cfg.gate.resamples)
        if power:
            warnings.append(power)
    return Validation(cfg, tasks, splits, n_target, n_opt, warnings)


@overload
def evaluate(config: Config | str | Path | None = ..., *, skill: str | None = ..., splits: Sequence[str] = ...,
             out: str | Path | None = ..., runs: str | Path | None = ..., log: Log | None = ...,
             no_cache: bool = ..., keep_workspaces: bool = ..., shard: None = ...,
             skill_name: str | None = ...) -> RunResult: ...
@overload
def evaluate(config: Config | str | Path | None = ..., *, skill: str | None = ..., splits: Sequence[str] = ...,
             out: str | Path | None = ..., runs: str | Path | None = ..., log: Log | None = ...,
             no_cache: bool = ..., keep_workspaces: bool = ..., shard: tuple[int, int],
             skill_name: str | None = ...) -> ShardRun: ...
def evaluate(config: Config | str | Path | None = None, *, skill: str | None = None,
             splits: Sequence[str] = ("val",), out: str | Path | None = None, runs: str | Path | None = None,
             log: Log | None = None, no_cache: bool = False, keep_workspaces: bool = False,
             shard: tuple[int, int] | None = None, skill_name: str | None = None) -> RunResult | ShardRun:
    """Score a skill (the text `skill`, default the config's skill file) on `splits` (train, val, test).
    With `shard=(i, n)`: run only shard i of n's rollouts into the run directory and decide nothing; `merge`
    the n run directories for the report (see shard.py)."""
    if shard is not None:
        sharding.check_spec(shard)
    rt = _runtime(config, out, runs, "eval", log, no_cache, keep_workspaces, skill_name=skill_name)
    text = skill if skill is not None else read_skill(rt.cfg.skill_path)
    if shard is not None:
        return sharding.run_eval(rt, text, list(splits), shard)
    report = evaluation.evaluate(rt, text, list(splits))
    return RunResult(report, text, text, rt.out)


def optimize(config: Config | str | Path | None = None, *, skill: str | None = None, epochs: int | None = None,
             resume: bool = False, memory: str | Path | None = None, out: str | Path | None = None,
             runs: str | Path | None = None, log: Log | None = None, no_cache: bool = False,
             keep_workspaces: bool = False, skill_name: str | None = None) -> RunResult:
    """Train the skill (the text `skill`, default the config's skill file). The user's skill file is never
    written; the result is `RunResult.best_skill`. `memory` is a JSONL file of rejected edits read and updated
    across runs; `resume` continues the checkpoint in `out` (without `out`: the newest optimize run)."""
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, not {epochs}", None, None,
                          "pass --epochs 1 or more, or leave it out to use `loop.epochs` from the config")
    rt = _runtime(config, out, runs, "optimize", log, no_cache, keep_workspaces, resume=resume,
                  skill_name=skill_name)
    report, baseline, best = loop.optimize(rt, skill_text=skill, epochs=epochs, resume=resume,
                                           memory=Path(memory) if memory is not None else None)
    return RunResult(report, baseline, best, rt.out)


@overload
def compare(config: Config | str | Path | None = ..., *, base_skill: str, candidate_skill: str,
            splits: Sequence[str] = ..., out: str | Path | None = ..., runs: str | Path | None = ...,
            log: Log | None = ..., no_cache: bool = ..., keep_workspaces: bool = ..., shard: None = ...,
            skill_name: str | None = ...) -> RunResult: ...
@overload
def compare(config: Config | str | Path | None = ..., *, base_skill: str, candidate_skill: str,
            splits: Sequence[str] = ..., out: str | Path | None = ..., runs: str | Path | None = ...,
            log: Log | None = ..., no_cache: bool = ..., keep_workspaces: bool = ...,
            shard: tuple[int, int], skill_name: str | None = ...) -> ShardRun: ...
def compare(config: Config | str | Path | None = None, *, base_skill: str, candidate_skill: str,
            splits: Sequence[str] = ("val", "test"), out: str | Path | None = None, runs: str | Path | None = None,
            log: Log | None = None, no_cache: bool = False, keep_workspaces: bool = False,
            shard: tuple[int, int] | None = None, skill_name: str | None = None) -> RunResult | ShardRun:
    """Gate the skill text `candidate_skill` against `base_skill` on the config's tasks (the val gate decides).
    With `shard=(i, n)`: run only shard i of n's rollouts (for a sequential gate: every round the test could ask
    of its tasks) and decide nothing; `merge` the n run directories for the decision."""
    if shard is not None:
        sharding.check_spec(shard)
    rt = _runtime(config, out, runs, "compare", log, no_cache, keep_workspaces, skill_name=skill_name)
    if shard is not None:
        return sharding.run_compare(rt, base_skill, candidate_skill, list(splits), shard)
    report = evaluation.compare(rt, base_skill, candidate_skill, list(splits))
    return RunResult(report, base_skill, candidate_skill, rt.out)


def warm(config: Config | str | Path | None = None, *, shard: tuple[int, int] = (1, 1), skill: str | None = None,
         out: str | Path | None = None, runs: str | Path | None = None, log: Log | None = None,
         no_cache: bool = False, keep_workspaces: bool = False, skill_name: str | None = None) -> ShardRun:
    """Shard i of n of a warm-up: the rollouts an optimize run asks of the skill (`skill`, default the config's)
    first (`loop.warm_samples`). `merge` the n run directories before `optimize`: they fill the cache, so the
    optimize run's baseline costs no call (README, "Scaling out")."""
    sharding.check_spec(shard)
    rt = _runtime(config, out, runs, "eval", log, no_cache, keep_workspaces, skill_name=skill_name)
    return sharding.run_warm(rt, skill if skill is not None else read_skill(rt.cfg.skill_path), shard)


def merge(shards: Sequence[str | Path], config: Config | str | Path | None = None, *, out: str | Path | None = None,
          runs: str | Path | None = None, log: Log | None = None, no_cache: bool = False,
          skill_name: str | None = None) -> RunResult:
    """Merge the run directories of the n shards of one `evaluate` / `compare` / `warm` (`shard=(i, n)`) into the
    report and the gate decision the unsharded run would have made: their rollouts fill the cache (same keys), then
    the same evaluation runs over it (a warm-up's: the skill on val and test); only a rollout no shard supplied
    costs a call. Run it with the shards' config (same commit). `skill_name`: one skill's shards among several
    (default: the skill the shards name). ConfigError (exit 2) for a missing, duplicate or foreign shard."""
    found = sharding.read_shards(shards, skill_name)  # checked before a run directory is made
    rt = _runtime(config, out, runs, "compare" if found.kind == "compare" else "eval", log, no_cache, False,
                  skill_name=skill_name or found.skill_name or None)
    sharding.check_config(rt, found)
    report, base, best = sharding.merge(rt, found)
    return RunResult(report, base, best, rt.out)


def read_skill(path: str | Path) -> str:
    """A skill file's text, or a skill folder packed into one text (package.py); ConfigError when it is
    missing or not UTF-8."""
    return package.read(path)


@dataclass
class WatchResult:
    """A drift check of the current skill against the stored baseline (`watch`)."""

    drifted: bool
    reasons: list[str]  # why it drifted (score moved beyond noise, the target model changed), or why not
    baseline: dict  # the stored baseline (as read, or as just recorded)
    current: dict  # this run's per-task scores in the baseline's format
    delta: float | None  # current mean - baseline mean on the baseline's tasks
    p_value: float | None  # two-sided paired sign-flip p over tasks
    report: Report
    recorded: bool  # True when there was no baseline and this run recorded one
    out: Path | None = None  # the run directory (trajectories.jsonl; `report.write(out)` adds the report)
    path: Path | None = None  # the baseline file compared with (or just written)

    def write(self, path: str | Path) -> Path:
        """Store this run's scores as the new baseline (after a reviewed change, or to start watching)."""
        return write_baseline(Path(path), self.current)

    def rows(self) -> list[dict]:
        """Every task: baseline score, current score and change, worst change first (`drift.rows`)."""
        return drift.rows(self.baseline, self.current)

    def view(self) -> dict:
        """The reasons and the per-task table as plain rows (`drift.view`), as the CLI and GitHub show them."""
        return drift.view(self.baseline, self.current, self.reasons)


def watch(config: Config | str | Path | None = None, *, baseline: str | Path | None = None, alpha: float = 0.05,
          out: str | Path | None = None, runs: str | Path | None = None, log: Log | None = None,
          skill_name: str | None = None) -> WatchResult:
    """Re-score the config's skill on val with fresh samples (no cache) and compare it, task by task, with the
    stored baseline: drift is a paired change beyond noise (two-sided sign-flip p < alpha over tasks) or a change
    of the model identity the target reports. Without a baseline file (default `<project root>/.skillopt/
    baseline.json`), this run's scores become the baseline."""
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1, not {alpha:g}", None, None,
                          "pass e.g. --alpha 0.05 (a smaller alpha needs a larger change before it calls drift)")
    cfg = _config(config, skill_name)
    rt = _runtime(cfg, out, runs, "watch", log, True, False, skill_name=skill_name)
    skill = read_skill(rt.cfg.skill_path)
    result = evaluation.evaluate(rt, skill, ["val"])
    current = drift.snapshot(rt, skill, result)
    default = BASELINE if skill_name is None else BASELINE.with_name(f"baseline-{skill_name}.json")
    path = Path(baseline) if baseline is not None else cfg.root / default
    if not path.is_file():
        write_baseline(path, current)
        return WatchResult(False, [f"no baseline yet: recorded this run's scores in {path}"], current, current,
                           None, None, result, True, rt.out, path)
    stored = drift.read_baseline(path)
    verdict = drift.compare(stored, current, alpha)
    return WatchResult(verdict["drifted"], verdict["reasons"], stored, current, verdict["delta"],
                       verdict["p_value"], result, False, rt.out, path)


def write_baseline(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    return path
