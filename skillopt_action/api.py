"""The public Python API: what the `skillopt` CLI and the GitHub Action call, and what your scripts can call.

    from skillopt_action import api

    check = api.validate(".github/skillopt.yml")             # raises ConfigError (file:line + fix) on bad input
    result = api.optimize(".github/skillopt.yml", epochs=1, out="runs/try")
    print(result.improved, result.report.val)                 # {'baseline': 0.33, 'best': 0.5, 'n': 8, ...}
    result.write()                                            # best_skill.md, report.json, report.md in runs/try
    gate = api.compare(".github/skillopt.yml", base_skill=old_text, candidate_skill=new_text)
    print(gate.report.gate["reason"])

Every function takes the config as a path (default `.github/skillopt.yml`) or a loaded `Config`, and returns
a `RunResult` whose `report` is a typed `report.Report`. Nothing is written except the run directory `out`
(trajectories, the optimize checkpoint) until you call `RunResult.write()`. Errors are `errors.SkillOptError`
subclasses whose `exit_code` the CLI documents: ConfigError (2), ProviderError (3), BudgetExceeded (4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import drift, evaluation, loop
from .config import CHAT_PROVIDERS, Config, check_utf8, load_config
from .errors import ConfigError
from .gate import max_power_warning
from .report import Report
from .runtime import Runtime, quiet_log, write_json, write_text
from .scorers import SCORER_TYPES, ScorerContext, check_tasks
from .targets import make_target
from .tasks import assign_splits, load_tasks
from .types import Task

__all__ = ["Config", "Report", "RunResult", "Validation", "WatchResult", "compare", "evaluate", "load_config",
           "optimize", "validate", "watch"]

Log = Callable[[str], None]


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
        directory). Returns the path of report.json."""
        target = Path(out) if out is not None else self.out
        path = self.report.write(target)
        if self.report.kind == "optimize":
            write_text(target / "best_skill.md", self.best_skill)
        return path


@dataclass
class Validation:
    """A config and its tasks, checked the way a run would use them."""

    config: Config
    tasks: list[Task]
    splits: dict[str, list[Task]]
    max_target_calls: int  # worst case of one optimize run, before cache hits
    max_optimizer_calls: int
    warnings: list[str] = field(default_factory=list)


def _config(config: Config | str | Path | None) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def _runtime(config: Config | str | Path | None, out: str | Path | None, kind: str, log: Log | None,
             no_cache: bool, keep_workspaces: bool, resume: bool = False) -> Runtime:
    cfg = _config(config)
    out_dir = Path(out) if out is not None else cfg.root / ".skillopt" / "runs" / kind
    return Runtime(cfg, out_dir, log=log or quiet_log, no_cache=no_cache, keep_workspaces=keep_workspaces,
                   resume=resume)


def validate(config: Config | str | Path | None = None) -> Validation:
    """Load and check the config, every task file and every scorer; find the agent CLI of a harness target.
    Raises ConfigError (with file:line and a fix) on the first problem."""
    cfg = _config(config)
    tasks = load_tasks(cfg.tasks, cfg.root, str(cfg.path), cfg.line_of("tasks"))
    check_tasks(tasks, ScorerContext(project_root=cfg.root, judge=object()))
    if cfg.target.provider in CHAT_PROVIDERS:
        for t in tasks:
            ws = [s["type"] for s in t.scorers if SCORER_TYPES[s["type"]].needs_workspace]
            if ws:
                file, line = t.where()
                raise ConfigError(f"task {t.id!r} uses the workspace scorer {ws[0]!r}, but the target "
                                  f"{cfg.target.provider!r} is a chat model with no workspace", file, line,
                                  "use an agent target (provider: claude-code, codex or command), or a text scorer")
    else:
        make_target(cfg.target, cfg.root)  # finds the agent binary: a missing CLI is reported now, not mid-run
    splits = assign_splits(tasks, cfg.split_ratios, cfg.split_seed)
    n_target, n_opt, budget_warning = loop.plan(cfg, splits, cfg.loop.epochs)
    warnings = [budget_warning] if budget_warning else []
    if cfg.gate.mode == "paired":
        power = max_power_warning(len(splits["val"]), cfg.gate.alpha, cfg.gate.resamples)
        if power:
            warnings.append(power)
    return Validation(cfg, tasks, splits, n_target, n_opt, warnings)


