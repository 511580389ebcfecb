"""The state one Action run shares between its handlers: settings, trigger, the GitHub client, what the run
produced so far (`Result`), and the helpers every handler needs (log, annotations, run directories, the base
branch's snapshot, whether the token may write)."""

from __future__ import annotations

import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from github import Github
from github.GithubException import GithubException
from github.Repository import Repository

from .. import api, redact
from ..errors import ConfigError
from . import access
from .event import Settings, Trigger
from .memory import MEMORY_DIR, REFUSED, REJECTED
from .outputs import Result, annotation
from .snapshot import checkout_base, remove_checkout

ACTIONS_BOT = "github-actions[bot]"


class Context:
    def __init__(self, settings: Settings, trigger: Trigger, gh: Github, env: Mapping[str, str]):
        self.s = settings
        self.t = trigger
        self.gh = gh
        self.env = env
        self.result = Result()
        self._repo: Repository | None = None
        self._bot: str | None = None
        self._access: access.Access | None = None
        self.workspace = Path(settings.workspace).resolve()
        self.runs_dir = self.workspace / ".skillopt" / "action"
        self.memory_dir = self.workspace / MEMORY_DIR
        self._worktrees: list[Path] = []
        self.last_report_md = ""  # report.md of the latest core run

    @property
    def memory_path(self) -> Path:
        """The rejected-edit memory of scheduled runs (the core's `--memory`)."""
        return self.memory_dir / REJECTED

    @property
    def refusal_path(self) -> Path:
        return self.memory_dir / REFUSED

    # ---- GitHub
    @property
    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = self.gh.get_repo(self.s.repository)
        return self._repo

    @property
    def bot_login(self) -> str:
        """Whose comments are ours: the token's user, or (an Actions or App token cannot read /user) the
        `bot-login` input, default github-actions[bot]."""
        if self._bot is None:
            try:
                self._bot = self.gh.get_user().login
            except GithubException as exc:
                if exc.status != 403:
                    raise
                self._bot = self.s.bot_login or ACTIONS_BOT
        return self._bot

    def access(self, *, fork: bool = False) -> access.Access:
        """Whether this run's token may write, from GitHub's answer about the token and the event."""
        if self._access is None:
            perms = self.repo.raw_data.get("permissions")  # present for user tokens only
            self._access = access.decide(event=self.t.event, fork=fork, actor=self.s.actor,
                                         repo_permissions=perms if isinstance(perms, dict) else None)
        return self._access

    # ---- reporting
    def log(self, line: str) -> None:
        print(f"skillopt: {line}", file=sys.stderr, flush=True)
        self.result.lines.append(line)

    def annotate(self, kind: str, message: str) -> None:
        """A `::notice::` / `::warning::` / `::error::` on the workflow run (stdout), and a line of the summary."""
        print(annotation(kind, message), flush=True)
        self.log(message)

    def read_only(self, message: str, title: str) -> None:
        """End a run that cannot write: job summary and a notice, exit 0, nothing spent."""
        self.result.title = title
        self.annotate("notice", message)

    # ---- the core's runs
    def out_dir(self, name: str) -> Path:
        d = self.runs_dir / f"{name}-{self.s.run_id}-{self.s.run_attempt}-{uuid.uuid4().hex[:6]}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def record(self, run: api.RunResult, primary: bool = True) -> dict:
        """Write a run's report next to its trajectories (the run directory is what workflows upload as an
        artifact); the primary run of the Action is also what the outputs and the job summary show."""
        report_path = run.write()
        # everything this layer sends to GitHub (PR body and title, check output, comments, summary, outputs) is
        # built from these two: they leave the core with every secret masked
        report = redact.redact_obj(run.report.to_dict())
        self.last_report_md = redact.redact(run.report.to_markdown())
        if primary:
            self.result.report = report
            self.result.report_path = str(report_path)
            self.result.report_md = self.last_report_md
        return report

    # ---- base-branch snapshot (a PR never supplies its own exam)
    def base_snapshot(self, base_sha: str) -> Path:
        path = checkout_base(self.workspace, base_sha, Path(self.env.get("RUNNER_TEMP") or tempfile.gettempdir()))
        self._worktrees.append(path)
        return path

    def cleanup(self) -> None:
        for path in self._worktrees:
            remove_checkout(self.workspace, path)
        self._worktrees = []

    @staticmethod
    def read_text(path: Path, what: str) -> str:
        if not path.is_file():
            raise ConfigError(f"{what} not found", str(path), fix="check `skill:` in the config and the `config` input")
        return path.read_text(encoding="utf-8")
