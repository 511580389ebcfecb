"""`skillopt_action.github.action.run(env)` against the fake GitHub and the scripted model server, with the real core."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import github_project as gp
import pytest
from github_server import FakeGitHub
from model_server import ModelServer

from skillopt_action.github import action
from skillopt_action.github.comments import MARKER

REPO = "acme/skills"
TOKEN = "ghs_actions_token_for_tests"


class World:
    def __init__(self, tmp: Path, fake: FakeGitHub, model: ModelServer):
        self.tmp, self.fake, self.model = tmp, fake, model
        self.ws = tmp / "ws"
        self.main_sha = gp.make_repo(self.ws)
        self.repo = fake.add_repo(REPO)
        self.repo.refs["refs/heads/main"] = fake.import_git(self.repo, self.ws, "main")
        self.repo.permissions.update({"maintainer": "maintain", "admin-person": "admin", "visitor": "read", "writer": "write"})
        self.runs = 0

    def env(self, event: str, payload: dict, sha: str | None = None, **inputs: str) -> dict:
        self.runs += 1
        path = self.tmp / f"event-{self.runs}.json"
        path.write_text(json.dumps(payload))
        env = {"GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(path), "GITHUB_REPOSITORY": REPO,
               "GITHUB_API_URL": self.fake.base, "GITHUB_SERVER_URL": self.fake.host, "GITHUB_RUN_ID": str(4000 + self.runs),
               "GITHUB_RUN_ATTEMPT": "1", "GITHUB_SHA": sha or self.main_sha, "GITHUB_WORKSPACE": str(self.ws),
               "GITHUB_OUTPUT": str(self.tmp / f"output-{self.runs}"), "GITHUB_STEP_SUMMARY": str(self.tmp / f"summary-{self.runs}.md"),
               "RUNNER_TEMP": str(self.tmp), "INPUT_GITHUB-TOKEN": TOKEN, "INPUT_CONFIG": ".github/skillopt.yml",
               "INPUT_COMMAND": "auto", "INPUT_DRY-RUN": "false", "SKILLOPT_GITHUB_THROTTLE": "0"}
        env.update({f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()})
        return env

    def run(self, env: dict) -> int:
        shutil.rmtree(self.ws / ".skillopt" / "cache", ignore_errors=True)  # each Actions run starts from a fresh checkout
        return action.run(env)

    def outputs(self) -> dict[str, str]:
        text = (self.tmp / f"output-{self.runs}").read_text()
        out, lines = {}, iter(text.splitlines())
        for line in lines:
            key, delim = line.split("<<")
            out[key] = next(lines)
            assert next(lines) == delim
        return out

    def summary(self) -> str:
        return (self.tmp / f"summary-{self.runs}.md").read_text()

    def open_pr(self, branch: str, skill: str, user: str = "octocat", head_repo: str | None = None) -> tuple[dict, str]:
        sha = gp.commit_on_branch(self.ws, branch, {"SKILL.md": skill})
        self.fake.import_git(self.repo, self.ws, sha)
        if head_repo is None:
            self.repo.refs[f"refs/heads/{branch}"] = sha
        pr = self.fake.add_pull(self.repo, head_ref=branch, head_sha=sha, base_ref="main", title="Edit skill", user=user, head_repo=head_repo)
        return pr, sha


@pytest.fixture
def world(tmp_path, monkeypatch):
    fake = FakeGitHub()
    fake.add_token(TOKEN, "github-actions[bot]", installation=True)
    fake.start()
    model = ModelServer(responder=gp.responder_for(gp.EDIT_TEXT))
    model.start()
    monkeypatch.setenv("OPENAI_BASE_URL", model.openai_base_url)
    monkeypatch.setenv("SKILLOPT_TEST_KEY", "sk-test-secret-value")
    try:
        yield World(tmp_path, fake, model)
        assert fake.violations == [], fake.violations
        model.check()
    finally:
        fake.stop()
        model.close()


UPPER_SKILL = gp.SKILL.replace("- Answer with the requested word only.\n", "- Answer with the requested word only.\n- Write it in UPPERCASE.\n")


def test_schedule_opens_one_pr_with_a_completed_check_then_updates_it(world):
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    pulls = world.fake.pulls_of(REPO)
    assert len(pulls) == 1
    pr = pulls[0]
    first_head = pr["head_sha"]
    assert pr["head_ref"] == "skillopt/skill" and pr["base_ref"] == "main" and pr["state"] == "open"
    assert pr["labels"] == ["skillopt"]
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

    # a second weekly run finds a different improving edit: the same PR is force-updated, no second PR
    world.model.responder = gp.responder_for("- Always write the answer in UPPERCASE.")
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    pulls = world.fake.pulls_of(REPO)
    assert len(pulls) == 1
    assert world.outputs()["pr-operation"] == "updated"
    assert "Always write the answer in UPPERCASE" in world.fake.files_at(world.repo, "skillopt/skill")["SKILL.md"].decode()
    assert pulls[0]["head_sha"] != first_head
    assert "4002" in pulls[0]["body"]  # the body now links the second run

    # a third run proposing the same skill again leaves the branch alone but refreshes the body
    head_before = world.repo.refs["refs/heads/skillopt/skill"]
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    assert world.outputs()["pr-operation"] == "unchanged"
    assert world.repo.refs["refs/heads/skillopt/skill"] == head_before
    assert "4003" in world.fake.pulls_of(REPO)[0]["body"]
    assert len(world.fake.checks_on(REPO, head_before)) == 1  # the same check run was updated, not a second one


def test_schedule_with_nothing_passing_opens_no_pr(world):
    world.model.responder = gp.responder_for(gp.USELESS_TEXT)
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    assert world.fake.pulls_of(REPO) == []
    assert world.fake.check_runs == {}
    out = world.outputs()
    assert out["accepted"] == "false" and out["pr-number"] == "" and out["pr-operation"] == "none"
    assert "no edit passed the gate" in world.summary()
    # the rejected edit is remembered for next week's run (the example workflow caches .skillopt/memory)
    memory = world.ws / ".skillopt" / "memory" / "rejected-edits.jsonl"
    assert gp.USELESS_TEXT.strip("- \n") in memory.read_text()


def test_human_push_to_bot_branch_gets_a_comment_not_a_force_push(world):
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    pr = world.fake.pulls_of(REPO)[0]
    human = world.fake.human_push(world.repo, "skillopt/skill", {"SKILL.md": b"hand edited\n"})
    world.model.responder = gp.responder_for("- Answer in UPPERCASE, always.")
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    assert world.repo.refs["refs/heads/skillopt/skill"] == human
    comments = world.fake.comments_on(REPO, pr["number"])
    assert len(comments) == 1 and "no longer force-pushes" in comments[0]["body"] and MARKER in comments[0]["body"]
    assert len(world.fake.pulls_of(REPO)) == 1


def test_human_closed_proposal_is_never_recreated(world):
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    pr = world.fake.pulls_of(REPO)[0]
    pr["state"] = "closed"  # a person closed it without merging
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    assert len(world.fake.pulls_of(REPO)) == 1 and world.fake.pulls_of(REPO)[0]["state"] == "closed"
    assert world.outputs()["pr-operation"] == "none"
    assert f"#{pr['number']} proposed this same skill and was closed" in world.summary()


def test_bot_pr_closed_when_default_branch_already_has_the_skill(world):
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 0
    pr = world.fake.pulls_of(REPO)[0]
    # someone merges the same change by hand: the default branch now equals the proposal
    proposed = world.fake.files_at(world.repo, "skillopt/skill")["SKILL.md"].decode()
    (world.ws / "SKILL.md").write_text(proposed)
    gp.git(world.ws, "commit", "-qam", "adopt the proposal by hand")
    new_main = gp.git(world.ws, "rev-parse", "HEAD")
    world.repo.refs["refs/heads/main"] = world.fake.import_git(world.repo, world.ws, new_main)
    assert world.run(world.env("schedule", gp.schedule_payload(REPO), sha=new_main)) == 0
    assert world.fake.pulls_of(REPO)[0]["state"] == "closed"
    assert world.outputs()["pr-operation"] == "closed"
    assert any("already contains" in c["body"] for c in world.fake.comments_on(REPO, pr["number"]))


def test_workflow_dispatch_dry_run_writes_nothing(world):
    payload = gp.dispatch_payload(REPO, {"epochs": "1", "dry-run": "true"})
    assert world.run(world.env("workflow_dispatch", payload)) == 0
    assert world.fake.pulls_of(REPO) == [] and world.fake.check_runs == {}
    assert not [r for r in world.fake.requests if r["method"] != "GET"]
    out = world.outputs()
    assert out["accepted"] == "true" and out["pr-operation"] == "created"
    assert "dry run" in world.summary()


def test_workflow_dispatch_bad_epochs_is_a_clear_error(world):
    payload = gp.dispatch_payload(REPO, {"epochs": "lots"})
    assert world.run(world.env("workflow_dispatch", payload)) == 2
    assert "epochs` must be a whole number" in world.summary()


def test_pull_request_touching_the_skill_gets_a_gate_check(world):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    assert world.run(world.env("pull_request", gp.pull_request_payload(REPO, pr["number"], "feature", sha, world.main_sha), sha=sha)) == 0
    checks = world.fake.checks_on(REPO, sha)
    assert len(checks) == 1
    c = checks[0]
    assert c["status"] == "completed" and c["conclusion"] == "success"
    assert "| split |" in c["output"]["summary"] and "| val |" in c["output"]["summary"] and "| test |" in c["output"]["summary"]
    assert "UPPERCASE" in c["output"]["text"]  # the skill diff is in the details
    assert world.outputs()["accepted"] == "true"
    # a re-run on the same SHA updates the same check run
    assert world.run(world.env("pull_request", gp.pull_request_payload(REPO, pr["number"], "feature", sha, world.main_sha, action="synchronize"), sha=sha)) == 0
    assert len(world.fake.checks_on(REPO, sha)) == 1


def test_pull_request_cannot_rewrite_its_own_exam(world):
    # the PR weakens the skill AND rewrites the tasks to accept lower case: the base branch's tasks still judge it
    weaker = gp.SKILL.replace("- Answer with the requested word only.\n", "- Answer in lower case.\n")
    easy_tasks = gp.tasks_yaml().replace("pattern: '^", "pattern: '(?i)^")
    sha = gp.commit_on_branch(world.ws, "sneaky", {"SKILL.md": weaker + "- UPPERCASE is wrong.\n", "evals/words.yml": easy_tasks})
    world.fake.import_git(world.repo, world.ws, sha)
    world.repo.refs["refs/heads/sneaky"] = sha
    pr = world.fake.add_pull(world.repo, head_ref="sneaky", head_sha=sha, base_ref="main", title="x")
    assert world.run(world.env("pull_request", gp.pull_request_payload(REPO, pr["number"], "sneaky", sha, world.main_sha), sha=sha)) == 0
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
    assert world.run(world.env("pull_request", gp.pull_request_payload(REPO, pr["number"], "docs", sha, world.main_sha), sha=sha)) == 0
    c = world.fake.checks_on(REPO, sha)[0]
    assert c["conclusion"] == "neutral" and "does not change `SKILL.md`" in c["output"]["summary"]
    assert world.model.requests == []


def test_fork_pull_request_gets_a_neutral_check_and_runs_nothing(world):
    pr, sha = world.open_pr("patch-1", UPPER_SKILL, user="forker", head_repo="forker/skills")
    assert world.run(world.env("pull_request", gp.pull_request_payload(REPO, pr["number"], "patch-1", sha, world.main_sha, head_repo="forker/skills"), sha=sha)) == 0
    c = world.fake.checks_on(REPO, sha)[0]
    assert c["conclusion"] == "neutral" and "fork" in c["output"]["summary"]
    assert world.model.requests == []


def _comment(world, pr_number: int, body: str, login: str, **kw) -> dict:
    c = world.fake.add_comment(world.repo, pr_number, body, login)
    return gp.comment_payload(REPO, pr_number, c["id"], body, login, **kw) | {"_id": c["id"]}


def test_eval_comment_from_maintainer_posts_gate_check_and_sticky_result(world):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    payload = _comment(world, pr["number"], "/skillopt eval", "maintainer")
    assert world.run(world.env("issue_comment", payload)) == 0
    cmt = world.fake.comments[payload["_id"]]
    assert [r["content"] for r in cmt["reactions"]] == ["eyes"]
    checks = world.fake.checks_on(REPO, sha)
    assert len(checks) == 1 and checks[0]["conclusion"] == "success"
    bot = [c for c in world.fake.comments_on(REPO, pr["number"]) if c["user"] == "github-actions[bot]"]
    assert len(bot) == 1 and MARKER in bot[0]["body"] and "passes the gate" in bot[0]["body"] and "| val |" in bot[0]["body"]


def test_eval_comment_from_reader_runs_nothing_and_replies_politely(world):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    payload = _comment(world, pr["number"], "/skillopt eval", "visitor")
    assert world.run(world.env("issue_comment", payload)) == 0
    assert world.fake.checks_on(REPO, sha) == [] and world.model.requests == []
    bot = [c for c in world.fake.comments_on(REPO, pr["number"]) if c["user"] == "github-actions[bot]"]
    assert len(bot) == 1 and "Thanks for the suggestion, @visitor" in bot[0]["body"] and "write, maintain or admin" in bot[0]["body"]


def test_comments_from_bots_edits_and_plain_issues_are_ignored(world):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    for payload in (_comment(world, pr["number"], "/skillopt eval", "renovate[bot]", user_type="Bot"),
                    _comment(world, pr["number"], "/skillopt eval", "maintainer", action="edited"),
                    _comment(world, pr["number"], "thanks! /skillopt eval later", "maintainer")):
        assert world.run(world.env("issue_comment", payload)) == 0
    assert not [r for r in world.fake.requests if r["method"] != "GET"]
    assert world.model.requests == [] and world.fake.check_runs == {}


def test_unknown_command_gets_help_and_sticky_comment_is_found_on_page_two(world):
    pr, sha = world.open_pr("feature", UPPER_SKILL)
    # an earlier run left the bot's sticky comment; then 40 people commented, one quoting the marker
    world.fake.add_comment(world.repo, pr["number"], "old result\n" + MARKER, "github-actions[bot]")
    for i in range(40):
        world.fake.add_comment(world.repo, pr["number"], f"comment {i}" + (f"\n> {MARKER}" if i == 5 else ""), f"user{i}")
    payload = _comment(world, pr["number"], "/skillopt frobnicate", "writer")
    assert world.run(world.env("issue_comment", payload)) == 0
    bot = [c for c in world.fake.comments_on(REPO, pr["number"]) if c["user"] == "github-actions[bot]"]
    assert len(bot) == 1 and "unknown command `frobnicate`" in bot[0]["body"] and "/skillopt optimize" in bot[0]["body"]
    pages = [r for r in world.fake.requests if r["path"].endswith(f"/issues/{pr['number']}/comments") and r["method"] == "GET"]
    assert len(pages) >= 2


def test_optimize_comment_pushes_to_the_same_repo_pr_branch(world):
    pr, sha = world.open_pr("feature", gp.SKILL + "\n")
    payload = _comment(world, pr["number"], "/skillopt optimize epochs=1", "admin-person")
    assert world.run(world.env("issue_comment", payload)) == 0
    new_head = world.repo.refs["refs/heads/feature"]
    assert new_head != sha
    assert world.repo.commits[new_head]["parents"] == [sha]
    assert gp.EDIT_TEXT in world.fake.files_at(world.repo, new_head)["SKILL.md"].decode()
    bot = [c for c in world.fake.comments_on(REPO, pr["number"]) if c["user"] == "github-actions[bot]"]
    assert len(bot) == 1 and "was pushed to `feature`" in bot[0]["body"]


def test_optimize_comment_on_fork_pr_does_not_push(world):
    pr, sha = world.open_pr("patch-1", gp.SKILL + "\n", user="forker", head_repo="forker/skills")
    payload = _comment(world, pr["number"], "/skillopt optimize", "maintainer")
    assert world.run(world.env("issue_comment", payload)) == 0
    assert "refs/heads/patch-1" not in world.repo.refs
    assert not [r for r in world.fake.requests if r["path"].endswith("/git/refs") or "/git/refs/" in r["path"]]
    bot = [c for c in world.fake.comments_on(REPO, pr["number"]) if c["user"] == "github-actions[bot]"]
    assert "lives in a fork, so it was not pushed" in bot[0]["body"] and "```diff" in bot[0]["body"]


def test_missing_environment_is_a_clear_error(tmp_path, capsys):
    assert action.run({}) == 2
    assert "not running inside GitHub Actions" in capsys.readouterr().err
