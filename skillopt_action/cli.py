"""The `skillopt` command line: argparse over the public API (`api.py`); no logic of its own beyond
arguments, paths shown relative to the current directory, and output formats.

Global options (--config, --out, --no-cache, --keep-workspaces, --quiet) are accepted before or after the
command, as in `gh` and `pytest`; an option that does not apply to the command is refused (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import api, package, terminal
from .cli_args import GLOBALS, parser
from .config import project_root_for, schema_json
from .errors import EXIT_DRIFT, EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, ConfigError, ConfigErrors, SkillOptError
from .github import action
from .init import init
from .redact import guard_streams
from .render import render
from .report import render_markdown
from .runtime import quiet_log, stderr_log

# ---- paths as the user sees them


class Paths:
    """Shows paths relative to the current directory: `evals/t.yml` when under it, `../evals/t.yml` when the
    current directory is inside the project, absolute otherwise."""

    def __init__(self, project: Path | None = None):
        self.cwd = Path.cwd().resolve()
        self.project = project.resolve() if project is not None else None

    def show(self, path: str | Path) -> str:
        p = Path(path)
        if not p.is_absolute():
            return str(p)
        try:
            rel = os.path.relpath(p, self.cwd)
        except ValueError:  # another drive
            return str(p)
        if not rel.startswith(".."):
            return rel
        inside = self.project is not None and self.cwd.is_relative_to(self.project) and p.is_relative_to(self.project)
        return rel if inside else str(p)

    def text(self, message: str) -> str:
        """`message` with every absolute path in it shown as `show` would."""
        return re.sub(r"(?<![\w.:/])(/[^\s:'\"`,()]+)", lambda m: self.show(m.group(1)), message)

    def error(self, exc: ConfigError) -> dict[str, Any]:
        return {"file": self.show(exc.file) if exc.file else None, "line": exc.line,
                "message": self.text(exc.message), "fix": self.text(exc.fix) if exc.fix else None}

    def format(self, exc: ConfigError) -> str:
        e = self.error(exc)
        where = f"{e['file']}:{e['line']}: " if e["file"] and e["line"] else f"{e['file']}: " if e["file"] else ""
        return f"{where}{e['message']}" + (f"\n  fix: {e['fix']}" if e["fix"] else "")


def _project_of(args: argparse.Namespace) -> Path | None:
    """The project root the command works on, when it can be found (for showing paths)."""
    try:
        config = Path(args.config) if getattr(args, "config", None) else api.find_config()
    except ConfigError:
        return None
    return project_root_for(config) if config.is_file() else None


# ---- commands


def _log(args) -> Callable[[str], None]:
    return quiet_log if args.quiet else stderr_log


def _note(args, line: str) -> None:
    if not args.quiet:
        print(line, file=sys.stderr)


def _run_options(args) -> dict:
    return {"runs": Path(args.out) if args.out else None, "log": _log(args), "no_cache": args.no_cache,
            "keep_workspaces": args.keep_workspaces}


def _names(args) -> list[str | None]:
    """The skills a command runs on: --skill-name, else every skill the config lists (None: a one-skill config)."""
    if args.skill_name:
        return [args.skill_name]
    return [n or None for n in api.skills(args.config)]


def each_skill(args, paths: Paths, command: Callable[[Any, Paths, str | None], int]) -> int:
    """Run `command` for each skill; a failing skill is reported and the others still run. The exit code is the
    first failure's (0 when all succeeded)."""
    names = _names(args)
    if len(names) == 1:
        return command(args, paths, names[0])
    code = EXIT_OK
    for name in names:
        _note(args, f"== skill {name}")
        try:
            result = command(args, paths, name)
        except ConfigError as exc:
            print("\n".join(f"error: [{name}] {paths.format(e)}" for e in ConfigErrors.of(exc)), file=sys.stderr)
            result = exc.exit_code
        except SkillOptError as exc:
            print(f"error: [{name}] {paths.text(str(exc))}", file=sys.stderr)
            result = exc.exit_code
        code = code or result
    if code:
        _note(args, f"at least one of {len(names)} skills failed (exit {code}); the others ran")
    return code


def cmd_validate(args, paths: Paths) -> int:
    return each_skill(args, paths, _validate)


