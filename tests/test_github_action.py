"""Scheduled runs on the default branch (`action.run(env)`, the real core) against the fake GitHub and the scripted
model server: the bot pull request's lifecycle, human pushes and closes, GitHub refusing the pull request."""

from __future__ import annotations

import json
from pathlib import Path

import github_project as gp
import pytest
from github_project import REPO, UPPER_SKILL
from github_server import READ_ONLY

from skillopt_action.github import action
from skillopt_action.github.comments import MARKER
from skillopt_action.github.pull_request import read_state
from skillopt_action.rollout import skill_hash

MEMORY = Path(".skillopt") / "memory"


@pytest.fixture
def world(tmp_path, monkeypatch):
    yield from gp.world_fixture(tmp_path, monkeypatch)


def schedule(world, **inputs) -> int:
    return world.run(world.env("schedule", gp.schedule_payload(REPO), **inputs))


def test_schedule_opens_one_pr_with_a_completed_check_then_updates_it(world):
    assert schedule(world) == 0
    pulls = world.fake.pulls_of(REPO)
    assert len(pulls) == 1
    pr = pulls[0]
    first_head = pr["head_sha"]
    assert pr["head_ref"] == "skillopt/skill" and pr["base_ref"] == "main" and pr["state"] == "open"
    assert pr["labels"] == ["skillopt"]
    # labels are added with POST {"labels": [...]}, never set with a PATCH that replaces the others
    assert [r["body"] for r in world.fake.requests if r["path"].endswith("/labels")] == [{"labels": ["skillopt"]}]
    assert not [r for r in world.fake.requests if r["method"] == "PATCH" and "/issues/" in r["path"]]
    assert "val" in pr["body"] and "skillopt:pr" in pr["body"]
    branch_skill = world.fake.files_at(world.repo, "skillopt/skill")["SKILL.md"].decode()
    assert gp.EDIT_TEXT in branch_skill
    checks = world.fake.checks_on(REPO, pr["head_sha"])
    assert len(checks) == 1 and checks[0]["status"] == "completed" and checks[0]["conclusion"] == "success"
    assert checks[0]["name"] == "skillopt / gate" and "| val |" in checks[0]["output"]["summary"]
    out = world.outputs()
    assert out["accepted"] == "true" and out["pr-number"] == str(pr["number"]) and out["pr-operation"] == "created"
    assert float(out["best-score"]) > float(out["baseline-score"])
    assert Path(out["report-path"]).is_file()
    assert "opened a pull request" in world.summary()
    assert "sk-test-secret-value" not in world.summary() + json.dumps(world.fake.dump())

    # a maintainer labels the PR; the next weekly run finds a different improving edit: the same PR is
    # force-updated (no second PR), its new head gets the check in the same run, and the label stays
    world.fake.pulls[(REPO, pr["number"])]["labels"].append("needs-review")
    world.model.responder = gp.responder_for("- Always write the answer in UPPERCASE.")
    assert schedule(world) == 0
    pulls = world.fake.pulls_of(REPO)
    assert len(pulls) == 1 and pulls[0]["labels"] == ["skillopt", "needs-review"]
    assert world.outputs()["pr-operation"] == "updated"
    assert "Always write the answer in UPPERCASE" in world.fake.files_at(world.repo, "skillopt/skill")["SKILL.md"].decode()
    assert pulls[0]["head_sha"] != first_head
    assert "4002" in pulls[0]["body"]  # the body now links the second run
    new_checks = world.fake.checks_on(REPO, pulls[0]["head_sha"])
    assert len(new_checks) == 1 and new_checks[0]["conclusion"] == "success"

    # a third run proposing the same skill again touches nothing: no push, no body rewrite, no check flip
    head_before, body_before = world.repo.refs["refs/heads/skillopt/skill"], pulls[0]["body"]
    assert schedule(world) == 0
    assert world.outputs()["pr-operation"] == "unchanged"
    assert world.writes() == []
    assert world.repo.refs["refs/heads/skillopt/skill"] == head_before and world.fake.pulls_of(REPO)[0]["body"] == body_before
    assert world.fake.checks_on(REPO, head_before)[0]["status"] == "completed"


def test_pr_body_and_check_show_every_edit_with_text_reason_tasks_and_gate(world):
    world.model.responder = gp.responder_then(gp.EDIT_TEXT, gp.USELESS_TEXT)  # step 1 accepted, step 2 rejected
    assert schedule(world, epochs="2") == 0
    pr = world.fake.pulls_of(REPO)[0]
    summary = world.fake.checks_on(REPO, pr["head_sha"])[0]["output"]["summary"]
    for text in (pr["body"], summary):
        accepted, _, rejected = text.partition("Rejected edits")
        assert "### Accepted edits (1)" in accepted and f"```text\n{gp.EDIT_TEXT}\n```" in accepted
        assert "**Why:** failing tasks expect capitals" in accepted and "**From the tasks:** `word-" in accepted
        assert "**Gate:** Δ +" in accepted and "val 0.000 → 1.000" in accepted
        assert gp.USELESS_TEXT in rejected and "**Not kept:**" in rejected
        assert "p=0.000" not in text


