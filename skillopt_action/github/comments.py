"""The sticky comment: one bot comment per pull request, found again by a hidden marker and edited in place."""

from __future__ import annotations

from .checks import fit

MARKER = "<!-- skillopt:sticky -->"
MAX_COMMENT = 65536


def find_sticky(issue_or_pr, bot_login: str):
    """The bot's own sticky comment, searching every page; comments by others that quote the marker are ignored."""
    found = None
    for comment in issue_or_pr.get_issue_comments():  # PaginatedList follows the Link headers through all pages
        if MARKER in (comment.body or "") and comment.user is not None and comment.user.login == bot_login:
            found = comment  # keep the latest one if an older run left several
    return found


def upsert_sticky(issue_or_pr, bot_login: str, body: str, more_url: str | None = None):
    text = fit(body, MAX_COMMENT - len(MARKER) - 2, more_url) + "\n" + MARKER + "\n"
    existing = find_sticky(issue_or_pr, bot_login)
    if existing is not None:
        existing.edit(text)
        return existing
    return issue_or_pr.create_issue_comment(text)


def react_eyes(pr, comment_id: int) -> None:
    """Acknowledge a command the moment it is received."""
    pr.get_issue_comment(comment_id).create_reaction("eyes")
