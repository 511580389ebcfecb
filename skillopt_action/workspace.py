"""Rollout workspaces for agent harness targets, and what workspace scorers read from them.

One directory per rollout, never shared:

    <base_dir>/skillopt-ws-XXXXXXXX/        created by `prepare`
        .skillopt-rollout                   marker: remove_workspace only deletes such directories
        prompt.txt, stdout, stderr          the prompt and what the agent printed
        last-message.txt                    (codex) the final message
        work/                               the workspace: the agent's working directory
            <fixture files>                 copied from the task's `fixture:` directory
            <skill_path>                    the candidate skill (AGENTS.md, CLAUDE.md, .claude/skills/...)
            .git/                           baseline commit of the above, so changes can be listed
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .procs import rmtree

MARKER = ".skillopt-rollout"
WORK = "work"
GIT_AUTHOR = ("skillopt", "skillopt@localhost")
OWN_FILES = frozenset({MARKER, WORK, "prompt.txt", "stdout", "stderr", "last-message.txt"})


def git(ws: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run git in `ws` with no user or system config, fixed author and dates (reproducible baselines)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_AUTHOR_NAME=GIT_AUTHOR[0],
               GIT_AUTHOR_EMAIL=GIT_AUTHOR[1], GIT_COMMITTER_NAME=GIT_AUTHOR[0], GIT_COMMITTER_EMAIL=GIT_AUTHOR[1],
               GIT_AUTHOR_DATE="2000-01-01T00:00:00Z", GIT_COMMITTER_DATE="2000-01-01T00:00:00Z")
    try:
        return subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=" + os.devnull,
                               "-c", "init.defaultBranch=main", "-c", "core.autocrlf=false", *args],
                              cwd=ws, env=env, capture_output=True, text=True, check=check, timeout=120)
    except FileNotFoundError:
        raise ConfigError("`git` was not found on PATH; agent workspaces need it for the baseline commit", None,
                          None, "install git (e.g. `apt-get install git`)") from None
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"git {' '.join(args)} failed in {ws}: {exc.stderr.strip()}") from None


@dataclass
class Prepared:
    """A fresh rollout directory: `ws` is the agent's working directory, committed as `baseline`."""

    root: Path
    ws: Path
    skill_path: str
    baseline: str
    prompt_file: Path
    extra: dict = field(default_factory=dict)


def prepare(base_dir: Path | None, fixture: str | None, install_skill: Callable[[Path], str],
            prompt: str) -> Prepared:
    """Create a rollout directory: copy the fixture, install the skill (`install_skill(ws)` returns its path
    relative to the workspace), commit the baseline, write the prompt. Nothing is left behind on failure."""
    if base_dir is not None:
        base_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="skillopt-ws-", dir=str(base_dir) if base_dir else None)).resolve()
    (root / MARKER).write_text("created by skillopt for one rollout; safe to delete\n")
    ws = root / WORK
    try:
        if fixture:
            shutil.copytree(fixture, ws, symlinks=True)
            if (ws / ".git").exists():  # a fixture that is itself a repository: start from its files only
                rmtree(ws / ".git")
        else:
            ws.mkdir()
        skill_rel = install_skill(ws)
        git(ws, "init", "-q")
        git(ws, "add", "-A", "-f")
        git(ws, "commit", "-q", "--allow-empty", "--no-verify", "-m", "skillopt baseline")
        baseline = git(ws, "rev-parse", "HEAD").stdout.strip()
        prompt_file = root / "prompt.txt"
        prompt_file.write_text(prompt, encoding="utf-8")
    except BaseException:
        rmtree(root)
        raise
    return Prepared(root, ws, skill_rel, baseline, prompt_file)


def remove_workspace(path: str | os.PathLike) -> None:
    """Delete a rollout's directory (the workspace and its prompt/output files).

    Only directories `prepare` created (with the marker file next to the workspace) are removed;
    anything else raises ValueError rather than deleting a user's directory by mistake."""
    ws = Path(path)
    root = ws.parent if ws.name == WORK else ws
    if not (root / MARKER).is_file():
        raise ValueError(f"refusing to remove {ws}: not a skillopt rollout workspace (no {MARKER} next to it)")
    rmtree(root)


def inside(ws: Path, rel: str) -> Path | None:
    """`rel` under the workspace, following symlinks only if they stay inside it."""
    p = ws / rel
    try:
        resolved = p.resolve()
    except OSError:
        return None
    base = ws.resolve()
    if resolved != base and base not in resolved.parents:
        return None
    return resolved


def changed_paths(ws: Path, baseline: str | None) -> list[str]:
    """Paths changed, deleted or added since the baseline commit (untracked files too, .gitignore respected)."""
    base = baseline or "HEAD"
    diff = git(ws, "-c", "core.quotepath=false", "diff", "--name-only", "--no-renames", "-z", base, "--")
    untracked = git(ws, "-c", "core.quotepath=false", "ls-files", "--others", "--exclude-standard", "-z")
    paths = {p for p in diff.stdout.split("\0") if p} | {p for p in untracked.stdout.split("\0") if p}
    return sorted(paths)


def outside_entries(ws: Path) -> list[str]:
    """What the agent left next to its workspace, in the rollout directory (e.g. via `../x`)."""
    root = ws.parent
    if not (root / MARKER).is_file():
        return []
    return sorted(f"../{p.name}" for p in root.iterdir() if p.name not in OWN_FILES)
