"""The gate for pull requests: a PR's skill is scored against the base branch's skill with the base branch's
config, tasks and scorers (a PR never supplies its own exam), and the verdict is the `skillopt / gate` check
run on the PR's head commit.

`handle` serves `pull_request` events (opened, synchronize, reopened, ready_for_review). `gate` is shared with
the comment commands (`/skillopt eval`, and the check on the commit `/skillopt optimize` pushes) and with the
scheduled run (a human's commit on the bot's branch). `describe_human_head` rewrites the bot PR's title and
body to say that they describe a human's commit.
"""

from __future__ import annotations

from pathlib import Path

from github.GithubException import GithubException

from .. import api, fmt, redact
from ..config import load_config
from ..errors import EXIT_INTERNAL, ConfigError, SkillOptError
from ..render import render
from ..runtime import stderr_log
from . import access, checks
from . import pull_request as prs
from .context import Context
from .present import pr_title

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


FORK_NOTE = ("This pull request comes from the fork `{fork}`. Workflows triggered by fork pull requests get no "
             "secrets and a read-only token, and skillopt never runs a fork's code or config with this "
             "repository's model keys, so nothing was scored. A maintainer can comment `/skillopt eval` on the "
             "pull request to score its skill against the base branch's tasks.")
READ_ONLY_NOTE = ("skillopt did not gate pull request #{number}: {reason}, so it cannot post the `skillopt / gate` "
                  "check, and it ran no model. {hint}")
DRAFT_NOTE = ("Pull request #{number} is a draft, so skillopt did not score it (no model was called). It is gated "
              "when it is marked ready for review, or on every push if the workflow sets the action's "
              "`gate-drafts: true`.")


def handle(ctx: Context) -> None:
    ref = ctx.t.pull
    assert ref is not None
    ctx.result.pr_number = ref.number
    if ctx.s.shard is not None:
        shard(ctx, ref)
        return
    can = ctx.access(fork=ref.is_fork)
    if ref.is_fork:
        note = FORK_NOTE.format(fork=ref.head_repo)
        if not can.writable:
            ctx.read_only(f"{note} No check was posted: the token of this run is read-only.",
                          "fork pull request: nothing run")
            return
        ctx.result.title = "fork pull request: nothing run"
        ctx.log("pull request from a fork: posting a neutral check, running nothing")
        if not ctx.t.dry_run:
            post_neutral(ctx, ref.head_sha, "Not run: pull request from a fork", note)
        return
    if not can.writable:
        hint = ("A maintainer can comment `/skillopt eval` on it to score it." if ref.sender == access.DEPENDABOT
                or ctx.s.actor == access.DEPENDABOT else "")
        ctx.read_only(READ_ONLY_NOTE.format(number=ref.number, reason=can.reason, hint=hint).strip(),
                      "read-only token: nothing run")
        return
    if ref.draft and not ctx.s.gate_drafts:
        ctx.result.title = f"draft #{ref.number}: not gated"
        ctx.log(DRAFT_NOTE.format(number=ref.number))
        if not ctx.t.dry_run:
            post_neutral(ctx, ref.head_sha, "Not run: draft pull request", DRAFT_NOTE.format(number=ref.number))
        return
    names = skills_on_base(ctx, ref.base_sha)
    if len(names) == 1:
        report = gate(ctx, ref.head_sha, ref.base_sha, ref.number, command=None, skill_name=names[0])
        if report is not None and not ctx.t.dry_run:
            bot_pr_pushed_by_human(ctx, ref.number, ref.head_sha, report, pusher=ref.sender)
        return
    verdicts = []
    failed: list[int] = []
    for i, name in enumerate(names):  # one check per skill; each is gated against the base branch on its own
        try:
            report = gate(ctx, ref.head_sha, ref.base_sha, ref.number, command=None, primary=i == 0,
                          skill_name=name)
        except access.GitHubRefused:
            raise
        except (SkillOptError, GithubException) as exc:  # its check says why; the other skills are still gated
            ctx.annotate("error", f"skill {name} could not be gated ({meaning(exc)}): {first_line(exc)}")
            failed.append(getattr(exc, "exit_code", EXIT_INTERNAL))
            verdicts.append(f"{name}: failed")
            continue
        verdicts.append(f"{name}: {checks.conclusion_for(report) if report is not None else 'not gated'}")
    ctx.result.title = f"gated {len(names)} skills on #{ref.number} ({', '.join(verdicts)})"
    if failed:
        ctx.result.exit_code = failed[0]


def skills_on_base(ctx: Context, base_sha: str) -> list[str | None]:
    """The skills the base branch's config lists ([None] for a one-skill config, or no config)."""
    config = ctx.base_snapshot(base_sha) / ctx.s.config
    if not config.is_file():
        return [None]
    return [n or None for n in api.skills(config)]


