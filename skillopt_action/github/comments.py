"""Comments and reactions on a pull request.

- The sticky comment: one bot comment per pull request holding the latest result, found again by a hidden
  marker (on any page) and edited in place. Only results go there.
- Replies: refusals and help are comments of their own, so nobody can overwrite a maintainer's result by
  commenting. A refusal is posted once per person and pull request (later refused comments get only a
  reaction), so a stranger cannot make the bot comment over and over.
- Reactions: 👀 acknowledges a command that will run, 👎 one that will not.
"""

from __future__ import annotations

from .checks import fit

MARKER = "<!-- skillopt:sticky -->"
MAX_COMMENT = 65536
RECEIVED = "eyes"
REFUSED = "-1"


def _ours(comment, bot_login: str) -> bool:
    return comment.user is not None and comment.user.login == bot_login


def bot_comments(issue_or_pr, bot_login: str) -> list:
    """The bot's own comments, every page (PaginatedList follows the Link headers)."""
    return [c for c in issue_or_pr.get_issue_comments() if _ours(c, bot_login)]


def find_sticky(issue_or_pr, bot_login: str, ours: list | None = None):
    """The bot's own sticky comment; comments by others that quote the marker are ignored."""
    found = None
    for comment in ours if ours is not None else bot_comments(issue_or_pr, bot_login):
        if MARKER in (comment.body or ""):
            found = comment  # keep the latest one if an older run left several
    return found


def sticky_text(body: str, more_url: str | None = None) -> str:
    return fit(body, MAX_COMMENT - len(MARKER) - 2, more_url) + "\n" + MARKER + "\n"


def upsert_sticky(issue_or_pr, bot_login: str, body: str, more_url: str | None = None):
    text = sticky_text(body, more_url)
    existing = find_sticky(issue_or_pr, bot_login)
    if existing is not None:
        if existing.body != text:
            existing.edit(text)
        return existing
    return issue_or_pr.create_issue_comment(text)


def reply_marker(key: str) -> str:
    return f"<!-- skillopt:reply {key} -->"


def reply(issue_or_pr, body: str, *, bot_login: str = "", once_key: str | None = None) -> bool:
    """Post `body` as a comment of its own. With `once_key`, only if the bot has not posted that reply on this
    pull request before. Returns whether a comment was posted."""
    text = fit(body, MAX_COMMENT - 200, None)
    if once_key is not None:
        marker = reply_marker(once_key)
        if any(marker in (c.body or "") for c in bot_comments(issue_or_pr, bot_login)):
            return False
        text += "\n" + marker + "\n"
    issue_or_pr.create_issue_comment(text)
    return True


def react(pr, comment_id: int, content: str) -> None:
    pr.get_issue_comment(comment_id).create_reaction(content)
