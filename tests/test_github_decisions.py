"""Pure decisions of the GitHub layer: event parsing, commands and authorisation, the bot PR lifecycle, check limits."""

from __future__ import annotations

import github_project as gp
import pytest
import yaml
from github.GithubException import GithubException

from skillopt_action import fmt
from skillopt_action.errors import ConfigError
from skillopt_action.github import access, checks, commands, memory, present
from skillopt_action.github import pull_request as prs
from skillopt_action.github.event import Settings, parse_trigger, settings_from_env
from skillopt_action.github.outputs import Result, annotation
from skillopt_action.render import render

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


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened", "ready_for_review"])
def test_pull_request_actions_that_need_a_gate_carry_draft_and_sender(action):
    payload = gp.pull_request_payload(REPO, 3, "feature", "h" * 40, "b" * 40, action=action, draft=True, sender="alice")
    t = parse_trigger(settings("pull_request"), payload)
    assert (t.kind, t.pull.action, t.pull.draft, t.pull.sender) == ("pull_request", action, True, "alice")


def test_settings_from_env_reads_inputs_and_refuses_bad_ones():
    env = {"GITHUB_EVENT_NAME": "schedule", "GITHUB_EVENT_PATH": "e.json", "GITHUB_REPOSITORY": REPO,
           "GITHUB_API_URL": "http://127.0.0.1:9/api/v3", "INPUT_GITHUB-TOKEN": "tok", "INPUT_DRY-RUN": "true",
           "INPUT_REVIEWERS": "alice, bob", "INPUT_COMMAND": "optimize"}
    s = settings_from_env(env)
    assert (s.api_url, s.dry_run, s.reviewers, s.command, s.labels) == ("http://127.0.0.1:9/api/v3", True, ("alice", "bob"), "optimize", ("skillopt",))
    with pytest.raises(ConfigError, match="auto, optimize, eval, watch or merge"):
        settings_from_env(env | {"INPUT_COMMAND": "deploy"})
    with pytest.raises(ConfigError, match="true or false"):
        settings_from_env(env | {"INPUT_DRY-RUN": "maybe"})
    with pytest.raises(ConfigError, match="no GitHub token"):
        settings_from_env({k: v for k, v in env.items() if k != "INPUT_GITHUB-TOKEN"})
    s = settings_from_env(env | {"INPUT_GATE_DRAFTS": "true", "INPUT_BOT_LOGIN": "my-app[bot]", "GITHUB_ACTOR": "al"})
    assert (s.gate_drafts, s.bot_login, s.actor) == (True, "my-app[bot]", "al")
    with pytest.raises(ConfigError, match="gate-drafts"):
        settings_from_env(env | {"INPUT_GATE-DRAFTS": "sometimes"})
    s = settings_from_env(env | {"INPUT_COMMAND": "watch", "INPUT_RECORD_BASELINE": "true", "INPUT_DRIFT-ALPHA": "0.1"})
    assert (s.command, s.record_baseline, s.drift_alpha, s.optimize_on_drift) == ("watch", True, 0.1, False)
    with pytest.raises(ConfigError, match="drift-alpha.*between 0 and 1"):
        settings_from_env(env | {"INPUT_DRIFT-ALPHA": "5%"})


