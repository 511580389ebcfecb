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

A config that lists several skills (`skills:`) runs steps 2-5 for each in turn, each with its own branch
(`skillopt/<name>`), pull request, `skillopt / gate (<name>)` check and rejected-edit memory. A skill that fails
is reported (job summary, an error annotation) and the others still run; the exit code is the first failure's.
"""

from __future__ import annotations

from pathlib import Path

from github.GithubException import GithubException

from .. import api
from ..config import load_config
from ..errors import EXIT_INTERNAL, SkillOptError
from ..runtime import stderr_log
from . import access, checks, execute, memory, pr_gate
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
    """Score the skill on every split; a config listing several skills scores each (a run directory each; the
    outputs show the first). A skill that fails is reported and the others still run."""
    config = ctx.workspace / ctx.s.config
    names = api.skills(config)
    if names == [""]:
        ctx.record(api.evaluate(config, splits=("train", "val", "test"), out=ctx.out_dir("eval"), log=stderr_log))
        ctx.result.title = "evaluated the skill on the default branch"
        return
    failed: list[tuple[str, int]] = []
    for name in names:
        ctx.log(f"skill {name}:")
        try:
            run = api.evaluate(config, splits=("train", "val", "test"), out=ctx.out_dir(f"eval-{name}"),
                               log=stderr_log, skill_name=name)
        except SkillOptError as exc:
            failed.append(skill_failed(ctx, name, exc))
            continue
        ctx.record(run, primary=ctx.result.report is None)
    several_done(ctx, f"evaluated {len(names) - len(failed)} of {len(names)} skills on the default branch", failed)


def skill_failed(ctx: Context, name: str, exc: Exception) -> tuple[str, int]:
    """Report one skill's failure of a several-skill run (an error annotation); returns (name, exit code)."""
    message = str(exc) if isinstance(exc, SkillOptError) else pr_gate.first_line(exc)
    ctx.annotate("error", f"skill {name} failed ({pr_gate.meaning(exc)}): {message}; the other skills ran")
    return name, getattr(exc, "exit_code", EXIT_INTERNAL)


def several_done(ctx: Context, title: str, failed: list[tuple[str, int]]) -> None:
    """The title and exit code of a several-skill run: the first failure's code, the others still ran."""
    ctx.result.title = title + (f"; failed: {', '.join(n for n, _ in failed)}" if failed else "")
    if failed:
        ctx.result.exit_code = failed[0][1]


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


def remember_closed(ctx: Context, closed: list[prs.ClosedPR], path: Path | None = None) -> int:
    """Add the edits of bot PRs that a human closed without merging to the rejected-edit memory (`path`, default
    the one-skill memory)."""
    path = path or ctx.memory_path
    known = memory.closed_keys(memory.read_rows(path))
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
    memory.append_rows(path, rows)
    return len(rows)


def optimize(ctx: Context) -> None:
    config = ctx.workspace / ctx.s.config
    names = api.skills(config)
    can = ctx.access()
    if not can.writable and not ctx.t.dry_run:
        ctx.read_only(f"skillopt did not run: {can.reason}, so it could not open or update its pull request, and "
                      "it called no model. Pass a token with write access in `github-token`, or set `dry-run: true` "
                      "for a report only.", "read-only token: nothing run")
        return
    stop_if_refused(ctx)
    if names == [""]:
        optimize_skill(ctx, None, primary=True)
        return
    outcomes: list[str] = []
    failed: list[tuple[str, int]] = []
    first_pr: tuple[int | None, str] = (None, "")
    for name in names:
        ctx.log(f"skill {name}:")
        ctx.result.pr_number, ctx.result.pr_url, ctx.result.pr_operation = None, "", ""
        try:
            optimize_skill(ctx, name, primary=not outcomes)
            outcomes.append(f"{name}: {ctx.result.pr_operation or 'done'}")
            if first_pr[0] is None and ctx.result.pr_number:
                first_pr = (ctx.result.pr_number, ctx.result.pr_url)
        except access.GitHubRefused:
            raise  # the repository or the token refuses every skill's pull request alike: stop here
        except (SkillOptError, GithubException) as exc:
            failed.append(skill_failed(ctx, name, exc))
            outcomes.append(f"{name}: failed")
    # outputs: the first skill's pull request; `pr-operation` is `name:operation` for each skill
    ctx.result.pr_number, ctx.result.pr_url = first_pr
    ctx.result.pr_operation = ",".join(o.replace(": ", ":") for o in outcomes)
    several_done(ctx, f"{len(names) - len(failed)} of {len(names)} skills ran", failed)


def optimize_skill(ctx: Context, name: str | None, *, primary: bool) -> None:
    """One skill: remember closed PRs, optimize, decide and carry out its pull request."""
    config = ctx.workspace / ctx.s.config
    cfg = load_config(str(config), name)
    skill_path = cfg.skill
    branch = cfg.branch or (f"skillopt/{name}" if name else prs.branch_for(skill_path))
    check = checks.check_name(name)
    memory_path = ctx.memory_for(name)
    closed = prs.find_closed(ctx.repo, branch)
    remember_closed(ctx, closed, memory_path)
    # rejected edits carry over between scheduled runs (persisted with the cache by actions/cache)
    run = api.optimize(config, epochs=ctx.t.epochs, memory=memory_path,
                       out=ctx.out_dir(f"optimize-{name}" if name else "optimize"), log=stderr_log, skill_name=name)
    report = ctx.record(run, primary=primary)
    best = run.best_skill
    default_skill = ctx.read_text(ctx.workspace / skill_path, f"skill file {skill_path}")
    open_pr = prs.find_open(ctx.repo, branch, skill_path, default_skill)
    plan = prs.decide(improved=bool(report.get("improved")), best=best, default_skill=default_skill,
                      open_pr=open_pr, closed=closed)
    ctx.result.title = TITLES[plan.outcome]
    ctx.result.pr_operation = plan.outcome
    ctx.log(f"plan{f' for {name}' if name else ''}: {PLANS[plan.outcome]} ({plan.reason})")
    if open_pr is not None:
        ctx.result.pr_number, ctx.result.pr_url = open_pr.number, open_pr.url
    if ctx.t.dry_run:
        ctx.result.pr_operation = DRY.get(plan.outcome, plan.outcome)
        ctx.result.title += " (dry run: nothing written to GitHub)"
        ctx.log(f"dry run: pr-operation {ctx.result.pr_operation}; no branch pushed, no pull request or check "
                "changed")
        return
    execute.execute(ctx, plan, report=report, best=best, default_skill=default_skill, skill_path=skill_path,
                    branch=branch, open_pr=open_pr, check=check)
    if open_pr is not None and open_pr.human_pushed and not open_pr.human_head_described and not plan.close:
        gate_human_head(ctx, open_pr, name)


def gate_human_head(ctx: Context, open_pr: prs.OpenPR, name: str | None = None) -> None:
    """Someone pushed to the bot's branch: gate their commit against the default branch (whose config and tasks
    this run checked out) and make the PR say whose skill its table describes."""
    who = pr_gate.author_of(ctx.repo, open_pr.head_sha)
    ctx.log(f"#{open_pr.number}: {who} pushed {open_pr.head_sha[:12]} to the bot's branch; gating that commit")
    report = pr_gate.gate(ctx, open_pr.head_sha, ctx.s.sha, open_pr.number, command=None,
                          whose=f"in {who}'s commit {open_pr.head_sha[:7]}", primary=False, skill_name=name)
    if report is None:
        return
    pr = ctx.repo.get_pull(open_pr.number)
    pr_gate.describe_human_head(ctx, pr, open_pr.head_sha, report, who)
