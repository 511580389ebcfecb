"""GitHub Action entry point: route the trigger to its handler, call the core, report back to GitHub.

`run(env)` reads the runner's environment (GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_REPOSITORY,
GITHUB_API_URL, GITHUB_SERVER_URL, GITHUB_RUN_ID, GITHUB_SHA, GITHUB_WORKSPACE, INPUT_*), writes
GITHUB_OUTPUT and GITHUB_STEP_SUMMARY, and returns the process exit code. The core runs in-process through
the public API (`api.optimize`, `api.evaluate`, `api.compare`); this module only translates between it and
GitHub.

Longer than 500 lines because the Runner still holds all four handlers (schedule, pull request, comment
commands, plan execution) around shared GitHub state; they are due to move into one module each.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
import uuid
from collections.abc import Mapping
from pathlib import Path

from github import Auth, Github
from github.GithubException import GithubException, UnknownObjectException
from github.Repository import Repository

from .. import api, redact, screen
from ..config import load_config
from ..errors import EXIT_INTERNAL, ConfigError, SkillOptError
from ..render import render
from ..runtime import stderr_log
from . import checks, commands, comments
from . import pull_request as prs
from .event import Settings, Trigger, parse_trigger, settings_from_env
from .outputs import Result, write_outputs, write_summary
from .snapshot import checkout_base, remove_checkout

ACTIONS_BOT = "github-actions[bot]"
EXIT_MEANING = {
    2: "invalid config or tasks",
    3: "the model provider failed",
    4: "the budget cap was hit before the baseline",
    1: "internal error",
}


def first_line(exc: BaseException) -> str:
    text = redact.redact(str(exc))
    return text.splitlines()[0] if text else type(exc).__name__


def meaning(exc: BaseException) -> str:
    """What a failure of the core means, in the words of the CLI's exit codes."""
    code = getattr(exc, "exit_code", EXIT_INTERNAL)
    return EXIT_MEANING.get(code, f"exit code {code}")