def test_shard_and_merge_inputs_are_for_the_pull_request_gate_and_the_scheduled_warm_up():
    env = {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": "e.json", "GITHUB_REPOSITORY": REPO,
           "INPUT_GITHUB-TOKEN": "tok"}
    assert settings_from_env(env | {"INPUT_SHARD": "2/4"}).shard == (2, 4)
    merge = settings_from_env(env | {"INPUT_COMMAND": "merge", "INPUT_SHARDS": "dl"})
    assert (merge.command, merge.shard, merge.shards) == ("merge", None, "dl")
    with pytest.raises(ConfigError, match="must be i/n"):
        settings_from_env(env | {"INPUT_SHARD": "5/4"})
    with pytest.raises(ConfigError, match="different jobs"):
        settings_from_env(env | {"INPUT_SHARD": "1/4", "INPUT_COMMAND": "merge"})
    with pytest.raises(ConfigError, match="not the 'issue_comment' event"):
        settings_from_env(env | {"GITHUB_EVENT_NAME": "issue_comment", "INPUT_SHARD": "1/4"})
    # on a schedule or workflow_dispatch: the optimize run's warm-up (a matrix of shards, then their merge)
    for event, payload in (("schedule", gp.schedule_payload(REPO)), ("workflow_dispatch", gp.dispatch_payload(REPO, {}))):
        s = settings_from_env(env | {"GITHUB_EVENT_NAME": event, "INPUT_SHARD": "3/4"})
        t = parse_trigger(s, payload)
        assert (t.kind, t.extra["shard"]) == ("warm", (3, 4))
        t = parse_trigger(settings_from_env(env | {"GITHUB_EVENT_NAME": event, "INPUT_COMMAND": "merge"}), payload)
        assert t.kind == "warm_merge"
    with pytest.raises(ConfigError, match="not `command: watch`"):
        settings_from_env(env | {"GITHUB_EVENT_NAME": "schedule", "INPUT_SHARD": "1/4", "INPUT_COMMAND": "watch"})


# ---- commands and authorisation


@pytest.mark.parametrize("body, expected", [
    ("/skillopt eval", commands.Command("eval")),
    ("  /SkillOpt   optimize  epochs=3\nplease", commands.Command("optimize", epochs=3)),
    ("/skillopt optimize", commands.Command("optimize")),
    ("/skillopt help", commands.Command("help")),
    ("/skillopt eval skill=docs-writer", commands.Command("eval", skill="docs-writer")),
    ("/skillopt optimize skill=loud epochs=2", commands.Command("optimize", epochs=2, skill="loud")),
    ("/skillopt optimize epochs=2 SKILL=loud", commands.Command("optimize", epochs=2, skill="loud")),
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
    ("/skillopt eval now", "takes only `skill=NAME`"),
    ("/skillopt eval epochs=2", "takes only `skill=NAME`"),
    ("/skillopt eval skill=", "is not a skill name"),
    ("/skillopt optimize skill=Loud", "is not a skill name"),
    ("/skillopt optimize skill=../etc", "is not a skill name"),
])
def test_unknown_commands_say_why(body, error):
    cmd = commands.parse(body)
    assert cmd.name == "unknown" and error in cmd.error


def select(body: str, names: list, changed: list | None = None) -> commands.Selection:
    cmd = commands.parse(body)
    assert cmd is not None and cmd.name != "unknown", cmd
    return commands.select(cmd, names, changed)


def test_one_skill_configs_need_no_skill_name_and_refuse_one():
    assert select("/skillopt eval", [None]).skills == (None,)
    assert select("/skillopt optimize epochs=2", [None]).skills == (None,)
    refused = select("/skillopt eval skill=loud", [None])
    assert refused.skills == () and "single skill; leave out `skill=`" in refused.problem


def test_several_skills_eval_gates_what_the_pr_changes_and_optimize_asks_which():
    names = ["shout", "loud", "quiet"]
    assert select("/skillopt eval", names, changed=["quiet", "shout"]).skills == ("shout", "quiet")  # config order
    assert select("/skillopt eval skill=loud", names, changed=["shout"]).skills == ("loud",)
    nothing = select("/skillopt eval", names, changed=[])
    assert nothing.skills == () and "changes none of the skills" in nothing.problem and nothing.names == tuple(names)
    which = select("/skillopt optimize epochs=1", names)
    assert which.skills == () and "lists 3 skills; say which one" in which.problem and which.names == tuple(names)
    assert select("/skillopt optimize skill=quiet", names).skills == ("quiet",)
    unknown = select("/skillopt optimize skill=louder", names)
    assert unknown.skills == () and "no skill named `louder`" in unknown.problem
    # a `skills:` list of one needs no name either
    assert select("/skillopt optimize", ["only"]).skills == ("only",)


@pytest.mark.parametrize("permission, role, allowed", [
    ("admin", "admin", True), ("write", "maintain", True), ("write", "write", True), ("write", None, True),
    ("read", "triage", False), ("read", "read", False), ("none", None, False), (None, None, False),
])
def test_authorize_needs_write_maintain_or_admin(permission, role, allowed):
    assert commands.authorize(permission, role).allowed is allowed


