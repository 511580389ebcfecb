"""The runner's environment and event payload -> one typed Trigger. No I/O beyond what the caller passes in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import parse_shard as parse_spec
from ..errors import ConfigError

BOT_SUFFIX = "[bot]"
SHARDED_EVENTS = ("pull_request", "pull_request_target", "schedule", "workflow_dispatch")


@dataclass(frozen=True)
class Settings:
    """The runner environment and the action's inputs."""

    event_name: str
    event_path: str
    repository: str
    api_url: str
    server_url: str
    run_id: str
    sha: str
    workspace: str
    token: str
    config: str = ".github/skillopt.yml"
    command: str = "auto"  # auto | optimize | eval | watch | merge
    dry_run: bool = False
    epochs: int | None = None
    labels: tuple[str, ...] = ("skillopt",)
    reviewers: tuple[str, ...] = ()
    output_path: str | None = None
    summary_path: str | None = None
    run_attempt: str = "1"
    bot_login: str = ""  # whose comments are ours when the token cannot say (GitHub App tokens)
    gate_drafts: bool = False  # gate draft pull requests too (default: a neutral note until ready for review)
    actor: str = ""  # GITHUB_ACTOR: who triggered the run
    shard: tuple[int, int] | None = None  # pull request gate: run only this shard's rollouts (input `shard: i/n`)
    shards: str = "skillopt-shards"  # command merge: where the shard jobs' artifacts were downloaded
    record_baseline: bool = False  # watch: store this run's scores as the new drift baseline
    drift_alpha: float = 0.05  # watch: significance level of the paired drift test
    optimize_on_drift: bool = False  # watch: run `optimize` (the bot pull request) in the same job on drift

    @property
    def run_url(self) -> str:
        return f"{self.server_url.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]


def _input(env: Mapping[str, str], name: str, default: str = "") -> str:
    # The runner exports inputs as INPUT_<NAME upper-cased>, keeping dashes.
    value = env.get(f"INPUT_{name.upper()}")
    if value is None:
        value = env.get(f"INPUT_{name.upper().replace('-', '_')}")
    return default if value is None or value.strip() == "" else value.strip()


