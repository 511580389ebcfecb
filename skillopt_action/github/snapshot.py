"""The base branch's files, checked out next to the workspace: a pull request is always judged with the base
branch's config, tasks and scorers (a PR never supplies its own exam)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from ..errors import ConfigError


def checkout_base(workspace: Path, base_sha: str, parent: Path) -> Path:
    """A detached git worktree of `base_sha` under `parent` (fetched first if the checkout lacks it)."""
    ws = str(workspace)
    have = subprocess.run(["git", "-C", ws, "cat-file", "-e", f"{base_sha}^{{commit}}"], capture_output=True)
    if have.returncode != 0:
        fetched = subprocess.run(["git", "-C", ws, "fetch", "--no-tags", "--depth=1", "origin", base_sha],
                                 capture_output=True, text=True)
        if fetched.returncode != 0:
            raise ConfigError(f"cannot fetch the base commit {base_sha[:12]} into {ws}: {fetched.stderr.strip()[:300]}",
                              fix="check out the repository first (actions/checkout) so the base branch can be fetched")
    path = parent / f"skillopt-base-{base_sha[:12]}-{uuid.uuid4().hex[:6]}"
    added = subprocess.run(["git", "-C", ws, "worktree", "add", "--detach", str(path), base_sha],
                           capture_output=True, text=True)
    if added.returncode != 0:
        raise ConfigError(f"cannot check out the base commit {base_sha[:12]}: {added.stderr.strip()[:300]}",
                          fix="run the action on a full git checkout of the repository")
    return path


def remove_checkout(workspace: Path, path: Path) -> None:
    """Remove a worktree made by `checkout_base`."""
    subprocess.run(["git", "-C", str(workspace), "worktree", "remove", "--force", str(path)], capture_output=True)
