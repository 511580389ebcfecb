"""Comment commands (`/skillopt optimize [skill=NAME] [epochs=N] | eval [skill=NAME] | help`), which skills they
act on, and who may give them. No I/O: the caller reads the base branch's config and the pull request's files and
passes plain data."""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "/skillopt"
WRITE_ROLES = frozenset({"admin", "maintain", "write"})
MAX_EPOCHS = 20
SKILL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # the schema's pattern for `skills[].name`

HELP = """\
**skillopt commands** (comment on a pull request; you need write access to this repository):

| Command | What it does |
|---|---|
| `/skillopt eval [skill=NAME]` | score this PR's skill against the base branch's skill and post the \
`skillopt / gate` check |
| `/skillopt optimize [skill=NAME] [epochs=N]` | train starting from this PR's skill; pushes the result to this \
PR's branch when it lives in this repository |
| `/skillopt help` | show this help |

When the config lists several skills (`skills:`), `skill=NAME` says which one. Without it, `eval` gates every \
skill this pull request changes (each gets its own `skillopt / gate (NAME)` check) and `optimize` asks which.
"""


@dataclass(frozen=True)
class Command:
    name: str  # optimize | eval | help | unknown
    epochs: int | None = None
    skill: str | None = None  # `skill=NAME`: one skill of a config that lists several
    error: str = ""  # why the command was not understood (for name == "unknown")


def parse(body: str) -> Command | None:
    """The command in a comment, or None when the comment is not addressed to skillopt.

    Only the first non-empty line counts, and it must start with `/skillopt` (quoted replies, which
    start with `>`, never do). Anything after the command that is not understood yields `unknown`
    with the reason, so the bot answers with the help text instead of guessing.
    """
    line = next((ln.strip() for ln in body.splitlines() if ln.strip()), "")
    words = line.split()
    if not words or words[0].lower() != PREFIX:
        return None
    if len(words) == 1:
        return Command("unknown", error="no command given")
    verb, args = words[1].lower(), words[2:]
    if verb == "help" and not args:
        return Command("help")
    if verb in ("eval", "optimize"):
        epochs: int | None = None
        skill: str | None = None
        for arg in args:
            key, _, value = arg.partition("=")
            key = key.lower()
            if key == "skill" and SKILL_NAME.fullmatch(value):
                skill = value
            elif key == "skill":
                return Command("unknown", error=f"`{arg}` is not a skill name (lower-case letters, digits, `.`, `_` "
                                                "or `-`, as in the config's `skills:` list)")
            elif verb == "optimize" and re.fullmatch(r"epochs=(\d{1,3})", arg, flags=re.IGNORECASE):
                epochs = int(value)
                if not 1 <= epochs <= MAX_EPOCHS:
                    return Command("unknown", error=f"epochs must be from 1 to {MAX_EPOCHS} (got {epochs})")
            elif verb == "optimize":
                return Command("unknown", error=f"`optimize` does not understand `{arg}` (try `epochs=2` or "
                                                "`skill=NAME`)")
            else:
                return Command("unknown", error=f"`eval` does not understand `{arg}` (it takes only `skill=NAME`)")
        return Command(verb, epochs=epochs, skill=skill)
    return Command("unknown", error=f"unknown command `{words[1]}`")


@dataclass(frozen=True)
class Selection:
    """Which skills a command acts on. `skills`: names of a `skills:` config, or [None] for a one-skill config;
    empty when the command cannot run, `problem` then says why (for a reply of its own)."""
    skills: tuple[str | None, ...]
    problem: str = ""
    names: tuple[str, ...] = ()  # every skill the config lists (for the reply)


def select(cmd: Command, names: list[str | None], changed: list[str] | None = None) -> Selection:
    """The skills `cmd` acts on, from the base branch's config (`names`: its `skills:` names in order, or [None]
    when it lists one skill or there is none) and, for `eval` without `skill=`, the names whose skill this pull
    request changes (`changed`; only needed when the config lists several)."""
    listed = tuple(n for n in names if n)
    if not listed:
        if cmd.skill:
            return Selection((), f"`skill={cmd.skill}` names one skill of a `skills:` list, but the base branch's "
                                 "config has a single skill; leave out `skill=`")
        return Selection((None,))
    if cmd.skill:
        if cmd.skill not in listed:
            return Selection((), f"the base branch's config lists no skill named `{cmd.skill}`", listed)
        return Selection((cmd.skill,), names=listed)
    if len(listed) == 1:
        return Selection(listed, names=listed)
    if cmd.name == "eval":
        touched = tuple(n for n in listed if n in set(changed or ()))
        if touched:
            return Selection(touched, names=listed)
        return Selection((), "this pull request changes none of the skills the base branch's config lists, so "
                             "there is nothing to gate; name one to score it anyway", listed)
    return Selection((), f"the base branch's config lists {len(listed)} skills; say which one to train", listed)


@dataclass(frozen=True)
class Authorization:
    allowed: bool
    reason: str  # for the log: "has read access; commands need write, maintain or admin"
    access: str = ""  # for the reply to a refused commenter: "your access is read"


def authorize(permission: str | None, role_name: str | None = None, *, commenter_is_bot: bool = False) -> Authorization:
    """May this commenter run commands? Decided from the permission the API reported, never from
    `author_association` (which says nothing about write access on its own).

    `permission` is the legacy field of GET /collaborators/{user}/permission (admin|write|read|none;
    maintain is reported as write) and `role_name` the precise role when present.
    """
    if commenter_is_bot:
        return Authorization(False, "is a bot; comments from bots are never commands", "bots cannot run commands")
    roles = {r for r in (permission, role_name) if r}
    if roles & WRITE_ROLES:
        return Authorization(True, f"has {sorted(roles & WRITE_ROLES)[0]} permission")
    shown = role_name or permission or "none"
    if shown == "none":
        return Authorization(False, "has no access; commands need write, maintain or admin",
                             "you are not a collaborator")
    return Authorization(False, f"has {shown} access; commands need write, maintain or admin",
                         f"your access is {shown}")