class Runner:
    def __init__(self, settings: Settings, trigger: Trigger, gh: Github, env: Mapping[str, str]):
        self.s = settings
        self.t = trigger
        self.gh = gh
        self.env = env
        self.result = Result()
        self._repo: Repository | None = None
        self._bot: str | None = None
        self.workspace = Path(settings.workspace).resolve()
        self.runs_dir = self.workspace / ".skillopt" / "action"
        self._worktrees: list[Path] = []

    # ---- GitHub helpers
    @property
    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = self.gh.get_repo(self.s.repository)
        return self._repo

    @property
    def bot_login(self) -> str:
        """Whose comments are ours: the token's user, or github-actions[bot] for an Actions/App token."""
        if self._bot is None:
            try:
                self._bot = self.gh.get_user().login
            except GithubException as exc:
                if exc.status != 403:
                    raise
                self._bot = self.env.get("INPUT_BOT-LOGIN") or ACTIONS_BOT
        return self._bot

    def log(self, line: str) -> None:
        print(f"skillopt: {line}", file=sys.stderr, flush=True)
        self.result.lines.append(line)

    # ---- core
    def out_dir(self, name: str) -> Path:
        d = self.runs_dir / f"{name}-{self.s.run_id}-{self.s.run_attempt}-{uuid.uuid4().hex[:6]}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def record(self, run: api.RunResult) -> dict:
        """Keep a run's result for the outputs and the summary, and write it next to its trajectories (the
        run directory is what workflows upload as an artifact)."""
        report_path = run.write()
        # everything this layer sends to GitHub (PR body and title, check output, comments, summary, outputs) is
        # built from these two: they leave the core with every secret masked
        self.result.report = redact.redact_obj(run.report.to_dict())
        self.result.report_path = str(report_path)
        self.result.report_md = redact.redact(run.report.to_markdown())
        return self.result.report

    # ---- base-branch snapshot (a PR never supplies its own exam)
    def base_snapshot(self, base_sha: str) -> Path:
        path = checkout_base(self.workspace, base_sha, Path(self.env.get("RUNNER_TEMP") or tempfile.gettempdir()))
        self._worktrees.append(path)
        return path

    def cleanup(self) -> None:
        for path in self._worktrees:
            remove_checkout(self.workspace, path)
        self._worktrees = []

    def read_text(self, path: Path, what: str) -> str:
        if not path.is_file():
            raise ConfigError(f"{what} not found", str(path), fix="check `skill:` in the config and the `config` input")
        return path.read_text(encoding="utf-8")

    def skill_path_from_config(self, config: Path) -> str:
        return load_config(str(config)).skill

    # ---- handlers
    def handle(self) -> None:
        kind = self.t.kind
        if kind == "ignore":
            self.result.title = "nothing to do"
            self.log(self.t.reason)
            return
        if kind == "optimize":
            self.optimize_default_branch()
        elif kind == "eval":
            self.eval_default_branch()
        elif kind == "pull_request":
            self.gate_pull_request()
        elif kind == "comment":
            self.comment_command()

    def eval_default_branch(self) -> None:
        config = self.workspace / self.s.config
        out = self.out_dir("eval")
        self.record(api.evaluate(config, splits=("train", "val", "test"), out=out, log=stderr_log))
        self.result.title = "evaluated the skill on the default branch"

    def optimize_default_branch(self) -> None:
        config = self.workspace / self.s.config
        out = self.out_dir("optimize")
        # rejected edits carry over between scheduled runs (persisted with the cache by actions/cache)
        memory = self.workspace / ".skillopt" / "memory" / "rejected-edits.jsonl"
        run = api.optimize(config, epochs=self.t.epochs, memory=memory, out=out, log=stderr_log)
        report = self.record(run)
        skill_path = report["skill_path"]
        best = run.best_skill
        default_skill = self.read_text(self.workspace / skill_path, f"skill file {skill_path}")
        branch = prs.branch_for(skill_path)
        open_pr = prs.find_open(self.repo, branch, skill_path)
        closed = prs.find_closed(self.repo, branch) if open_pr is None and report.get("improved") else []
        plan = prs.decide(
            improved=bool(report.get("improved")),
            best=best,
            default_skill=default_skill,
            open_pr=open_pr,
            closed=closed,
        )
        self.result.title = {
            "created": "opened a pull request",
            "updated": "updated the pull request",
            "closed": "closed the pull request",
            "unchanged": "pull request unchanged",
            "none": "no pull request",
        }[plan.outcome]
        self.result.pr_operation = plan.outcome
        self.log(f"pull request: {plan.outcome} ({plan.reason})")
        if plan.pr_number and open_pr is not None:
            self.result.pr_number, self.result.pr_url = open_pr.number, open_pr.url
        if self.t.dry_run:
            self.result.title += " (dry run: nothing written to GitHub)"
            self.log("dry run: no branch pushed, no pull request or check changed")
            return
        self.execute_plan(plan, report, best, skill_path, branch, open_pr)

    def execute_plan(
        self, plan: prs.Plan, report: dict, best: str, skill_path: str, branch: str, open_pr: prs.OpenPR | None
    ) -> None:
        repo = self.repo
        val = (report.get("scores") or {}).get("val") or {}
        title = f"skillopt: improve {skill_path}"
        if val.get("best") is not None:
            title += f" (val {val['baseline']:.2f} → {val['best']:.2f})"
        title += screen.title_note(report)  # a PR that carries a flagged edit says so where reviewers look first
        head = open_pr.head_sha if open_pr else None
        if plan.push:
            head = prs.push_skill(
                repo,
                branch=branch,
                parent_sha=self.s.sha,
                skill_path=skill_path,
                text=best,
                message=f"{title}\n\nGate: {(report.get('gate') or {}).get('reason', '')}\nRun: {self.s.run_url}",
                force=True,
            )
            self.log(f"pushed {branch} at {head[:12]}")
        body = ""
        if plan.create or plan.edit:
            body = render("github_pr_body.md.j2", r=report, report_md=self.result.report_md, run_url=self.s.run_url,
                          marker=prs.state_marker(plan.proposal or "", head or ""), note="")
            body = checks.fit(body, 65536, self.s.run_url)
        pr = None
        if plan.create:
            pr = repo.create_pull(base=self.t.default_branch, head=branch, title=title, body=body)
            prs.apply_labels(repo, pr.number, self.s.labels)
            for warning in prs.request_reviewers(pr, self.s.reviewers, pr.user.login if pr.user else None):
                self.log(warning)
        elif open_pr is not None:
            pr = repo.get_pull(open_pr.number)
            if plan.edit:
                pr.edit(title=title, body=body)
            if plan.comment:
                comments.upsert_sticky(
                    pr,
                    self.bot_login,
                    render(
                        "github_comment.md.j2", kind=plan.comment, run_url=self.s.run_url, proposal=plan.proposal or ""
                    ),
                )
            if plan.close:
                comments.upsert_sticky(
                    pr,
                    self.bot_login,
                    "The default branch already contains the skill this PR proposed, so skillopt closed it. "
                    f"[Workflow run]({self.s.run_url})",
                )
                pr.edit(state="closed")
        if pr is not None:
            self.result.pr_number, self.result.pr_url = pr.number, pr.html_url
            self.log(f"pull request #{pr.number}: {pr.html_url}")
        if pr is not None and head and (plan.push or plan.edit):
            run = checks.start(repo, head, self.s.run_url)
            t, summary, text = checks.summary_for(report, self.s.run_url)
            checks.complete(
                run,
                conclusion=checks.conclusion_for(report),
                title=t,
                summary=summary,
                text=text,
                more_url=self.s.run_url,
            )
            self.log(f"check `{checks.CHECK_NAME}` on {head[:12]}: {checks.conclusion_for(report)}")

    # pull_request: gate the PR's skill against the base branch's skill, with the base branch's exam
    def gate_pull_request(self) -> None:
        pr_ref = self.t.pull
        assert pr_ref is not None
        self.result.pr_number = pr_ref.number
        if pr_ref.is_fork:
            self.result.title = "fork pull request: nothing run"
            msg = (
                f"This pull request comes from the fork `{pr_ref.head_repo}`. Workflows triggered by fork pull "
                "requests get no secrets and a read-only token, and skillopt never runs a fork's code or config "
                "with this repository's model keys, so nothing was scored. A maintainer can comment "
                "`/skillopt eval` on this pull request to score its skill "
                "against the base branch's tasks."
            )
            self.log("pull request from a fork: posted a neutral check, ran nothing")
            if not self.t.dry_run:
                checks.post_neutral(
                    self.repo,
                    pr_ref.head_sha,
                    title="Not run: pull request from a fork",
                    summary=msg,
                    details_url=self.s.run_url,
                )
            return
        self.gate(pr_ref.head_sha, pr_ref.base_sha, pr_ref.number, command=None)

    def gate(self, head_sha: str, base_sha: str, number: int, command: str | None, user: str = "") -> dict | None:
        """Score the skill at head_sha against the base's skill, using the base's config and tasks; post the check."""
        repo = self.repo
        run = None if self.t.dry_run else checks.start(repo, head_sha, self.s.run_url)
        try:
            base = self.base_snapshot(base_sha)
            config = base / self.s.config
            if not config.is_file():
                msg = f"The base branch has no `{self.s.config}`, so there is nothing to gate against."
                self.result.title = "no config on the base branch"
                self.log(msg)
                if run is not None:
                    checks.complete(
                        run, conclusion="neutral", title="No skillopt config on the base branch", summary=msg
                    )
                return None
            skill_path = self.skill_path_from_config(config)
            base_skill = self.read_text(base / skill_path, f"skill file {skill_path} on the base branch")
            candidate = prs._file_at(repo, skill_path, head_sha)
            if candidate is None:
                msg = f"This pull request deletes or moves `{skill_path}`; there is no candidate skill to score."
                self.result.title = "skill file missing in the pull request"
                self.log(msg)
                if run is not None:
                    checks.complete(run, conclusion="failure", title=f"{skill_path} is missing", summary=msg)
                return None
            if candidate == base_skill and command is None:
                msg = (
                    f"This pull request does not change `{skill_path}`, so there is nothing to gate. The tasks, "
                    "scorers and config are always taken from the base branch, so changes to them take effect "
                    "once merged."
                )
                self.result.title = "skill unchanged: nothing to gate"
                self.log(msg)
                if run is not None:
                    checks.complete(run, conclusion="neutral", title=f"{skill_path} unchanged", summary=msg)
                return None
            out = self.out_dir("compare")
            report = self.record(api.compare(config, base_skill=base_skill, candidate_skill=candidate, out=out,
                                             log=stderr_log))
        except ConfigError as exc:
            if run is not None:
                checks.complete(run, conclusion="failure", title="skillopt could not score: invalid config",
                                summary=f"```\n{exc}\n```\nSee the [workflow run]({self.s.run_url}).")
            raise
        except Exception as exc:
            if run is not None:
                checks.complete(
                    run,
                    conclusion="failure",
                    title=f"skillopt could not score: {meaning(exc)}",
                    summary=f"Scoring failed ({meaning(exc)}): `{first_line(exc)}`. "
                    f"See the [workflow run]({self.s.run_url}).",
                )
            raise
        title, summary, text = checks.summary_for(report, self.s.run_url)
        verdict = checks.conclusion_for(report)
        self.result.title = f"gate {verdict} on #{number}"
        self.log(f"check `{checks.CHECK_NAME}` on {head_sha[:12]}: {verdict} — {title}")
        if run is not None:
            checks.complete(run, conclusion=verdict, title=title, summary=summary, text=text, more_url=self.s.run_url)
        return report

    # issue_comment: /skillopt commands from people with write access
    def comment_command(self) -> None:
        t = self.t
        if t.commenter_is_bot:
            self.result.title = "ignored a bot's comment"
            self.log(f"comment by {t.commenter} (a bot) is never a command")
            return
        cmd = commands.parse(t.comment_body)
        if cmd is None:
            self.result.title = "not a /skillopt command"
            self.log("comment does not start with /skillopt")
            return
        assert t.pull_number is not None and t.comment_id is not None
        repo = self.repo
        pr = repo.get_pull(t.pull_number)
        self.result.pr_number, self.result.pr_url = pr.number, pr.html_url
        if t.dry_run:
            self.log(f"dry run: would handle `/skillopt {cmd.name}` from {t.commenter}")
            return
        comments.react_eyes(pr, t.comment_id)
        try:
            permission = repo.get_collaborator_permission(t.commenter)
        except UnknownObjectException:
            permission = "none"
        auth = commands.authorize(permission, commenter_is_bot=t.commenter_is_bot)
        if not auth.allowed:
            self.result.title = f"refused /skillopt {cmd.name} from {t.commenter}"
            self.log(f"{t.commenter} {auth.reason}; nothing run")
            comments.upsert_sticky(
                pr, self.bot_login, render("github_comment.md.j2", kind="denied", user=t.commenter, reason=auth.reason)
            )
            return
        if cmd.name in ("help", "unknown"):
            self.result.title = "answered with the help text"
            self.log(f"/skillopt {cmd.name}: {cmd.error or 'help'}")
            comments.upsert_sticky(
                pr, self.bot_login, render("github_comment.md.j2", kind="help", error=cmd.error, help=commands.HELP)
            )
            return
        label = cmd.name + (f" epochs={cmd.epochs}" if cmd.epochs else "")
        comments.upsert_sticky(
            pr,
            self.bot_login,
            render("github_comment.md.j2", kind="received", command=label, user=t.commenter, run_url=self.s.run_url),
        )
        try:
            if cmd.name == "eval":
                report = self.gate(pr.head.sha, pr.base.sha, pr.number, command="eval", user=t.commenter)
                headline = (
                    self.result.title
                    if report is None
                    else ("✅ passes the gate" if report.get("improved") else "❌ does not pass the gate")
                    + " against the base branch's skill."
                )
            else:
                report, headline = self.optimize_pull_request(pr, cmd.epochs)
        except Exception as exc:
            reason = first_line(exc) if isinstance(exc, ConfigError) and str(exc) else meaning(exc)
            comments.upsert_sticky(
                pr,
                self.bot_login,
                render("github_comment.md.j2", kind="failed", command=label, reason=reason, run_url=self.s.run_url),
            )
            raise
        if report is None:
            body = (
                f"**`/skillopt {label}`** requested by @{t.commenter}: {headline}\n\n[Workflow run]({self.s.run_url})"
            )
        else:
            body = render(
                "github_comment.md.j2",
                kind="result",
                command=label,
                user=t.commenter,
                headline=headline,
                r=report,
                details=report.get("diff") and f"```diff\n{report['diff']}\n```",
                run_url=self.s.run_url,
            )
        comments.upsert_sticky(pr, self.bot_login, body, more_url=self.s.run_url)

    def optimize_pull_request(self, pr, epochs: int | None) -> tuple[dict, str]:
        """Train from the PR's skill with the base branch's exam; push to the PR branch only when it is in this repo."""
        base = self.base_snapshot(pr.base.sha)
        config = base / self.s.config
        if not config.is_file():
            raise ConfigError(
                f"the base branch has no {self.s.config}", fix="merge a skillopt config into the base branch first"
            )
        skill_path = self.skill_path_from_config(config)
        start = prs._file_at(self.repo, skill_path, pr.head.sha)
        if start is None:
            raise ConfigError(
                f"this pull request has no {skill_path}", fix="restore the skill file in the pull request"
            )
        out = self.out_dir("optimize")
        run = api.optimize(config, skill=start, epochs=epochs, out=out, log=stderr_log)
        report = self.record(run)
        best = run.best_skill
        if not report.get("improved") or best == start:
            self.result.title = f"optimize on #{pr.number}: no edit passed the gate"
            return report, "no edit passed the gate; the branch is unchanged."
        same_repo = pr.head.repo is not None and pr.head.repo.full_name.lower() == self.s.repository.lower()
        if not same_repo:
            self.result.title = f"optimize on #{pr.number}: improved, not pushed (fork)"
            return (
                report,
                "an improved skill passed the gate, but this branch lives in a fork, so it was not pushed; "
                "the diff is below.",
            )
        sha = prs.push_skill(
            self.repo,
            branch=pr.head.ref,
            parent_sha=pr.head.sha,
            skill_path=skill_path,
            text=best,
            message=f"skillopt: optimize {skill_path}\n\nRequested in #{pr.number}. Run: {self.s.run_url}",
            force=False,
        )
        self.result.title = f"optimize on #{pr.number}: pushed {sha[:12]}"
        self.log(f"pushed the improved skill to {pr.head.ref} at {sha[:12]}")
        return report, f"✅ an improved skill passed the gate and was pushed to `{pr.head.ref}` ({sha[:7]})."