def shard(ctx: Context, ref) -> None:
    """One job of a sharded gate (input `shard: i/n`): this shard's rollouts of the comparison, into a run
    directory the workflow uploads (output `shard-path`). It posts nothing and decides nothing: the job with
    `command: merge` gates the pull request (and posts the neutral notes for forks and drafts).

    A config listing several skills: each skill the pull request changes gets its own run directory, named by the
    skill, inside the one `shard-path` (each shard's manifest names its skill, so the merge job sorts them)."""
    assert ctx.s.shard is not None
    i, n = ctx.s.shard
    if ref.is_fork or (ref.draft and not ctx.s.gate_drafts):
        ctx.result.title = f"shard {i}/{n}: nothing to run"
        ctx.log("a fork's or a draft's pull request: no rollouts (the merge job posts the check's note)")
        return
    names = skills_on_base(ctx, ref.base_sha)
    out: Path | None = None
    ran: list[str] = []
    rollouts = 0
    for name in names:
        base_skill, candidate, config = skills_of(ctx, ref.head_sha, ref.base_sha, name)
        if config is None or candidate is None or candidate == base_skill:
            continue
        if out is None:
            out = ctx.out_dir(f"shard-{i}-of-{n}")
        run = api.compare(config, base_skill=base_skill, candidate_skill=candidate, log=stderr_log, shard=(i, n),
                          out=out / name if name else out, skill_name=name)
        ran.append(f"{name}: {run.rollouts}" if name else str(run.rollouts))
        rollouts += run.rollouts
    if out is None:
        ctx.result.title = f"shard {i}/{n}: nothing to run"
        ctx.log("no config on the base branch, or no skill file changed (or one is missing): no rollouts (the merge "
                "job says which on the check)")
        return
    ctx.result.shard_path = str(out)
    ctx.result.title = f"shard {i}/{n} of #{ref.number}: {rollouts} rollout(s)"
    ctx.log(f"shard {i}/{n}: {', '.join(ran)} rollout(s) in {out}; the merge job gates the pull request")


def skills_of(ctx: Context, head_sha: str, base_sha: str,
              skill_name: str | None = None) -> tuple[str, str | None, Path | None]:
    """(base skill, candidate skill or None when the PR deletes it, the base's config or None when it has none)."""
    base = ctx.base_snapshot(base_sha)
    config = base / ctx.s.config
    if not config.is_file():
        return "", None, None
    skill_path = load_config(str(config), skill_name).skill
    base_skill = ctx.read_text(base / skill_path, f"skill file {skill_path} on the base branch")
    return base_skill, prs.skill_at(ctx.repo, skill_path, head_sha, base_skill), config


def merged(ctx: Context, config: Path, base_skill: str, candidate: str, out: Path,
           skill_name: str | None = None) -> api.RunResult:
    """The comparison from the shard jobs' artifacts (`command: merge`), checked to be this pull request's (and,
    for one skill of several, that skill's shards among the others')."""
    where = Path(ctx.s.workspace) / ctx.s.shards
    if not where.is_dir() or not any(where.rglob("shard.json")):
        raise ConfigError(f"no shard artifacts in `{ctx.s.shards}`: the shard jobs failed or uploaded nothing (see "
                          "their logs)", None, None, "fix the failed shard job(s) and re-run all jobs; the merge job "
                          "must `needs:` them and download their artifacts into the `shards` input's directory")
    result = api.merge([where], config, out=out, log=stderr_log, skill_name=skill_name)
    if (result.baseline_skill, result.best_skill) != (base_skill, candidate):
        raise ConfigError(f"the shard artifacts in {ctx.s.shards} scored other skill texts than this pull request's "
                          "base and head", None, None, "download only this workflow run's shard artifacts (the "
                          "merge job must `needs:` the matrix of shard jobs of the same run)")
    return result


def post_neutral(ctx: Context, head_sha: str, title: str, summary: str) -> None:
    try:
        checks.post_neutral(ctx.repo, head_sha, title=title, summary=summary, details_url=ctx.s.run_url)
    except GithubException as exc:
        if not access.not_accessible(exc):
            raise
        ctx.read_only(f"{summary} (GitHub refused the neutral check: {access.message_of(exc)}.)", ctx.result.title)