def test_schedule_with_nothing_passing_opens_no_pr(world):
    world.model.responder = gp.responder_for(gp.USELESS_TEXT)
    assert schedule(world) == 0
    assert world.fake.pulls_of(REPO) == []
    assert world.fake.check_runs == {}
    out = world.outputs()
    assert out["accepted"] == "false" and out["pr-number"] == "" and out["pr-operation"] == "none"
    assert "no edit passed the gate" in world.summary()
    # the rejected edit is remembered for next week's run (the example workflow caches .skillopt/memory)
    assert [r["edit"]["content"] for r in world.memory()] == [gp.USELESS_TEXT]


def test_human_push_to_bot_branch_is_gated_and_described_not_overwritten(world):
    assert schedule(world) == 0
    pr = world.fake.pulls_of(REPO)[0]
    world.fake.add_user("alice")
    human_skill = UPPER_SKILL.replace("# Shout", "# Shout (edited by hand)")
    human = world.fake.human_push(world.repo, "skillopt/skill", {"SKILL.md": human_skill.encode()}, author="alice")
    world.model.responder = gp.responder_for("- Answer in UPPERCASE, always.")
    assert schedule(world) == 0
    assert world.repo.refs["refs/heads/skillopt/skill"] == human  # never force-pushed over the human
    # the human's commit gets the gate check (scored against the default branch with its exam) ...
    runs = world.fake.checks_on(REPO, human)
    assert len(runs) == 1 and runs[0]["conclusion"] == "success" and "The skill in @alice's commit" in runs[0]["output"]["summary"]
    # ... and the title and body say whose skill they describe
    pr = world.fake.pulls_of(REPO)[0]
    assert "@alice's commit" in pr["title"] and "Since then @alice (commit" in pr["body"]
    assert read_state(pr["body"])["described"] == human and read_state(pr["body"])["head"] != human
    comments = world.fake.comments_on(REPO, pr["number"])
    assert len(comments) == 1 and "no longer force-pushes" in comments[0]["body"] and MARKER in comments[0]["body"]
    assert len(world.fake.pulls_of(REPO)) == 1 and world.outputs()["pr-operation"] == "unchanged"
    # the next run with the same proposal touches nothing: the commit is already gated, the note already made
    assert schedule(world) == 0
    assert world.writes() == []


def test_human_close_is_remembered_and_its_edits_are_never_proposed_again(world):
    assert schedule(world) == 0
    first = world.fake.pulls_of(REPO)[0]
    world.fake.close_pull(world.repo, first["number"], by="octocat")  # a person closes it without merging
    # next week the optimizer proposes the closed edit again, plus a new one that also passes the gate
    new_edit = "- Reply in UPPERCASE."
    world.model.responder = gp.responder_for(gp.EDIT_TEXT, new_edit)
    assert schedule(world) == 0
    rows = [r for r in world.memory() if r.get("verdict") == "closed"]
    assert len(rows) == 1 and rows[0]["edit"]["content"] == gp.EDIT_TEXT and rows[0]["reason"] == "closed by @octocat"
    assert rows[0]["skill_hash"] == skill_hash(gp.SKILL) and rows[0]["step"] is None
    pulls = world.fake.pulls_of(REPO)
    assert len(pulls) == 2 and pulls[1]["state"] == "open" and world.outputs()["pr-operation"] == "created"
    proposed = world.fake.files_at(world.repo, pulls[1]["head_sha"])["SKILL.md"].decode()
    assert new_edit in proposed and gp.EDIT_TEXT not in proposed
    assert "closed by @octocat" in pulls[1]["body"]  # the dropped edit is listed, with why
    # a third run does not record the close twice
    assert schedule(world) == 0
    assert len([r for r in world.memory() if r.get("verdict") == "closed"]) == 1


def test_human_closed_proposal_is_never_recreated(world):
    assert schedule(world) == 0
    pr = world.fake.pulls_of(REPO)[0]
    world.fake.close_pull(world.repo, pr["number"], by="octocat")
    assert schedule(world) == 0
    assert len(world.fake.pulls_of(REPO)) == 1 and world.fake.pulls_of(REPO)[0]["state"] == "closed"
    assert world.outputs()["pr-operation"] == "none"
    assert "closed by @octocat" in world.summary() and world.writes() == []


def test_bot_pr_closed_when_default_branch_already_has_the_skill(world):
    assert schedule(world) == 0
    pr = world.fake.pulls_of(REPO)[0]
    # someone merges the same change by hand: the default branch now equals the proposal
    proposed = world.fake.files_at(world.repo, "skillopt/skill")["SKILL.md"].decode()
    (world.ws / "SKILL.md").write_text(proposed)
    gp.git(world.ws, "commit", "-qam", "adopt the proposal by hand")
    new_main = gp.git(world.ws, "rev-parse", "HEAD")
    world.repo.refs["refs/heads/main"] = world.fake.import_git(world.repo, world.ws, new_main)
    assert world.run(world.env("schedule", gp.schedule_payload(REPO), sha=new_main)) == 0
    closed = world.fake.pulls_of(REPO)[0]
    assert closed["state"] == "closed" and read_state(closed["body"])["closed"] == "adopted"
    assert world.outputs()["pr-operation"] == "closed"
    assert any("already contains" in c["body"] for c in world.fake.comments_on(REPO, pr["number"]))
    # skillopt's own close is not a human's rejection
    assert world.run(world.env("schedule", gp.schedule_payload(REPO), sha=new_main)) == 0
    assert not [r for r in world.memory() if r.get("verdict") == "closed"]


