"""Regenerate tests/data/github-openapi-subset.json.gz from GitHub's official REST description.

The fake GitHub in tests/github_server.py validates every request the bot makes against this
subset. It keeps only the operations the bot uses (OPERATIONS below) plus every component they
reference, so the committed file stays small.

    cd "$(mktemp -d)" && npm pack @octokit/openapi && tar xzf octokit-openapi-*.tgz
    python tests/data/make_openapi_subset.py "$PWD/package/generated/api.github.com.json"

PyGithub's Issue.add_to_labels sends a bare JSON array, which the description does not allow (it
documents only {"labels": [...]}), so the bot adds labels with POST /issues/{issue_number}/labels and
that object, sent through PyGithub's requester (a PATCH of the issue would replace the other labels).

Add an operation here (and regenerate) before the bot starts calling it; the fake server answers
unknown operations with 404 and records a violation.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

OPERATIONS = [
    ("get", "/user"),
    ("get", "/repos/{owner}/{repo}"),
    ("get", "/repos/{owner}/{repo}/contents/{path}"),
    ("get", "/repos/{owner}/{repo}/git/ref/{ref}"),
    ("post", "/repos/{owner}/{repo}/git/refs"),
    ("patch", "/repos/{owner}/{repo}/git/refs/{ref}"),
    ("delete", "/repos/{owner}/{repo}/git/refs/{ref}"),
    ("get", "/repos/{owner}/{repo}/git/commits/{commit_sha}"),
    ("post", "/repos/{owner}/{repo}/git/commits"),
    ("post", "/repos/{owner}/{repo}/git/trees"),
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("patch", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("get", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("post", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    ("post", "/repos/{owner}/{repo}/check-runs"),
    ("patch", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
]

OUT = Path(__file__).with_name("github-openapi-subset.json.gz")


def _refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _resolve(spec: dict, ref: str):
    node = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def subset(spec: dict) -> dict:
    paths: dict = {}
    for method, path in OPERATIONS:
        item = spec["paths"][path]
        paths.setdefault(path, {})[method] = item[method]
        if "parameters" in item:
            paths[path]["parameters"] = item["parameters"]
    seen: set[str] = set()
    todo: set[str] = set()
    _refs(paths, todo)
    components: dict = {}
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        target = _resolve(spec, ref)
        _, _, kind, name = ref.split("/", 3)
        components.setdefault(kind, {})[name] = target
        _refs(target, todo)
    return {
        "openapi": spec["openapi"],
        "info": {**spec["info"], "description": "Subset of GitHub's REST API description (@octokit/openapi) used by skillopt-action's tests."},
        "paths": paths,
        "components": components,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    data = json.dumps(subset(spec), sort_keys=True, separators=(",", ":")).encode()
    OUT.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"wrote {OUT} ({len(OPERATIONS)} operations, {len(data)} bytes before gzip)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
