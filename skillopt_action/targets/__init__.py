"""Targets: what runs the agent under a candidate skill (see `base.Target`).

- `chat`         openai, azure, anthropic, local: the skill in the system prompt
- `command`      any CLI agent in a fresh git workspace per rollout
- `claude_code`  the Claude Code CLI (`claude -p`), the skill as a project skill or CLAUDE.md
- `codex`        the Codex CLI (`codex exec`), the skill as AGENTS.md or a skill folder

`make_target(settings, project_root)` builds the one the config names.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ModelSettings
from ..errors import ConfigError
from . import chat, claude_code, codex, command  # noqa: F401  (each registers its provider names)
from .base import TARGET_TYPES, Target, fingerprint_digest, register_target

__all__ = ["TARGET_TYPES", "Target", "fingerprint_digest", "make_target", "register_target"]


def make_target(settings: ModelSettings, project_root: Path | None = None) -> Target:
    try:
        factory = TARGET_TYPES[settings.provider]
    except KeyError:
        raise ConfigError(f"unknown target provider {settings.provider!r}", settings.file, settings.line,
                          f"use one of: {', '.join(sorted(TARGET_TYPES))}") from None
    return factory(settings, project_root)
