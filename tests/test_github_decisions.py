"""Pure decisions of the GitHub layer: event parsing, commands and authorisation, the bot PR lifecycle, check limits."""

from __future__ import annotations

import github_project as gp
import pytest

from skillopt_action.errors import ConfigError
from skillopt_action.github import checks, commands
from skillopt_action.github import pull_request as prs
from skillopt_action.github.event import Settings, parse_trigger, settings_from_env

REPO = "acme/skills"


def settings(event: str, **kw) -> Settings:
    base = dict(event_name=event, event_path="/dev/null", repository=REPO, api_url="http://127.0.0.1:1/api/v3",
                server_url="http://127.0.0.1:1", run_id="7", sha="abc", workspace=".", token="t")
    return Settings(**(base | kw))


# ---- event parsing


def test_schedule_and_dispatch_become_optimize_on_the_default_branch():
    t = parse_trigger(settings("schedule"), gp.schedule_payload(REPO))
    assert (t.kind, t.default_branch, t.epochs, t.dry_run) == ("optimize", "main", None, False)
    t = parse_trigger(settings("workflow_dispatch"), gp.dispatch_payload(REPO, {"epochs": "3", "dry-run": "true"}))
    assert (t.kind, t.epochs, t.dry_run) == ("optimize", 3, True)
    t = parse_trigger(settings("schedule", command="eval"), gp.schedule_payload(REPO))
    assert t.kind == "eval"


def test_dispatch_rejects_nonsense_epochs():
    with pytest.raises(ConfigError, match="whole number from 1 to 100"):
        parse_trigger(settings("workflow_dispatch"), gp.dispatch_payload(REPO, {"epochs": "0"}))


def test_comment_on_pr_is_a_command_trigger_and_others_are_ignored():
    t = parse_trigger(settings("issue_comment"), gp.comment_payload(REPO, 5, 99, "/skillopt eval", "maintainer"))
    assert (t.kind, t.pull_number, t.comment_id, t.commenter, t.commenter_is_bot) == ("comment", 5, 99, "maintainer", False)
    t = parse_trigger(settings("issue_comment"), gp.comment_payload(REPO, 5, 99, "/skillopt eval", "m", action="edited"))
    assert t.kind == "ignore" and "edited" in t.reason
    t = parse_trigger(settings("issue_comment"), gp.comment_payload(REPO, 5, 99, "/skillopt eval", "m", on_pull_request=False))
    assert t.kind == "ignore" and "not a pull request" in t.reason
    t = parse_trigger(settings("issue_comment"), gp.comment_payload(REPO, 5, 99, "/skillopt eval", "dependabot[bot]", user_type="Bot"))
    assert t.kind == "comment" and t.commenter_is_bot


def test_pull_request_trigger_knows_forks():
    same = parse_trigger(settings("pull_request"), gp.pull_request_payload(REPO, 3, "feature", "h" * 40, "b" * 40))
    assert same.kind == "pull_request" and not same.pull.is_fork and same.pull.head_sha == "h" * 40 and same.pull.base_sha == "b" * 40
    fork = parse_trigger(settings("pull_request"), gp.pull_request_payload(REPO, 3, "patch", "h" * 40, "b" * 40, head_repo="x/skills"))
    assert fork.pull.is_fork
    closed = gp.pull_request_payload(REPO, 3, "feature", "h" * 40, "b" * 40)
    closed["action"] = "closed"
    assert parse_trigger(settings("pull_request"), closed).kind == "ignore"
    assert parse_trigger(settings("push"), {}).kind == "ignore"


def test_settings_from_env_reads_inputs_and_refuses_bad_ones():
    env = {"GITHUB_EVENT_NAME": "schedule", "GITHUB_EVENT_PATH": "e.json", "GITHUB_REPOSITORY": REPO,
           "GITHUB_API_URL": "http://127.0.0.1:9/api/v3", "INPUT_GITHUB-TOKEN": "tok", "INPUT_DRY-RUN": "true",
           "INPUT_REVIEWERS": "alice, bob", "INPUT_COMMAND": "optimize"}
    s = settings_from_env(env)
    assert (s.api_url, s.dry_run, s.reviewers, s.command, s.labels) == ("http://127.0.0.1:9/api/v3", True, ("alice", "bob"), "optimize", ("skillopt",))
    with pytest.raises(ConfigError, match="auto, optimize or eval"):
        settings_from_env(env | {"INPUT_COMMAND": "deploy"})
    with pytest.raises(ConfigError, match="true or false"):
        settings_from_env(env | {"INPUT_DRY-RUN": "maybe"})
    with pytest.raises(ConfigError, match="no GitHub token"):
        settings_from_env({k: v for k, v in env.items() if k != "INPUT_GITHUB-TOKEN"})


# ---- commands and authorisation


@pytest.mark.parametrize("body, expected", [
    ("/skillopt eval", commands.Command("eval")),
    ("  /SkillOpt   optimize  epochs=3\nplease", commands.Command("optimize", epochs=3)),
    ("/skillopt optimize", commands.Command("optimize")),
    ("/skillopt help", commands.Command("help")),
    ("great work!\n/skillopt eval", None),
    ("> /skillopt eval\nquoted", None),
    ("/skillopts eval", None),
])
def test_parse_commands(body, expected):
    assert commands.parse(body) == expected


