"""GitHub Action entry point: route the trigger to its handler, call the core, report back to GitHub.

`run(env)` reads the runner's environment (GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_REPOSITORY,
GITHUB_API_URL, GITHUB_SERVER_URL, GITHUB_RUN_ID, GITHUB_SHA, GITHUB_WORKSPACE, INPUT_*), writes
GITHUB_OUTPUT and GITHUB_STEP_SUMMARY, and returns the process exit code. The core (`skillopt
optimize|eval|compare`) runs in-process; this module only translates between it and GitHub.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from github import Auth, Github
from github.GithubException import GithubException, UnknownObjectException

from ..errors import EXIT_INTERNAL, EXIT_OK, ConfigError, SkillOptError
from ..render import render
from . import checks, commands, comments
from . import pull_request as prs
from .event import Settings, Trigger, parse_trigger, settings_from_env

ACTIONS_BOT = "github-actions[bot]"
EXIT_MEANING = {2: "invalid config or tasks", 3: "the model provider failed", 4: "the budget cap was hit before the baseline", 1: "internal error"}

Core = Callable[[list[str]], int]


def _default_core(argv: list[str]) -> int:
    from ..cli import main

    return main(argv)


@dataclass
class Result:
    """What the run produced, for GITHUB_OUTPUT and the job summary."""

    title: str = ""
    lines: list[str] = field(default_factory=list)
    report: dict | None = None
    report_path: str = ""
    report_md: str = ""
    pr_number: int | None = None
    pr_url: str = ""
    pr_operation: str = ""
    exit_code: int = EXIT_OK

    def outputs(self) -> dict[str, str]:
        r = self.report or {}
        val = (r.get("scores") or {}).get("val") or {}
        gate = r.get("gate") or {}

        def num(x) -> str:
            return "" if x is None else f"{x:.4f}"

        return {
            "baseline-score": num(val.get("baseline")),
            "best-score": num(val.get("best")),
            "accepted": "true" if r.get("improved") else "false",
            "p-value": num(gate.get("p_value")),
            "pr-number": str(self.pr_number or ""),
            "pr-url": self.pr_url,
            "pr-operation": self.pr_operation,
            "report-path": self.report_path,
        }


class Runner:
    def __init__(self, settings: Settings, trigger: Trigger, gh: Github, core: Core, env: Mapping[str, str]):
        self.s = settings
        self.t = trigger
        self.gh = gh
        self.core = core
        self.env = env
        self.result = Result()
        self._repo = None
        self._bot = None
        self.workspace = Path(settings.workspace).resolve()
        self.runs_dir = self.workspace / ".skillopt" / "action"
        self._worktrees: list[Path] = []

    # ---- GitHub helpers
    @property
    def repo(self):
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

    def call_core(self, argv: list[str], out: Path) -> dict:
        code = self.core(argv)
        if code != EXIT_OK:
            raise CoreFailed(code, argv[0])
        report_path = out / "report.json"
        if not report_path.is_file():
            raise CoreFailed(EXIT_INTERNAL, argv[0], f"`skillopt {argv[0]}` exited 0 but wrote no {report_path}")
        report = json.loads(report_path.read_text(encoding="utf-8"))
        self.result.report = report
        self.result.report_path = str(report_path)
        md = out / "report.md"
        self.result.report_md = md.read_text(encoding="utf-8") if md.is_file() else ""
        return report

    # ---- base-branch snapshot (a PR never supplies its own exam)
    def base_snapshot(self, base_sha: str) -> Path:
        ws = str(self.workspace)
        have = subprocess.run(["git", "-C", ws, "cat-file", "-e", f"{base_sha}^{{commit}}"], capture_output=True)
        if have.returncode != 0:
            fetched = subprocess.run(["git", "-C", ws, "fetch", "--no-tags", "--depth=1", "origin", base_sha], capture_output=True, text=True)
            if fetched.returncode != 0:
                raise ConfigError(f"cannot fetch the base commit {base_sha[:12]} into {ws}: {fetched.stderr.strip()[:300]}",
                                  fix="check out the repository first (actions/checkout) so the base branch can be fetched")
        parent = Path(self.env.get("RUNNER_TEMP") or tempfile.gettempdir())
        path = parent / f"skillopt-base-{base_sha[:12]}-{uuid.uuid4().hex[:6]}"
        added = subprocess.run(["git", "-C", ws, "worktree", "add", "--detach", str(path), base_sha], capture_output=True, text=True)
        if added.returncode != 0:
            raise ConfigError(f"cannot check out the base commit {base_sha[:12]}: {added.stderr.strip()[:300]}",
                              fix="run the action on a full git checkout of the repository")
        self._worktrees.append(path)
        return path

    def cleanup(self) -> None:
        for path in self._worktrees:
            subprocess.run(["git", "-C", str(self.workspace), "worktree", "remove", "--force", str(path)], capture_output=True)
        self._worktrees = []

    def read_text(self, path: Path, what: str) -> str:
        if not path.is_file():
            raise ConfigError(f"{what} not found", str(path), fix="check `skill:` in the config and the `config` input")
        return path.read_text(encoding="utf-8")

    def skill_path_from_config(self, config: Path) -> str:
        from ..config import load_config

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
        self.call_core(["eval", "--config", str(config), "--split", "all", "--out", str(out)], out)
        self.result.title = "evaluated the skill on the default branch"

    def optimize_default_branch(self) -> None:
        config = self.workspace / self.s.config
        out = self.out_dir("optimize")
        # rejected edits carry over between scheduled runs (persisted with the cache by actions/cache)
        memory = self.workspace / ".skillopt" / "memory" / "rejected-edits.jsonl"
        argv = ["optimize", "--config", str(config), "--out", str(out), "--memory", str(memory)]
        if self.t.epochs:
            argv += ["--epochs", str(self.t.epochs)]
        report = self.call_core(argv, out)
        skill_path = report["skill_path"]
        best = self.read_text(out / "best_skill.md", "best_skill.md")
        default_skill = self.read_text(self.workspace / skill_path, f"skill file {skill_path}")
        branch = prs.branch_for(skill_path)
        open_pr = prs.find_open(self.repo, branch, skill_path)
        closed = prs.find_closed(self.repo, branch) if open_pr is None and report.get("improved") else []
        plan = prs.decide(improved=bool(report.get("improved")), best=best, default_skill=default_skill, open_pr=open_pr, closed=closed)
        self.result.title = {"created": "opened a pull request", "updated": "updated the pull request", "closed": "closed the pull request",
                             "unchanged": "pull request unchanged", "none": "no pull request"}[plan.outcome]
        self.result.pr_operation = plan.outcome
        self.log(f"pull request: {plan.outcome} ({plan.reason})")
        if plan.pr_number and open_pr is not None:
            self.result.pr_number, self.result.pr_url = open_pr.number, open_pr.url
        if self.t.dry_run:
            self.result.title += " (dry run: nothing written to GitHub)"
            self.log("dry run: no branch pushed, no pull request or check changed")
            return
        self.execute_plan(plan, report, best, skill_path, branch, open_pr)

    def execute_plan(self, plan: prs.Plan, report: dict, best: str, skill_path: str, branch: str, open_pr: prs.OpenPR | None) -> None:
        repo = self.repo
        val = (report.get("scores") or {}).get("val") or {}
        title = f"skillopt: improve {skill_path}"
        if val.get("best") is not None:
            title += f" (val {val['baseline']:.2f} → {val['best']:.2f})"
        head = open_pr.head_sha if open_pr else None
        if plan.push:
            head = prs.push_skill(repo, branch=branch, parent_sha=self.s.sha, skill_path=skill_path, text=best,
                                  message=f"{title}\n\nGate: {(report.get('gate') or {}).get('reason', '')}\nRun: {self.s.run_url}",
                                  force=True)
            self.log(f"pushed {branch} at {head[:12]}")
        body = None
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
                comments.upsert_sticky(pr, self.bot_login, render("github_comment.md.j2", kind=plan.comment, run_url=self.s.run_url,
                                                                  proposal=plan.proposal or ""))
            if plan.close:
                comments.upsert_sticky(pr, self.bot_login, f"The default branch already contains the skill this PR proposed, so skillopt closed it. [Workflow run]({self.s.run_url})")
                pr.edit(state="closed")
        if pr is not None:
            self.result.pr_number, self.result.pr_url = pr.number, pr.html_url
            self.log(f"pull request #{pr.number}: {pr.html_url}")
        if pr is not None and head and (plan.push or plan.edit):
            run = checks.start(repo, head, self.s.run_url)
            t, summary, text = checks.summary_for(report, self.s.run_url)
            checks.complete(run, conclusion=checks.conclusion_for(report), title=t, summary=summary, text=text, more_url=self.s.run_url)
            self.log(f"check `{checks.CHECK_NAME}` on {head[:12]}: {checks.conclusion_for(report)}")

    # pull_request: gate the PR's skill against the base branch's skill, with the base branch's exam
    def gate_pull_request(self) -> None:
        pr_ref = self.t.pull
        assert pr_ref is not None
        self.result.pr_number = pr_ref.number
        if pr_ref.is_fork:
            self.result.title = "fork pull request: nothing run"
            msg = (f"This pull request comes from the fork `{pr_ref.head_repo}`. Workflows triggered by fork pull requests get no "
                   "secrets and a read-only token, and skillopt never runs a fork's code or config with this repository's model keys, "
                   "so nothing was scored. A maintainer can comment `/skillopt eval` on this pull request to score its skill "
                   "against the base branch's tasks.")
            self.log("pull request from a fork: posted a neutral check, ran nothing")
            if not self.t.dry_run:
                checks.post_neutral(self.repo, pr_ref.head_sha, title="Not run: pull request from a fork", summary=msg, details_url=self.s.run_url)
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
                    checks.complete(run, conclusion="neutral", title="No skillopt config on the base branch", summary=msg)
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
                msg = (f"This pull request does not change `{skill_path}`, so there is nothing to gate. The tasks, scorers and config "
                       "are always taken from the base branch, so changes to them take effect once merged.")
                self.result.title = "skill unchanged: nothing to gate"
                self.log(msg)
                if run is not None:
                    checks.complete(run, conclusion="neutral", title=f"{skill_path} unchanged", summary=msg)
                return None
            cand_path = self.runs_dir / f"candidate-{head_sha[:12]}.md"
            cand_path.parent.mkdir(parents=True, exist_ok=True)
            cand_path.write_text(candidate, encoding="utf-8")
            out = self.out_dir("compare")
            report = self.call_core(["compare", "--config", str(config), "--base-skill", str(base / skill_path),
                                     "--skill", str(cand_path), "--out", str(out)], out)
        except CoreFailed as exc:
            if run is not None:
                checks.complete(run, conclusion="failure", title=f"skillopt could not score: {exc.meaning}",
                                summary=f"`skillopt {exc.verb}` exited {exc.code} ({exc.meaning}). See the [workflow run]({self.s.run_url}).")
            raise
        except ConfigError as exc:
            if run is not None:
                checks.complete(run, conclusion="failure", title="skillopt could not score: invalid config",
                                summary=f"```\n{exc}\n```\nSee the [workflow run]({self.s.run_url}).")
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
            comments.upsert_sticky(pr, self.bot_login, render("github_comment.md.j2", kind="denied", user=t.commenter, reason=auth.reason))
            return
        if cmd.name in ("help", "unknown"):
            self.result.title = "answered with the help text"
            self.log(f"/skillopt {cmd.name}: {cmd.error or 'help'}")
            comments.upsert_sticky(pr, self.bot_login, render("github_comment.md.j2", kind="help", error=cmd.error, help=commands.HELP))
            return
        label = cmd.name + (f" epochs={cmd.epochs}" if cmd.epochs else "")
        comments.upsert_sticky(pr, self.bot_login, render("github_comment.md.j2", kind="received", command=label, user=t.commenter, run_url=self.s.run_url))
        try:
            if cmd.name == "eval":
                report = self.gate(pr.head.sha, pr.base.sha, pr.number, command="eval", user=t.commenter)
                headline = (self.result.title if report is None else
                            ("✅ passes the gate" if report.get("improved") else "❌ does not pass the gate") + " against the base branch's skill.")
            else:
                report, headline = self.optimize_pull_request(pr, cmd.epochs)
        except (CoreFailed, SkillOptError) as exc:
            reason = exc.meaning if isinstance(exc, CoreFailed) else str(exc).splitlines()[0]
            comments.upsert_sticky(pr, self.bot_login, render("github_comment.md.j2", kind="failed", command=label, reason=reason, run_url=self.s.run_url))
            raise
        if report is None:
            body = f"**`/skillopt {label}`** requested by @{t.commenter}: {headline}\n\n[Workflow run]({self.s.run_url})"
        else:
            body = render("github_comment.md.j2", kind="result", command=label, user=t.commenter, headline=headline, r=report,
                          details=report.get("diff") and f"```diff\n{report['diff']}\n```", run_url=self.s.run_url)
        comments.upsert_sticky(pr, self.bot_login, body, more_url=self.s.run_url)

    def optimize_pull_request(self, pr, epochs: int | None) -> tuple[dict, str]:
        """Train from the PR's skill with the base branch's exam; push to the PR branch only when it is in this repo."""
        base = self.base_snapshot(pr.base.sha)
        config = base / self.s.config
        if not config.is_file():
            raise ConfigError(f"the base branch has no {self.s.config}", fix="merge a skillopt config into the base branch first")
        skill_path = self.skill_path_from_config(config)
        start = prs._file_at(self.repo, skill_path, pr.head.sha)
        if start is None:
            raise ConfigError(f"this pull request has no {skill_path}", fix="restore the skill file in the pull request")
        start_path = self.runs_dir / f"start-{pr.head.sha[:12]}.md"
        start_path.parent.mkdir(parents=True, exist_ok=True)
        start_path.write_text(start, encoding="utf-8")
        out = self.out_dir("optimize")
        argv = ["optimize", "--config", str(config), "--skill", str(start_path), "--out", str(out)]
        if epochs:
            argv += ["--epochs", str(epochs)]
        report = self.call_core(argv, out)
        best = self.read_text(out / "best_skill.md", "best_skill.md")
        if not report.get("improved") or best == start:
            self.result.title = f"optimize on #{pr.number}: no edit passed the gate"
            return report, "no edit passed the gate; the branch is unchanged."
        same_repo = pr.head.repo is not None and pr.head.repo.full_name.lower() == self.s.repository.lower()
        if not same_repo:
            self.result.title = f"optimize on #{pr.number}: improved, not pushed (fork)"
            return report, "an improved skill passed the gate, but this branch lives in a fork, so it was not pushed; the diff is below."
        sha = prs.push_skill(self.repo, branch=pr.head.ref, parent_sha=pr.head.sha, skill_path=skill_path, text=best,
                             message=f"skillopt: optimize {skill_path}\n\nRequested in #{pr.number}. Run: {self.s.run_url}", force=False)
        self.result.title = f"optimize on #{pr.number}: pushed {sha[:12]}"
        self.log(f"pushed the improved skill to {pr.head.ref} at {sha[:12]}")
        return report, f"✅ an improved skill passed the gate and was pushed to `{pr.head.ref}` ({sha[:7]})."


class CoreFailed(SkillOptError):
    def __init__(self, code: int, verb: str, message: str | None = None):
        self.code, self.verb = code, verb
        self.meaning = EXIT_MEANING.get(code, f"exit code {code}")
        self.exit_code = code if code else EXIT_INTERNAL
        super().__init__(message or f"`skillopt {verb}` failed with exit code {code} ({self.meaning})")


def _client(settings: Settings, env: Mapping[str, str]) -> Github:
    throttle = env.get("SKILLOPT_GITHUB_THROTTLE", "1") != "0"  # GitHub asks for >= 1 s between writes; tests turn it off
    kwargs = {} if throttle else {"seconds_between_requests": None, "seconds_between_writes": None, "retry": None}
    return Github(base_url=settings.api_url, auth=Auth.Token(settings.token), **kwargs)


def _write_outputs(path: str | None, outputs: Mapping[str, str]) -> None:
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for k, v in outputs.items():
            delim = f"skillopt_{uuid.uuid4().hex}"
            f.write(f"{k}<<{delim}\n{v}\n{delim}\n")


def _write_summary(path: str | None, result: Result, run_url: str) -> None:
    if not path:
        return
    lines = list(result.lines)
    if result.pr_url:
        lines.append(f"pull request: [#{result.pr_number}]({result.pr_url})" + (f" ({result.pr_operation})" if result.pr_operation else ""))
    if result.report_path:
        lines.append(f"report: `{result.report_path}` ([run artifacts]({run_url}))")
    text = render("github_job_summary.md.j2", title=result.title or "done", lines=lines, report_md=result.report_md)
    with open(path, "a", encoding="utf-8") as f:
        f.write(checks.fit(text, 1024 * 1024 - 1024, run_url))  # the step summary limit is 1 MiB


def run(env: Mapping[str, str] | None = None, *, core: Core | None = None) -> int:
    """The action's entry point. Returns the exit code (0 unless something failed)."""
    env = dict(os.environ if env is None else env)
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
        runner = Runner(settings, trigger, _client(settings, env), core or _default_core, env)
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
    finally:
        if runner is not None:
            runner.cleanup()
    if settings is not None:
        _write_outputs(settings.output_path, result.outputs())
        _write_summary(settings.summary_path, result, settings.run_url)
    return result.exit_code
