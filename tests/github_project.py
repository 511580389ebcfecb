"""A small skillopt project in a git repository, a scripted model for it, GitHub event payloads, and the
`World` the in-process GitHub tests run in (the fake GitHub, the scripted model server, the repository).

Shared by tests/test_github_*.py (in-process `action.run`) and tests/test_github_e2e.py (`act`).

The "model": the target answers the word in the task input; it answers in capitals only when the
skill (its system prompt) says UPPERCASE. Every task wants capitals, so a skill edit that says so is
a real improvement the gate can see on the held-out tasks. The optimizer proposes `EDIT_TEXT` (or
a useless edit, for the "nothing passes" scenario).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

DATA = Path(__file__).parent / "data"
WORDS = ["apple", "river", "stone", "cloud", "maple", "tiger", "piano", "lemon", "ocean", "candle", "forest", "bridge",
         "rocket", "garden", "silver", "window", "pepper", "island"]
SKILL = """---
name: shout
description: Answer with the requested word.
---
# Shout

## Answering

- Answer with the requested word only.
"""
CONFIG = """skill: SKILL.md
tasks: evals/*.yml
splits: {train: 0.34, val: 0.33, test: 0.33, seed: 3}
target: {provider: openai, model: target-model, api_key_env: SKILLOPT_TEST_KEY}
optimizer: {provider: openai, model: optimizer-model, api_key_env: SKILLOPT_TEST_KEY}
loop: {epochs: 1, batch_size: 6, minibatch_size: 3}
gate: {mode: paired, samples: 1, alpha: 0.1}
concurrency: 2
"""
EDIT_TEXT = "- Always answer in UPPERCASE letters."
USELESS_TEXT = "- Be polite."


def tasks_yaml() -> str:
    lines = ["tasks:"]
    for w in WORDS:
        lines += [f"  - id: word-{w}", f"    input: 'word: {w}'", "    scorers:", f"      - {{type: regex, pattern: '^{w.upper()}$'}}"]
    return "\n".join(lines) + "\n"


def git(cwd: Path | str, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, skill: str = SKILL) -> str:
    """A git repository with the project committed on `main`. Returns the commit SHA."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    (path / ".github").mkdir(exist_ok=True)
    (path / ".github" / "skillopt.yml").write_text(CONFIG)
    (path / "evals").mkdir(exist_ok=True)
    (path / "evals" / "words.yml").write_text(tasks_yaml())
    (path / "SKILL.md").write_text(skill)
    (path / ".gitignore").write_text(".skillopt/\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return git(path, "rev-parse", "HEAD")


def commit_on_branch(path: Path, branch: str, files: dict[str, str], base: str = "main") -> str:
    git(path, "checkout", "-q", "-B", branch, base)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-qm", f"change on {branch}")
    return git(path, "rev-parse", "HEAD")


def edits_json(text: str, *more: str) -> str:
    return json.dumps({"analysis": "The tasks want capital letters.",
                       "edits": [{"op": "add", "anchor": "## Answering", "content": t, "rationale": "failing tasks expect capitals"}
                                 for t in (text, *more)]})


def answer(system: str, user_text: str) -> str:
    m = re.search(r"word:\s*(\w+)", user_text)
    word = m.group(1) if m else "none"
    return word.upper() if "UPPERCASE" in system else word


def script(edit_text: str = EDIT_TEXT) -> dict:
    """A model_server script (JSON) for the standalone server: rules instead of a Python responder."""
    rules = [{"reply": {"type": "text", "text": edits_json(edit_text)}, "contains": "optimizer-model"}]
    rules += [{"reply": {"type": "text", "text": w.upper()}, "contains": "UPPERCASE", "last_user_contains": f"word: {w}"} for w in WORDS]
    rules += [{"reply": {"type": "text", "text": w}, "last_user_contains": f"word: {w}"} for w in WORDS]
    return {"rules": rules, "default_text": "none"}


def responder_for(edit_text: str = EDIT_TEXT, *more: str):
    """The scripted model: the optimizer proposes `edit_text` (and `more` edits, in that order)."""
    from model_server import Text

    def respond(req):
        if req.model == "optimizer-model":
            return Text(edits_json(edit_text, *more))
        return Text(answer(req.system or "", req.last_user_text or ""))

    return respond


def responder_then(first: str, then: str):
    """The optimizer proposes `first` until the skill it is shown contains it, then `then` (one per step)."""
    from model_server import Text

    def respond(req):
        if req.model == "optimizer-model":
            return Text(edits_json(then if first in (req.last_user_text or "") else first))
        return Text(answer(req.system or "", req.last_user_text or ""))

    return respond


# ---- event payloads (from @octokit/webhooks-examples, adapted)


def _example(name: str) -> dict:
    return json.loads((DATA / "webhooks" / name).read_text())


def _repo_block(payload: dict, full_name: str) -> None:
    owner, name = full_name.split("/")
    payload["repository"].update({"full_name": full_name, "name": name, "default_branch": "main"})
    payload["repository"]["owner"]["login"] = owner


def schedule_payload(full_name: str) -> dict:
    p = {"schedule": "0 6 * * 1", "repository": copy.deepcopy(_example("workflow_dispatch.json")["repository"])}
    _repo_block(p, full_name)
    return p


def dispatch_payload(full_name: str, inputs: dict) -> dict:
    p = _example("workflow_dispatch.json")
    p["inputs"] = inputs
    _repo_block(p, full_name)
    return p


def pull_request_payload(full_name: str, number: int, head_ref: str, head_sha: str, base_sha: str, head_repo: str | None = None,
                         action: str = "opened", draft: bool = False, sender: str | None = None) -> dict:
    p = _example(f"pull_request.{action}.json")
    _repo_block(p, full_name)
    pr = p["pull_request"]
    pr["number"] = number
    pr["draft"] = draft
    p["number"] = number
    if sender:
        p["sender"]["login"] = sender
    pr["head"].update({"ref": head_ref, "sha": head_sha})
    pr["head"]["repo"]["full_name"] = head_repo or full_name
    pr["base"].update({"ref": "main", "sha": base_sha})
    pr["base"]["repo"]["full_name"] = full_name
    return p


def comment_payload(full_name: str, number: int, comment_id: int, body: str, login: str, user_type: str = "User",
                    action: str = "created", on_pull_request: bool = True) -> dict:
    p = _example("issue_comment.created.json" if action == "created" else "issue_comment.edited.json")
    _repo_block(p, full_name)
    p["issue"]["number"] = number
    if on_pull_request:
        p["issue"]["pull_request"] = {"url": f"https://api.github.com/repos/{full_name}/pulls/{number}",
                                      "html_url": f"https://github.com/{full_name}/pull/{number}"}
    else:
        p["issue"].pop("pull_request", None)
    p["comment"].update({"id": comment_id, "body": body})
    p["comment"]["user"].update({"login": login, "type": user_type})
    return p


# ---- the in-process world: fake GitHub + scripted model + the repository, for `action.run(env)`

REPO = "acme/skills"
TOKEN = "ghs_actions_token_for_tests"
BOT = "github-actions[bot]"
UPPER_SKILL = SKILL.replace("- Answer with the requested word only.\n", "- Answer with the requested word only.\n- Write it in UPPERCASE.\n")


class World:
    def __init__(self, tmp: Path, fake, model):
        self.tmp, self.fake, self.model = tmp, fake, model
        self.ws = tmp / "ws"
        self.main_sha = make_repo(self.ws)
        self.repo = fake.add_repo(REPO)
        self.repo.refs["refs/heads/main"] = fake.import_git(self.repo, self.ws, "main")
        self.repo.permissions.update({"maintainer": "maintain", "admin-person": "admin", "visitor": "read", "writer": "write"})
        self.runs = 0

    def env(self, event: str, payload: dict, sha: str | None = None, token: str = TOKEN, **inputs: str) -> dict:
        self.runs += 1
        path = self.tmp / f"event-{self.runs}.json"
        path.write_text(json.dumps(payload))
        env = {"GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(path), "GITHUB_REPOSITORY": REPO,
               "GITHUB_API_URL": self.fake.base, "GITHUB_SERVER_URL": self.fake.host, "GITHUB_RUN_ID": str(4000 + self.runs),
               "GITHUB_RUN_ATTEMPT": "1", "GITHUB_SHA": sha or self.main_sha, "GITHUB_WORKSPACE": str(self.ws),
               "GITHUB_ACTOR": "octocat",
               "GITHUB_OUTPUT": str(self.tmp / f"output-{self.runs}"), "GITHUB_STEP_SUMMARY": str(self.tmp / f"summary-{self.runs}.md"),
               "RUNNER_TEMP": str(self.tmp), "INPUT_GITHUB-TOKEN": token, "INPUT_CONFIG": ".github/skillopt.yml",
               "INPUT_COMMAND": "auto", "INPUT_DRY-RUN": "false", "SKILLOPT_GITHUB_THROTTLE": "0"}
        env.update({f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()})
        return env

    def run(self, env: dict) -> int:
        from skillopt_action.github import action

        shutil.rmtree(self.ws / ".skillopt" / "cache", ignore_errors=True)  # each Actions run starts from a fresh checkout
        self.mark = len(self.fake.requests)
        self.model_mark = len(self.model.requests)
        return action.run(env)

    def writes(self) -> list[dict]:
        """The requests of the latest run that were not GETs."""
        return [r for r in self.fake.requests[self.mark:] if r["method"] != "GET"]

    def model_calls(self) -> int:
        """Model requests of the latest run."""
        return len(self.model.requests) - self.model_mark

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

    def open_pr(self, branch: str, skill: str, user: str = "octocat", head_repo: str | None = None, draft: bool = False) -> tuple[dict, str]:
        sha = commit_on_branch(self.ws, branch, {"SKILL.md": skill})
        git(self.ws, "checkout", "-q", "main")
        self.fake.import_git(self.repo, self.ws, sha)
        if head_repo is None:
            self.repo.refs[f"refs/heads/{branch}"] = sha
        pr = self.fake.add_pull(self.repo, head_ref=branch, head_sha=sha, base_ref="main", title="Edit skill", user=user,
                                head_repo=head_repo, draft=draft)
        return pr, sha

    def comment(self, pr_number: int, body: str, login: str, **kw) -> dict:
        c = self.fake.add_comment(self.repo, pr_number, body, login)
        return comment_payload(REPO, pr_number, c["id"], body, login, **kw) | {"_id": c["id"]}

    def bot_comments(self, pr_number: int) -> list[dict]:
        return [c for c in self.fake.comments_on(REPO, pr_number) if c["user"] == BOT]

    def memory(self) -> list[dict]:
        path = self.ws / ".skillopt" / "memory" / "rejected-edits.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def world_fixture(tmp_path: Path, monkeypatch):
    """The body of each GitHub test module's `world` fixture: 0 spec violations and a clean model server at the end."""
    from github_server import FakeGitHub
    from model_server import ModelServer

    fake = FakeGitHub()
    fake.add_token(TOKEN, BOT, installation=True)
    fake.start()
    model = ModelServer(responder=responder_for(EDIT_TEXT))
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


def copy_action(dst_parent: Path) -> Path:
    """What `uses: skillopt/skillopt-action@v1` would download, copied from this checkout into
    `dst_parent/skillopt-action`: action.yml, the package, its templates and metadata."""
    root = Path(__file__).resolve().parent.parent
    dst = dst_parent / "skillopt-action"
    dst.mkdir()
    for name in ("action.yml", "pyproject.toml", "README.md", "LICENSE"):
        if (root / name).exists():
            shutil.copy(root / name, dst / name)
    shutil.copytree(root / "skillopt_action", dst / "skillopt_action", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "templates", dst / "templates")
    return dst
