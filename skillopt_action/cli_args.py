"""The grammar of the `skillopt` command line: its commands, their options and help texts (argparse), and the
global options accepted before or after the command. `cli.py` runs what this parses."""

from __future__ import annotations

import argparse
import shutil
from typing import Any

from . import __version__

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
  skillopt watch                 later (e.g. weekly): has the score moved, or the model changed? (drift)

exit codes:
  0  the command completed (optimize: also when no edit passed the gate)
  1  internal error (a bug: please report it)
  2  invalid config, task file or command line (the message names file:line and the fix)
  3  a model provider failed after retries
  4  a budget cap was hit before the baseline was measured
  5  (action) GitHub refused a write the run needs; the message names the setting or permission
  6  watch: drift (the score moved beyond noise, or the target reports another model)

Run `skillopt COMMAND --help` for a command's options.
Documentation: https://github.com/skillopt/skillopt-action#readme"""

SHARD_HELP = ("run only shard I of N of the rollouts (every sample of a task stays in one shard) into the run "
              "directory, and decide nothing; then `skillopt merge` the N run directories (fan-out over a CI "
              "matrix)")
RUN_VERBS = ("eval", "optimize", "compare", "merge")
GLOBALS: dict[str, tuple[tuple[str, ...], dict[str, Any], tuple[str, ...]]] = {
    # dest: (flags, argparse settings, commands it applies to)
    "config": (("--config",), {"metavar": "PATH", "help": "the config file (default: .github/skillopt.yml in the "
                               "current directory or the nearest parent, up to the repository root)"},
               ("init", "validate", "eval", "optimize", "compare", "report", "merge", "watch")),
    "out": (("--out",), {"metavar": "DIR", "help": "where runs are kept: each run gets a new directory in DIR, "
                         "named by its start time and command, and DIR/latest points at the newest (default: "
                         ".skillopt/runs in the project root)"}, (*RUN_VERBS, "watch")),
    "no_cache": (("--no-cache",), {"action": "store_true", "help": "neither read nor write the call cache (use "
                                   "after editing a script a `command` scorer runs)"}, RUN_VERBS),
    "keep_workspaces": (("--keep-workspaces",), {"action": "store_true", "help": "keep agent workspaces after "
                                                 "scoring, to inspect them (agent targets)"}, RUN_VERBS),
    "skill_name": (("--skill-name",), {"metavar": "NAME", "help": "with a config that lists several skills "
                                       "(`skills:`): only this one (default: each in turn)"},
                   ("validate", "eval", "optimize", "compare", "report", "watch", "merge")),
    "quiet": (("-q", "--quiet"), {"action": "store_true", "help": "no progress or notes on stderr (results and "
                                  "errors are still printed)"},
              ("init", "validate", "eval", "optimize", "compare", "report", "watch", "schema", "action", "merge")),
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

    p = command("init", "write a starter config and example tasks for the skills this repository has",
                "Detect the repository's skills (skill folders in .claude/skills, .agents/skills and .github/skills; "
                "SKILL.md, AGENTS.md, CLAUDE.md, .github/copilot-instructions.md), write .github/skillopt.yml listing "
                "them (one skill: `skill:`; several: `skills:`) with example tasks under evals/, and add .skillopt/ "
                "(runs and cache) to .gitignore. Never overwrites a file.")
    p.add_argument("--skill", metavar="PATH", help="train only this skill file or skill folder (default: every skill "
                   "found)")
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
    p.add_argument("--shard", metavar="I/N", help=SHARD_HELP)
    p.add_argument("--warm", action="store_true", help="warm up an optimize run: draw the rollouts `optimize` asks "
                   "of the skill first (its baseline, every val round against it, the confirmation's fresh samples, "
                   "test, train) as a shard (with --shard I/N: that slice; else 1/1); `skillopt merge` then puts "
                   "them in the cache, so the optimize run's baseline costs no call (--split does not apply)")
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
    p.add_argument("--shard", metavar="I/N", help=SHARD_HELP)
    _add_globals(p, "compare")

    p = command("merge", "merge the run directories of a sharded eval or compare into its report",
                "Merge the run directories (or downloaded artifacts) of the N shards of one `eval --shard` or "
                "`compare --shard` run: their rollouts fill the cache and the report and gate decision are "
                "exactly those of the unsharded run. Run it on the same commit as the shards. Exit 2 when a "
                "shard is missing, given twice, or from another config or skill.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="a shard's run directory, or a directory holding "
                   "several (searched for shard.json)")
    p.add_argument("--json", action="store_true", help="print the run directory and report.json as JSON on stdout")
    _add_globals(p, "merge")

    p = command("watch", "re-score the skill and compare it with the stored baseline (drift)",
                "Re-score the config's skill on the val split with fresh samples (never from the cache) and compare "
                "it task by task with the stored baseline: drift is a change beyond noise (two-sided paired "
                "sign-flip test over the tasks, p < --alpha) or a change of the model the target reports. Without "
                "a baseline file, this run's scores become the baseline. Exit 0: no drift (or a baseline was "
                "recorded); 6: drift; 2: a bad config or baseline file.")
    p.add_argument("--baseline", metavar="FILE", help="the stored scores (default: .skillopt/baseline.json in the "
                   "project root); written by the first watch, and by --record")
    p.add_argument("--alpha", type=float, default=0.05, metavar="A", help="significance level of the paired test "
                   "(default 0.05)")
    p.add_argument("--record", action="store_true", help="after comparing, store this run's scores as the new "
                   "baseline (accept the change, e.g. after a reviewed skill edit or a model upgrade); exits 0")
    p.add_argument("--json", action="store_true", help="print the verdict, the reasons and the per-task rows as "
                   "JSON on stdout")
    _add_globals(p, "watch")

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
