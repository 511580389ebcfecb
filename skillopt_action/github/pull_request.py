"""The bot pull request's lifecycle: decide (pure), then do (a few PyGithub calls).

One PR per skill file, from a fixed branch `skillopt/<skill-name>`, force-updated while only the bot
has pushed to it. Outcomes as users of create-pull-request and Renovate expect:

- created    no bot PR was open and an edit passed the gate
- updated    the open bot PR now proposes a different skill (branch force-pushed, title/body replaced)
- unchanged  the open bot PR already proposes this skill, or nothing passed this time: nothing on GitHub
             is touched; or a human pushed to the branch (their commit is gated instead of overwritten)
- closed     the skill the bot PR proposes no longer differs from the default branch
- none       nothing to propose and no bot PR open, or a human already closed this same proposal

The PR body ends with a hidden state marker (JSON in an HTML comment): the proposal id, the head the bot last
pushed, the hash of the default-branch skill it was proposed against, its accepted edits (so a human close can
be remembered as a rejection of exactly those edits) and the commit the body describes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from github import InputGitTreeElement
from github.GithubException import GithubException, UnknownObjectException

from .. import package

STATE_RE = re.compile(r"<!-- skillopt:pr (\{.*?\}) -->", re.S)


def branch_for(skill_path: str) -> str:
    p = PurePosixPath(skill_path)
    name = p.parent.name if p.stem.upper() == "SKILL" and p.parent.name else p.stem
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "skill"
    return f"skillopt/{slug}"


def proposal_id(skill_text: str) -> str:
    return hashlib.sha256(skill_text.encode("utf-8")).hexdigest()[:16]


def state_marker(proposal: str, head: str, **more) -> str:
    """The hidden marker. `<` and `>` are JSON-escaped, so no text inside can end the HTML comment early."""
    data = json.dumps({"proposal": proposal, "head": head, **more}, sort_keys=True, ensure_ascii=False)
    return "<!-- skillopt:pr " + data.replace("<", "\\u003c").replace(">", "\\u003e") + " -->"


def with_state(body: str | None, **changes) -> str:
    """`body` with its state marker replaced by one carrying `changes` on top of the old state."""
    state = {**read_state(body), **changes}
    text = STATE_RE.sub("", body or "").rstrip("\n")
    return text + "\n" + state_marker(state.pop("proposal", "") or "", state.pop("head", "") or "", **state) + "\n"


def read_state(body: str | None) -> dict:
    return read_json_marker(STATE_RE, body)


def read_json_marker(pattern: re.Pattern[str], body: str | None) -> dict:
    """The JSON object inside a hidden `<!-- ... {json} -->` marker of a body; {} when missing or damaged."""
    m = pattern.search(body or "")
    if not m:
        return {}
    try:
        data = json.loads(m.group(1))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class OpenPR:
    number: int
    url: str
    head_sha: str
    body: str
    branch_skill: str | None  # the skill file's text on the PR branch (None: missing)

    @property
    def recorded_head(self) -> str | None:
        return read_state(self.body).get("head")

    @property
    def proposal(self) -> str | None:
        return read_state(self.body).get("proposal")

    @property
    def state(self) -> dict:
        return read_state(self.body)

    @property
    def human_pushed(self) -> bool:
        """Someone else moved the branch since the bot last pushed it (or the body lost our record)."""
        return self.recorded_head != self.head_sha

    @property
    def human_head_described(self) -> bool:
        """The body and the gate check already describe the human's head commit."""
        return self.state.get("described") == self.head_sha


@dataclass(frozen=True)
class ClosedPR:
    number: int
    proposal: str | None
    merged: bool
    edits: tuple[dict, ...] = ()  # {"edit": <edit dict>, "delta": <gate change or None>} from the state marker
    base_hash: str | None = None  # skill_hash of the default-branch skill it was proposed against
    closed_as: str | None = None  # "adopted" when skillopt closed it because the default branch has the skill