def test_bots_are_never_authorised():
    assert not commands.authorize("admin", "admin", commenter_is_bot=True).allowed


@pytest.mark.parametrize("permission, role, phrase", [
    ("read", "read", "your access is read"), ("read", "triage", "your access is triage"),
    ("none", None, "you are not a collaborator"), (None, None, "you are not a collaborator"),
])
def test_refusal_reply_reads_as_a_sentence(permission, role, phrase):
    auth = commands.authorize(permission, role)
    text = render("github_reply.md.j2", kind="denied", command_line="/skillopt eval", user="v", access=auth.access)
    assert f"can run `/skillopt` commands, and {phrase}, so nothing was run." in text
    assert text.count("(") == text.count(")")


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


def test_same_proposal_touches_nothing():
    plan = prs.decide(improved=True, best=BEST, default_skill=BASE, open_pr=open_pr(BEST, BEST), closed=[])
    assert (plan.outcome, plan.push, plan.edit, plan.comment, plan.close) == ("unchanged", False, False, None, False)


def test_human_pushed_branch_gets_a_comment_instead_of_a_force_push():
    pr = open_pr(BEST + "human\n", BEST, head="h2", recorded="h1")
    plan = prs.decide(improved=True, best=BEST + "- more\n", default_skill=BASE, open_pr=pr, closed=[])
    assert (plan.outcome, plan.push, plan.edit, plan.comment) == ("unchanged", False, False, "human-pushed")
    # the same proposal as before is nothing new to say
    plan = prs.decide(improved=True, best=BEST, default_skill=BASE, open_pr=pr, closed=[])
    assert (plan.outcome, plan.push, plan.edit, plan.comment) == ("unchanged", False, False, None)


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
    assert (plan.outcome, plan.comment, plan.close, plan.edit) == ("unchanged", None, False, False)


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


def test_state_marker_survives_edit_text_that_looks_like_html():
    edits = [{"edit": {"op": "add", "anchor": "## A", "content": "- never write --> or <!-- here"}, "delta": 0.5}]
    marker = prs.state_marker("p", "h", edits=edits, base_hash="abc")
    assert marker.count("-->") == 1 and marker.endswith(" -->") and "<!--" not in marker[4:]
    body = prs.with_state("visible text\n" + marker, described="h2")
    assert prs.read_state(body) == {"proposal": "p", "head": "h", "edits": edits, "base_hash": "abc", "described": "h2"}
    assert body.startswith("visible text\n<!-- skillopt:pr ") and body.count("skillopt:pr") == 1


def test_closed_pr_reads_its_edits_back_from_the_body():
    body = "text\n" + prs.state_marker("p", "h", edits=[{"edit": {"op": "add", "anchor": "## A", "content": "- x"},
                                                           "delta": 0.25}], base_hash="abc")
    c = prs.closed_from(7, body, merged=False)
    assert (c.number, c.proposal, c.base_hash, c.closed_as) == (7, "p", "abc", None)
    assert c.edits == ({"edit": {"op": "add", "anchor": "## A", "content": "- x"}, "delta": 0.25},)


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


# ---- numbers: one rounding everywhere


def test_p_values_below_one_in_a_thousand_and_signed_zero():
    assert fmt.p_value(0.0004) == "p<0.001" and fmt.p_value(0.0) == "p<0.001"
    assert fmt.p_value(0.0156) == "p=0.016" and fmt.p_value(None) == ""
    assert fmt.delta(-0.0001) == "+0.000" and fmt.delta(0.25) == "+0.250" and fmt.delta(None) == "—"
    assert fmt.output_number(0.00004) == "4.00e-05" and fmt.output_number(0.5) == "0.5000"


def compare_report(delta: float, baseline: float, best: float, p: float) -> dict:
    gate = {"accepted": True, "delta": delta, "p_value": p, "ci_low": None, "ci_high": None, "wins": 5, "losses": 0,
            "ties": 1, "reason": "accepted", "incumbent_mean": baseline, "candidate_mean": best}
    return {"kind": "compare", "improved": True, "gate": gate, "gates": {"val": gate},
            "scores": {"val": {"baseline": baseline, "best": best, "n": 6, "samples": 3}}, "tasks": {"val": []},
            "spend": {"calls": 1, "cache_hits": 0, "input_tokens": 1, "output_tokens": 1, "usd": 0.0, "unpriced_calls": 0},
            "wall_time_s": 1.0, "skill_path": "SKILL.md", "config_path": ".github/skillopt.yml", "diff": "", "steps": []}


