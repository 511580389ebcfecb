"""`skillopt init`: a starter config and example tasks next to an existing skill file. Never overwrites."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import EXIT_OK, ConfigError
from .render import render

CANDIDATES = ["SKILL.md", "AGENTS.md", "CLAUDE.md"]


def find_skill(root: Path) -> Path | None:
    for name in CANDIDATES:
        if (root / name).is_file():
            return root / name
    found = sorted(root.glob(".claude/skills/*/SKILL.md")) + sorted(root.glob(".agents/skills/*/SKILL.md"))
    return found[0] if found else None


def init(skill: str | None, config: str | None, root: Path | None = None) -> int:
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
    print(f"wrote {cfg_path.relative_to(root)} and {tasks_path.relative_to(root)} for {rel_skill}", file=sys.stderr)
    print(
        "next: replace the example tasks with real ones, then `skillopt validate` and `skillopt eval`", file=sys.stderr
    )
    return EXIT_OK