def _validate(args, paths: Paths, name: str | None) -> int:
    try:
        check = api.validate(args.config, name)
    except ConfigError as exc:
        if not args.json:
            raise
        errors = [paths.error(e) for e in ConfigErrors.of(exc)]
        try:
            config: str | None = paths.show(args.config or api.find_config())
        except ConfigError:
            config = None
        print(json.dumps({"ok": False, "config": config, "errors": errors, "warnings": []}, indent=2))
        return exc.exit_code
    cfg, splits = check.config, check.splits
    if args.json:
        print(json.dumps({
            "ok": True, "config": paths.show(cfg.path), "skill": paths.show(cfg.skill_path),
            **({"skill_name": cfg.name} if cfg.name else {}),
            "tasks": len(check.tasks), "splits": {k: len(v) for k, v in splits.items()},
            "target": f"{cfg.target.provider}:{cfg.target.model}",
            "optimizer": f"{cfg.optimizer.provider}:{cfg.optimizer.model}",
            "plan": {"max_target_calls": check.max_target_calls, "max_optimizer_calls": check.max_optimizer_calls},
            "warnings": [paths.text(w) for w in check.warnings], "errors": []}, indent=2))
        return EXIT_OK
    print(f"ok: {paths.show(cfg.path)}: skill {f'{cfg.name} ' if cfg.name else ''}{paths.show(cfg.skill_path)}, "
          f"{len(check.tasks)} tasks "
          f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}), "
          f"target {cfg.target.provider}:{cfg.target.model}, optimizer {cfg.optimizer.provider}:{cfg.optimizer.model}")
    print(f"plan: at most {check.max_target_calls} target rollouts and {check.max_optimizer_calls} optimizer calls "
          f"per optimize run (cache hits are free)")
    for warning in check.warnings:
        print(f"warning: {paths.text(warning)}")
    return EXIT_OK


def _shard_done(args, paths: Paths, run: api.ShardRun) -> int:
    m = run.manifest
    if getattr(args, "json", False):
        print(json.dumps({"run_dir": paths.show(run.out), "shard": m}, indent=2, ensure_ascii=False))
        return EXIT_OK
    tasks = sum(len(v) for v in m["tasks"].values())
    print(f"shard {m['shard']}/{m['of']}: {m['rollouts']} rollout(s) of {tasks} task(s) in {paths.show(run.out)}")
    print(f"then: skillopt merge DIR... with the run directories of all {m['of']} shard(s)")
    return EXIT_OK


def cmd_eval(args, paths: Paths) -> int:
    return each_skill(args, paths, _eval)


def _eval(args, paths: Paths, name: str | None) -> int:
    splits = ["train", "val", "test"] if args.split == "all" else [args.split]
    if args.warm:
        run = api.warm(args.config, skill=api.read_skill(args.skill) if args.skill else None, skill_name=name,
                       shard=api.parse_shard(args.shard) if args.shard else (1, 1), **_run_options(args))
        return _shard_done(args, paths, run)
    if args.shard:
        run = api.evaluate(args.config, skill=api.read_skill(args.skill) if args.skill else None, splits=splits,
                           shard=api.parse_shard(args.shard), skill_name=name, **_run_options(args))
        return _shard_done(args, paths, run)
    result = api.evaluate(args.config, skill=api.read_skill(args.skill) if args.skill else None, splits=splits,
                          skill_name=name, **_run_options(args))
    result.write()
    if args.json:
        print(json.dumps({"run_dir": paths.show(result.out), "report": result.report.to_dict()}, indent=2,
                         ensure_ascii=False, default=str))
        return EXIT_OK
    for split, s in result.report.scores.items():
        print(f"{split}: {s['baseline']:.3f} ({s['n']} tasks x {s['samples']} samples)")
    print(f"report: {paths.show(result.out / 'report.md')}")
    return EXIT_OK


def cmd_optimize(args, paths: Paths) -> int:
    if args.skill and len(_names(args)) > 1:
        raise ConfigError("--skill names one skill's file, but the config lists several skills", None, None,
                          "add --skill-name NAME")
    return each_skill(args, paths, _optimize)


