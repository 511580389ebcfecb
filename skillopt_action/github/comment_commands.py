"""`issue_comment`: `/skillopt eval [skill=NAME] | optimize [skill=NAME] [epochs=N] | help` on a pull request.

Who may run them is asked from the API on every comment (write, maintain or admin). What each comment gets:
- a command from someone without write access: a 👎 reaction and, once per person and pull request, a polite
  reply of its own explaining why; nothing runs and the sticky result comment is never touched;
- `help` or a command that is not understood: 👀 and a reply of its own with the help text;
- `eval` / `optimize`: 👀, the sticky comment says it is running, then holds the result. `eval` posts the
  `skillopt / gate` check on the PR's head; `optimize` pushes an improved skill to the PR's branch (same
  repository only) and posts the gate check on the commit it pushed, in the same run;
- on a config listing several skills (`skills:`): `skill=NAME` picks one. Without it `eval` gates each skill the
  pull request changes (its own `skillopt / gate (NAME)` check, one sticky result with a section per skill) and
  `optimize` gets a reply of its own listing the names; what runs is decided by `commands.select` on plain data.
"""

from __future__ import annotations

from pathlib import Path

from github.GithubException import GithubException

from .. import api, fmt
from ..config import load_config
from ..errors import EXIT_INTERNAL, ConfigError, SkillOptError
from ..render import render
from ..runtime import stderr_log
from . import access, checks, commands, comments, pr_gate
from . import pull_request as prs
from .context import Context


def command_line(body: str) -> str:
    return next((ln.strip() for ln in body.splitlines() if ln.strip()), "")[:200]


def handle(ctx: Context) -> None:
    t = ctx.t
    if t.commenter_is_bot:
        ctx.result.title = "ignored a bot's comment"
        ctx.log(f"comment by {t.commenter} (a bot) is never a command")
        return
    cmd = commands.parse(t.comment_body)
    if cmd is None:
        ctx.result.title = "not a /skillopt command"
        ctx.log("comment does not start with /skillopt")
        return
    assert t.pull_number is not None and t.comment_id is not None
    repo = ctx.repo
    pr = repo.get_pull(t.pull_number)
    ctx.result.pr_number, ctx.result.pr_url = pr.number, pr.html_url
    try:
        perm = repo.get_collaborator_permission(t.commenter)
    except GithubException as exc:  # 404 "<login> is not a user": a deleted account
        if exc.status != 404:
            raise
        perm = "none"
    auth = commands.authorize(perm, commenter_is_bot=t.commenter_is_bot)
    line = command_line(t.comment_body)
    if not auth.allowed:
        ctx.result.title = f"refused /skillopt {cmd.name} from {t.commenter}"
        ctx.log(f"{t.commenter} {auth.reason}; nothing run")
        if t.dry_run:
            return
        comments.react(pr, t.comment_id, comments.REFUSED)
        posted = comments.reply(pr, render("github_reply.md.j2", kind="denied", command_line=line, user=t.commenter,
                                           access=auth.access),
                                bot_login=ctx.bot_login, once_key=f"refused @{t.commenter}")
        if not posted:
            ctx.log(f"{t.commenter} was told before on #{pr.number}; reacted only")
        return
    if t.dry_run:
        ctx.log(f"dry run: would handle `/skillopt {cmd.name}` from {t.commenter}")
        return
    comments.react(pr, t.comment_id, comments.RECEIVED)
    if cmd.name in ("help", "unknown"):
        ctx.result.title = "answered with the help text"
        ctx.log(f"/skillopt {cmd.name}: {cmd.error or 'help'}")
        comments.reply(pr, render("github_reply.md.j2", kind="help", command_line=line, user=t.commenter,
                                  error=cmd.error, help=commands.HELP))
        return
    run_command(ctx, pr, cmd)


def label_of(cmd: commands.Command) -> str:
    return " ".join([cmd.name] + ([f"skill={cmd.skill}"] if cmd.skill else [])
                    + ([f"epochs={cmd.epochs}"] if cmd.epochs else []))


