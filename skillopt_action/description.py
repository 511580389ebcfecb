"""The skill's front-matter `description` as a trainable region (loop.description).

An agent harness reads only a skill's name and description until it decides to load the skill, so the
description decides triggering. It is trained apart from the body: its own small budget (`budget_chars`:
characters changed, inserted plus deleted, in a minimal character diff), the Agent Skills spec's limit
(1,024 characters, non-empty), and its own gate on trigger tasks (triggering.py).

Pure except for `propose`, which asks the optimizer for a new description (templates/reflect_description*.j2).
The rest of the front matter is kept byte for byte: only the `description:` entry (with its continuation
lines) is rewritten, as one double-quoted YAML scalar.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from . import package
from .ask import ask_json
from .markdown import front_matter_end
from .render import render

SPEC_LIMIT = 1024  # Agent Skills specification: description is 1-1024 characters
_KEY_RE = re.compile(r"^description\s*:", re.M)
_TOP_KEY_RE = re.compile(r"^[A-Za-z0-9_-][^:\n]*:")


def front_matter(skill: str) -> dict[str, Any] | None:
    """The parsed YAML front matter, or None when there is none (or it is not a mapping)."""
    end = front_matter_end(skill)
    if not end:
        return None
    block = skill[:end].lstrip("\ufeff").split("\n", 1)[1].rsplit("---", 1)[0]
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def read_description(skill: str) -> str | None:
    """The front-matter description of the skill (a package: of its SKILL.md), or None."""
    fm = front_matter(package.main_text(skill))
    value = (fm or {}).get("description")
    return value.strip() if isinstance(value, str) else None


def set_description(skill: str, text: str) -> str:
    """`skill` with its front-matter description replaced by `text` (a package: in its SKILL.md, every other file
    as it was); ValueError without a description entry."""
    if package.is_package(skill):
        return package.with_main(skill, set_description(package.main_text(skill), text))
    end = front_matter_end(skill)
    head = skill[:end]
    m = _KEY_RE.search(head)
    if not end or m is None:
        raise ValueError("the skill has no front-matter `description:` entry")
    nl = "\r\n" if "\r\n" in head else "\n"
    lines = head[m.start():].split("\n")
    taken = 1  # the key's line, then indented or blank continuation lines up to the next key or the closing ---
    while taken < len(lines) and lines[taken].rstrip("\r") != "---" and not _TOP_KEY_RE.match(lines[taken]):
        taken += 1
    rest = "\n".join(lines[taken:])
    entry = "description: " + json.dumps(text, ensure_ascii=False) + nl
    return head[:m.start()] + entry + rest + skill[end:]


def changed_chars(old: str, new: str) -> int:
    """Characters inserted plus deleted in a minimal character diff from `old` to `new`."""
    sm = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return sum((i2 - i1) + (j2 - j1) for op, i1, i2, j1, j2 in sm.get_opcodes() if op != "equal")


def clean(text: str) -> str:
    """One line: runs of whitespace (newlines included) collapsed, ends stripped."""
    return re.sub(r"\s+", " ", text).strip()


def check(old: str, new: str, budget_chars: int) -> str | None:
    """Why the proposed description must be dropped, or None."""
    if not new:
        return "the proposed description is empty (the Agent Skills spec requires one)"
    if len(new) > SPEC_LIMIT:
        return (f"the proposed description has {len(new)} characters, over the Agent Skills limit of "
                f"{SPEC_LIMIT:,}")
    if new == old:
        return "the proposed description is the current one"
    n = changed_chars(old, new)
    if n > budget_chars:
        return f"the proposed description changes {n} characters, over the description budget of {budget_chars}"
    return None


@dataclass
class Query:
    """One trigger rollout as the optimizer sees it."""

    id: str
    query: str
    expect: str  # load | skip
    loaded: bool
    feedback: str


def propose(optimizer: Any, *, name: str, description: str, queries: list[Query], budget_chars: int,
            rejected: list[str], memo: str, parse_retries: int, seed: int) -> tuple[str, str | None, str | None]:
    """Ask the optimizer for a better description; returns (analysis, cleaned description or None, error)."""
    system = render("reflect_description_system.md.j2", budget_chars=budget_chars, limit=SPEC_LIMIT)
    user = render("reflect_description.md.j2", skill_name=name, description=description, queries=queries,
                  rejected=rejected[-6:], memo=memo, budget_chars=budget_chars)
    schema = {"type": "object", "required": ["analysis", "description"],
              "properties": {"analysis": {"type": "string", "maxLength": 600},
                             "description": {"type": "string", "maxLength": SPEC_LIMIT + 200}}}

    def parse(data: dict) -> tuple[str, str]:
        if not isinstance(data.get("description"), str):
            raise ValueError('the answer must be a JSON object with a "description" text')
        analysis = data.get("analysis", "")
        return (analysis if isinstance(analysis, str) else json.dumps(analysis)), clean(data["description"])

    value, error = ask_json(optimizer, system, user, schema, parse, parse_retries=parse_retries, seed=seed,
                            shape='{"analysis": "...", "description": "..."}')
    if value is None:
        return "", None, error
    return value[0], value[1], None
