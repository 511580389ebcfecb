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

from . import __version__, api, terminal
from .config import project_root_for, schema_json
from .errors import EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, ConfigError, ConfigErrors, SkillOptError
from .github import action
from .init import init
from .redact import guard_streams
from .report import render_markdown
from .runtime import quiet_log, stderr_log

DESCRIPTION = """\
Train an agent's instruction file (SKILL.md, AGENTS.md, CLAUDE.md) on scored tasks while the model stays
frozen: run the agent on tasks, let an optimizer model reflect on failures and propose a few bounded edits,
and keep an edit only if it passes a statistical gate on held-out tasks. Your skill file is never modified:
every run writes its own directory (best_skill.md, report.md, report.json, trajectories.jsonl)."""

EPILOG = """\
getting started:
  skillopt init                  starter .github/skillopt.yml and evals/tasks.yml next to your skill file
  skillopt validate              check them (every problem at once, with file:line and a fix)
  skillopt eval                  score the current skill on the val split
  skillopt optimize              train it; then `skillopt report` shows what was tried and kept

exit codes:
  0  the command completed (optimize: also when no edit passed the gate)
  1  internal error (a bug: please report it)
  2  invalid config, task file or command line (the message names file:line and the fix)
  3  a model provider failed after retries
  4  a budget cap was hit before the baseline was measured

Run `skillopt COMMAND --help` for a command's options.
Documentation: https://github.com/skillopt/skillopt-action#readme"""

RUN_VERBS = ("eval", "optimize", "compare")
GLOBALS: dict[str, tuple[tuple[str, ...], dict[str, Any], tuple[str, ...]]] = {
    # dest: (flags, argparse settings, commands it applies to)
    "config": (("--config",), {"metavar": "PATH", "help": "the config file (default: .github/skillopt.yml in the "
                               "current directory or the nearest parent, up to the repository root)"},
               ("init", "validate", "eval", "optimize", "compare", "report")),
    "out": (("--out",), {"metavar": "DIR", "help": "where runs are kept: each run gets a new directory in DIR, "
                         "named by its start time and command, and DIR/latest points at the newest (default: "
                         ".skillopt/runs in the project root)"}, RUN_VERBS),
    "no_cache": (("--no-cache",), {"action": "store_true", "help": "neither read nor write the call cache (use "
                                   "after editing a script a `command` scorer runs)"}, RUN_VERBS),
    "keep_workspaces": (("--keep-workspaces",), {"action": "store_true", "help": "keep agent workspaces after "
                                                 "scoring, to inspect them (agent targets)"}, RUN_VERBS),
    "quiet": (("-q", "--quiet"), {"action": "store_true", "help": "no progress or notes on stderr (results and "
                                  "errors are still printed)"},
              ("init", "validate", "eval", "optimize", "compare", "report", "schema", "action")),
}


def _width() -> int:
    return min(110, shutil.get_terminal_size((100, 24)).columns)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """The main help: description and epilog as written; commands listed without a `<command>` header."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=_width())

    def _format_action(self, action: argparse.Action) -> str:
        if isinstance(action, argparse._SubParsersAction):
            return "".join(self._format_action(a) for a in action._get_subactions())
        return super()._format_action(action)


class _CommandFormatter(argparse.HelpFormatter):
    """A command's help: its description wrapped to the terminal."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=_width())


