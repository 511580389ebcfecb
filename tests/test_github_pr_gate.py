"""`pull_request` runs (`action.run(env)`, the real core) against the fake GitHub: the gate check on the head commit,
the base branch's exam, drafts, forks and read-only tokens, and a human's push to the bot's own pull request."""

from __future__ import annotations

import json
from pathlib import Path

import github_project as gp
import pytest
from github_project import REPO, UPPER_SKILL
from github_server import READ_ONLY

from skillopt_action.github.pull_request import read_state


@pytest.fixture
def world(tmp_path, monkeypatch):
    yield from gp.world_fixture(tmp_path, monkeypatch)


def pr_event(world, pr: dict, sha: str, **kw) -> dict:
    return gp.pull_request_payload(REPO, pr["number"], pr["head_ref"], sha, world.main_sha, **kw)


def test_pull_request_touching_the_skill_gets_a_gate_check(world):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    assert world.run(world.env("pull_request", pr_event(world, pr, sha), sha=sha)) == 0
    checks = world.fake.checks_on(REPO, sha)
    assert len(checks) == 1
    c = checks[0]
    assert c["status"] == "completed" and c["conclusion"] == "success"
    assert "| split |" in c["output"]["summary"] and "| val |" in c["output"]["summary"] and "| test |" in c["output"]["summary"]
    assert "UPPERCASE" in c["output"]["text"]  # the skill diff is in the details
    assert world.outputs()["accepted"] == "true" and world.outputs()["pr-operation"] == ""
    # the check title and the summary print the same, single rounding
    assert c["output"]["title"] == "Passes the gate: val Δ +1.000, p=0.016"
    assert "| val | 6 | 0.000 | 1.000 | +1.000 | p=0.016 ✅ |" in c["output"]["summary"]
    assert "Val Δ +1.000, p=0.016" in c["output"]["summary"]


@pytest.mark.parametrize("event_action", ["synchronize", "reopened", "ready_for_review"])
def test_later_pull_request_events_are_gated_like_opened(world, event_action):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    assert world.run(world.env("pull_request", pr_event(world, pr, sha, action=event_action), sha=sha)) == 0
    checks = world.fake.checks_on(REPO, sha)
    assert len(checks) == 1 and checks[0]["conclusion"] == "success" and world.model_calls() > 0
    # a re-run on the same SHA updates the same check run
    assert world.run(world.env("pull_request", pr_event(world, pr, sha, action=event_action), sha=sha)) == 0
    assert len(world.fake.checks_on(REPO, sha)) == 1


def test_draft_is_skipped_with_a_neutral_note_unless_configured(world):
    pr, sha = world.open_pr("wip", UPPER_SKILL, draft=True)
    assert world.run(world.env("pull_request", pr_event(world, pr, sha, draft=True), sha=sha)) == 0
    c = world.fake.checks_on(REPO, sha)
    assert len(c) == 1 and c[0]["conclusion"] == "neutral" and "is a draft" in c[0]["output"]["summary"]
    assert world.model_calls() == 0
    # the same draft with `gate-drafts: true` is scored, and the neutral check becomes the verdict
    assert world.run(world.env("pull_request", pr_event(world, pr, sha, draft=True), sha=sha, gate_drafts="true")) == 0
    c = world.fake.checks_on(REPO, sha)
    assert len(c) == 1 and c[0]["conclusion"] == "success" and world.model_calls() > 0


def test_pull_request_cannot_rewrite_its_own_exam(world):
    # the PR weakens the skill AND rewrites the tasks to accept lower case: the base branch's tasks still judge it
    weaker = gp.SKILL.replace("- Answer with the requested word only.\n", "- Answer in lower case.\n")
    easy_tasks = gp.tasks_yaml().replace("pattern: '^", "pattern: '(?i)^")
    sha = gp.commit_on_branch(world.ws, "sneaky", {"SKILL.md": weaker + "- UPPERCASE is wrong.\n", "evals/words.yml": easy_tasks})
    world.fake.import_git(world.repo, world.ws, sha)
    world.repo.refs["refs/heads/sneaky"] = sha
    pr = world.fake.add_pull(world.repo, head_ref="sneaky", head_sha=sha, base_ref="main", title="x")
    assert world.run(world.env("pull_request", pr_event(world, pr, sha), sha=sha)) == 0
    c = world.fake.checks_on(REPO, sha)[0]
    # "UPPERCASE" in the skill makes the target shout, which the base tasks reward; scored with the base exam
    assert c["conclusion"] == "success"
    report = json.loads(Path(world.outputs()["report-path"]).read_text())
    assert report["config_path"] == ".github/skillopt.yml"
    assert all(t["id"].startswith("word-") for t in report["tasks"]["val"])