@dataclass(frozen=True)
class Plan:
    outcome: str  # created | updated | closed | unchanged | none
    reason: str
    push: bool = False  # (force-)push the best skill to the bot branch
    create: bool = False
    edit: bool = False  # replace title/body of the open PR
    close: bool = False
    comment: str | None = None  # why to leave a (sticky) comment on the open PR: human-pushed
    proposal: str | None = None
    pr_number: int | None = None
    extra: dict = field(default_factory=dict)


def decide(*, improved: bool, best: str, default_skill: str, open_pr: OpenPR | None, closed: list[ClosedPR]) -> Plan:
    """What to do with the bot PR after an optimize run on the default branch."""
    differs = improved and best != default_skill
    if differs:
        proposal = proposal_id(best)
        if open_pr is None:
            refused = next((c for c in closed if c.proposal == proposal and not c.merged), None)
            if refused:
                return Plan(
                    "none",
                    f"#{refused.number} proposed this same skill and was closed without merging; not recreating it",
                    proposal=proposal,
                    pr_number=refused.number,
                )
            return Plan("created", "an edit passed the gate", push=True, create=True, proposal=proposal)
        if open_pr.human_pushed:
            new = open_pr.proposal != proposal
            return Plan(
                "unchanged",
                f"someone else pushed to the branch of #{open_pr.number}; not force-pushing over it"
                + (", noting the new proposal in a comment" if new else ""),
                comment="human-pushed" if new else None,
                proposal=proposal,
                pr_number=open_pr.number,
            )
        if open_pr.proposal == proposal and open_pr.branch_skill == best:
            return Plan("unchanged", f"#{open_pr.number} already proposes this skill; left as it is",
                        proposal=proposal, pr_number=open_pr.number)
        return Plan("updated", f"a better skill passed the gate; #{open_pr.number} updated", push=True, edit=True,
                    proposal=proposal, pr_number=open_pr.number)
    # nothing new to propose
    if open_pr is None:
        return Plan("none", "no edit passed the gate; no pull request opened")
    if open_pr.branch_skill is not None and open_pr.branch_skill == default_skill:
        if open_pr.human_pushed:
            return Plan(
                "unchanged",
                f"#{open_pr.number} no longer changes the skill, but someone else pushed to it; leaving it open",
                pr_number=open_pr.number,
            )
        return Plan("closed", f"the default branch already has the skill #{open_pr.number} proposed", close=True,
                    pr_number=open_pr.number)
    return Plan("unchanged", f"no edit passed the gate this run; #{open_pr.number} still proposes its earlier skill",
                pr_number=open_pr.number)


# --------------------------------------------------------------------------- do


def file_at(repo, path: str, ref: str) -> str | None:
    """The text of `path` at `ref`, or None when it is missing (or a directory)."""
    try:
        content = repo.get_contents(path, ref=ref)
    except UnknownObjectException:
        return None
    if isinstance(content, list):
        return None
    return content.decoded_content.decode("utf-8")


def skill_at(repo, skill_path: str, ref: str, like: str) -> str | None:
    """The skill at `ref` as the core reads it (None when missing): the file's text, or, when the local skill
    `like` is a package, the folder packed. GitHub's contents API gives no file modes: a script keeps the
    executable bit it has in `like`."""
    if not package.is_package(like):
        return file_at(repo, skill_path, ref)
    blobs: dict[str, bytes] = {}
    root = skill_path.strip("/")
    pending = [root]
    while pending:
        try:
            listing = repo.get_contents(pending.pop(), ref=ref)
        except UnknownObjectException:
            return None
        for entry in listing if isinstance(listing, list) else []:
            if entry.type == "dir":
                pending.append(entry.path)
            elif entry.type == "file":
                blobs[entry.path[len(root) + 1:]] = entry.decoded_content
    if package.MAIN not in blobs:
        return None
    assets = package.unpack(like).assets
    return package.from_blobs(blobs, {rel: bool(a.get("executable")) for rel, a in assets.items()}, skill_path)