def evaluate(config: Config | str | Path | None = None, *, skill: str | None = None,
             splits: Sequence[str] = ("val",), out: str | Path | None = None, log: Log | None = None,
             no_cache: bool = False, keep_workspaces: bool = False) -> RunResult:
    """Score a skill (the text `skill`, default the config's skill file) on `splits` (train, val, test)."""
    rt = _runtime(config, out, "eval", log, no_cache, keep_workspaces)
    text = skill if skill is not None else read_skill(rt.cfg.skill_path)
    report = evaluation.evaluate(rt, text, list(splits))
    return RunResult(report, text, text, rt.out)


def optimize(config: Config | str | Path | None = None, *, skill: str | None = None, epochs: int | None = None,
             resume: bool = False, memory: str | Path | None = None, out: str | Path | None = None,
             log: Log | None = None, no_cache: bool = False, keep_workspaces: bool = False) -> RunResult:
    """Train the skill (the text `skill`, default the config's skill file). The user's skill file is never
    written; the result is `RunResult.best_skill`. `memory` is a JSONL file of rejected edits read and updated
    across runs; `resume` continues the checkpoint in `out`."""
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, not {epochs}", None, None,
                          "pass --epochs 1 or more, or leave it out to use `loop.epochs` from the config")
    rt = _runtime(config, out, "latest", log, no_cache, keep_workspaces, resume=resume)
    report, baseline, best = loop.optimize(rt, skill_text=skill, epochs=epochs, resume=resume,
                                           memory=Path(memory) if memory is not None else None)
    return RunResult(report, baseline, best, rt.out)


def compare(config: Config | str | Path | None = None, *, base_skill: str, candidate_skill: str,
            splits: Sequence[str] = ("val", "test"), out: str | Path | None = None, log: Log | None = None,
            no_cache: bool = False, keep_workspaces: bool = False) -> RunResult:
    """Gate the skill text `candidate_skill` against `base_skill` on the config's tasks (the val gate decides)."""
    rt = _runtime(config, out, "compare", log, no_cache, keep_workspaces)
    report = evaluation.compare(rt, base_skill, candidate_skill, list(splits))
    return RunResult(report, base_skill, candidate_skill, rt.out)


def read_skill(path: str | Path) -> str:
    """A skill file's text; ConfigError when it is missing."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("skill file not found", str(path), None, "check the path given to --skill")
    check_utf8(p)
    return p.read_text(encoding="utf-8")


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

    def write(self, path: str | Path) -> Path:
        """Store this run's scores as the new baseline (after a reviewed change, or to start watching)."""
        return write_baseline(Path(path), self.current)


def watch(config: Config | str | Path | None = None, *, baseline: str | Path, alpha: float = 0.05,
          out: str | Path | None = None, log: Log | None = None) -> WatchResult:
    """Re-score the config's skill on val with fresh samples (no cache) and compare it, task by task, with the
    stored baseline: drift is a paired change beyond noise (two-sided sign-flip p < alpha over tasks) or a change
    of the model identity the target reports. Without a baseline file, this run's scores become the baseline."""
    rt = _runtime(config, out, "watch", log, True, False)
    skill = read_skill(rt.cfg.skill_path)
    result = evaluation.evaluate(rt, skill, ["val"])
    current = drift.snapshot(rt, skill, result)
    path = Path(baseline)
    if not path.is_file():
        write_baseline(path, current)
        return WatchResult(False, [f"no baseline yet: recorded this run's scores in {path}"], current, current,
                           None, None, result, True)
    stored = drift.read_baseline(path)
    verdict = drift.compare(stored, current, alpha)
    return WatchResult(verdict["drifted"], verdict["reasons"], stored, current, verdict["delta"],
                       verdict["p_value"], result, False)


def write_baseline(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    return path
