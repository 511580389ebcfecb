"""The drift watch on the default branch (`command: watch`, usually on a schedule): decide on plain data, then act.

1. read the skill's stored baseline from the branch `skillopt-data` (`baselines.py`);
2. re-score the skill on val with fresh samples and compare task by task (the core: `api.watch`);
3. `decide`: whether this run's scores become the baseline, and what happens to the ONE drift issue of the
   skill (labelled `skillopt-drift`, titled "skillopt: skill drift in <skill>"; found by label and title, open or
   closed, so a later drift reopens it rather than opening a second one);
4. `act`: commit the baseline, create / edit and comment / reopen / close the issue.

The rules `decide` applies, in order:

- no baseline yet: record this run's scores; nothing to compare;
- `record-baseline: true`: record this run's scores; an open drift issue gets a comment and is closed;
- the skill on the default branch is not the one the baseline scored (a reviewed edit was merged): its scores
  are the new baseline; an open drift issue is closed with a comment;
- a person closed the drift issue about this baseline: the drift is accepted, this run's scores are recorded;
- drift (score beyond noise, or another reported model): open the issue, or edit its table and comment (open),
  or reopen it with the new table and a comment (closed by skillopt, or about an older baseline);
- no drift: an open issue gets a "back within noise" comment and is closed; otherwise nothing is written.

Everything sent to GitHub is rendered from templates and masked by `redact` on the way out; task ids and the
model ids a provider reported are untrusted text and are made inline-safe first (`present.inline`). The Action
exits 0 on drift (the issue is the signal; the step output `drifted` lets a workflow chain a retraining run);
`optimize-on-drift: true` runs `optimize` in the same job instead.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from github.GithubException import GithubException

from .. import api, drift, redact
from ..config import load_config
from ..errors import ConfigError
from ..render import render
from ..runtime import stderr_log
from ..text import clip
from . import access, baselines, default_branch
from . import pull_request as prs
from .context import Context
from .present import inline

DRIFT_LABEL = "skillopt-drift"
MARKER_RE = re.compile(r"<!-- skillopt:drift (\{.*?\}) -->", re.S)


def issue_title(skill_path: str) -> str:
    return f"skillopt: skill drift in {skill_path}"


def marker(**state: Any) -> str:
    data = json.dumps(state, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")
    return f"<!-- skillopt:drift {data} -->"


def read_marker(body: str | None) -> dict:
    return prs.read_json_marker(MARKER_RE, body)


@dataclass(frozen=True)
class DriftIssue:
    number: int
    url: str
    open: bool
    closed_by: str | None
    body: str

    @property
    def baseline(self) -> str | None:
        """The baseline (`drift.baseline_id`) the issue's latest table was measured against."""
        return read_marker(self.body).get("baseline")


@dataclass(frozen=True)
class Plan:
    record: bool  # store this run's scores as the new baseline
    issue: str  # create | update | reopen | close | none
    reason: str
    comment: str | None = None  # kind (github_drift_comment.md.j2): again | back | skill-changed | recorded


def decide(*, stored: dict | None, current: dict, drifted: bool, issue: DriftIssue | None, record: bool,
           bot: str) -> Plan:
    """What to do after a watch run, from plain data: the stored baseline (None: none yet), this run's scores,
    the core's verdict, the skill's drift issue (None: never opened), the `record-baseline` input and our login."""
    is_open = issue is not None and issue.open
    if record:
        return Plan(True, "close" if is_open else "none", "record-baseline: this run's scores are the new baseline",
                    "recorded" if is_open else None)
    if stored is None:
        return Plan(True, "none", "no baseline yet: this run's scores are the baseline")
    if stored.get("skill_hash") != current.get("skill_hash"):
        return Plan(True, "close" if is_open else "none", "the skill changed on the default branch since the "
                    "baseline: its scores are the new baseline", "skill-changed" if is_open else None)
    if (issue is not None and not issue.open and issue.closed_by not in (None, bot)
            and issue.baseline == drift.baseline_id(stored)):
        return Plan(True, "none", f"@{issue.closed_by} closed #{issue.number}, accepting the drift it reported: this "
                    "run's scores are the new baseline")
    if drifted:
        if issue is None:
            return Plan(False, "create", "drift: opening the drift issue")
        if issue.open:
            return Plan(False, "update", f"drift again: updating #{issue.number}", "again")
        return Plan(False, "reopen", f"drift again: reopening #{issue.number}", "again")
    if is_open:
        assert issue is not None
        return Plan(False, "close", f"back within noise: closing #{issue.number}", "back")
    return Plan(False, "none", "no drift")


# --------------------------------------------------------------------------- do


def find_issue(repo, skill_path: str) -> tuple[DriftIssue | None, Any]:
    """The skill's drift issue (the open one, else the newest closed one) and its PyGithub object."""
    title = issue_title(skill_path)
    found = []
    for issue in repo.get_issues(state="all", labels=[DRIFT_LABEL], sort="created", direction="desc"):
        # the issues API lists pull requests too; their html_url says so without a GET per item
        if issue.title == title and "/pull/" not in issue.html_url:
            found.append(issue)
    if not found:
        return None, None
    issue = next((i for i in found if i.state == "open"), found[0])
    # who closed it is on the single issue, not in the list (GitHub leaves `closed_by` out of list items)
    closer = prs.closed_by(repo, issue.number) if issue.state == "closed" else None
    return DriftIssue(issue.number, issue.html_url, issue.state == "open", closer, issue.body or ""), issue