def select_skills(ctx: Context, pr, cmd: commands.Command) -> commands.Selection:
    """Read what `commands.select` decides on: the base branch's skill names and, for `eval` without `skill=` on a
    config listing several, which of them this pull request changes (a package: any of its files)."""
    base = ctx.base_snapshot(pr.base.sha)
    config = base / ctx.s.config
    if not config.is_file():
        return commands.Selection((None,))  # the gate (eval) or optimize says there is no config
    names: list[str | None] = [n or None for n in api.skills(config)]
    changed = None
    if cmd.name == "eval" and not cmd.skill and len(names) > 1:
        changed = [n for n in names if n and skill_changed(ctx, base, config, n, pr.head.sha)]
    return commands.select(cmd, names, changed)


def skill_changed(ctx: Context, base: Path, config: Path, name: str, head_sha: str) -> bool:
    skill_path = load_config(str(config), name).skill
    base_file = base / skill_path
    if not base_file.exists():
        return True  # the gate reports the missing skill on its check
    base_skill = ctx.read_text(base_file, f"skill file {skill_path} on the base branch")
    return prs.skill_at(ctx.repo, skill_path, head_sha, base_skill) != base_skill


def run_command(ctx: Context, pr, cmd: commands.Command) -> None:
    t = ctx.t
    label = label_of(cmd)
    try:
        selection = select_skills(ctx, pr, cmd)
    except Exception as exc:
        failed(ctx, pr, label, exc)
        raise
    if not selection.skills:
        ctx.result.title = f"/skillopt {cmd.name}: asked which skill"
        ctx.log(f"/skillopt {label}: {selection.problem}; nothing run")
        more = f" epochs={cmd.epochs}" if cmd.epochs else ""
        comments.reply(pr, render("github_reply.md.j2", kind="which", command_line=command_line(t.comment_body),
                                  user=t.commenter, problem=selection.problem, names=selection.names,
                                  verb=cmd.name, more=more))
        return
    comments.upsert_sticky(pr, ctx.bot_login, render("github_comment.md.j2", kind="received", command=label,
                                                     user=t.commenter, run_url=ctx.s.run_url))
    if cmd.name == "eval" and len(selection.skills) > 1:
        eval_several(ctx, pr, label, [n for n in selection.skills if n])
        return
    name = selection.skills[0]
    try:
        if cmd.name == "eval":
            report = pr_gate.gate(ctx, pr.head.sha, pr.base.sha, pr.number, command="eval", skill_name=name)
            headline = ctx.result.title if report is None else verdict_line(report)
            if name:  # one skill of several: say which (the pull request may have changed only this one)
                headline = f"skill `{name}`: {headline}"
        else:
            report, headline = optimize_pull_request(ctx, pr, cmd.epochs, name)
    except Exception as exc:
        failed(ctx, pr, label, exc)
        raise
    if report is None:
        body = f"**`/skillopt {label}`**, requested by @{t.commenter}: {headline}\n\n[Workflow run]({ctx.s.run_url})"
    else:
        body = render("github_comment.md.j2", kind="result", command=label, user=t.commenter, headline=headline,
                      r=report, fmt=fmt, details=report.get("diff") and f"```diff\n{report['diff']}\n```",
                      run_url=ctx.s.run_url)
    comments.upsert_sticky(pr, ctx.bot_login, body, more_url=ctx.s.run_url)


def verdict_line(report: dict) -> str:
    return ("✅ passes the gate" if report.get("improved") else "❌ does not pass the gate") \
        + " against the base branch's skill."


def failed(ctx: Context, pr, label: str, exc: BaseException) -> None:
    reason = str(exc).splitlines()[0] if isinstance(exc, ConfigError) and str(exc) else pr_gate.meaning(exc)
    comments.upsert_sticky(pr, ctx.bot_login, render("github_comment.md.j2", kind="failed", command=label,
                                                     reason=reason, run_url=ctx.s.run_url))