def _optimize(args, paths: Paths, name: str | None) -> int:
    memory = Path(args.memory) if args.memory else None
    if memory is not None and name:  # each skill of a `skills:` config remembers its own rejected edits
        memory = memory.with_name(f"{memory.stem}-{name}{memory.suffix}")
    result = api.optimize(args.config, skill=api.read_skill(args.skill) if args.skill else None, epochs=args.epochs,
                          resume=args.resume, memory=memory, skill_name=name, **_run_options(args))
    result.write()
    best_name = "best_skill/" if package.is_package(result.best_skill) else "best_skill.md"
    for split, s in result.report.scores.items():
        best = f"{s['best']:.3f}" if s.get("best") is not None else "n/a"
        print(f"{split}: baseline {s['baseline']:.3f} -> best {best}")
    spend = result.report.spend
    print(("improved: " if result.improved else "no edit passed the gate; ")
          + f"best skill in {paths.show(result.out / best_name)}, report in "
          f"{paths.show(result.out / 'report.md')} ({spend.get('calls', 0)} model calls, "
          f"{spend.get('cache_hits', 0)} cache hits, ${spend.get('usd', 0.0):.4f})")
    return EXIT_OK


def cmd_compare(args, paths: Paths) -> int:
    names = _names(args)
    if len(names) > 1:
        raise ConfigError(f"the config lists {len(names)} skills ({', '.join(str(n) for n in names)}); --skill and "
                          "--base-skill are one skill's", None, None, "add --skill-name NAME")
    if args.shard:
        run = api.compare(args.config, base_skill=api.read_skill(args.base_skill),
                          candidate_skill=api.read_skill(args.skill),
                          splits=[s.strip() for s in args.splits.split(",") if s.strip()],
                          shard=api.parse_shard(args.shard), skill_name=names[0], **_run_options(args))
        return _shard_done(args, paths, run)
    result = api.compare(args.config, base_skill=api.read_skill(args.base_skill),
                         candidate_skill=api.read_skill(args.skill), skill_name=names[0],
                         splits=[s.strip() for s in args.splits.split(",") if s.strip()], **_run_options(args))
    result.write()
    g = result.report.gate
    print(("passes the gate: " if result.improved else "does not pass the gate: ")
          + (g["reason"] if g else "no val tasks"))
    print(f"report: {paths.show(result.out / 'report.md')}")
    return EXIT_OK


def cmd_merge(args, paths: Paths) -> int:
    result = api.merge(args.dirs, args.config, runs=Path(args.out) if args.out else None, log=_log(args),
                       no_cache=args.no_cache, skill_name=args.skill_name or None)
    result.write()
    if args.json:
        print(json.dumps({"run_dir": paths.show(result.out), "report": result.report.to_dict()}, indent=2,
                         ensure_ascii=False, default=str))
        return EXIT_OK
    r = result.report
    if r.kind == "compare":
        print(("passes the gate: " if result.improved else "does not pass the gate: ")
              + (r.gate["reason"] if r.gate else "no val tasks"))
    else:
        for split, s in r.scores.items():
            print(f"{split}: {s['baseline']:.3f} ({s['n']} tasks x {s['samples']} samples)")
    sh = r.sharding or {}
    if sh.get("warm"):
        print(f"warm-up: {sh['rollouts']} rollout(s) in the cache {paths.show(Path(sh['cache_dir']))}; "
              "`skillopt optimize` with this cache pays nothing for them")
    print(f"report: {paths.show(result.out / 'report.md')}")
    return EXIT_OK


def cmd_watch(args, paths: Paths) -> int:
    if args.baseline and len(_names(args)) > 1:
        raise ConfigError("--baseline names one skill's file, and the config lists several skills", None, None,
                          "add --skill-name NAME, or leave --baseline out (each skill keeps "
                          ".skillopt/baseline-NAME.json)")
    return each_skill(args, paths, _watch)


