"""Carry out a bot-PR plan (`pull_request.Plan`) after an optimize run on the default branch.

- push: commit the best skill on the bot branch (force: only the bot has pushed to it);
- create: open the PR, add labels (POST, never replacing others), request reviewers. When GitHub refuses to
  open it, the branch pushed for it is removed again (or reset to where it was), `pr-operation` is `failed`,
  a refusal by the repository setting is remembered, and the run ends with exit code 5;
- edit / comment / close: on the open PR; an `unchanged` plan touches nothing;
- every commit the bot pushes gets the `skillopt / gate` check in the same run (a push made with the workflow
  token starts no workflow, so nothing else would ever check it).
"""

from __future__ import annotations

from github.GithubException import GithubException

from .. import fmt
from ..render import render
from ..rollout import skill_hash
from . import access, checks, comments, memory
from . import pull_request as prs
from .context import Context
from .present import edits_markdown, pr_title, state_edits

MAX_BODY = 65536


def pr_body(ctx: Context, report: dict, marker: str, note: str = "") -> str:
    body = render("github_pr_body.md.j2", r=report, report_md=ctx.result.report_md, run_url=ctx.s.run_url, fmt=fmt,
                  edits=edits_markdown(report), whose="", note=note)
    # the marker goes after the cut: a long report must never lose the state that later runs read back
    return checks.fit(body, MAX_BODY - len(marker) - 2, ctx.s.run_url) + "\n" + marker + "\n"


def execute(ctx: Context, plan: prs.Plan, *, report: dict, best: str, default_skill: str, skill_path: str,
            branch: str, open_pr: prs.OpenPR | None) -> None:
    repo = ctx.repo
    title = pr_title(skill_path, report)
    head = open_pr.head_sha if open_pr else None
    previous = None
    if plan.push:
        previous = prs.ref_sha(repo, branch)
        try:
            head = prs.push_skill(repo, branch=branch, parent_sha=ctx.s.sha, skill_path=skill_path, text=best,
                                  message=f"{title}\n\nGate: {(report.get('gate') or {}).get('reason', '')}\n"
                                          f"Run: {ctx.s.run_url}", force=True)
        except GithubException as exc:
            if not access.not_accessible(exc):
                raise
            ctx.result.pr_operation = "failed"
            raise access.GitHubRefused(access.missing_permission_message(
                f"push the branch {branch}", "contents: write", access.message_of(exc))) from None
        ctx.log(f"pushed {branch} at {head[:12]}")

    def marker(**more) -> str:
        return prs.state_marker(plan.proposal or "", head or "", base_hash=skill_hash(default_skill),
                                edits=state_edits(report), **more)

    pr = None
    if plan.create:
        pr = create(ctx, branch=branch, title=title, body=pr_body(ctx, report, marker()), previous=previous)
    elif open_pr is not None and (plan.edit or plan.comment or plan.close):  # `unchanged` touches nothing
        pr = repo.get_pull(open_pr.number)
        if plan.edit:
            pr.edit(title=title, body=pr_body(ctx, report, marker()))
        if plan.comment == "human-pushed":
            note_new_proposal(ctx, pr, plan.proposal or "")
        if plan.close:
            comments.upsert_sticky(pr, ctx.bot_login, "The default branch already contains the skill this pull "
                                   "request proposed, so skillopt closed it. "
                                   f"[Workflow run]({ctx.s.run_url})")
            # a close by skillopt is not a human's rejection: the state says so for later runs
            pr.edit(state="closed", body=prs.with_state(open_pr.body, closed="adopted"))
    if pr is not None:
        ctx.result.pr_number, ctx.result.pr_url = pr.number, pr.html_url
        ctx.log(f"pull request #{pr.number}: {pr.html_url}")
    if pr is not None and head and plan.push:
        post_check(ctx, head, report)


def create(ctx: Context, *, branch: str, title: str, body: str, previous: str | None):
    """Open the bot PR; on GitHub's refusal undo the push and end the run with a message that says what to do."""
    repo = ctx.repo
    try:
        pr = repo.create_pull(base=ctx.t.default_branch, head=branch, title=title, body=body)
    except GithubException as exc:
        ctx.result.pr_operation = "failed"
        ctx.result.title = "the pull request could not be opened"
        ctx.log(f"GitHub refused to open the pull request ({exc.status}: {access.message_of(exc)}); "
                + prs.restore_ref(repo, branch, previous) + " again")
        if access.pr_creation_refused(exc):
            memory.write_refusal(ctx.refusal_path, repository=ctx.s.repository, token_login=ctx.bot_login,
                                 message=access.message_of(exc), run_url=ctx.s.run_url)
            raise access.GitHubRefused(access.refused_message(ctx.s.repository, access.message_of(exc))) from None
        if exc.status == 403:
            raise access.GitHubRefused(access.missing_permission_message(
                "open the pull request", "pull-requests: write", access.message_of(exc))) from None
        raise
    if memory.clear_refusal(ctx.refusal_path):
        ctx.log("GitHub lets this workflow open pull requests again; forgot the earlier refusal")
    prs.add_labels(pr, ctx.s.labels)
    for warning in prs.request_reviewers(pr, ctx.s.reviewers, pr.user.login if pr.user else None):
        ctx.log(warning)
    return pr


def note_new_proposal(ctx: Context, pr, proposal: str) -> None:
    """Tell a bot PR whose branch a human took over that a different proposal exists (once per proposal)."""
    existing = comments.find_sticky(pr, ctx.bot_login)
    if existing is not None and f"`{proposal}`" in (existing.body or ""):
        return
    comments.upsert_sticky(pr, ctx.bot_login, render("github_comment.md.j2", kind="human-pushed",
                                                     run_url=ctx.s.run_url, proposal=proposal))


def post_check(ctx: Context, head: str, report: dict) -> None:
    """The gate check on a commit the bot pushed (the optimize report compares it with the default branch)."""
    try:
        run = checks.start(ctx.repo, head, ctx.s.run_url)
    except GithubException as exc:
        if not access.not_accessible(exc):
            raise
        ctx.annotate("warning", f"skillopt could not post the `{checks.CHECK_NAME}` check on {head[:12]} "
                     f"({access.message_of(exc)}); the pull request is fine. Checks need the workflow token with "
                     "`checks: write` or a GitHub App token.")
        return
    title, summary, text = checks.summary_for(report, ctx.s.run_url)
    verdict = checks.conclusion_for(report)
    checks.complete(run, conclusion=verdict, title=title, summary=summary, text=text, more_url=ctx.s.run_url)
    ctx.log(f"check `{checks.CHECK_NAME}` on {head[:12]}: {verdict}")