def _add_globals(p: argparse.ArgumentParser, verb: str | None) -> None:
    """The global options on the main parser (verb None) or on one command (only those that apply to it, with
    defaults suppressed so a value given before the command is not reset)."""
    group = p.add_argument_group("global options (before or after the command)")
    for dest, (flags, settings, verbs) in GLOBALS.items():
        if verb is None or verb in verbs:
            kwargs = dict(settings)
            if verb is not None:
                kwargs["default"] = argparse.SUPPRESS
            if verb == "init" and dest == "config":
                kwargs["help"] = "where to write the config (default: .github/skillopt.yml)"
            group.add_argument(*flags, dest=dest, **kwargs)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="skillopt", usage="skillopt [options] <command> [command options]",
                                 description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter)
    ap.add_argument("--version", action="version", version=f"skillopt {__version__}")
    sub = ap.add_subparsers(dest="verb", title="commands", metavar="<command>")
    _add_globals(ap, None)

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, prog=f"skillopt {name}", help=summary, description=description,
                              formatter_class=_CommandFormatter)

    p = command("init", "write a starter config and example tasks next to your skill file",
                "Write .github/skillopt.yml and evals/tasks.yml for an existing skill file, and add .skillopt/ "
                "(runs and cache) to .gitignore. Never overwrites a file.")
    p.add_argument("--skill", metavar="PATH", help="the skill file to train (default: the first of SKILL.md, "
                   "AGENTS.md, CLAUDE.md, .claude/skills/*/SKILL.md, .agents/skills/*/SKILL.md found here)")
    _add_globals(p, "init")

    p = command("validate", "check the config, every task file and every scorer",
                "Check the config, every task file and every scorer without calling a model, and report every "
                "problem at once with file:line and a fix. Prints the task splits, the models and the worst-case "
                "number of calls of one optimize run. Exit 2 when something is wrong.")
    p.add_argument("--json", action="store_true", help="print the result (or the errors) as JSON on stdout")
    _add_globals(p, "validate")

    p = command("eval", "score a skill on the tasks (default: the val split)",
                "Score a skill (default: the config's `skill:`) on one split of the tasks, with `gate.samples` "
                "rollouts per task. Writes report.md, report.json and trajectories.jsonl into a new run directory.")
    p.add_argument("--skill", metavar="PATH", help="score this skill file instead of the config's `skill:`")
    p.add_argument("--split", default="val", choices=["train", "val", "test", "all"],
                   help="which tasks to score: val (default; the held-out split the gate uses), train, test, or "
                   "all three")
    p.add_argument("--json", action="store_true", help="print the run directory and report.json as JSON on stdout")
    _add_globals(p, "eval")

    p = command("optimize", "train the skill: rollouts, reflection, bounded edits, statistical gate",
                "Train the skill: each step runs a batch of train tasks, asks the optimizer for a few bounded edits, "
                "and keeps them only if they pass the gate on the val split; at the end baseline and best are scored "
                "on the test split. Your skill file is not modified: the result is best_skill.md in the run "
                "directory. Every model call is cached, so re-running or resuming never pays for a call twice.")
    p.add_argument("--epochs", type=int, metavar="N", help="passes over the train split (default: the config's "
                   "loop.epochs)")
    p.add_argument("--skill", metavar="PATH", help="start from this skill file instead of the config's `skill:`")
    p.add_argument("--resume", action="store_true", help="continue the newest optimize run in the runs directory "
                   "(e.g. after a budget stop, with a higher cap) instead of starting a new one")
    p.add_argument("--memory", metavar="FILE", help="JSONL file of rejected edits, read before and updated after the "
                   "run, so later runs do not propose them again")
    _add_globals(p, "optimize")

    p = command("compare", "gate one skill file against another (how a pull request's edit is judged)",
                "Score a changed skill against a base skill on the same tasks and samples, and apply the gate on "
                "the val split (other splits are reported). Exit 0 whether or not it passes; the verdict is "
                "printed and in report.json (`improved`).")
    p.add_argument("--base-skill", required=True, metavar="PATH", help="the skill to compare against (e.g. the "
                   "base branch's file)")
    p.add_argument("--skill", required=True, metavar="PATH", help="the changed skill to gate")
    p.add_argument("--splits", default="val,test", metavar="LIST", help="comma-separated splits to score "
                   "(default: val,test; the gate decides on val)")
    _add_globals(p, "compare")

    p = command("report", "show a run's report in the terminal",
                "Show a run's report: the scores, every edit tried with the gate's verdict, the skill diff and the "
                "spend, re-rendered from report.json. Coloured when stdout is a terminal (unless NO_COLOR is set).")
    p.add_argument("run", nargs="?", metavar="RUN", help="a run directory, or a runs directory (its latest run is "
                   "shown); default: the project's latest run (.skillopt/runs/latest)")
    p.add_argument("--format", default="text", choices=["text", "md", "json"], help="text: formatted for the "
                   "terminal (default); md: the Markdown of report.md; json: report.json")
    p.add_argument("--color", default="auto", choices=["auto", "always", "never"], help="colour the text format "
                   "(default auto: when stdout is a terminal and NO_COLOR is not set)")
    _add_globals(p, "report")

    p = command("schema", "print the config file's JSON Schema",
                "Print the JSON Schema of .github/skillopt.yml (point your editor's YAML language server at it).")
    _add_globals(p, "schema")
    p = command("action", "the GitHub Action's entry point (inside a workflow)",
                "The GitHub Action's entry point: reads the GITHUB_* environment and INPUT_* variables that the "
                "action passes. Use the action in a workflow rather than calling this directly.")
    _add_globals(p, "action")
    return ap


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