def gate(ctx: Context, head_sha: str, base_sha: str, number: int, command: str | None, whose: str = "",
         primary: bool = True, skill_name: str | None = None) -> dict | None:
    """Score the skill at head_sha against the base's skill, using the base's config and tasks; post the check.
    `primary`: this comparison is what the run reports (outputs, job summary), not a side job of it.

    The check is created (in progress) before anything is scored: a token that cannot write it ends the run
    with a notice before any model call."""
    repo = ctx.repo
    run = None
    check = checks.check_name(skill_name)
    if not ctx.t.dry_run:
        try:
            run = checks.start(repo, head_sha, ctx.s.run_url, name=check)
        except GithubException as exc:
            if not access.not_accessible(exc):
                raise
            ctx.read_only(f"skillopt cannot post the `{check}` check on {head_sha[:12]} "
                          f"({access.message_of(exc)}), so it scored nothing and called no model. Give the "
                          "workflow `permissions: checks: write` (the check needs the workflow token or a GitHub "
                          "App token; personal access tokens cannot post checks).", "cannot post the check")
            return None
    def nothing_to_score(msg: str, title: str, conclusion: str, check_title: str) -> None:
        if primary:
            ctx.result.title = title
        ctx.log(msg)
        if run is not None:
            checks.complete(run, conclusion=conclusion, title=check_title, summary=msg)

    try:
        base = ctx.base_snapshot(base_sha)
        config = base / ctx.s.config
        if not config.is_file():
            nothing_to_score(f"The base branch has no `{ctx.s.config}`, so there is nothing to gate against.",
                             "no config on the base branch", "neutral", "No skillopt config on the base branch")
            return None
        skill_path = load_config(str(config), skill_name).skill
        base_skill = ctx.read_text(base / skill_path, f"skill file {skill_path} on the base branch")
        candidate = prs.skill_at(repo, skill_path, head_sha, base_skill)
        if candidate is None:
            nothing_to_score(f"This pull request deletes or moves `{skill_path}`; there is no candidate skill to "
                             "score.", "skill file missing in the pull request", "failure", f"{skill_path} is missing")
            return None
        if candidate == base_skill and command is None:
            nothing_to_score(f"This pull request does not change `{skill_path}`, so there is nothing to gate. The "
                             "tasks, scorers and config are always taken from the base branch, so changes to them "
                             "take effect once merged.", "skill unchanged: nothing to gate", "neutral",
                             f"{skill_path} unchanged")
            return None
        out = ctx.out_dir("compare")
        if ctx.s.command == "merge":
            result = merged(ctx, config, base_skill, candidate, out, skill_name)
        else:
            result = api.compare(config, base_skill=base_skill, candidate_skill=candidate, out=out, log=stderr_log,
                                 skill_name=skill_name)
        report = ctx.record(result, primary=primary)
    except ConfigError as exc:
        if run is not None:
            checks.complete(run, conclusion="failure", title="skillopt could not score: invalid config",
                            summary=f"```\n{exc}\n```\nSee the [workflow run]({ctx.s.run_url}).")
        raise
    except Exception as exc:
        if run is not None:
            checks.complete(run, conclusion="failure", title=f"skillopt could not score: {meaning(exc)}",
                            summary=f"Scoring failed ({meaning(exc)}): `{first_line(exc)}`. "
                            f"See the [workflow run]({ctx.s.run_url}).")
        raise
    title, summary, text = checks.summary_for(report, ctx.s.run_url, whose=whose)
    verdict = checks.conclusion_for(report)
    if primary:
        ctx.result.title = f"gate {verdict} on #{number}"
    ctx.log(f"check `{check}` on {head_sha[:12]}: {verdict} — {title}")
    if run is not None:
        checks.complete(run, conclusion=verdict, title=title, summary=summary, text=text, more_url=ctx.s.run_url)
    return report


def author_of(repo, sha: str) -> str:
    """`@login` of a commit's author when GitHub links it to an account, else the author's name."""
    commit = repo.get_commit(sha)
    if commit.author is not None:
        return f"@{commit.author.login}"
    return commit.commit.author.name or "someone"


def bot_pr_pushed_by_human(ctx: Context, number: int, head_sha: str, report: dict, pusher: str) -> None:
    """After gating a push to the bot's own PR (`pull_request.synchronize`), make its body describe the commit."""
    pr = ctx.repo.get_pull(number)
    state = prs.read_state(pr.body)
    if not state or state.get("head") == head_sha or state.get("described") == head_sha:
        return  # not the bot's PR, or the bot's own push, or already described
    who = f"@{pusher}" if pusher and pusher != ctx.bot_login else author_of(ctx.repo, head_sha)
    try:
        describe_human_head(ctx, pr, head_sha, report, who)
    except GithubException as exc:
        if not access.not_accessible(exc):
            raise
        ctx.annotate("warning", f"The gate check is on {who}'s commit, but skillopt could not update the description "
                     f"of its pull request #{number} ({access.message_of(exc)}): give this workflow `pull-requests: "
                     "write`. The next scheduled run updates it.")


def describe_human_head(ctx: Context, pr, head_sha: str, report: dict, who: str) -> None:
    """Rewrite the bot PR's title and body (table from `report`, the gate of the human's commit) to say whose
    skill they describe; the hidden state keeps the bot's own head, so the branch is never force-pushed."""
    whose = f"{who} (commit {head_sha[:7]})"
    body = render("github_pr_body.md.j2", r=report, report_md=ctx.last_report_md, run_url=ctx.s.run_url,
                  fmt=fmt, edits="", whose=whose, note="")
    # the state keeps the bot's own head (so the branch is never force-pushed) and records what the body shows
    marker = prs.with_state("", **{**prs.read_state(pr.body), "described": head_sha})
    title = pr_title(report.get("skill_path") or "the skill", report) + f" — {who}'s commit"
    pr.edit(title=title, body=checks.fit(body, 65536 - len(marker) - 2, ctx.s.run_url) + marker)
    ctx.log(f"#{pr.number}: title and body now describe {who}'s commit {head_sha[:12]}")