def safe_view(result: api.WatchResult) -> dict:
    """The drift view with task ids, reasons and model ids made safe for one Markdown line or table cell."""
    def cell(text: Any) -> str:
        return clip(inline(text), 200).replace("|", "\\|").replace("`", "'")

    view = result.view()
    view["reasons"] = (["no baseline yet: this run's scores become the baseline"] if result.recorded else
                       [cell(r) for r in view["reasons"]])
    view["rows"] = [dict(r, task=cell(r["task"])) for r in view["rows"]]
    for key in ("models_before", "models_now"):
        view[key] = [cell(m) for m in view[key]]
    for key in ("target_before", "target_now"):
        view[key] = cell(view[key])
    return view


def headline(result: api.WatchResult) -> str:
    drifts = [r for r in result.reasons if not r.startswith("note:")]
    return inline("; ".join(drifts) or "no change")


def handle(ctx: Context) -> None:
    config = ctx.workspace / ctx.s.config
    skill_path = load_config(str(config)).skill
    can = ctx.access()
    if not can.writable and not ctx.t.dry_run:
        ctx.read_only(f"skillopt did not run the drift watch: {can.reason}, so it could not store the baseline or "
                      "open the drift issue, and it called no model. Pass a token with write access in "
                      "`github-token`, or set `dry-run: true` for a report only.", "read-only token: nothing run")
        return
    record = bool(ctx.t.extra.get("record_baseline"))
    path = baselines.path_for(skill_path)
    try:
        stored = baselines.read(ctx.repo, path)
    except ConfigError:
        if not record:
            raise
        stored = None  # a damaged baseline is what record-baseline repairs
    out = ctx.out_dir("watch")
    local = out / "baseline.json"  # the stored baseline, for the core to compare with (absent: none yet)
    if stored is not None:
        redact.write_json(local, stored)
    result = api.watch(config, baseline=local, alpha=ctx.s.drift_alpha, out=out / "run", log=stderr_log)
    report_path = result.report.write(out / "run")
    issue, gh_issue = find_issue(ctx.repo, skill_path)
    plan = decide(stored=stored, current=result.current, drifted=result.drifted, issue=issue, record=record,
                  bot=ctx.bot_login)
    view = safe_view(result)
    ctx.result.report = redact.redact_obj(result.report.to_dict())
    ctx.result.report_path = str(report_path)
    ctx.result.report_md = redact.redact(render("drift.md.j2", d=view))
    ctx.result.drifted = "true" if result.drifted and not plan.record else "false"
    ctx.result.title = ("drift in " if ctx.result.drifted == "true" else "no drift in ") + skill_path
    for reason in view["reasons"]:
        ctx.log(reason)
    ctx.log(f"plan: {plan.reason}")
    if issue is not None:
        ctx.result.issue_number, ctx.result.issue_url = issue.number, issue.url
    if ctx.t.dry_run:
        ctx.result.title += " (dry run: nothing written to GitHub)"
        ctx.log("dry run: no baseline stored, no issue opened or changed")
        return
    act(ctx, plan, result=result, view=view, skill_path=skill_path, path=path, gh_issue=gh_issue)
    if ctx.result.drifted == "true" and ctx.s.optimize_on_drift:
        ctx.log("optimize-on-drift: retraining the skill in this job")
        default_branch.optimize(ctx)


def act(ctx: Context, plan: Plan, *, result: api.WatchResult, view: dict, skill_path: str, path: str,
        gh_issue: Any) -> None:
    repo = ctx.repo
    if plan.record:
        with refused("store the drift baseline", "contents: write"):
            sha = baselines.store(repo, path, result.current, f"skillopt: drift baseline of {skill_path}\n\n"
                                  f"{plan.reason}\nRun: {ctx.s.run_url}")
        ctx.log(f"stored the baseline in {baselines.DATA_BRANCH}:{path} ({sha[:12]})")
    if plan.issue == "none":
        return
    comment = ""
    if plan.comment:
        comment = redact.redact(render("github_drift_comment.md.j2", kind=plan.comment, sha=ctx.s.sha,
                                       headline=headline(result), run_url=ctx.s.run_url))
    with refused("open or update the drift issue", "issues: write"):
        if plan.issue == "create":
            gh_issue = repo.create_issue(title=issue_title(skill_path), labels=[DRIFT_LABEL],
                                         body=issue_body(ctx, result, view, skill_path, path))
        elif plan.issue in ("update", "reopen"):
            gh_issue.edit(body=issue_body(ctx, result, view, skill_path, path),
                          **({"state": "open"} if plan.issue == "reopen" else {}))
            gh_issue.create_comment(comment)
        elif plan.issue == "close":
            gh_issue.create_comment(comment)
            gh_issue.edit(state="closed", state_reason="completed")
    ctx.result.issue_number, ctx.result.issue_url = gh_issue.number, gh_issue.html_url
    ctx.log(f"drift issue #{gh_issue.number} ({plan.issue}): {gh_issue.html_url}")


@contextlib.contextmanager
def refused(what: str, permission: str) -> Iterator[None]:
    """A 403 for a missing permission ends the run with exit code 5 and a message naming the permission."""
    try:
        yield
    except GithubException as exc:
        if not access.not_accessible(exc):
            raise
        raise access.GitHubRefused(access.missing_permission_message(what, permission,
                                                                     access.message_of(exc))) from None


def issue_body(ctx: Context, result: api.WatchResult, view: dict, skill_path: str, path: str) -> str:
    state = marker(baseline=drift.baseline_id(result.baseline), run=ctx.s.run_id, sha=ctx.s.sha)
    return redact.redact(render("github_drift_issue.md.j2", d=view, skill=skill_path, sha=ctx.s.sha,
                                alpha=ctx.s.drift_alpha, run_url=ctx.s.run_url, baseline_file=path,
                                data_branch=baselines.DATA_BRANCH, marker=state))
