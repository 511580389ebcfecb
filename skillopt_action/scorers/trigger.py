"""The `trigger` scorer: did the agent harness load the skill, and should it have?

A trigger task is a user query labelled `expect: load` (the skill should be loaded for it) or `expect: skip`
(it should not). "Loaded" is read from the harness's real transcript, never from the answer text:

- Claude Code: a `Skill` tool use naming the skill (`{"skill": "<name>"}`, also `plugin:<name>`), or a `Read`
  of the skill's installed SKILL.md;
- Codex (and any harness whose transcript shows shell commands): a command that reads the installed
  SKILL.md (e.g. `cat .agents/skills/<name>/SKILL.md`).

Settings: `expect: load | skip` (required), `skill: NAME` (default: the folder the target installed the skill
in, e.g. `.claude/skills/<name>/SKILL.md`). Score 1 when what happened matches `expect`, else 0, with the
evidence in the feedback. A skill installed as AGENTS.md / CLAUDE.md is always read, so it cannot be
triggered: such a rollout scores 0 with feedback saying to use `install: skill`.

Trigger tasks train the front-matter `description` (loop.description, see triggering.py); the body's
reflection does not see them.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from ..errors import ConfigError
from ..text import quote
from ..types import Completion, ScoreResult, Task
from .base import check_keys, register_scorer

EXPECT = ("load", "skip")
NOT_A_SKILL_FOLDER = ("the skill is installed as {path!r}, which the agent always reads, so loading cannot be "
                      "measured: trigger tasks need a skill folder (target option `install: skill`)")


def is_trigger_task(task: Task) -> bool:
    return any(s.get("type") == "trigger" for s in task.scorers)


def trigger_expect(task: Task) -> str | None:
    """`load` or `skip` for a trigger task, else None."""
    for s in task.scorers:
        if s.get("type") == "trigger":
            return str(s["expect"])
    return None


def skill_folder(skill_path: str) -> str | None:
    """The skill's name from where it was installed (`.../skills/<name>/SKILL.md`), or None for AGENTS.md etc."""
    p = PurePosixPath(skill_path)
    return p.parent.name if p.name == "SKILL.md" and p.parent.name else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def load_evidence(completion: Completion, name: str, skill_path: str) -> str | None:
    """How the transcript shows the skill being loaded (one short sentence), or None if it was not."""
    folder_file = f"skills/{name}/SKILL.md"
    for m in completion.transcript:
        if m.get("type") != "tool_use" or not isinstance(m.get("content"), dict):
            continue
        tool = str(m["content"].get("name") or "")
        args = m["content"].get("input")
        if tool == "Skill":
            asked = args.get("skill", args.get("command")) if isinstance(args, dict) else args
            if isinstance(asked, str) and asked.strip().lstrip("/").split(":")[-1] == name:
                return f"the agent called the Skill tool for {name!r}"
            continue
        if tool == "Read" and isinstance(args, dict):
            path = str(args.get("file_path") or "")
            if path.endswith(skill_path) or path.endswith(folder_file):
                return f"the agent read {skill_path}"
            continue
        if tool in ("shell", "Bash") and (skill_path in _text(args) or folder_file in _text(args)):
            return f"the agent ran a command reading {skill_path}: {quote(_text(args), 100)}"
    return None


class TriggerScorer:
    def __init__(self, spec: dict):
        self.expect = spec["expect"]
        self.skill = spec.get("skill")

    def score(self, task: Task, completion: Completion) -> ScoreResult:
        skill_path = str(completion.extra.get("skill_path") or "")
        if not completion.extra.get("agent"):
            return ScoreResult(0.0, "no agent transcript: the trigger scorer needs an agent harness target "
                                    "(claude-code or codex)")
        name = self.skill or skill_folder(skill_path)
        if not name:
            return ScoreResult(0.0, NOT_A_SKILL_FOLDER.format(path=skill_path))
        how = load_evidence(completion, name, skill_path)
        if self.expect == "load":
            if how:
                return ScoreResult(1.0, f"loaded as expected ({how})")
            return ScoreResult(0.0, f"the skill {name!r} should have been loaded for this query but was not "
                                    "(no Skill tool use naming it, no read of its SKILL.md)")
        if how:
            return ScoreResult(0.0, f"the skill {name!r} should NOT have been loaded for this query, but {how}")
        return ScoreResult(1.0, "not loaded, as expected")


def validate(spec: dict, file: str | None, line: int | None) -> dict:
    check_keys(spec, ("expect", "skill"), file, line)
    if spec.get("expect") not in EXPECT:
        raise ConfigError(f"scorer 'trigger' needs `expect: load` or `expect: skip`, got {spec.get('expect')!r}",
                          file, line, "write `expect: load` for a query that should load the skill, `expect: skip` "
                                      "for one that should not")
    skill = spec.get("skill")
    if skill is not None and (not isinstance(skill, str) or not skill.strip() or "/" in skill):
        raise ConfigError(f"scorer 'trigger': `skill` must be the skill's name (its folder), got {skill!r}", file,
                          line, "write e.g. `skill: changelog-writer`, or leave it out to use the installed skill")
    return spec


register_scorer("trigger", validate=validate, build=lambda spec, ctx: TriggerScorer(spec), needs_workspace=True)