def test_table_title_and_sentence_print_the_same_change():
    # the means were rounded to 4 places before subtracting (0.7593 - 0.2407 = 0.5186), the gate's own mean paired
    # change is 0.5184: every text shows +0.518, never +0.519 next to it
    report = compare_report(0.5184, 0.2407, 0.7593, 0.0002)
    title, summary, _ = checks.summary_for(report, "http://run")
    assert title == "Passes the gate: val Δ +0.518, p<0.001"
    assert "| val | 6 | 0.241 | 0.759 | +0.518 | p<0.001 ✅ |" in summary and "Val Δ +0.518, p<0.001" in summary
    assert "0.519" not in summary and "p=0.000" not in summary
    comment = render("github_comment.md.j2", kind="result", command="eval", user="m", headline="ok", r=report, fmt=fmt,
                     details="", run_url="http://run")
    assert "+0.518" in comment and "0.519" not in comment and "p=0.000" not in comment
    assert Result(report=report).outputs()["p-value"] == "2.00e-04"


# ---- edits as the PR and the check show them


def optimize_report() -> dict:
    step_gate = {"delta": 0.25, "p_value": 0.03, "incumbent_mean": 0.5, "candidate_mean": 0.75}
    long_text = "\n".join(f"- rule {i}" for i in range(10))
    return {
        "kind": "optimize",
        "steps": [{"step": 1, "gate": step_gate}, {"step": 2, "gate": {"delta": -0.1, "p_value": 0.9}}],
        "accepted_edits": [{"step": 1, "op": "add", "anchor": "## Rules", "content": long_text,
                            "rationale": "ask @octocat <b>now</b>", "tasks": [f"t{i}" for i in range(10)]}],
        "rejected_edits": [
            {"step": 2, "op": "replace", "anchor": "old", "content": "new", "rationale": "r", "tasks": ["t1"],
             "why": "gate: rejected"},
            {"step": 2, "op": "insert_after", "anchor": "x", "content": "y", "rationale": "", "tasks": [],
             "why": "not applied: anchor not found", "gate": None},
            {"step": 2, "op": "delete", "anchor": "z", "content": "", "rationale": "", "tasks": [],
             "why": "gate: rejected", "gate": {"delta": -0.05, "p_value": 0.0001}},
        ],
    }


def test_edit_rows_carry_text_reason_tasks_and_gate():
    accepted, rejected, hidden = present.edit_rows(optimize_report())
    a = accepted[0]
    assert a["long"] and a["where"] == "under `## Rules`" and a["gate"] == "Δ +0.250, val 0.500 → 0.750, p=0.030"
    assert a["tasks"] == [f"t{i}" for i in range(8)] and a["more_tasks"] == 2
    assert "@\u200bocto" in a["rationale"] and "<b>" not in a["rationale"]  # nobody pinged, no HTML
    assert rejected[0]["gate"] == "Δ -0.100, p=0.900"  # the step's gate
    assert rejected[1]["gate"] == ""  # never applied, never gated
    assert rejected[2]["gate"] == "Δ -0.050, p<0.001"  # the edit's own gate figures win
    assert hidden == 0
    text = present.edits_markdown(optimize_report())
    assert "<details><summary>The text (10 lines)</summary>" in text and "- rule 9" in text
    assert "**Not kept:** not applied: anchor not found" in text and "and 2 more" in text


def test_state_edits_keep_what_a_rejection_needs():
    edits = present.state_edits(optimize_report())
    assert edits == [{"edit": {"op": "add", "anchor": "## Rules", "content": "\n".join(f"- rule {i}" for i in range(10)),
                               "rationale": "ask @octocat <b>now</b>", "tasks": [f"t{i}" for i in range(10)]},
                      "delta": 0.25}]


# ---- who may write, and what GitHub's refusals mean


