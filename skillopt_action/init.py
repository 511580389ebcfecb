"""`skillopt init`: a starter config and example tasks next to an existing skill file, and `.skillopt/` (runs,
cache) in `.gitignore`. Never overwrites a file; `.gitignore` is only appended to."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from .errors import EXIT_OK, ConfigError
from .render import render

CANDIDATES = ["SKILL.md", "AGENTS.md", "CLAUDE.md"]
IGNORE_LINE = ".skillopt/"
# lines that already keep .skillopt/ out of git
_IGNORED_BY = {".skillopt", ".skillopt/", "/.skillopt", "/.skillopt/", ".skillopt/*", "/.skillopt/*", ".skillopt/**",
               "/.skillopt/**"}


def find_skill(root: Path) -> Path | None:
    for name in CANDIDATES:
        if (root / name).is_file():
            return root / name
    found = sorted(root.glob(".claude/skills/*/SKILL.md")) + sorted(root.glob(".agents/skills/*/SKILL.md"))
    return found[0] if found else None


def ignore_runs(root: Path) -> bool:
    """Add `.skillopt/` to `<root>/.gitignore` (created if missing) unless a line already ignores it. Returns
    True when the file was changed."""
    path = root / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if any(line.strip() in _IGNORED_BY for line in text.splitlines()):
        return False
    sep = "" if not text or text.endswith("\n") else "\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(f"{sep}# skillopt: run reports, call cache and rejected-edit memory\n{IGNORE_LINE}\n")
    return True


def init(skill: str | None, config: str | None, root: Path | None = None,
         log: Callable[[str], None] | None = None) -> int:
    say = log or (lambda line: print(line, file=sys.stderr))
    root = (root or Path.cwd()).resolve()
    skill_path = (root / skill) if skill else find_skill(root)
    if skill_path is None or not skill_path.is_file():
        raise ConfigError(f"no skill file found in {root}" if not skill else f"skill file {skill} not found",
                          None, None, f"pass --skill PATH, or create one of {', '.join(CANDIDATES)}")
    cfg_path = root / (config or ".github/skillopt.yml")
    tasks_path = root / "evals" / "tasks.yml"
    for p in (cfg_path, tasks_path):
        if p.exists():
            raise ConfigError("already exists; not overwriting", str(p), None,
                              "move it away, or edit it by hand (`skillopt validate` checks it)")
    rel_skill = skill_path.relative_to(root).as_posix()
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    tasks_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(render("init_config.yml.j2", skill=rel_skill), encoding="utf-8")
    tasks_path.write_text(render("init_tasks.yml.j2"), encoding="utf-8")
    ignored = ignore_runs(root)
    say(f"wrote {cfg_path.relative_to(root)} and {tasks_path.relative_to(root)} for {rel_skill}"
        + ("; added .skillopt/ (runs and cache) to .gitignore" if ignored else ""))
    say("next: replace the example tasks with real ones, then `skillopt validate` and `skillopt eval`")
    return EXIT_OK