def _client(settings: Settings, env: Mapping[str, str]) -> Github:
    # GitHub asks for >= 1 s between writes; tests turn throttling off
    if env.get("SKILLOPT_GITHUB_THROTTLE", "1") != "0":
        return Github(base_url=settings.api_url, auth=Auth.Token(settings.token))
    return Github(base_url=settings.api_url, auth=Auth.Token(settings.token), seconds_between_requests=None,
                  seconds_between_writes=None, retry=None)


def run(env: Mapping[str, str] | None = None) -> int:
    """The action's entry point. Returns the exit code (0 unless something failed)."""
    env = dict(os.environ if env is None else env)
    redact.register_values(env[name] for name in redact.secret_env_names(env))  # the token, the model keys
    if env.get("GITHUB_ACTIONS") == "true":  # the runner then hides these values in the job log as well
        redact.emit_add_masks(env)
    result = Result()
    settings = None
    runner = None
    try:
        settings = settings_from_env(env)
        try:
            payload = json.loads(Path(settings.event_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the event payload: {exc}", settings.event_path) from exc
        trigger = parse_trigger(settings, payload)
        runner = Runner(settings, trigger, _client(settings, env), env)
        result = runner.result
        runner.handle()
    except SkillOptError as exc:
        result = runner.result if runner else result
        result.exit_code = exc.exit_code
        result.title = result.title or "failed"
        result.lines.append(f"error: {exc}")
        print(f"error: {exc}", file=sys.stderr)
    except GithubException as exc:
        result = runner.result if runner else result
        result.exit_code = EXIT_INTERNAL
        message = exc.data.get("message") if isinstance(exc.data, dict) else str(exc.data)
        result.title = "GitHub API error"
        result.lines.append(f"error: GitHub answered {exc.status}: {message}")
        print(f"error: GitHub answered {exc.status}: {message} (check the workflow's `permissions:`)", file=sys.stderr)
    except Exception:  # a bug: show it, exit 1, still write the outputs and the summary
        result = runner.result if runner else result
        result.exit_code = EXIT_INTERNAL
        result.title = result.title or "internal error"
        result.lines.append("error: internal error (a bug); the traceback is in the job log")
        traceback.print_exc()
    finally:
        if runner is not None:
            runner.cleanup()
    if settings is not None:
        write_outputs(settings.output_path, result.outputs())
        write_summary(settings.summary_path, result, settings.run_url)
    return result.exit_code
