"""What this run's token may write, and what GitHub's refusals mean. Decisions on plain data (no I/O).

Whether a token can write is decided from facts, not hoped for:
- a user token (a PAT) sees its role in GET /repos/{owner}/{repo} (`permissions`): no push, no writes;
- the workflow token (an installation token) sees no `permissions` there, but GitHub documents when it is
  read-only: the `pull_request` workflow of a pull request from a fork, and workflows Dependabot triggers;
- anything else is confirmed by the first write (the check run), made before any model call: GitHub's 403
  "Resource not accessible by integration" there means read-only, and the run stops cleanly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from github.GithubException import GithubException

from ..errors import SkillOptError

EXIT_GITHUB_REFUSED = 5  # documented in README.md and action.yml
PR_SETTING = ('Settings → Actions → General → Workflow permissions → "Allow GitHub Actions to create and '
              'approve pull requests"')
DEPENDABOT = "dependabot[bot]"


class GitHubRefused(SkillOptError):
    """GitHub refused a write the run needs because of a repository setting or the token's permissions."""

    exit_code = EXIT_GITHUB_REFUSED


def message_of(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, Mapping) and data.get("message"):
        return str(data["message"])
    return str(data or exc)


def pr_creation_refused(exc: GithubException) -> bool:
    """The 403 GitHub answers when the repository (or its organisation) does not let Actions open PRs."""
    return exc.status == 403 and "not permitted to create or approve pull requests" in message_of(exc)


def not_accessible(exc: GithubException) -> bool:
    """A 403 for a write the token lacks: a read-only workflow token, or a PAT on the Checks API."""
    text = message_of(exc)
    return exc.status == 403 and ("not accessible by integration" in text or "authenticate via a GitHub App" in text)


def fix_for_refusal() -> str:
    return (f"Turn on {PR_SETTING} (an organisation may first have to allow it in its own settings), or pass a "
            "token that may open pull requests in the action's `github-token` input: a GitHub App installation "
            "token (e.g. from actions/create-github-app-token; it can also post the check) or a personal access "
            "token. Then run the workflow by hand (workflow_dispatch): scheduled runs do not try again before that.")


def refused_message(repository: str, detail: str) -> str:
    """A pull request GitHub just refused to open (the branch pushed for it was removed again)."""
    return (f"GitHub does not let GitHub Actions create pull requests in {repository} ({detail}). "
            f"{fix_for_refusal()} The branch skillopt pushed for the pull request was removed again.")


def still_refused_message(when: str, run_url: str) -> str:
    """A scheduled run after a refusal: it stopped before pushing anything or calling a model."""
    return (f"Not run: GitHub refused to let this workflow open skillopt's pull request on {when} ({run_url}), so "
            f"this scheduled run stopped before pushing anything or calling a model. {fix_for_refusal()}")


def missing_permission_message(what: str, permission: str, detail: str) -> str:
    return (f"GitHub refused to {what} ({detail}): the token lacks `{permission}`. Add it to the workflow's "
            f"`permissions:` block (see examples/workflows/ in skillopt-action).")


@dataclass(frozen=True)
class Access:
    writable: bool
    reason: str


def decide(*, event: str, fork: bool, actor: str, repo_permissions: Mapping[str, Any] | None) -> Access:
    """Can this run write to the repository (checks, comments, branches)?"""
    if repo_permissions is not None:  # a user token: GitHub tells its role
        if any(repo_permissions.get(k) for k in ("push", "maintain", "admin")):
            return Access(True, "the token has write access to this repository")
        return Access(False, "the token has only read access to this repository")
    if event == "pull_request" and fork:
        return Access(False, "GitHub gives the workflow of a pull request from a fork a read-only token")
    if event == "pull_request" and actor == DEPENDABOT:
        return Access(False, "GitHub gives workflows that Dependabot triggers a read-only token")
    return Access(True, "the workflow token's permissions come from the workflow's `permissions:` block")
