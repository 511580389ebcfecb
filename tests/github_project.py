"""A small skillopt project in a git repository, a scripted model for it, and GitHub event payloads.

Shared by tests/test_github_action.py (in-process `action.run`) and tests/test_github_e2e.py (`act`).

The "model": the target answers the word in the task input; it answers in capitals only when the
skill (its system prompt) says UPPERCASE. Every task wants capitals, so a skill edit that says so is
a real improvement the gate can see on the held-out tasks. The optimizer proposes `EDIT_TEXT` (or
a useless edit, for the "nothing passes" scenario).
"""

from __future__ import annotations

import copy
import json
import re
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


def edits_json(text: str) -> str:
    return json.dumps({"analysis": "The tasks want capital letters.",
                       "edits": [{"op": "add", "anchor": "## Answering", "content": text, "rationale": "failing tasks expect capitals"}]})


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


def responder_for(edit_text: str = EDIT_TEXT):
    from model_server import Text

    def respond(req):
        if req.model == "optimizer-model":
            return Text(edits_json(edit_text))
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
                         action: str = "opened") -> dict:
    p = _example("pull_request.opened.json" if action == "opened" else "pull_request.synchronize.json")
    _repo_block(p, full_name)
    pr = p["pull_request"]
    pr["number"] = number
    p["number"] = number
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
