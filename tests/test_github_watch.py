"""The drift watch on GitHub (`command: watch`): `action.run(env)` with the real core against the fake GitHub (every
request validated against GitHub's OpenAPI description) and a scripted target whose accuracy and reported model
id the test changes between runs. Also the pure decision (`watch.decide`)."""

from __future__ import annotations

import json

import github_project as gp
import pytest
from github_project import REPO
from model_server import Text

from skillopt_action import api
from skillopt_action.drift import baseline_id
from skillopt_action.github import watch
from skillopt_action.github.baselines import DATA_BRANCH

BASELINE = "baselines/skill.json"
TITLE = "skillopt: skill drift in SKILL.md"


class Target:
    """The target answers each word in capitals (what every task wants) unless the word is in `wrong` and the skill
    does not say UPPERCASE; it reports `model` as the model that answered (None: the model asked for)."""

    def __init__(self):
        self.wrong: set[str] = set()
        self.model: str | None = None

    def __call__(self, req):
        if req.model == "optimizer-model":
            return Text(gp.edits_json(gp.EDIT_TEXT))
        word = gp.answer("", req.last_user_text or "")
        wrong = word in self.wrong and "UPPERCASE" not in (req.system or "")
        return Text(word if wrong else word.upper(), model=self.model)


@pytest.fixture
def world(tmp_path, monkeypatch):
    yield from gp.world_fixture(tmp_path, monkeypatch)


@pytest.fixture
def target(world):
    t = Target()
    world.model.responder = t
    return t


def val_words(world) -> list[str]:
    check = api.validate(world.ws / ".github" / "skillopt.yml")
    return [t.id.removeprefix("word-") for t in check.splits["val"]]


def run_watch(world, **inputs) -> int:
    return world.run(world.env("schedule", gp.schedule_payload(REPO), command="watch", **inputs))


def stored(world) -> dict:
    return json.loads(world.fake.files_at(world.repo, DATA_BRANCH)[BASELINE])


def drift_issues(world) -> list[dict]:
    return [i for i in world.fake.issues_of(REPO) if "skillopt-drift" in i["labels"]]


def test_a_drop_opens_one_drift_issue_a_second_drop_updates_it_and_recovery_closes_it(world, target):
    words = val_words(world)
    assert len(words) >= 5

    # first watch: no baseline yet, so this run's scores become it (one commit on skillopt-data); no issue
    assert run_watch(world, drift_alpha="0.1") == 0
    assert stored(world)["val"] == {f"word-{w}": 1.0 for w in words}
    assert stored(world)["reported_models"] == ["target-model"]
    assert drift_issues(world) == [] and world.outputs()["drifted"] == "false"
    head = world.repo.refs[f"refs/heads/{DATA_BRANCH}"]
    assert world.repo.commits[head]["parents"] == []  # the data branch has its own history, not the code's

    # the same behaviour again: no drift, and nothing at all is written to GitHub
    assert run_watch(world, drift_alpha="0.1") == 0
    assert world.writes() == [] and world.model_calls() == len(words)  # fresh samples, never the cache
    assert world.outputs()["drifted"] == "false"

    # the target gets all but one val task wrong: drift -> ONE issue with the label, the table and the reasons
    target.wrong = set(words[1:])
    assert run_watch(world, drift_alpha="0.1") == 0
    issues = drift_issues(world)
    assert len(issues) == 1
    issue = issues[0]
    assert issue["title"] == TITLE and issue["state"] == "open" and issue["user"] == gp.BOT
    body = issue["body"]
    assert "the val score moved" in body and "| task | baseline | now | Δ |" in body
    assert f"| word-{words[1]} | 1.000 | 0.000 | -1.000 |" in body and f"| word-{words[0]} | 1.000 | 1.000 | +0.000 |" in body
    assert "record-baseline: true" in body and watch.read_marker(body)["baseline"] == baseline_id(stored(world))
    out = world.outputs()
    assert out["drifted"] == "true" and out["issue-number"] == str(issue["number"]) and out["issue-url"].endswith(f"/issues/{issue['number']}")
    assert "drift in SKILL.md" in world.summary() and f"#{issue['number']}" in world.summary()
    assert stored(world)["val"][f"word-{words[1]}"] == 1.0  # the baseline is not moved by a drifting run

    # a second drop (every val task wrong): the SAME issue is updated, with a comment; never a second issue
    target.wrong = set(words)
    assert run_watch(world, drift_alpha="0.1") == 0
    issues = drift_issues(world)
    assert len(issues) == 1 and issues[0]["number"] == issue["number"] and issues[0]["state"] == "open"
    assert f"| word-{words[0]} | 1.000 | 0.000 | -1.000 |" in issues[0]["body"]
    comments = world.fake.comments_on(REPO, issue["number"])
    assert len(comments) == 1 and comments[0]["body"].startswith("Drift again")
    assert not [r for r in world.writes() if r["method"] == "POST" and r["path"].endswith(f"/repos/{REPO}/issues")]

    # back to normal: a comment, and the issue is closed by skillopt
    target.wrong = set()
    assert run_watch(world, drift_alpha="0.1") == 0
    closed = drift_issues(world)[0]
    assert closed["state"] == "closed" and closed["closed_by"] == gp.BOT
    assert world.fake.comments_on(REPO, issue["number"])[-1]["body"].startswith("Back within noise")
    assert world.outputs()["drifted"] == "false"

    # drift again later: the closed issue is reopened (still one issue for this skill)
    target.wrong = set(words)
    assert run_watch(world, drift_alpha="0.1") == 0
    assert len(drift_issues(world)) == 1 and drift_issues(world)[0]["state"] == "open"
    assert "sk-test-secret-value" not in json.dumps(world.fake.dump()) + world.summary()