def test_workflow_dispatch_dry_run_writes_nothing(world):
    payload = gp.dispatch_payload(REPO, {"epochs": "1", "dry-run": "true"})
    assert world.run(world.env("workflow_dispatch", payload)) == 0
    assert world.fake.pulls_of(REPO) == [] and world.fake.check_runs == {}
    assert world.writes() == []
    out = world.outputs()
    assert out["accepted"] == "true" and out["pr-operation"] == "would-create"
    assert "dry run" in world.summary()


def test_workflow_dispatch_bad_epochs_is_a_clear_error(world):
    payload = gp.dispatch_payload(REPO, {"epochs": "lots"})
    assert world.run(world.env("workflow_dispatch", payload)) == 2
    assert "epochs` must be a whole number" in world.summary()


def test_pr_creation_refused_by_the_repository_setting(world, capsys):
    world.repo.actions_can_create_prs = False
    assert schedule(world) == 5
    assert world.fake.pulls_of(REPO) == [] and "refs/heads/skillopt/skill" not in world.repo.refs  # no dangling branch
    out = world.outputs()
    assert out["pr-operation"] == "failed" and out["pr-number"] == "" and out["accepted"] == "true"
    summary = world.summary()
    assert "Allow GitHub Actions to create and approve pull requests" in summary and "github-token" in summary
    assert "pull request: created" not in summary and "permissions:`" not in summary
    assert "::error title=skillopt::GitHub does not let GitHub Actions create pull requests" in capsys.readouterr().out
    assert (world.ws / MEMORY / "pr-creation-refused.json").is_file()

    # the next scheduled run pays for nothing and pushes nothing: it says what to do and fails again
    assert schedule(world) == 5
    assert world.writes() == [] and world.model_calls() == 0
    assert world.outputs()["pr-operation"] == "failed" and "run the workflow by hand" in world.summary()

    # the maintainer turns the setting on and starts the workflow by hand: the PR opens, the refusal is forgotten
    world.repo.actions_can_create_prs = True
    assert world.run(world.env("workflow_dispatch", gp.dispatch_payload(REPO, {}))) == 0
    assert world.outputs()["pr-operation"] == "created" and len(world.fake.pulls_of(REPO)) == 1
    assert not (world.ws / MEMORY / "pr-creation-refused.json").exists()


def test_pr_creation_without_pull_requests_permission_names_the_permission(world):
    token = "ghs_no_pull_requests"
    world.fake.add_token(token, gp.BOT, installation=True, permissions={"pull_requests": "read"})
    previous = world.fake.put_commit(world.repo, {"SKILL.md": b"old bot proposal\n"}, [world.main_sha])
    world.repo.refs["refs/heads/skillopt/skill"] = previous  # a stale bot branch from an earlier, closed PR
    assert world.run(world.env("schedule", gp.schedule_payload(REPO), token=token)) == 5
    assert world.repo.refs["refs/heads/skillopt/skill"] == previous  # put back where it was
    assert "pull-requests: write" in world.summary() and world.outputs()["pr-operation"] == "failed"
    assert not (world.ws / MEMORY / "pr-creation-refused.json").exists()


def test_personal_access_token_opens_the_pr_and_warns_that_checks_need_an_app(world, capsys):
    world.fake.add_token("ghp_maintainer_pat", "maintainer")
    assert schedule(world, **{"github-token": "ghp_maintainer_pat"}) == 0
    pr = world.fake.pulls_of(REPO)[0]
    assert pr["user"] == "maintainer" and world.fake.check_runs == {}
    assert "::warning title=skillopt::skillopt could not post the `skillopt / gate` check" in capsys.readouterr().out


def test_workflow_token_without_contents_write_names_the_permission(world):
    world.fake.add_token("ghs_read_only", gp.BOT, installation=True, permissions=READ_ONLY)
    assert schedule(world, **{"github-token": "ghs_read_only"}) == 5
    assert "contents: write" in world.summary() and world.outputs()["pr-operation"] == "failed"
    assert world.fake.pulls_of(REPO) == [] and "refs/heads/skillopt/skill" not in world.repo.refs


def test_read_only_user_token_never_reaches_the_model_on_a_scheduled_run(world):
    world.fake.add_token("ghp_reader", "visitor")
    # a user token tells its role: read access stops the run before anything is spent
    assert schedule(world, **{"github-token": "ghp_reader"}) == 0
    assert world.model_calls() == 0 and world.writes() == []
    assert "read access" in world.summary()


def test_missing_environment_is_a_clear_error(tmp_path, capsys):
    assert action.run({}) == 2
    assert "not running inside GitHub Actions" in capsys.readouterr().err
