"""The fake GitHub must catch requests that real GitHub would reject, or its 'zero violations' proves nothing."""

from __future__ import annotations

import json
import urllib.request

import pytest
from github import Auth, Github, GithubException
from github_server import READ_ONLY, FakeGitHub

TOKEN = "ghs_x"


@pytest.fixture
def fake():
    f = FakeGitHub()
    f.add_token(TOKEN, "github-actions[bot]", installation=True)
    repo = f.add_repo("acme/skills")
    repo.refs["refs/heads/main"] = f.put_commit(repo, {"SKILL.md": b"hi\n"}, [])
    f.start()
    yield f
    f.stop()


def call(fake, method, path, body=None):
    req = urllib.request.Request(fake.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_unknown_operation_is_a_violation(fake):
    status, _ = call(fake, "GET", "/repos/acme/skills/frobnicate")
    assert status == 404 and len(fake.violations) == 1


def test_invalid_body_is_a_violation(fake):
    status, body = call(fake, "POST", "/repos/acme/skills/check-runs", {"name": "x", "head_sha": 5, "status": "running"})
    assert status == 422 and "head_sha" in body["message"] and "status" in body["message"]
    status, _ = call(fake, "POST", "/repos/acme/skills/issues/comments/1/reactions", {"content": "party"})
    assert status == 422
    status, _ = call(fake, "POST", "/repos/acme/skills/pulls", {"title": "t", "head": "a", "base": "main", "colour": "red"})
    assert status == 422 and "colour" in fake.violations[-1]
    assert len(fake.violations) == 3


def test_pygithub_bare_label_array_is_caught(fake):
    """PyGithub's add_to_labels sends a bare JSON array; GitHub's description only documents {"labels": [...]}."""
    gh = Github(base_url=fake.base, auth=Auth.Token(TOKEN), seconds_between_requests=None, seconds_between_writes=None, retry=None)
    repo = gh.get_repo("acme/skills")
    fake.add_pull(fake.repos["acme/skills"], head_ref="main", head_sha=fake.repos["acme/skills"].refs["refs/heads/main"], base_ref="main", title="t")
    with pytest.raises(GithubException):
        repo.get_pull(1).add_to_labels("x")
    assert fake.violations and "labels" in fake.violations[0]


def test_oversized_check_output_is_refused(fake):
    sha = fake.repos["acme/skills"].refs["refs/heads/main"]
    status, _ = call(fake, "POST", "/repos/acme/skills/check-runs",
                     {"name": "x", "head_sha": sha, "output": {"title": "t", "summary": "x" * 70000}})
    assert status == 422 and "['summary']: violates maxLength=65535" in fake.violations[0]


def test_bad_token_is_401_and_actions_token_cannot_read_user(fake):
    req = urllib.request.Request(fake.base + "/repos/acme/skills", headers={"Authorization": "token nope"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 401
    assert call(fake, "GET", "/user")[0] == 403
    assert fake.violations == []


def call_as(fake, token, method, path, body=None):
    req = urllib.request.Request(fake.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_tokens_behave_like_githubs(fake):
    """Installation tokens: no `permissions` in GET /repos, 403 for a write they lack. User tokens: their role."""
    repo = fake.repos["acme/skills"]
    sha = repo.refs["refs/heads/main"]
    fake.add_token("ghs_ro", "github-actions[bot]", installation=True, permissions=READ_ONLY)
    fake.add_token("ghp_reader", "reader")
    repo.permissions["reader"] = "read"
    assert "permissions" not in call(fake, "GET", "/repos/acme/skills")[1]
    assert call_as(fake, "ghp_reader", "GET", "/repos/acme/skills")[1]["permissions"] == {
        "admin": False, "maintain": False, "push": False, "triage": False, "pull": True}
    status, body = call_as(fake, "ghs_ro", "POST", "/repos/acme/skills/check-runs", {"name": "x", "head_sha": sha})
    assert (status, body["message"]) == (403, "Resource not accessible by integration")
    status, body = call_as(fake, "ghp_reader", "POST", "/repos/acme/skills/check-runs", {"name": "x", "head_sha": sha})
    assert (status, body["message"]) == (403, "You must authenticate via a GitHub App.")
    assert fake.check_runs == {} and fake.violations == []


def test_pull_request_creation_setting_labels_and_ref_deletion(fake):
    repo = fake.repos["acme/skills"]
    sha = repo.refs["refs/heads/main"]
    repo.refs["refs/heads/bot"] = fake.put_commit(repo, {"SKILL.md": b"new\n"}, [sha])
    repo.actions_can_create_prs = False
    status, body = call(fake, "POST", "/repos/acme/skills/pulls", {"title": "t", "head": "bot", "base": "main"})
    assert (status, body["message"]) == (403, "GitHub Actions is not permitted to create or approve pull requests.")
    repo.actions_can_create_prs = True
    status, pr = call(fake, "POST", "/repos/acme/skills/pulls", {"title": "t", "head": "bot", "base": "main"})
    assert status == 201
    fake.pulls[("acme/skills", pr["number"])]["labels"].append("mine")
    status, labels = call(fake, "POST", f"/repos/acme/skills/issues/{pr['number']}/labels", {"labels": ["skillopt"]})
    assert status == 200 and [x["name"] for x in labels] == ["mine", "skillopt"]
    assert call_as(fake, TOKEN, "DELETE", "/repos/acme/skills/git/refs/heads/bot") == (204, None)
    assert "refs/heads/bot" not in repo.refs and fake.pulls_of("acme/skills")[0]["state"] == "closed"
    assert call_as(fake, TOKEN, "DELETE", "/repos/acme/skills/git/refs/heads/bot")[0] == 422
    assert call_as(fake, TOKEN, "DELETE", "/repos/acme/skills/git/refs/heads/main")[0] == 422
    assert fake.violations == []