def test_a_new_model_identity_alone_is_drift_and_no_drift_opens_no_issue(world, target):
    # a pull request with the drift label and title is not the drift issue (the issues API lists pull requests too)
    pr = world.fake.add_pull(world.repo, head_ref="someone/branch", head_sha=world.main_sha, base_ref="main",
                             title=TITLE, body="not an issue")
    pr["labels"].append("skillopt-drift")
    assert run_watch(world) == 0
    assert run_watch(world) == 0
    assert drift_issues(world) == [] and world.writes() == []

    # same answers, same scores, but the provider now reports a different model behind the same name
    # (the reported id is untrusted text: it pings nobody and cannot break the table)
    target.model = "target-model-2027-01-15 @octocat|x"
    assert run_watch(world) == 0
    issues = drift_issues(world)
    assert len(issues) == 1 and world.outputs()["drifted"] == "true"
    body = issues[0]["body"]
    assert "reports a different model: target-model -> target-model-2027-01-15 @\u200boctocat\\|x" in body
    assert "**target-model-2027-01-15 @\u200boctocat\\|x**" in body and "the val score moved" not in body
    assert "@octocat" not in body
    assert pr["body"] == "not an issue" and world.fake.comments_on(REPO, pr["number"]) == []


def test_a_person_closing_the_issue_accepts_the_drift_as_the_new_baseline(world, target):
    words = val_words(world)
    assert run_watch(world) == 0
    target.wrong = set(words)
    assert run_watch(world) == 0
    issue = drift_issues(world)[0]
    before = world.repo.refs[f"refs/heads/{DATA_BRANCH}"]
    world.fake.add_user("maintainer")
    world.fake.close_issue(world.repo, issue["number"], by="maintainer")

    assert run_watch(world) == 0  # still the lower scores, but a person accepted them
    assert drift_issues(world)[0]["state"] == "closed" and world.fake.comments_on(REPO, issue["number"]) == []
    assert world.repo.refs[f"refs/heads/{DATA_BRANCH}"] != before
    assert set(stored(world)["val"].values()) == {0.0}
    assert world.outputs()["drifted"] == "false"
    assert run_watch(world) == 0 and world.writes() == []  # measured against the accepted scores: no drift


def test_dry_run_and_record_baseline(world, target):
    words = val_words(world)
    assert run_watch(world) == 0
    target.wrong = set(words)
    assert run_watch(world, dry_run="true") == 0
    assert world.writes() == [] and world.outputs()["drifted"] == "true" and drift_issues(world) == []

    assert run_watch(world) == 0
    number = drift_issues(world)[0]["number"]
    # run by hand with record-baseline: the current scores are accepted, the open issue is closed with a comment
    assert world.run(world.env("workflow_dispatch", gp.dispatch_payload(REPO, {"record-baseline": "true"}),
                               command="watch")) == 0
    assert set(stored(world)["val"].values()) == {0.0}
    assert drift_issues(world)[0]["state"] == "closed"
    assert "recorded again by request" in world.fake.comments_on(REPO, number)[-1]["body"]


