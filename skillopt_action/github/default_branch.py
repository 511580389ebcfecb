"""Runs on the default branch (schedule, workflow_dispatch, or `command: eval|optimize`).

`optimize` trains the skill and keeps ONE bot pull request up to date, in this order:

1. a pull request GitHub refused to open before (remembered in the memory directory) stops a scheduled run
   before it pays for anything or pushes a branch;
2. bot pull requests a human closed without merging are remembered as rejections (their edits go to the
   rejected-edit memory), so the optimize run never proposes them again against the same skill;
3. the optimize run (the core, through `api.optimize`);
4. the decision (`pull_request.decide`) and its execution (`execute.execute`);
5. a commit a human pushed to the bot's branch is gated like any pull request, and the PR's title and body
   say that they describe that commit.
"""

from __future__ import annotations

from .. import api
from ..config import load_config
from ..runtime import stderr_log
from . import access, execute, memory, pr_gate
from . import pull_request as prs
from .context import Context

TITLES = {
    "created": "opened a pull request",
    "updated": "updated the pull request",
    "closed": "closed the pull request",
    "unchanged": "pull request unchanged",
    "none": "no pull request",
}
PLANS = {
    "created": "open a pull request",
    "updated": "update the pull request",
    "closed": "close the pull request",
    "unchanged": "leave the pull request as it is",
    "none": "no pull request",
}
DRY = {"created": "would-create", "updated": "would-update", "closed": "would-close"}


def evaluate(ctx: Context) -> None:
    config = ctx.workspace / ctx.s.config
    ctx.record(api.evaluate(config, splits=("train", "val", "test"), out=ctx.out_dir("eval"), log=stderr_log))
    ctx.result.title = "evaluated the skill on the default branch"


def stop_if_refused(ctx: Context) -> None:
    """A scheduled run after GitHub refused the pull request: stop before any model call or push."""
    refusal = memory.read_refusal(ctx.refusal_path)
    if refusal is None or ctx.t.dry_run or memory.retry_refused(
            refusal, repository=ctx.s.repository, event=ctx.t.event, token_login=ctx.bot_login):
        return
    ctx.result.pr_operation = "failed"
    ctx.result.title = "not run: GitHub refuses to let this workflow open the pull request"
    raise access.GitHubRefused(access.still_refused_message(str(refusal.get("at") or "an earlier run")[:10],
                                                            str(refusal.get("run_url") or "")))


def remember_closed(ctx: Context, closed: list[prs.ClosedPR]) -> int:
    """Add the edits of bot PRs that a human closed without merging to the rejected-edit memory."""
    known = memory.closed_keys(memory.read_rows(ctx.memory_path))
    rows: list[dict] = []
    for pr in closed:
        if not memory.needs_recording(pr, known):
            continue
        closer = prs.closed_by(ctx.repo, pr.number)
        if closer is None or closer == ctx.bot_login:
            continue
        new = memory.closed_rows(pr, closer, known)
        if new:
            ctx.log(f"#{pr.number} was closed by @{closer} without merging: its {len(new)} edit(s) will not be "
                    "proposed again")
        rows += new
    memory.append_rows(ctx.memory_path, rows)
    return len(rows)


def optimize(ctx: Context) -> None:
    config = ctx.workspace / ctx.s.config
    skill_path = load_config(str(config)).skill
    branch = prs.branch_for(skill_path)
    can = ctx.access()
    if not can.writable and not ctx.t.dry_run:
        ctx.read_only(f"skillopt did not run: {can.reason}, so it could not open or update its pull request, and "
                      "it called no model. Pass a token with write access in `github-token`, or set `dry-run: true` "
                      "for a report only.", "read-only token: nothing run")
        return
    stop_if_refused(ctx)
    closed = prs.find_closed(ctx.repo, branch)
    remember_closed(ctx, closed)
    # rejected edits carry over between scheduled runs (persisted with the cache by actions/cache)
    run = api.optimize(config, epochs=ctx.t.epochs, memory=ctx.memory_path, out=ctx.out_dir("optimize"),
                       log=stderr_log)
    report = ctx.record(run)
    best = run.best_skill
    default_skill = ctx.read_text(ctx.workspace / skill_path, f"skill file {skill_path}")
    open_pr = prs.find_open(ctx.repo, branch, skill_path)
    plan = prs.decide(improved=bool(report.get("improved")), best=best, default_skill=default_skill,
                      open_pr=open_pr, closed=closed)
    ctx.result.title = TITLES[plan.outcome]
    ctx.result.pr_operation = plan.outcome
    ctx.log(f"plan: {PLANS[plan.outcome]} ({plan.reason})")
    if open_pr is not None:
        ctx.result.pr_number, ctx.result.pr_url = open_pr.number, open_pr.url
    if ctx.t.dry_run:
        ctx.result.pr_operation = DRY.get(plan.outcome, plan.outcome)
        ctx.result.title += " (dry run: nothing written to GitHub)"
        ctx.log(f"dry run: pr-operation {ctx.result.pr_operation}; no branch pushed, no pull request or check "
                "changed")
        return
    execute.execute(ctx, plan, report=report, best=best, default_skill=default_skill, skill_path=skill_path,
                    branch=branch, open_pr=open_pr)
    if open_pr is not None and open_pr.human_pushed and not open_pr.human_head_described and not plan.close:
        gate_human_head(ctx, open_pr)


def gate_human_head(ctx: Context, open_pr: prs.OpenPR) -> None:
    """Someone pushed to the bot's branch: gate their commit against the default branch (whose config and tasks
    this run checked out) and make the PR say whose skill its table describes."""
    who = pr_gate.author_of(ctx.repo, open_pr.head_sha)
    ctx.log(f"#{open_pr.number}: {who} pushed {open_pr.head_sha[:12]} to the bot's branch; gating that commit")
    report = pr_gate.gate(ctx, open_pr.head_sha, ctx.s.sha, open_pr.number, command=None,
                          whose=f"in {who}'s commit {open_pr.head_sha[:7]}", primary=False)
    if report is None:
        return
    pr = ctx.repo.get_pull(open_pr.number)
    pr_gate.describe_human_head(ctx, pr, open_pr.head_sha, report, who)