def cmd_validate(args, paths: Paths) -> int:
    try:
        check = api.validate(args.config)
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
            "tasks": len(check.tasks), "splits": {k: len(v) for k, v in splits.items()},
            "target": f"{cfg.target.provider}:{cfg.target.model}",
            "optimizer": f"{cfg.optimizer.provider}:{cfg.optimizer.model}",
            "plan": {"max_target_calls": check.max_target_calls, "max_optimizer_calls": check.max_optimizer_calls},
            "warnings": [paths.text(w) for w in check.warnings], "errors": []}, indent=2))
        return EXIT_OK
    print(f"ok: {paths.show(cfg.path)}: skill {paths.show(cfg.skill_path)}, {len(check.tasks)} tasks "
          f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}), "
          f"target {cfg.target.provider}:{cfg.target.model}, optimizer {cfg.optimizer.provider}:{cfg.optimizer.model}")
    print(f"plan: at most {check.max_target_calls} target rollouts and {check.max_optimizer_calls} optimizer calls "
          f"per optimize run (cache hits are free)")
    for warning in check.warnings:
        print(f"warning: {paths.text(warning)}")
    return EXIT_OK


def cmd_eval(args, paths: Paths) -> int:
    splits = ["train", "val", "test"] if args.split == "all" else [args.split]
    result = api.evaluate(args.config, skill=api.read_skill(args.skill) if args.skill else None, splits=splits,
                          **_run_options(args))
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
    result = api.optimize(args.config, skill=api.read_skill(args.skill) if args.skill else None, epochs=args.epochs,
                          resume=args.resume, memory=Path(args.memory) if args.memory else None, **_run_options(args))
    result.write()
    for split, s in result.report.scores.items():
        best = f"{s['best']:.3f}" if s.get("best") is not None else "n/a"
        print(f"{split}: baseline {s['baseline']:.3f} -> best {best}")
    spend = result.report.spend
    print(("improved: " if result.improved else "no edit passed the gate; ")
          + f"best skill in {paths.show(result.out / 'best_skill.md')}, report in "
          f"{paths.show(result.out / 'report.md')} ({spend.get('calls', 0)} model calls, "
          f"{spend.get('cache_hits', 0)} cache hits, ${spend.get('usd', 0.0):.4f})")
    return EXIT_OK


def cmd_compare(args, paths: Paths) -> int:
    result = api.compare(args.config, base_skill=api.read_skill(args.base_skill),
                         candidate_skill=api.read_skill(args.skill),
                         splits=[s.strip() for s in args.splits.split(",") if s.strip()], **_run_options(args))
    result.write()
    g = result.report.gate
    print(("passes the gate: " if result.improved else "does not pass the gate: ")
          + (g["reason"] if g else "no val tasks"))
    print(f"report: {paths.show(result.out / 'report.md')}")
    return EXIT_OK


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
         "compare": cmd_compare, "report": cmd_report, "schema": cmd_schema, "action": cmd_action}


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