def find_open(repo, branch: str, skill_path: str, like: str | None = None) -> OpenPR | None:
    """The open bot PR of `branch`, with the skill on its branch (`like`: the local skill, see `skill_at`)."""
    owner = repo.full_name.split("/")[0]
    for pr in repo.get_pulls(state="open", head=f"{owner}:{branch}"):
        return OpenPR(number=pr.number, url=pr.html_url, head_sha=pr.head.sha, body=pr.body or "",
                      branch_skill=skill_at(repo, skill_path, pr.head.sha, like or ""))
    return None


def closed_from(number: int, body: str | None, merged: bool) -> ClosedPR:
    state = read_state(body)
    edits = tuple(e for e in state.get("edits") or [] if isinstance(e, dict) and isinstance(e.get("edit"), dict))
    return ClosedPR(number, state.get("proposal"), merged, edits, state.get("base_hash"), state.get("closed"))


def find_closed(repo, branch: str) -> list[ClosedPR]:
    owner = repo.full_name.split("/")[0]
    return [closed_from(pr.number, pr.body, bool(pr.merged))
            for pr in repo.get_pulls(state="closed", head=f"{owner}:{branch}")]


def closed_by(repo, number: int) -> str | None:
    """Who closed issue/PR `number` (GitHub records it on the issue, not on the pull request)."""
    user = repo.get_issue(number).closed_by
    return user.login if user is not None else None


def ref_sha(repo, branch: str) -> str | None:
    try:
        return repo.get_git_ref(f"heads/{branch}").object.sha
    except UnknownObjectException:
        return None


def restore_ref(repo, branch: str, previous: str | None) -> str:
    """Undo a push: delete the branch if this run created it, else point it back where it was."""
    ref = repo.get_git_ref(f"heads/{branch}")
    if previous is None:
        ref.delete()
        return f"deleted the branch {branch}"
    ref.edit(previous, force=True)
    return f"reset the branch {branch} to {previous[:12]}"


def push_skill(repo, *, branch: str, parent_sha: str, skill_path: str, text: str, message: str, force: bool) -> str:
    """Commit the skill `text` at `skill_path` (a package: each of its Markdown files under the folder; scripts
    are never written) on top of `parent_sha` and point `branch` at it. Returns the new commit SHA."""
    parent = repo.get_git_commit(parent_sha)
    tree = repo.create_git_tree(
        [InputGitTreeElement(path, "100644", "blob", content=body)
         for path, body in package.markdown_files(skill_path, text).items()], base_tree=parent.tree
    )
    commit = repo.create_git_commit(message, tree, [parent])
    try:
        ref = repo.get_git_ref(f"heads/{branch}")
    except UnknownObjectException:
        repo.create_git_ref(f"refs/heads/{branch}", commit.sha)
        return commit.sha
    ref.edit(commit.sha, force=force)
    return commit.sha


def add_labels(pr, labels: tuple[str, ...]) -> None:
    """POST /issues/{n}/labels with {"labels": [...]}: adds to the PR's labels, never replaces them. (PyGithub's
    add_to_labels sends a bare array, which GitHub's REST description does not allow.)"""
    have = {label.name for label in pr.labels}
    new = [x for x in labels if x not in have]
    if new:
        pr.requester.requestJsonAndCheck("POST", f"{pr.issue_url}/labels", input={"labels": new})


def request_reviewers(pr, reviewers: tuple[str, ...], author: str | None) -> list[str]:
    asked = [r for r in reviewers if r and r != author]
    if asked:
        try:
            pr.create_review_request(reviewers=asked)
        except GithubException as exc:  # e.g. a reviewer without access: the PR itself is still fine
            return [
                f"could not request reviewers {asked}: {exc.data.get('message') if isinstance(exc.data, dict) else exc}"
            ]
    return []
