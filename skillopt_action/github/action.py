"""GitHub Action entry point: route the trigger to its handler, and report the outcome back to the runner.

`run(env)` reads the runner's environment (GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_REPOSITORY,
GITHUB_API_URL, GITHUB_SERVER_URL, GITHUB_RUN_ID, GITHUB_SHA, GITHUB_WORKSPACE, GITHUB_ACTOR, INPUT_*), writes
GITHUB_OUTPUT and GITHUB_STEP_SUMMARY, and returns the process exit code. Each trigger has its handler module:
`default_branch` (schedule, workflow_dispatch), `watch` (the same events with `command: watch`), `warm` (the same
events with `shard: i/n` or `command: merge`: the optimize run's warm-up), `pr_gate`
(pull_request), `comment_commands` (issue_comment); `execute` carries out the bot pull request's plan. The core
runs in-process through the public API.

Exit codes: those of the CLI (0 done, 1 internal error, 2 invalid config or input, 3 model provider failed,
4 budget cap hit before the baseline; a watch that finds drift exits 0, the drift issue being the signal) and
5: GitHub refused a write the run needs (the repository setting that lets Actions open pull requests, or a
permission the token lacks); the job summary says which and how to fix it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

from github import Auth, Github
from github.GithubException import GithubException

from .. import redact
from ..errors import EXIT_INTERNAL, ConfigError, SkillOptError
from . import access, comment_commands, default_branch, pr_gate, warm, watch
from .context import Context
from .event import Settings, parse_trigger, settings_from_env
from .outputs import Result, annotation, write_outputs, write_summary

HANDLERS: dict[str, Callable[[Context], None]] = {
    "optimize": default_branch.optimize,
    "eval": default_branch.evaluate,
    "watch": watch.handle,
    "warm": warm.shard,
    "warm_merge": warm.merge,
    "pull_request": pr_gate.handle,
    "comment": comment_commands.handle,
}


def handle(ctx: Context) -> None:
    if ctx.t.kind == "ignore":
        ctx.result.title = "nothing to do"
        ctx.log(ctx.t.reason)
        return
    HANDLERS[ctx.t.kind](ctx)


def _client(settings: Settings, env: Mapping[str, str]) -> Github:
    # GitHub asks for >= 1 s between writes; tests turn throttling off
    if env.get("SKILLOPT_GITHUB_THROTTLE", "1") != "0":
        return Github(base_url=settings.api_url, auth=Auth.Token(settings.token))
    return Github(base_url=settings.api_url, auth=Auth.Token(settings.token), seconds_between_requests=None,
                  seconds_between_writes=None, retry=None)


def github_error(exc: GithubException) -> str:
    """One sentence for a GitHub error nobody handled: what GitHub said and, for a 403, what to change."""
    text = f"GitHub answered {exc.status}: {access.message_of(exc)}"
    if access.not_accessible(exc):
        text += (" (the token lacks a permission for this: check the workflow's `permissions:` block; checks "
                 "need the workflow token or a GitHub App token)")
    return text


def run(env: Mapping[str, str] | None = None) -> int:
    """The action's entry point. Returns the exit code (0 unless something failed)."""
    env = dict(os.environ if env is None else env)
    redact.register_values(env[name] for name in redact.secret_env_names(env))  # the token, the model keys
    if env.get("GITHUB_ACTIONS") == "true":  # the runner then hides these values in the job log as well
        redact.emit_add_masks(env)
    result = Result()
    settings = None
    ctx = None
    try:
        settings = settings_from_env(env)
        try:
            payload = json.loads(Path(settings.event_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the event payload: {exc}", settings.event_path) from exc
        trigger = parse_trigger(settings, payload)
        ctx = Context(settings, trigger, _client(settings, env), env)
        result = ctx.result
        handle(ctx)
    except access.GitHubRefused as exc:
        result = ctx.result if ctx else result
        result.exit_code = exc.exit_code
        result.lines.append(f"error: {exc}")
        print(annotation("error", str(exc)), flush=True)
    except SkillOptError as exc:
        result = ctx.result if ctx else result
        result.exit_code = exc.exit_code
        result.title = result.title or "failed"
        result.lines.append(f"error: {exc}")
        print(f"error: {exc}", file=sys.stderr)
    except GithubException as exc:
        result = ctx.result if ctx else result
        result.exit_code = EXIT_INTERNAL
        result.title = "GitHub API error"
        result.lines.append(f"error: {github_error(exc)}")
        print(f"error: {github_error(exc)}", file=sys.stderr)
    except Exception:  # a bug: show it, exit 1, still write the outputs and the summary
        result = ctx.result if ctx else result
        result.exit_code = EXIT_INTERNAL
        result.title = result.title or "internal error"
        result.lines.append("error: internal error (a bug); the traceback is in the job log")
        traceback.print_exc()
    finally:
        if ctx is not None:
            ctx.cleanup()
    if settings is not None:
        write_outputs(settings.output_path, result.outputs())
        write_summary(settings.summary_path, result, settings.run_url)
    return result.exit_code