def test_optimize_on_drift_retrains_in_the_same_job(world, target):
    assert run_watch(world, optimize_on_drift="true") == 0
    assert world.fake.pulls_of(REPO) == [] and world.model_calls() == len(val_words(world))  # no drift: no training
    target.wrong = set(gp.WORDS)
    assert run_watch(world, optimize_on_drift="true") == 0
    out = world.outputs()
    assert out["drifted"] == "true" and len(drift_issues(world)) == 1 and out["issue-number"]
    pulls = world.fake.pulls_of(REPO)
    assert len(pulls) == 1 and out["pr-operation"] == "created" and out["pr-number"] == str(pulls[0]["number"])
    assert gp.EDIT_TEXT in world.fake.files_at(world.repo, "skillopt/skill")["SKILL.md"].decode()


def test_a_token_without_the_permission_a_write_needs_names_it(world, target):
    world.fake.add_token("ghs_no_contents", gp.BOT, installation=True, permissions={"contents": "read"})
    assert run_watch(world, github_token="ghs_no_contents") == 5
    assert "contents: write" in world.summary() and f"refs/heads/{DATA_BRANCH}" not in world.repo.refs
    assert run_watch(world) == 0  # the baseline, with the default token

    world.fake.add_token("ghs_no_issues", gp.BOT, installation=True, permissions={"issues": "read"})
    target.wrong = set(gp.WORDS)
    assert run_watch(world, github_token="ghs_no_issues") == 5
    assert "issues: write" in world.summary() and drift_issues(world) == []
    assert world.outputs()["drifted"] == "true"


def test_a_damaged_stored_baseline_is_a_clear_error(world, target):
    assert run_watch(world) == 0
    head = world.repo.refs[f"refs/heads/{DATA_BRANCH}"]
    world.repo.refs[f"refs/heads/{DATA_BRANCH}"] = world.fake.put_commit(
        world.repo, {BASELINE: b"{not json"}, [head], "hand edit")
    assert run_watch(world) == 2
    assert f"{DATA_BRANCH}:{BASELINE}" in world.summary() and "record-baseline: true" in world.summary()


# ---- the decision alone

BASE = {"skill_hash": "aaa", "recorded_at": "2026-11-01T00:00:00Z", "val": {"t": 1.0}}
NOW = {"skill_hash": "aaa", "val": {"t": 0.0}}


def issue(open_: bool, closed_by: str | None = None, about: dict = BASE) -> watch.DriftIssue:
    return watch.DriftIssue(7, "https://x/7", open_, closed_by, "text\n" + watch.marker(baseline=baseline_id(about)))


@pytest.mark.parametrize("stored, drifted, found, record, expect", [
    (None, False, None, False, (True, "none")),
    (BASE, True, None, False, (False, "create")),
    (BASE, True, issue(True), False, (False, "update")),
    (BASE, True, issue(False, "github-actions[bot]"), False, (False, "reopen")),
    (BASE, True, issue(False, "alice"), False, (True, "none")),  # a person closed it: accepted
    (BASE, True, issue(False, "alice", about={**BASE, "recorded_at": "2026-10-01T00:00:00Z"}), False,
     (False, "reopen")),  # closed about an older baseline: this is new drift
    (BASE, False, issue(True), False, (False, "close")),
    (BASE, False, None, False, (False, "none")),
    (BASE, True, issue(True), True, (True, "close")),
    ({**BASE, "skill_hash": "bbb"}, True, issue(True), False, (True, "close")),  # a merged skill edit re-baselines
    # the drift was accepted and recorded again within the same second: the issue is about the one before
    ({**BASE, "nonce": "b2"}, False, issue(False, "alice", about={**BASE, "nonce": "b1"}), False, (False, "none")),
])
def test_decide(stored, drifted, found, record, expect):
    plan = watch.decide(stored=stored, current=NOW, drifted=drifted, issue=found, record=record,
                        bot="github-actions[bot]")
    assert (plan.record, plan.issue) == expect
    assert (plan.comment is not None) == (plan.issue in ("update", "reopen", "close"))