def _watch(args, paths: Paths, name: str | None) -> int:
    baseline = Path(args.baseline) if args.baseline else None
    result = api.watch(args.config, baseline=baseline, alpha=args.alpha,
                       runs=Path(args.out) if args.out else None, log=_log(args), skill_name=name)
    if result.out is not None:
        result.report.write(result.out)
    path = result.path or api.BASELINE
    if args.record and not result.recorded:
        result.write(path)
    view = result.view()
    code = EXIT_DRIFT if result.drifted and not args.record else EXIT_OK
    if args.json:
        print(json.dumps({"drifted": result.drifted, "recorded": result.recorded or args.record,
                          "reasons": [paths.text(r) for r in result.reasons], "delta": result.delta,
                          "p_value": result.p_value, "baseline_file": paths.show(path.resolve()),
                          "run_dir": paths.show(result.out) if result.out else None,
                          "tasks": result.rows(), "models": {"baseline": view["models_before"],
                                                                  "now": view["models_now"]}},
                         indent=2, ensure_ascii=False))
        return code
    head = "drift" if result.drifted else "no baseline yet" if result.recorded else "no drift"
    view["reasons"] = [paths.text(r) if r.startswith(("no ", "note:")) else f"drift: {paths.text(r)}"
                       for r in result.reasons]
    print(f"{head}: {paths.show(path.resolve())}")
    width = min(120, shutil.get_terminal_size((100, 24)).columns)
    sys.stdout.write(terminal.render(render("drift.md.j2", d=view), colour=_colour("auto"), width=width))
    if args.record and not result.recorded:
        print(f"recorded this run's scores as the new baseline in {paths.show(path.resolve())}")
    elif result.drifted:
        print("accept the new scores with `skillopt watch --record`, or retrain with `skillopt optimize`")
    if result.out is not None:
        print(f"report: {paths.show(result.out / 'report.md')}")
    return code


def _colour(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def cmd_report(args, paths: Paths) -> int:
    if args.run:
        where = Path(args.run)
    else:
        project = _project_of(args)
        where = (project if project is not None else Path.cwd()) / api.RUNS
        if args.skill_name:
            where = where / args.skill_name
    run = api.find_run(where)
    if run is None or not (run / "report.json").is_file():
        shown = paths.show((run or where).resolve())
        raise ConfigError("no run report here" if run is None else "this run has no report.json yet (it was "
                          "interrupted, or is still running)", shown, None,
                          "pass a run directory (or the --out of a run), e.g. `skillopt report .skillopt/runs/latest`")
    data = json.loads((run / "report.json").read_text(encoding="utf-8"))
    if args.format == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif args.format == "md":
        sys.stdout.write(render_markdown(data))
    else:
        width = min(120, shutil.get_terminal_size((100, 24)).columns)
        _note(args, f"run {paths.show(run.resolve())}")
        sys.stdout.write(terminal.render(render_markdown(data), colour=_colour(args.color), width=width))
    return EXIT_OK


def cmd_init(args, paths: Paths) -> int:
    return init(args.skill, args.config, log=(lambda line: None) if args.quiet else None)


def cmd_action(args, paths: Paths) -> int:
    return action.run()


def cmd_schema(args, paths: Paths) -> int:
    sys.stdout.write(schema_json())
    return EXIT_OK


VERBS = {"init": cmd_init, "validate": cmd_validate, "eval": cmd_eval, "optimize": cmd_optimize,
         "compare": cmd_compare, "merge": cmd_merge, "report": cmd_report, "watch": cmd_watch, "schema": cmd_schema,
         "action": cmd_action}


def parse(argv: list[str] | None) -> argparse.Namespace | int:
    """Parsed arguments, or the exit code when argparse already answered (help, version, usage error)."""
    ap = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    if args.verb is None:
        ap.print_help()
        return EXIT_OK
    given_before = {dest for dest, (_, settings, verbs) in GLOBALS.items()
                    if args.verb not in verbs and getattr(args, dest) not in (None, False)}
    if given_before:
        flags = ", ".join(GLOBALS[d][0][-1] for d in sorted(given_before))
        print(f"skillopt {args.verb}: {flags} does not apply to this command", file=sys.stderr)
        return EXIT_INVALID
    return args


def main(argv: list[str] | None = None) -> int:
    with guard_streams():  # nothing this process prints carries a secret, tracebacks included
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = parse(argv)
    if isinstance(args, int):
        return args
    paths = Paths(_project_of(args))
    try:
        return VERBS[args.verb](args, paths)
    except ConfigError as exc:
        print("\n".join(f"error: {paths.format(e)}" for e in ConfigErrors.of(exc)), file=sys.stderr)
        n = len(ConfigErrors.of(exc))
        if n > 1:
            print(f"{n} problems found", file=sys.stderr)
        return exc.exit_code
    except SkillOptError as exc:
        print(f"error: {paths.text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        hint = "; run again with --resume to continue" if args.verb == "optimize" else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    except Exception:  # a bug: show it, exit 1
        traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
