"""The `skillopt` command line.

  skillopt init      [--skill PATH]            starter config and example tasks next to an existing skill file
  skillopt validate  [--config PATH]           check the config and every task file (file:line errors)
  skillopt eval      [--skill PATH] [--split val|test|train|all] [--out DIR]
  skillopt optimize  [--resume] [--epochs N] [--skill PATH] [--memory FILE] [--out DIR]
  skillopt compare   --base-skill PATH --skill PATH [--out DIR]   gate a changed skill against a base skill
  skillopt report    RUN_DIR                   print a run's report.md (re-rendered from report.json)
  skillopt schema                              print the config's JSON Schema
  skillopt action                              the GitHub Action entry point

Exit codes: 0 completed (also when optimize found no improvement), 1 internal error, 2 invalid config,
tasks or arguments, 3 model provider failure, 4 budget cap hit before the baseline was measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from . import __version__, api
from .config import schema_json
from .errors import EXIT_INTERNAL, EXIT_OK, ConfigError, SkillOptError
from .github import action
from .init import init
from .redact import guard_streams
from .report import render_markdown
from .runtime import quiet_log, stderr_log


def _common(p: argparse.ArgumentParser, out_default: str | None = None) -> None:
    p.add_argument("--config", default=None, help="config file (default .github/skillopt.yml)")
    if out_default:
        p.add_argument("--out", default=out_default, help=f"output directory (default {out_default})")
        p.add_argument("--no-cache", action="store_true", help="do not read or write the rollout cache")
        p.add_argument("--keep-workspaces", action="store_true", help="keep agent workspaces after scoring")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="skillopt",
        description="Train agent skill files on scored tasks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument("--version", action="version", version=f"skillopt {__version__}")
    sub = ap.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("init", help="write a starter config and example tasks")
    p.add_argument("--skill", help="the skill file (default: the first of SKILL.md, AGENTS.md, CLAUDE.md found)")
    p.add_argument("--config", default=None)
    p = sub.add_parser("validate", help="check config and tasks")
    _common(p)
    p = sub.add_parser("eval", help="score a skill")
    _common(p, ".skillopt/runs/eval")
    p.add_argument("--skill", help="skill file to score (default: the config's)")
    p.add_argument("--split", default="val", choices=["train", "val", "test", "all"])
    p = sub.add_parser("optimize", help="train the skill")
    _common(p, ".skillopt/runs/latest")
    p.add_argument("--skill", help="start from this skill file instead of the config's")
    p.add_argument("--epochs", type=int, help="override loop.epochs")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--memory", help="JSONL file of rejected edits carried across runs (read and updated)")
    p = sub.add_parser("compare", help="gate a candidate skill against a base skill")
    _common(p, ".skillopt/runs/compare")
    p.add_argument("--base-skill", required=True)
    p.add_argument("--skill", required=True)
    p.add_argument("--splits", default="val,test")
    p = sub.add_parser("report", help="print a run's report")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["md", "json"], default="md")
    sub.add_parser("schema", help="print the config JSON Schema")
    sub.add_parser("action", help="GitHub Action entry point (reads GITHUB_* environment)")
    return ap


def _log(args) -> Callable[[str], None]:
    return quiet_log if args.quiet else stderr_log


def _run_options(args) -> dict:
    return {"out": Path(args.out), "log": _log(args), "no_cache": args.no_cache,
            "keep_workspaces": args.keep_workspaces}


def cmd_validate(args) -> int:
    check = api.validate(args.config)
    cfg, splits = check.config, check.splits
    print(f"ok: {cfg.path}: skill {cfg.skill}, {len(check.tasks)} tasks "
          f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}), "
          f"target {cfg.target.provider}:{cfg.target.model}, optimizer {cfg.optimizer.provider}:{cfg.optimizer.model}")
    print(f"plan: at most {check.max_target_calls} target rollouts and {check.max_optimizer_calls} optimizer calls "
          f"per optimize run")
    for warning in check.warnings:
        print(f"warning: {warning}")
    return EXIT_OK


def cmd_eval(args) -> int:
    splits = ["train", "val", "test"] if args.split == "all" else [args.split]
    result = api.evaluate(args.config, skill=api.read_skill(args.skill) if args.skill else None, splits=splits,
                          **_run_options(args))
    result.write()
    for split, s in result.report.scores.items():
        print(f"{split}: {s['baseline']:.3f} ({s['n']} tasks x {s['samples']} samples)")
    print(f"report: {Path(args.out) / 'report.md'}")
    return EXIT_OK


def cmd_optimize(args) -> int:
    result = api.optimize(args.config, skill=api.read_skill(args.skill) if args.skill else None, epochs=args.epochs,
                          resume=args.resume, memory=Path(args.memory) if args.memory else None, **_run_options(args))
    result.write()
    for split, s in result.report.scores.items():
        best = f"{s['best']:.3f}" if s.get("best") is not None else "n/a"
        print(f"{split}: baseline {s['baseline']:.3f} -> best {best}")
    print(("improved: " if result.improved else "no improvement passed the gate; ") +
          f"best skill in {Path(args.out) / 'best_skill.md'}, report in {Path(args.out) / 'report.md'}")
    return EXIT_OK


def cmd_compare(args) -> int:
    result = api.compare(args.config, base_skill=api.read_skill(args.base_skill),
                         candidate_skill=api.read_skill(args.skill),
                         splits=[s.strip() for s in args.splits.split(",") if s.strip()], **_run_options(args))
    result.write()
    g = result.report.gate
    print(
        ("passes the gate: " if result.improved else "does not pass the gate: ")
        + (g["reason"] if g else "no val tasks")
    )
    return EXIT_OK


def cmd_report(args) -> int:
    path = Path(args.run_dir) / "report.json"
    if not path.is_file():
        raise ConfigError("no report.json in that directory", str(path), None, "pass the --out directory of a run")
    data = json.loads(path.read_text(encoding="utf-8"))
    print(json.dumps(data, indent=2) if args.format == "json" else render_markdown(data))
    return EXIT_OK


def cmd_init(args) -> int:
    return init(args.skill, args.config)


def cmd_action(args) -> int:
    return action.run()


def cmd_schema(args) -> int:
    sys.stdout.write(schema_json())
    return EXIT_OK


VERBS = {"init": cmd_init, "validate": cmd_validate, "eval": cmd_eval, "optimize": cmd_optimize,
         "compare": cmd_compare, "report": cmd_report, "schema": cmd_schema, "action": cmd_action}


def main(argv: list[str] | None = None) -> int:
    with guard_streams():  # nothing this process prints carries a secret, tracebacks included
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        return VERBS[args.verb](args)
    except SkillOptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    except Exception:  # a bug: show it, exit 1
        traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
