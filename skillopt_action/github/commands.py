"""Comment commands (`/skillopt optimize [epochs=N] | eval | help`) and who may give them. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "/skillopt"
WRITE_ROLES = frozenset({"admin", "maintain", "write"})
MAX_EPOCHS = 20

HELP = """\
**skillopt commands** (comment on a pull request; you need write access to this repository):

| Command | What it does |
|---|---|
| `/skillopt eval` | score this PR's skill against the base branch's skill and post the `skillopt / gate` check |
| `/skillopt optimize [epochs=N]` | train starting from this PR's skill; pushes the result to this PR's branch \
when it lives in this repository |
| `/skillopt help` | show this help |
"""


@dataclass(frozen=True)
class Command:
    name: str  # optimize | eval | help | unknown
    epochs: int | None = None
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
    if verb == "eval":
        if args:
            return Command("unknown", error=f"`eval` takes no arguments (got `{' '.join(args)}`)")
        return Command("eval")
    if verb == "optimize":
        epochs = None
        for arg in args:
            m = re.fullmatch(r"epochs=(\d{1,3})", arg, flags=re.IGNORECASE)
            if not m:
                return Command("unknown", error=f"`optimize` does not understand `{arg}` (try `epochs=2`)")
            epochs = int(m.group(1))
            if not 1 <= epochs <= MAX_EPOCHS:
                return Command("unknown", error=f"epochs must be from 1 to {MAX_EPOCHS} (got {epochs})")
        return Command("optimize", epochs=epochs)
    return Command("unknown", error=f"unknown command `{words[1]}`")


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