def parse_bool(value: str, what: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off", ""):
        return False
    raise ConfigError(f"{what} must be true or false, not {value!r}", fix=f"set {what}: true or {what}: false")


def parse_epochs(value: str, what: str) -> int | None:
    if value.strip() == "":
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1 or n > 100:
        raise ConfigError(f"{what} must be a whole number from 1 to 100, not {value!r}", fix=f"set {what} to e.g. 2")
    return n


def parse_alpha(value: str, what: str) -> float:
    try:
        alpha = float(value)
    except ValueError:
        alpha = -1.0
    if not 0 < alpha < 1:
        raise ConfigError(f"{what} must be a number between 0 and 1, not {value!r}", fix=f"set {what} to e.g. 0.05")
    return alpha


def _csv(value: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in value.replace("\n", ",").split(",") if x.strip())


def settings_from_env(env: Mapping[str, str]) -> Settings:
    missing = [k for k in ("GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "GITHUB_REPOSITORY") if not env.get(k)]
    if missing:
        raise ConfigError(
            f"not running inside GitHub Actions: {', '.join(missing)} not set",
            fix="run `skillopt action` from a workflow step (use the action), or use `skillopt optimize` locally",
        )
    token = _input(env, "github-token") or env.get("GITHUB_TOKEN", "")
    if not token:
        raise ConfigError(
            "no GitHub token", fix="pass `github-token: ${{ secrets.GITHUB_TOKEN }}` (the default) to the action"
        )
    command = _input(env, "command", "auto").lower()
    if command not in ("auto", "optimize", "eval", "watch", "merge"):
        raise ConfigError(f"input `command` must be auto, optimize, eval, watch or merge, not {command!r}",
                          fix="command: auto (or merge, in the job after a matrix of `shard: i/n` jobs)")
    shard = parse_spec(_input(env, "shard"), "input `shard`") if _input(env, "shard") else None
    if shard is not None and command == "merge":
        raise ConfigError("inputs `shard` and `command: merge` go to different jobs", fix="give `shard: i/n` to "
                          "the matrix jobs and `command: merge` to the one job that needs them")
    event = env.get("GITHUB_EVENT_NAME", "")
    if (shard is not None or command == "merge") and event not in SHARDED_EVENTS:
        raise ConfigError(f"sharding (input `shard` / `command: merge`) is for the pull request gate and the "
                          f"scheduled run's warm-up, not the {event!r} event", fix="use it in a workflow run on "
                          "pull_request, schedule or workflow_dispatch (README, \"Scaling out\")")
    if shard is not None and command not in ("auto", "optimize"):
        raise ConfigError(f"input `shard` warms up an optimize run or shards a pull request gate, not `command: "
                          f"{command}`", fix="leave `command` at auto in the matrix of shard jobs")
    return Settings(
        event_name=env["GITHUB_EVENT_NAME"],
        event_path=env["GITHUB_EVENT_PATH"],
        repository=env["GITHUB_REPOSITORY"],
        api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
        server_url=env.get("GITHUB_SERVER_URL") or "https://github.com",
        run_id=env.get("GITHUB_RUN_ID", "0"),
        sha=env.get("GITHUB_SHA", ""),
        workspace=env.get("GITHUB_WORKSPACE") or ".",
        token=token,
        config=_input(env, "config", ".github/skillopt.yml"),
        command=command,
        dry_run=parse_bool(_input(env, "dry-run", "false"), "input `dry-run`"),
        epochs=parse_epochs(_input(env, "epochs", ""), "input `epochs`"),
        labels=_csv(_input(env, "labels", "skillopt")),
        reviewers=_csv(_input(env, "reviewers", "")),
        output_path=env.get("GITHUB_OUTPUT") or None,
        summary_path=env.get("GITHUB_STEP_SUMMARY") or None,
        run_attempt=env.get("GITHUB_RUN_ATTEMPT", "1"),
        bot_login=_input(env, "bot-login"),
        gate_drafts=parse_bool(_input(env, "gate-drafts", "false"), "input `gate-drafts`"),
        actor=env.get("GITHUB_ACTOR", ""),
        shard=shard,
        shards=_input(env, "shards", "skillopt-shards"),
        record_baseline=parse_bool(_input(env, "record-baseline", "false"), "input `record-baseline`"),
        drift_alpha=parse_alpha(_input(env, "drift-alpha", "0.05"), "input `drift-alpha`"),
        optimize_on_drift=parse_bool(_input(env, "optimize-on-drift", "false"), "input `optimize-on-drift`"),
    )


@dataclass(frozen=True)
class PullRef:
    number: int
    head_ref: str
    head_sha: str
    head_repo: str  # owner/name of the repository the head branch lives in
    base_ref: str
    base_sha: str
    base_repo: str
    draft: bool = False
    action: str = "opened"
    sender: str = ""  # who caused the event (for synchronize: who pushed)

    @property
    def is_fork(self) -> bool:
        return self.head_repo.lower() != self.base_repo.lower()


@dataclass(frozen=True)
class Trigger:
    """What started the run, reduced to what the handlers need.

    kind: "optimize" (schedule / workflow_dispatch / command=optimize), "eval" and "watch" (the same events with
    command=eval / command=watch), "warm" and "warm_merge" (the same events with `shard: i/n` / command=merge: the
    optimize run's warm-up, extra["shard"] = (i, n)), "comment" (issue_comment),
    "pull_request", or "ignore" (with `reason`).
    """

    kind: str
    event: str
    reason: str = ""
    default_branch: str = "main"
    epochs: int | None = None
    dry_run: bool = False
    pull: PullRef | None = None
    pull_number: int | None = None  # for comments: the PR the comment is on
    comment_id: int | None = None
    comment_body: str = ""
    commenter: str = ""
    commenter_is_bot: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _pull_ref(payload: Mapping[str, Any], repository: str) -> PullRef:
    pr = payload.get("pull_request") or {}
    head, base = pr.get("head") or {}, pr.get("base") or {}
    head_repo = (head.get("repo") or {}).get("full_name") or ""  # null when the fork was deleted
    return PullRef(number=int(pr["number"]), head_ref=head.get("ref", ""), head_sha=head.get("sha", ""),
                   head_repo=head_repo or "(deleted fork)", base_ref=base.get("ref", ""), base_sha=base.get("sha", ""),
                   base_repo=(base.get("repo") or {}).get("full_name") or repository, draft=bool(pr.get("draft")),
                   action=str(payload.get("action") or ""), sender=(payload.get("sender") or {}).get("login", ""))


PR_ACTIONS = ("opened", "synchronize", "reopened", "ready_for_review")


def parse_trigger(settings: Settings, payload: Mapping[str, Any]) -> Trigger:
    """Decide what kind of run this is from the event name, the payload and the inputs."""
    ev = settings.event_name
    default_branch = ((payload.get("repository") or {}).get("default_branch")) or "main"
    if ev in ("schedule", "workflow_dispatch"):
        inputs = payload.get("inputs") or {}
        epochs = settings.epochs
        dry_run = settings.dry_run
        if ev == "workflow_dispatch":
            if str(inputs.get("epochs") or "").strip():
                epochs = parse_epochs(str(inputs["epochs"]), "workflow_dispatch input `epochs`")
            if str(inputs.get("dry-run", inputs.get("dry_run", "")) or "").strip():
                dry_run = dry_run or parse_bool(
                    str(inputs.get("dry-run", inputs.get("dry_run"))), "workflow_dispatch input `dry-run`"
                )
        if settings.shard is not None:  # a job of the matrix that warms the optimize run's cache
            return Trigger(kind="warm", event=ev, default_branch=default_branch, dry_run=dry_run,
                           extra={"shard": settings.shard})
        if settings.command == "merge":  # the job after that matrix: the warm-up's rollouts into the cache
            return Trigger(kind="warm_merge", event=ev, default_branch=default_branch, dry_run=dry_run)
        if settings.command == "eval":
            return Trigger(kind="eval", event=ev, default_branch=default_branch, dry_run=dry_run)
        if settings.command == "watch":
            record = settings.record_baseline
            raw = str(inputs.get("record-baseline", inputs.get("record_baseline", "")) or "").strip()
            if ev == "workflow_dispatch" and raw:
                record = record or parse_bool(raw, "workflow_dispatch input `record-baseline`")
            return Trigger(kind="watch", event=ev, default_branch=default_branch, dry_run=dry_run,
                           extra={"record_baseline": record})
        return Trigger(kind="optimize", event=ev, default_branch=default_branch, epochs=epochs, dry_run=dry_run)
    if ev == "issue_comment":
        action = payload.get("action")
        issue = payload.get("issue") or {}
        comment = payload.get("comment") or {}
        user = comment.get("user") or {}
        base = dict(
            event=ev,
            default_branch=default_branch,
            comment_id=comment.get("id"),
            comment_body=comment.get("body") or "",
            commenter=user.get("login", ""),
            commenter_is_bot=user.get("type") == "Bot" or user.get("login", "").endswith(BOT_SUFFIX),
            dry_run=settings.dry_run,
        )
        if action != "created":
            return Trigger(kind="ignore", reason=f"comment was {action}; only new comments are commands", **base)
        if not issue.get("pull_request"):
            return Trigger(kind="ignore", reason="comment is on an issue, not a pull request", **base)
        return Trigger(kind="comment", pull_number=int(issue["number"]), **base)
    if ev in ("pull_request", "pull_request_target"):
        action = payload.get("action")
        pr = payload.get("pull_request") or {}
        if action not in PR_ACTIONS:
            return Trigger(kind="ignore", event=ev, reason=f"pull_request action {action!r} does not need a gate check")
        return Trigger(
            kind="pull_request",
            event=ev,
            default_branch=default_branch,
            pull=_pull_ref(payload, settings.repository),
            pull_number=int(pr["number"]),
            dry_run=settings.dry_run,
        )
    return Trigger(
        kind="ignore",
        event=ev,
        reason=f"event {ev!r} is not handled (use schedule, workflow_dispatch, issue_comment or pull_request)",
    )
