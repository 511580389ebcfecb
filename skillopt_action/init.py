"""`skillopt init`: a starter config and example tasks for the skills a repository already has, and `.skillopt/`
(runs, cache) in `.gitignore`. Never overwrites a file; `.gitignore` is only appended to.

The repository's layout is detected (`detect`): skill folders of Claude Code (`.claude/skills/*/SKILL.md`), of
the Agent Skills convention (`.agents/skills/*`), and of Copilot (`.github/skills/*`), and the instruction files
`AGENTS.md`, `CLAUDE.md`, `.github/copilot-instructions.md` and a top-level `SKILL.md`. One skill found: a
one-skill config (`skill:`); several: a `skills:` list, each with its own example tasks under `evals/<name>/`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import EXIT_OK, ConfigError
from .render import render

CANDIDATES = ["SKILL.md", "AGENTS.md", "CLAUDE.md", ".github/copilot-instructions.md"]
SKILL_DIRS = [".claude/skills", ".agents/skills", ".github/skills"]
IGNORE_LINE = ".skillopt/"
# lines that already keep .skillopt/ out of git
_IGNORED_BY = {".skillopt", ".skillopt/", "/.skillopt", "/.skillopt/", ".skillopt/*", "/.skillopt/*", ".skillopt/**",
               "/.skillopt/**"}


@dataclass(frozen=True)
class Found:
    """A skill the layout holds: `path` relative to the root (a file, or a skill folder), and its config name."""

    path: str
    name: str
    kind: str  # what it is, for the message: "Claude Code skill", "AGENTS.md" ...


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64] or "skill"


def detect(root: Path) -> list[Found]:
    """Every skill of the repository's layout, in a fixed order (skill folders first, then instruction files)."""
    found: list[Found] = []
    kinds = {".claude/skills": "Claude Code skill", ".agents/skills": "agent skill", ".github/skills": "Copilot skill"}
    for base in SKILL_DIRS:
        for folder in sorted(p for p in (root / base).glob("*") if (p / "SKILL.md").is_file()):
            found.append(Found(folder.relative_to(root).as_posix(), _slug(folder.name), kinds[base]))
    for rel in CANDIDATES:
        if (root / rel).is_file():
            name = "copilot-instructions" if rel.endswith("copilot-instructions.md") else _slug(Path(rel).stem)
            found.append(Found(rel, name, rel))
    names: set[str] = set()
    unique = []
    for f in found:  # two folders with the same name in different layouts get distinct names
        name, n = f.name, 2
        while name in names:
            name, n = f"{f.name}-{n}", n + 1
        names.add(name)
        unique.append(Found(f.path, name, f.kind))
    return unique


def find_skill(root: Path) -> Path | None:
    """The first skill `detect` finds (a file or a skill folder), or None."""
    found = detect(root)
    return root / found[0].path if found else None


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


def _listing(found: list[Found]) -> str:
    return ", ".join(f"{f.path} ({f.kind})" for f in found)


def init(skill: str | None, config: str | None, root: Path | None = None,
         log: Callable[[str], None] | None = None) -> int:
    say = log or (lambda line: print(line, file=sys.stderr))
    root = (root or Path.cwd()).resolve()
    if skill:
        path = root / skill
        if not (path.is_file() or (path / "SKILL.md").is_file()):
            raise ConfigError(f"skill file {skill} not found", None, None,
                              "pass --skill PATH: a skill file, or a skill folder with a SKILL.md")
        found = [Found(path.relative_to(root).as_posix(), _slug(path.stem), "given")]
    else:
        found = detect(root)
    if not found:
        raise ConfigError(f"no skill file found in {root}", None, None,
                          f"pass --skill PATH, or create one of {', '.join(CANDIDATES)} or a skill folder "
                          f"({', '.join(d + '/<name>/SKILL.md' for d in SKILL_DIRS)})")
    cfg_path = root / (config or ".github/skillopt.yml")
    if len(found) == 1:
        tasks = {found[0].name: root / "evals" / "tasks.yml"}
    else:
        tasks = {f.name: root / "evals" / f.name / "tasks.yml" for f in found}
    for p in (cfg_path, *tasks.values()):
        if p.exists():
            raise ConfigError("already exists; not overwriting", str(p), None,
                              f"skillopt found {_listing(found)}; move the file away to write a new config, or add "
                              "them by hand (`skillopt validate` checks it)")
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    if len(found) == 1:
        text = render("init_config.yml.j2", skill=found[0].path, skills=[])
    else:
        text = render("init_config.yml.j2", skill="", skills=[{"name": f.name, "path": f.path, "kind": f.kind,
                                                              "tasks": f"evals/{f.name}/*.yml"} for f in found])
    cfg_path.write_text(text, encoding="utf-8")
    for p in tasks.values():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(render("init_tasks.yml.j2"), encoding="utf-8")
    ignored = ignore_runs(root)
    shown = [p.relative_to(root).as_posix() for p in tasks.values()]
    say(f"found {_listing(found)}")
    say(f"wrote {cfg_path.relative_to(root)} and {', '.join(shown)}"
        + ("; added .skillopt/ (runs and cache) to .gitignore" if ignored else ""))
    say("next: replace the example tasks with real ones, then `skillopt validate` and `skillopt eval`")
    return EXIT_OK