@pytest.mark.parametrize("body, error", [
    ("/skillopt", "no command"),
    ("/skillopt deploy", "unknown command `deploy`"),
    ("/skillopt optimize epochs=0", "from 1 to 20"),
    ("/skillopt optimize fast", "does not understand `fast`"),
    ("/skillopt eval now", "takes no arguments"),
])
def test_unknown_commands_say_why(body, error):
    cmd = commands.parse(body)
    assert cmd.name == "unknown" and error in cmd.error


@pytest.mark.parametrize("permission, role, allowed", [
    ("admin", "admin", True), ("write", "maintain", True), ("write", "write", True), ("write", None, True),
    ("read", "triage", False), ("read", "read", False), ("none", None, False), (None, None, False),
])
def test_authorize_needs_write_maintain_or_admin(permission, role, allowed):
    assert commands.authorize(permission, role).allowed is allowed


def test_bots_are_never_authorised():
    assert not commands.authorize("admin", "admin", commenter_is_bot=True).allowed


# ---- PR lifecycle

BASE = "skill v1\n"
BEST = "skill v1\n- better\n"


def open_pr(branch_skill: str, proposal_text: str | None, head: str = "h1", recorded: str | None = "h1") -> prs.OpenPR:
    body = "body\n" + (prs.state_marker(prs.proposal_id(proposal_text), recorded) if proposal_text is not None else "")
    return prs.OpenPR(number=4, url="u", head_sha=head, body=body, branch_skill=branch_skill)


def test_first_improvement_creates_a_pr():
    plan = prs.decide(improved=True, best=BEST, default_skill=BASE, open_pr=None, closed=[])
    assert (plan.outcome, plan.push, plan.create) == ("created", True, True)


def test_new_improvement_updates_the_open_pr_by_force_push():
    plan = prs.decide(improved=True, best=BEST + "- more\n", default_skill=BASE, open_pr=open_pr(BEST, BEST), closed=[])
    assert (plan.outcome, plan.push, plan.edit, plan.create) == ("updated", True, True, False)


def test_same_proposal_leaves_branch_alone_and_refreshes_body():
    plan = prs.decide(improved=True, best=BEST, default_skill=BASE, open_pr=open_pr(BEST, BEST), closed=[])
    assert (plan.outcome, plan.push, plan.edit) == ("unchanged", False, True)


def test_human_pushed_branch_gets_a_comment_instead_of_a_force_push():
    pr = open_pr(BEST + "human\n", BEST, head="h2", recorded="h1")
    plan = prs.decide(improved=True, best=BEST + "- more\n", default_skill=BASE, open_pr=pr, closed=[])
    assert (plan.outcome, plan.push, plan.edit, plan.comment) == ("unchanged", False, False, "human-pushed")


def test_human_closed_same_proposal_is_never_recreated():
    closed = [prs.ClosedPR(2, prs.proposal_id(BEST), merged=False)]
    plan = prs.decide(improved=True, best=BEST, default_skill=BASE, open_pr=None, closed=closed)
    assert (plan.outcome, plan.push, plan.create, plan.pr_number) == ("none", False, False, 2)
    # a different proposal is fine
    plan = prs.decide(improved=True, best=BEST + "x\n", default_skill=BASE, open_pr=None, closed=closed)
    assert plan.outcome == "created"


def test_nothing_passes_opens_no_pr_and_says_so():
    plan = prs.decide(improved=False, best=BASE, default_skill=BASE, open_pr=None, closed=[])
    assert plan.outcome == "none" and not (plan.push or plan.create) and "no edit passed the gate" in plan.reason
    plan = prs.decide(improved=False, best=BASE, default_skill=BASE, open_pr=open_pr(BEST, BEST), closed=[])
    assert (plan.outcome, plan.comment, plan.close) == ("unchanged", "no-improvement", False)


def test_close_when_default_branch_already_has_the_proposal():
    plan = prs.decide(improved=False, best=BEST, default_skill=BEST, open_pr=open_pr(BEST, BEST), closed=[])
    assert (plan.outcome, plan.close) == ("closed", True)
    # but never close a branch a human pushed to
    plan = prs.decide(improved=False, best=BEST, default_skill=BEST, open_pr=open_pr(BEST, BEST, head="h9"), closed=[])
    assert plan.outcome == "unchanged" and not plan.close


def test_branch_names():
    assert prs.branch_for("SKILL.md") == "skillopt/skill"
    assert prs.branch_for(".claude/skills/Release Notes/SKILL.md") == "skillopt/release-notes"
    assert prs.branch_for("AGENTS.md") == "skillopt/agents"


def test_state_marker_round_trip_and_garbage():
    body = "x " + prs.state_marker("p1", "h1") + " y"
    assert prs.read_state(body) == {"proposal": "p1", "head": "h1"}
    assert prs.read_state("<!-- skillopt:pr {not json} -->") == {}
    assert prs.read_state(None) == {}


# ---- check limits


def test_fit_respects_github_limit_and_links_artifacts():
    text = "x" * 100_000
    out = checks.fit(text, checks.MAX_OUTPUT, "http://127.0.0.1/run/1")
    assert len(out) <= checks.MAX_OUTPUT and out.endswith("http://127.0.0.1/run/1\n")
    assert checks.fit("short", 10, None) == "short"


def test_conclusions():
    assert checks.conclusion_for({"gate": None}) == "neutral"
    assert checks.conclusion_for({"gate": {"accepted": True}, "improved": True}) == "success"
    assert checks.conclusion_for({"gate": {"accepted": False}, "improved": False}) == "failure"