def test_access_is_decided_from_the_token_and_the_event():
    assert not access.decide(event="pull_request", fork=True, actor="x", repo_permissions=None).writable
    assert not access.decide(event="pull_request", fork=False, actor="dependabot[bot]", repo_permissions=None).writable
    assert access.decide(event="pull_request_target", fork=True, actor="x", repo_permissions=None).writable
    assert access.decide(event="schedule", fork=False, actor="x", repo_permissions=None).writable
    assert not access.decide(event="schedule", fork=False, actor="x",
                             repo_permissions={"admin": False, "push": False, "pull": True}).writable
    assert access.decide(event="pull_request", fork=True, actor="x", repo_permissions={"push": True}).writable


def test_github_refusals_are_recognised():
    refused = GithubException(403, {"message": "GitHub Actions is not permitted to create or approve pull requests."})
    assert access.pr_creation_refused(refused) and not access.not_accessible(refused)
    integration = GithubException(403, {"message": "Resource not accessible by integration"})
    assert access.not_accessible(integration) and not access.pr_creation_refused(integration)
    assert access.not_accessible(GithubException(403, {"message": "You must authenticate via a GitHub App."}))
    assert not access.not_accessible(GithubException(404, {"message": "Not Found"}))
    message = access.refused_message("acme/skills", "403")
    assert access.PR_SETTING in message and "github-token" in message and "workflow_dispatch" in message
    assert "removed again" in message and ".." not in message
    later = access.still_refused_message("2026-11-30", "http://run/1")
    assert "on 2026-11-30 (http://run/1)" in later and "removed" not in later and access.PR_SETTING in later


def test_refusal_memory_decides_when_to_try_again():
    refusal = {"repository": REPO, "token_login": "github-actions[bot]"}
    assert not memory.retry_refused(refusal, repository=REPO, event="schedule", token_login="github-actions[bot]")
    assert memory.retry_refused(refusal, repository=REPO, event="workflow_dispatch", token_login="github-actions[bot]")
    assert memory.retry_refused(refusal, repository=REPO, event="schedule", token_login="my-app[bot]")
    assert memory.retry_refused(refusal, repository="other/repo", event="schedule", token_login="github-actions[bot]")
    assert memory.retry_refused(None, repository=REPO, event="schedule", token_login="github-actions[bot]")


def test_closed_rows_are_written_once_and_only_for_human_closes():
    edit = {"op": "add", "anchor": "## A", "content": "- x", "rationale": "r"}
    pr = prs.ClosedPR(3, "p", merged=False, edits=({"edit": edit, "delta": 0.25},), base_hash="abc")
    known: set[str] = set()
    assert memory.needs_recording(pr, known)
    rows = memory.closed_rows(pr, "octocat", known)
    assert rows == [{"edit": rows[0]["edit"], "verdict": "closed", "reason": "closed by @octocat", "skill_hash": "abc",
                     "step": None, "delta": 0.25}]
    assert rows[0]["edit"]["content"] == "- x" and not memory.needs_recording(pr, known)
    assert memory.closed_rows(pr, "octocat", known) == []
    assert not memory.needs_recording(prs.ClosedPR(4, "p", merged=True, edits=pr.edits), set())
    assert not memory.needs_recording(prs.ClosedPR(5, "p", merged=False, edits=pr.edits, closed_as="adopted"), set())
    assert not memory.needs_recording(prs.ClosedPR(6, "p", merged=False), set())
    assert memory.closed_keys(rows) == {memory.edit_key(edit)}


def test_annotations_escape_what_would_end_the_command():
    assert annotation("notice", "50% done\nnext line") == "::notice title=skillopt::50%25 done%0Anext line"


def test_action_yml_passes_every_input_to_the_run_step():
    action = yaml.safe_load((gp.DATA.parent.parent / "action.yml").read_text())
    env = next(s for s in action["runs"]["steps"] if s.get("id") == "skillopt")["env"]
    for name in action["inputs"]:
        assert env.get("INPUT_" + name.upper().replace("-", "_")) == "${{ inputs." + name + " }}", name
    assert "5" in action["description"] and "would-create" in action["outputs"]["pr-operation"]["description"]