def eval_several(ctx: Context, pr, label: str, names: list[str]) -> None:
    """`/skillopt eval` on a config listing several skills: each skill the pull request changes is gated on its
    own check; one that fails is reported and the others still run (the exit code is the first failure's)."""
    items: list[dict] = []
    failures: list[int] = []
    for i, name in enumerate(names):
        try:
            report = pr_gate.gate(ctx, pr.head.sha, pr.base.sha, pr.number, command="eval", primary=i == 0,
                                  skill_name=name)
        except access.GitHubRefused:
            raise  # the token or the repository refuses every skill's check alike
        except (SkillOptError, GithubException) as exc:
            why = str(exc).splitlines()[0] if isinstance(exc, ConfigError) and str(exc) else pr_gate.meaning(exc)
            ctx.annotate("error", f"skill {name} failed ({why}); the other skills ran")
            failures.append(getattr(exc, "exit_code", EXIT_INTERNAL))
            items.append({"name": name, "headline": f"❌ could not be scored: {why}.", "r": None})
            continue
        items.append({"name": name, "r": report,
                      "headline": "not gated" if report is None else verdict_line(report)})
    passed = sum(1 for it in items if isinstance(it["r"], dict) and it["r"].get("improved"))
    headline = f"{passed} of {len(names)} changed skills pass the gate (one `skillopt / gate (NAME)` check each)."
    ctx.result.title = f"/skillopt eval on #{pr.number}: {passed} of {len(names)} skills pass the gate"
    comments.upsert_sticky(pr, ctx.bot_login, render("github_comment.md.j2", kind="results", command=label,
                                                     user=ctx.t.commenter, headline=headline, items=items, fmt=fmt,
                                                     run_url=ctx.s.run_url), more_url=ctx.s.run_url)
    if failures:
        ctx.result.exit_code = failures[0]


def optimize_pull_request(ctx: Context, pr, epochs: int | None, name: str | None = None) -> tuple[dict, str]:
    """Train from the PR's skill with the base branch's exam; push to the PR branch only when it is in this
    repository, then gate the pushed commit against the base branch's skill (the check on the new head)."""
    base = ctx.base_snapshot(pr.base.sha)
    config = base / ctx.s.config
    if not config.is_file():
        raise ConfigError(f"the base branch has no {ctx.s.config}",
                          fix="merge a skillopt config into the base branch first")
    skill_path = load_config(str(config), name).skill
    like = ctx.read_text(base / skill_path, f"skill file {skill_path} on the base branch")
    start = prs.skill_at(ctx.repo, skill_path, pr.head.sha, like)
    if start is None:
        raise ConfigError(f"this pull request has no {skill_path}", fix="restore the skill file in the pull request")
    run = api.optimize(config, skill=start, epochs=epochs, out=ctx.out_dir(f"optimize-{name}" if name else "optimize"),
                       log=stderr_log, skill_name=name)
    report = ctx.record(run)
    best = run.best_skill
    if not report.get("improved") or best == start:
        ctx.result.title = f"optimize on #{pr.number}: no edit passed the gate"
        return report, "no edit passed the gate; the branch is unchanged."
    same_repo = pr.head.repo is not None and pr.head.repo.full_name.lower() == ctx.s.repository.lower()
    if not same_repo:
        ctx.result.title = f"optimize on #{pr.number}: improved, not pushed (fork)"
        return report, ("an improved skill passed the gate, but this branch lives in a fork, so it was not pushed; "
                        "the diff is below.")
    sha = prs.push_skill(ctx.repo, branch=pr.head.ref, parent_sha=pr.head.sha, skill_path=skill_path, text=best,
                         message=f"skillopt: optimize {skill_path}\n\nRequested in #{pr.number}. Run: {ctx.s.run_url}",
                         force=False)
    ctx.log(f"pushed the improved skill to {pr.head.ref} at {sha[:12]}")
    # a push with the workflow token starts no workflow: the gate check on the new head is posted here
    gated = pr_gate.gate(ctx, sha, pr.base.sha, pr.number, command="optimize", primary=False, skill_name=name)
    verdict = ("" if gated is None else
               f" The `{checks.check_name(name)}` check on it: {checks.conclusion_for(gated)}.")
    ctx.result.title = f"optimize on #{pr.number}: pushed {sha[:12]}"
    return report, (f"✅ an improved skill passed the gate and was pushed to `{pr.head.ref}` ({sha[:7]})."
                    + verdict)
