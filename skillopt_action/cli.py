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
from pathlib import Path

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_OK, ConfigError, SkillOptError


def _common(p: argparse.ArgumentParser, out_default: str | None = None) -> None:
    p.add_argument("--config", default=None, help="config file (default .github/skillopt.yml)")
    if out_default:
        p.add_argument("--out", default=out_default, help=f"output directory (default {out_default})")
        p.add_argument("--no-cache", action="store_true", help="do not read or write the rollout cache")
        p.add_argument("--keep-workspaces", action="store_true", help="keep agent workspaces after scoring")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="skillopt", description="Train agent skill files on scored tasks.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
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


def _read_skill(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("skill file not found", path, None, "check the path given to --skill")
    return p.read_text(encoding="utf-8")


def _runtime(args):
    from .config import load_config
    from .loop import Runtime, stderr_log

    cfg = load_config(args.config)
    log = (lambda m: None) if args.quiet else stderr_log
    return Runtime(cfg, Path(args.out), log=log, no_cache=args.no_cache, keep_workspaces=args.keep_workspaces)


def cmd_validate(args) -> int:
    from .config import load_config
    from .scorers import ScorerContext, check_tasks
    from .tasks import assign_splits, load_tasks

    cfg = load_config(args.config)
    tasks = load_tasks(cfg.tasks, cfg.root, str(cfg.path), cfg.line_of("tasks"))
    check_tasks(tasks, ScorerContext(project_root=cfg.root, judge=object()))
    from .config import CHAT_PROVIDERS
    from .scorers import SCORER_TYPES

    if cfg.target.provider in CHAT_PROVIDERS:
        for t in tasks:
            ws = [s["type"] for s in t.scorers if SCORER_TYPES[s["type"]].needs_workspace]
            if ws:
                file, _, line = t.source.rpartition(":")
                raise ConfigError(f"task {t.id!r} uses the workspace scorer {ws[0]!r}, but the target "
                                  f"{cfg.target.provider!r} is a chat model with no workspace", file, int(line),
                                  "use an agent target (provider: claude-code, codex or command), or a text scorer")
    else:
        from .targets import make_target

        make_target(cfg.target, cfg.root)  # finds the agent binary: a missing CLI is reported now, not mid-run
    splits = assign_splits(tasks, cfg.split_ratios, cfg.split_seed)
    print(f"ok: {cfg.path}: skill {cfg.skill}, {len(tasks)} tasks "
          f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}), "
          f"target {cfg.target.provider}:{cfg.target.model}, optimizer {cfg.optimizer.provider}:{cfg.optimizer.model}")
    from .loop import plan

    n_target, n_opt, budget_warning = plan(cfg, splits, cfg.loop.epochs)
    print(f"plan: at most {n_target} target rollouts and {n_opt} optimizer calls per optimize run")
    if budget_warning:
        print(f"warning: {budget_warning}")
    from .gate import max_power_warning

    warn = max_power_warning(len(splits["val"]), cfg.gate.alpha, cfg.gate.resamples) if cfg.gate.mode == "paired" else None
    if warn:
        print(f"warning: {warn}")
    return EXIT_OK


def cmd_eval(args) -> int:
    from .loop import evaluate

    rt = _runtime(args)
    skill = _read_skill(args.skill) if args.skill else rt.cfg.skill_path.read_text(encoding="utf-8")
    splits = ["train", "val", "test"] if args.split == "all" else [args.split]
    report = evaluate(rt, skill, splits)
    for split, s in report["scores"].items():
        print(f"{split}: {s['baseline']:.3f} ({s['n']} tasks x {s['samples']} samples)")
    print(f"report: {Path(args.out) / 'report.md'}")
    return EXIT_OK


def cmd_optimize(args) -> int:
    from .loop import optimize

    rt = _runtime(args)
    report = optimize(rt, skill_text=_read_skill(args.skill) if args.skill else None, epochs=args.epochs,
                      resume=args.resume, memory=Path(args.memory) if args.memory else None)
    for split, s in report["scores"].items():
        best = f"{s['best']:.3f}" if s.get("best") is not None else "n/a"
        print(f"{split}: baseline {s['baseline']:.3f} -> best {best}")
    print(("improved: " if report["improved"] else "no improvement passed the gate; ") +
          f"best skill in {Path(args.out) / 'best_skill.md'}, report in {Path(args.out) / 'report.md'}")
    return EXIT_OK


def cmd_compare(args) -> int:
    from .loop import compare

    rt = _runtime(args)
    report = compare(rt, _read_skill(args.base_skill), _read_skill(args.skill),
                     [s.strip() for s in args.splits.split(",") if s.strip()])
    g = report["gate"]
    print(("passes the gate: " if report["improved"] else "does not pass the gate: ") + (g["reason"] if g else "no val tasks"))
    return EXIT_OK


def cmd_report(args) -> int:
    from .report import render_markdown

    path = Path(args.run_dir) / "report.json"
    if not path.is_file():
        raise ConfigError("no report.json in that directory", str(path), None, "pass the --out directory of a run")
    data = json.loads(path.read_text(encoding="utf-8"))
    print(json.dumps(data, indent=2) if args.format == "json" else render_markdown(data))
    return EXIT_OK


def cmd_init(args) -> int:
    from .init import init

    return init(args.skill, args.config)


def cmd_action(args) -> int:
    from .github.action import run

    return run()


def cmd_schema(args) -> int:
    from .config import schema_json

    sys.stdout.write(schema_json())
    return EXIT_OK


VERBS = {"init": cmd_init, "validate": cmd_validate, "eval": cmd_eval, "optimize": cmd_optimize,
         "compare": cmd_compare, "report": cmd_report, "schema": cmd_schema, "action": cmd_action}


def main(argv: list[str] | None = None) -> int:
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