def test_pull_request_without_skill_change_is_neutral(world):
    sha = gp.commit_on_branch(world.ws, "docs", {"README.md": "docs\n"})
    world.fake.import_git(world.repo, world.ws, sha)
    world.repo.refs["refs/heads/docs"] = sha
    pr = world.fake.add_pull(world.repo, head_ref="docs", head_sha=sha, base_ref="main", title="docs")
    assert world.run(world.env("pull_request", pr_event(world, pr, sha), sha=sha)) == 0
    c = world.fake.checks_on(REPO, sha)[0]
    assert c["conclusion"] == "neutral" and "does not change `SKILL.md`" in c["output"]["summary"]
    assert world.model.requests == []


def test_fork_pull_request_with_the_read_only_token_writes_nothing_and_exits_0(world, capsys):
    world.fake.add_token("ghs_fork_read_only", gp.BOT, installation=True, permissions=READ_ONLY)
    pr, sha = world.open_pr("patch-1", UPPER_SKILL, user="forker", head_repo="forker/skills")
    event = pr_event(world, pr, sha, head_repo="forker/skills")
    assert world.run(world.env("pull_request", event, sha=sha, token="ghs_fork_read_only")) == 0
    assert world.writes() == [] and world.model.requests == [] and world.fake.check_runs == {}
    assert "::notice title=skillopt::This pull request comes from the fork `forker/skills`" in capsys.readouterr().out
    assert "fork pull request: nothing run" in world.summary() and "the token of this run is read-only" in world.summary()


def test_fork_pull_request_with_a_write_token_gets_a_neutral_check(world):
    # pull_request_target runs in the base repository's context with a write token: a neutral note, nothing run
    pr, sha = world.open_pr("patch-1", UPPER_SKILL, user="forker", head_repo="forker/skills")
    event = pr_event(world, pr, sha, head_repo="forker/skills")
    assert world.run(world.env("pull_request_target", event, sha=sha)) == 0
    c = world.fake.checks_on(REPO, sha)[0]
    assert c["conclusion"] == "neutral" and "fork" in c["output"]["summary"]
    assert world.model.requests == []


def test_read_only_workflow_token_on_a_same_repo_pr_exits_0_before_any_model_call(world, capsys):
    # e.g. a workflow whose `permissions:` block forgot `checks: write`: GitHub's 403 on the check ends the run
    world.fake.add_token("ghs_no_checks", gp.BOT, installation=True, permissions={"checks": "read"})
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    assert world.run(world.env("pull_request", pr_event(world, pr, sha), sha=sha, token="ghs_no_checks")) == 0
    assert world.model.requests == [] and world.fake.check_runs == {}
    out = capsys.readouterr().out
    assert "::notice title=skillopt::skillopt cannot post the `skillopt / gate` check" in out and "checks: write" in out


def test_dependabot_pull_request_is_decided_read_only_without_a_write(world):
    pr, sha = world.open_pr("dependabot/skill", UPPER_SKILL, user="dependabot[bot]")
    env = world.env("pull_request", pr_event(world, pr, sha, sender="dependabot[bot]"), sha=sha)
    env["GITHUB_ACTOR"] = "dependabot[bot]"
    assert world.run(env) == 0
    assert world.writes() == [] and world.model.requests == []
    assert "Dependabot" in world.summary() and "/skillopt eval" in world.summary()


def test_human_push_to_the_bot_pr_is_gated_and_the_body_says_whose_skill(world, capsys):
    # the weekly run opened the bot PR; then alice pushes to its branch, which triggers pull_request.synchronize
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    bot_pr = world.fake.pulls_of(REPO)[0]
    bot_head, body_before = bot_pr["head_sha"], bot_pr["body"]
    world.fake.add_user("alice")
    human = world.fake.human_push(world.repo, "skillopt/skill", {"SKILL.md": (UPPER_SKILL + "- Be brief.\n").encode()},
                                  author="alice")
    event = gp.pull_request_payload(REPO, bot_pr["number"], "skillopt/skill", human, world.main_sha, action="synchronize",
                                    sender="alice")
    # the example gate workflow grants `checks: write` only: the check is posted, the body waits (with a warning)
    world.fake.add_token("ghs_gate_only", gp.BOT, installation=True, permissions={"pull_requests": "read", "issues": "read"})
    assert world.run(world.env("pull_request", event, sha=human, token="ghs_gate_only")) == 0
    c = world.fake.checks_on(REPO, human)
    assert len(c) == 1 and c[0]["conclusion"] == "success"
    assert world.fake.pulls_of(REPO)[0]["body"] == body_before
    assert "::warning title=skillopt::The gate check is on @alice's commit" in capsys.readouterr().out
    # with `pull-requests: write` the body says whose skill it describes
    assert world.run(world.env("pull_request", event, sha=human)) == 0
    assert len(world.fake.checks_on(REPO, human)) == 1
    pr = world.fake.pulls_of(REPO)[0]
    assert "@alice's commit" in pr["title"] and "Since then @alice (commit" in pr["body"]
    state = read_state(pr["body"])
    assert state["head"] == bot_head and state["described"] == human
    # the next weekly run sees the commit is already gated and described: it leaves it alone
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    assert world.repo.refs["refs/heads/skillopt/skill"] == human
    assert not [w for w in world.writes() if "/check-runs" in w["path"] or "/pulls/" in w["path"]]
