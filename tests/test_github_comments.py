"""`issue_comment` runs (`action.run(env)`, the real core) against the fake GitHub: who may give `/skillopt`
commands, what each comment gets (reactions, replies of their own, the sticky result), and the commits they push."""

from __future__ import annotations

import github_project as gp
import pytest
from github_project import BOT, REPO, UPPER_SKILL

from skillopt_action.github.comments import MARKER


@pytest.fixture
def world(tmp_path, monkeypatch):
    yield from gp.world_fixture(tmp_path, monkeypatch)


def reactions(world, payload: dict) -> list[str]:
    return [r["content"] for r in world.fake.comments[payload["_id"]]["reactions"]]


def test_eval_comment_from_maintainer_posts_gate_check_and_sticky_result(world):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    payload = world.comment(pr["number"], "/skillopt eval", "maintainer")
    assert world.run(world.env("issue_comment", payload)) == 0
    assert reactions(world, payload) == ["eyes"]
    checks = world.fake.checks_on(REPO, sha)
    assert len(checks) == 1 and checks[0]["conclusion"] == "success"
    bot = world.bot_comments(pr["number"])
    assert len(bot) == 1 and MARKER in bot[0]["body"] and "passes the gate" in bot[0]["body"] and "| val |" in bot[0]["body"]
    assert "requested by @maintainer" in bot[0]["body"] and "p=0.000" not in bot[0]["body"]


def test_refused_commenter_gets_a_no_and_a_reply_of_its_own_and_the_result_stays(world):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    ok = world.comment(pr["number"], "/skillopt eval", "maintainer")
    assert world.run(world.env("issue_comment", ok)) == 0
    result = world.bot_comments(pr["number"])[0]
    result_body = result["body"]

    refused = world.comment(pr["number"], "/skillopt eval", "visitor")
    assert world.run(world.env("issue_comment", refused)) == 0
    assert reactions(world, refused) == ["-1"]  # a "no", never the 👀 that promises a run
    assert world.model_calls() == 0 and len(world.fake.checks_on(REPO, sha)) == 1
    bot = world.bot_comments(pr["number"])
    assert len(bot) == 2 and bot[0]["id"] == result["id"] and bot[0]["body"] == result_body  # the result is intact
    reply = bot[1]["body"]
    assert reply.startswith("> /skillopt eval") and MARKER not in reply
    assert ("Thanks for the suggestion, @visitor! Only people with write, maintain or admin access to this repository "
            "can run `/skillopt` commands, and your access is read, so nothing was run.") in reply
    assert "(has " not in reply

    # asking again gets the reaction only: a stranger cannot make the bot comment over and over
    again = world.comment(pr["number"], "/skillopt optimize", "visitor")
    assert world.run(world.env("issue_comment", again)) == 0
    assert reactions(world, again) == ["-1"] and len(world.bot_comments(pr["number"])) == 2

    # someone else gets their own (single) reply
    stranger = world.comment(pr["number"], "/skillopt help", "passer-by")
    assert world.run(world.env("issue_comment", stranger)) == 0
    assert len(world.bot_comments(pr["number"])) == 3 and "@passer-by" in world.bot_comments(pr["number"])[-1]["body"]


def test_comments_from_bots_edits_and_plain_issues_are_ignored(world):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    for payload in (world.comment(pr["number"], "/skillopt eval", "renovate[bot]", user_type="Bot"),
                    world.comment(pr["number"], "/skillopt eval", "maintainer", action="edited"),
                    world.comment(pr["number"], "thanks! /skillopt eval later", "maintainer")):
        assert world.run(world.env("issue_comment", payload)) == 0
        assert world.writes() == []
    assert world.model.requests == [] and world.fake.check_runs == {}


def test_help_is_a_reply_of_its_own_and_the_sticky_result_on_page_two_is_untouched(world):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    # an earlier run left the bot's sticky result; then 40 people commented, one quoting the marker
    old = world.fake.add_comment(world.repo, pr["number"], "old result\n" + MARKER, BOT)
    for i in range(40):
        world.fake.add_comment(world.repo, pr["number"], f"comment {i}" + (f"\n> {MARKER}" if i == 5 else ""), f"user{i}")
    payload = world.comment(pr["number"], "/skillopt frobnicate", "writer")
    assert world.run(world.env("issue_comment", payload)) == 0
    assert reactions(world, payload) == ["eyes"]
    bot = world.bot_comments(pr["number"])
    assert len(bot) == 2 and bot[0]["id"] == old["id"] and bot[0]["body"] == "old result\n" + MARKER
    assert "@writer: I did not understand that: unknown command `frobnicate`." in bot[1]["body"]
    assert "/skillopt optimize" in bot[1]["body"] and MARKER not in bot[1]["body"]
    # a help reply is answered every time it is asked for (only people with write access get one)
    again = world.comment(pr["number"], "/skillopt help", "writer")
    assert world.run(world.env("issue_comment", again)) == 0
    assert len(world.bot_comments(pr["number"])) == 3 and "here is what skillopt can do" in world.bot_comments(pr["number"])[-1]["body"]
    assert world.model.requests == []


def test_optimize_comment_pushes_to_the_same_repo_pr_branch_and_gates_the_new_head(world):
    pr, sha = world.open_pr("feature", gp.SKILL + "\n")
    payload = world.comment(pr["number"], "/skillopt optimize epochs=1", "admin-person")
    assert world.run(world.env("issue_comment", payload)) == 0
    new_head = world.repo.refs["refs/heads/feature"]
    assert new_head != sha
    assert world.repo.commits[new_head]["parents"] == [sha]
    assert gp.EDIT_TEXT in world.fake.files_at(world.repo, new_head)["SKILL.md"].decode()
    # a push with the workflow token starts no workflow: the gate check on the new head comes from this run
    checks = world.fake.checks_on(REPO, new_head)
    assert len(checks) == 1 and checks[0]["status"] == "completed" and checks[0]["conclusion"] == "success"
    assert "base branch's skill" in checks[0]["output"]["summary"]
    bot = world.bot_comments(pr["number"])
    assert len(bot) == 1 and "was pushed to `feature`" in bot[0]["body"] and "check on it: success" in bot[0]["body"]


def test_optimize_comment_on_fork_pr_does_not_push(world):
    pr, sha = world.open_pr("patch-1", gp.SKILL + "\n", user="forker", head_repo="forker/skills")
    payload = world.comment(pr["number"], "/skillopt optimize", "maintainer")
    assert world.run(world.env("issue_comment", payload)) == 0
    assert "refs/heads/patch-1" not in world.repo.refs
    assert not [r for r in world.fake.requests if r["path"].endswith("/git/refs") or "/git/refs/" in r["path"]]
    bot = world.bot_comments(pr["number"])
    assert "lives in a fork, so it was not pushed" in bot[0]["body"] and "```diff" in bot[0]["body"]
