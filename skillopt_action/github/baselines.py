"""Where the Action keeps the drift watch's baselines: one small JSON file per skill on the branch `skillopt-data`.

Why a branch of its own, and not the bot pull request's branch or a cache:

- the bot branch `skillopt/<skill>` is force-pushed, reset and deleted with its pull request (and by GitHub's
  "delete head branch after merge"), exactly when an accepted run lands, so a baseline there would vanish;
- an actions/cache entry is evicted after 7 days unused, and a weekly watch comes back after 7 days;
- `skillopt-data` is never merged and never checked out by a workflow: each baseline is one commit on it (the
  history of what the skill scored, reviewable in the web UI), and deleting the file (or the branch) makes the
  next watch record a fresh baseline. It needs `contents: write`, as the bot pull request does. The name is
  outside `skillopt/`, so it can never collide with a bot branch (`skillopt/<skill-name>`).

Reading tolerates a missing branch or file (no baseline yet); a file that is not a baseline is a ConfigError that
says how to repair it. Writing goes through the Git data API (tree, commit, ref), fast-forward only.
"""

from __future__ import annotations

import json
from typing import Any

from github import InputGitTreeElement
from github.GithubException import UnknownObjectException

from ..errors import ConfigError
from ..redact import redact_obj
from . import pull_request as prs

DATA_BRANCH = "skillopt-data"


def path_for(skill_path: str) -> str:
    """`baselines/<skill-name>.json`, named like the bot branch (`skillopt/<skill-name>`)."""
    return f"baselines/{prs.branch_for(skill_path).split('/', 1)[1]}.json"


def read(repo, path: str) -> dict[str, Any] | None:
    """The stored baseline, or None when the branch or the file does not exist yet."""
    if prs.ref_sha(repo, DATA_BRANCH) is None:
        return None
    text = prs.file_at(repo, path, DATA_BRANCH)
    if text is None:
        return None
    where = f"{DATA_BRANCH}:{path}"
    fix = (f"delete {path} on the branch {DATA_BRANCH} (the next watch records a new baseline), or run the watch "
           "workflow by hand with record-baseline: true")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the drift baseline is not JSON ({exc})", where, None, fix) from None
    if not isinstance(data, dict) or not isinstance(data.get("val"), dict):
        raise ConfigError("the drift baseline has no per-task `val` scores", where, None, fix)
    return data


def store(repo, path: str, data: dict[str, Any], message: str) -> str:
    """Commit `data` as `path` on the data branch (created, without history, on first use). Returns the commit."""
    text = json.dumps(redact_obj(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    element = InputGitTreeElement(path, "100644", "blob", content=text)
    head = prs.ref_sha(repo, DATA_BRANCH)
    if head is None:
        tree = repo.create_git_tree([element])
        commit = repo.create_git_commit(message, tree, [])
        repo.create_git_ref(f"refs/heads/{DATA_BRANCH}", commit.sha)
        return commit.sha
    parent = repo.get_git_commit(head)
    tree = repo.create_git_tree([element], base_tree=parent.tree)
    commit = repo.create_git_commit(message, tree, [parent])
    try:
        repo.get_git_ref(f"heads/{DATA_BRANCH}").edit(commit.sha, force=False)
    except UnknownObjectException:  # deleted meanwhile: start it again
        repo.create_git_ref(f"refs/heads/{DATA_BRANCH}", commit.sha)
    return commit.sha
