"""A fake GitHub REST API on 127.0.0.1 that checks every request against GitHub's OpenAPI description.

Every request is matched to an operation of tests/data/github-openapi-subset.json.gz (a subset of
@octokit/openapi's api.github.com.json; see tests/data/make_openapi_subset.py). Path parameters,
query parameters and JSON bodies are validated with jsonschema. An unknown operation, a bad
parameter or an invalid body gets a 4xx answer AND is recorded in `server.violations`; tests assert
that list stays empty.

The server keeps enough state to assert what the bot did: repositories, git objects (blobs, flat
trees, commits) and refs, pull requests, issue comments (paginated like GitHub, with Link headers),
reactions, labels, requested reviewers, check runs and collaborator permissions. Responses carry the
fields PyGithub reads, with URLs pointing back at this server (under /api/v3, like GitHub Enterprise
Server, so nothing can work by accident against api.github.com).

Tokens behave like GitHub's: an installation token (the Actions GITHUB_TOKEN, or a GitHub App's) has a
permission per category (contents, pull_requests, issues, checks; "write" unless the test says otherwise,
e.g. the read-only token of a fork pull request), gets 403 "Resource not accessible by integration" for a
write it lacks, cannot read /user, and sees no `permissions` object in GET /repos/{owner}/{repo}. A user
token (a PAT) acts with the user's role in the repository and sees that role as `permissions`. A repository's
`actions_can_create_prs` is the setting "Allow GitHub Actions to create and approve pull requests": when it
is off, POST /pulls with the github-actions[bot] token answers GitHub's 403.

Run standalone (for `act`): python tests/github_server.py --port 0 --port-file F --state S.json
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as _dt
import gzip
import hashlib
import json
import re
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema

SPEC_PATH = Path(__file__).parent / "data" / "github-openapi-subset.json.gz"
PREFIX = "/api/v3"
ACTIONS_BOT = "github-actions[bot]"
ROLES = ["none", "read", "triage", "write", "maintain", "admin"]
# What GitHub gives the workflow of a pull request from a fork (and Dependabot's): read, nothing else.
READ_ONLY = {"contents": "read", "pull_requests": "read", "issues": "read", "checks": "read"}
# The permission category each write needs (GitHub's "Permissions required for GitHub Apps"); comments,
# reactions and labels on a pull request accept either issues or pull_requests write.
WRITES = {
    "git/create-ref": ("contents",), "git/update-ref": ("contents",), "git/delete-ref": ("contents",),
    "git/create-commit": ("contents",), "git/create-tree": ("contents",),
    "pulls/create": ("pull_requests",), "pulls/update": ("pull_requests",), "pulls/request-reviewers": ("pull_requests",),
    "issues/create-comment": ("issues", "pull_requests"), "issues/update-comment": ("issues", "pull_requests"),
    "reactions/create-for-issue-comment": ("issues", "pull_requests"), "issues/add-labels": ("issues", "pull_requests"),
    "checks/create": ("checks",), "checks/update": ("checks",),
}
ACTIONS_PR_REFUSED = "GitHub Actions is not permitted to create or approve pull requests."


class ApiError(Exception):
    def __init__(self, status: int, message: str, violation: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.violation = violation


# --------------------------------------------------------------------------- OpenAPI


def _to_jsonschema(node: Any, spec: dict, stack: tuple[str, ...] = ()) -> Any:
    """Inline $refs and translate OpenAPI 3.0 `nullable` into JSON Schema."""
    if isinstance(node, list):
        return [_to_jsonschema(x, spec, stack) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref in stack:  # recursive schema: accept anything below this point
            return {}
        target = spec
        for part in ref[2:].split("/"):
            target = target[part]
        return _to_jsonschema(target, spec, stack + (ref,))
    out = {}
    for key, value in node.items():
        if key in ("example", "examples", "description", "x-github", "discriminator", "readOnly", "writeOnly", "deprecated"):
            continue
        out[key] = _to_jsonschema(value, spec, stack)
    if out.pop("nullable", False):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


class OpenAPI:
    def __init__(self, path: Path = SPEC_PATH):
        self.spec = json.loads(gzip.decompress(path.read_bytes()))
        self.routes: list[tuple[re.Pattern, str, str, dict, list[str]]] = []
        for template, item in self.spec["paths"].items():
            shared = item.get("parameters", [])
            for method, op in item.items():
                if method == "parameters":
                    continue
                params = [self._deref(p) for p in shared + op.get("parameters", [])]
                multi = {p["name"] for p in params if p["in"] == "path" and p.get("x-multi-segment")}
                names: list[str] = []

                def repl(m: re.Match, names: list[str] = names, multi: set[str] = multi) -> str:
                    names.append(m.group(1))
                    return "(.+)" if m.group(1) in multi else "([^/]+)"

                pattern = re.compile("^" + re.sub(r"\{([^}]+)\}", repl, template) + "$")
                self.routes.append((pattern, method.upper(), template, {**op, "_params": params}, names))
        # literal segments win over parameters (GitHub routes /git/refs before /git/{x})
        self.routes.sort(key=lambda r: (r[2].count("{"), -len(r[2])))

    def _deref(self, node: dict) -> dict:
        while "$ref" in node:
            target = self.spec
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            node = target
        return node

    def match(self, method: str, path: str) -> tuple[str, dict, dict[str, str]]:
        allowed = False
        for pattern, m, template, op, names in self.routes:
            found = pattern.match(path)
            if not found:
                continue
            if m != method:
                allowed = True
                continue
            values = {n: urllib.parse.unquote(v) for n, v in zip(names, found.groups(), strict=True)}
            return template, op, values
        if allowed:
            raise ApiError(405, f"{method} {path}: method not in GitHub's REST description", violation=True)
        raise ApiError(404, f"{method} {path}: no such operation in GitHub's REST description", violation=True)

    def validate(self, op: dict, path_values: dict[str, str], query: dict[str, list[str]], body: Any, has_body: bool) -> None:
        problems: list[str] = []
        declared = {p["name"]: p for p in op["_params"]}
        for name, value in path_values.items():
            problems += self._check_param(declared[name], value)
        for name, values in query.items():
            p = declared.get(name)
            if p is None or p["in"] != "query":
                problems.append(f"query parameter {name!r} is not defined for {op.get('operationId')}")
                continue
            for v in values:
                problems += self._check_param(p, v)
        for p in declared.values():
            if p["in"] == "query" and p.get("required") and p["name"] not in query:
                problems.append(f"required query parameter {p['name']!r} missing")
        rb = op.get("requestBody")
        if has_body:
            if rb is None:
                problems.append(f"{op.get('operationId')} takes no request body")
            else:
                schema = _to_jsonschema(rb["content"]["application/json"]["schema"], self.spec)
                for err in jsonschema.Draft7Validator(schema).iter_errors(body):
                    where = "".join(f"[{x!r}]" for x in err.absolute_path)
                    problems.append(f"body{where}: violates {err.validator}={str(err.validator_value)[:80]}: {err.message[:200]}")
                if isinstance(body, dict) and isinstance(schema.get("properties"), dict):
                    for key in body:
                        if key not in schema["properties"]:
                            problems.append(f"body field {key!r} is not defined for {op.get('operationId')}")
        elif rb is not None and rb.get("required"):
            problems.append(f"{op.get('operationId')} requires a JSON body")
        if problems:
            raise ApiError(422, "; ".join(problems), violation=True)

    def _check_param(self, p: dict, raw: str) -> list[str]:
        schema = _to_jsonschema(p.get("schema", {}), self.spec)
        value: Any = raw
        kind = schema.get("type")
        try:
            if kind == "integer":
                value = int(raw)
            elif kind == "number":
                value = float(raw)
            elif kind == "boolean":
                if raw not in ("true", "false"):
                    return [f"parameter {p['name']!r}: {raw!r} is not a boolean"]
                value = raw == "true"
        except ValueError:
            return [f"parameter {p['name']!r}: {raw!r} is not {kind}"]
        return [f"parameter {p['name']!r}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(value)]


# --------------------------------------------------------------------------- state


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, full_name: str, default_branch: str = "main", repo_id: int = 1):
        self.full_name = full_name
        self.owner, self.name = full_name.split("/")
        self.default_branch = default_branch
        self.id = repo_id
        self.refs: dict[str, str] = {}  # "refs/heads/main" -> commit sha
        self.blobs: dict[str, bytes] = {}
        self.trees: dict[str, dict[str, str]] = {}  # tree sha -> {path: blob sha}
        self.commits: dict[str, dict] = {}
        self.permissions: dict[str, str] = {}  # login -> admin|maintain|write|triage|read|none
        self.actions_can_create_prs = True  # Settings -> Actions -> General -> Workflow permissions


class FakeGitHub:
    def __init__(self, spec_path: Path = SPEC_PATH):
        self.api = OpenAPI(spec_path)
        self.lock = threading.RLock()
        self.repos: dict[str, Repo] = {}
        self.tokens: dict[str, dict] = {}  # token -> {"login", "type", "installation": bool}
        self.users: dict[str, dict] = {}
        self.pulls: dict[tuple[str, int], dict] = {}
        self.issue_counter: dict[str, int] = {}
        self.comments: dict[int, dict] = {}
        self.check_runs: dict[int, dict] = {}
        self.requests: list[dict] = []
        self.violations: list[str] = []
        self._ids = 1000
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.base = ""

    # ---- lifecycle
    def start(self, port: int = 0) -> str:
        server = self

        class Handler(_Handler):
            fake = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.host = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.base = self.host + PREFIX
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self.base

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    def next_id(self) -> int:
        with self.lock:
            self._ids += 1
            return self._ids

    # ---- seeding
    def add_user(self, login: str, type_: str = "User") -> dict:
        user = {"login": login, "id": len(self.users) + 100, "type": type_}
        self.users[login] = user
        return user

    def add_token(self, token: str, login: str, installation: bool = False, permissions: dict[str, str] | None = None) -> None:
        """`permissions` (installation tokens): {"contents"|"pull_requests"|"issues"|"checks": "read"|"write"};
        categories not given are "write". READ_ONLY is what GitHub gives a fork pull request's workflow."""
        if login not in self.users:
            self.add_user(login, "Bot" if login.endswith("[bot]") else "User")
        self.tokens[token] = {"login": login, "installation": installation, "permissions": dict(permissions or {})}

    def add_repo(self, full_name: str, default_branch: str = "main") -> Repo:
        repo = Repo(full_name, default_branch, repo_id=len(self.repos) + 1)
        self.repos[full_name] = repo
        self.issue_counter[full_name] = 0
        for login in (repo.owner,):
            if login not in self.users:
                self.add_user(login)
        return repo

    def put_tree(self, repo: Repo, files: dict[str, bytes]) -> str:
        entries = {}
        for path, data in files.items():
            sha = git_blob_sha(data)
            repo.blobs[sha] = data
            entries[path] = sha
        canon = json.dumps(sorted(entries.items())).encode()
        tree_sha = hashlib.sha1(b"tree " + canon).hexdigest()
        repo.trees[tree_sha] = entries
        return tree_sha

    def put_commit(self, repo: Repo, files: dict[str, bytes], parents: list[str], message: str = "commit",
                   author: str = "octocat", sha: str | None = None) -> str:
        tree = self.put_tree(repo, files)
        if sha is None:
            sha = hashlib.sha1(json.dumps([tree, parents, message, author, self.next_id()]).encode()).hexdigest()
        repo.commits[sha] = {"tree": tree, "parents": list(parents), "message": message, "author": author, "date": _now()}
        return sha

    def import_git(self, repo: Repo, workdir: str | Path, rev: str) -> str:
        """Copy commit `rev` of a local git repository (its files, with its real SHA) into `repo`."""
        sha = subprocess.run(["git", "-C", str(workdir), "rev-parse", rev], check=True, capture_output=True, text=True).stdout.strip()
        if sha in repo.commits:
            return sha
        names = subprocess.run(["git", "-C", str(workdir), "ls-tree", "-r", "-z", "--name-only", sha],
                               check=True, capture_output=True).stdout.decode().split("\0")
        files = {}
        for name in filter(None, names):
            files[name] = subprocess.run(["git", "-C", str(workdir), "show", f"{sha}:{name}"], check=True, capture_output=True).stdout
        parents = subprocess.run(["git", "-C", str(workdir), "rev-list", "--parents", "-n1", sha], check=True,
                                 capture_output=True, text=True).stdout.split()[1:]
        msg = subprocess.run(["git", "-C", str(workdir), "log", "-1", "--format=%s", sha], check=True, capture_output=True, text=True).stdout.strip()
        return self.put_commit(repo, files, [p for p in parents if p in repo.commits], msg, sha=sha)

    def files_at(self, repo: Repo, ref_or_sha: str) -> dict[str, bytes]:
        sha = repo.refs.get(f"refs/heads/{ref_or_sha}", ref_or_sha)
        commit = repo.commits[sha]
        return {p: repo.blobs[b] for p, b in repo.trees[commit["tree"]].items()}

    def add_pull(self, repo: Repo, *, head_ref: str, head_sha: str, base_ref: str, title: str, body: str = "",
                 user: str = "octocat", head_repo: str | None = None, draft: bool = False) -> dict:
        with self.lock:
            self.issue_counter[repo.full_name] += 1
            number = self.issue_counter[repo.full_name]
            pr = {"number": number, "id": self.next_id(), "title": title, "body": body, "state": "open", "merged": False,
                  "head_ref": head_ref, "head_sha": head_sha, "head_repo": head_repo or repo.full_name, "base_ref": base_ref,
                  "user": user, "labels": [], "requested_reviewers": [], "created_at": _now(), "updated_at": _now(),
                  "closed_by": None, "draft": draft}
            self.pulls[(repo.full_name, number)] = pr
            return pr

    def add_comment(self, repo: Repo, issue_number: int, body: str, user: str) -> dict:
        with self.lock:
            cid = self.next_id()
            c = {"id": cid, "issue_number": issue_number, "repo": repo.full_name, "body": body, "user": user,
                 "created_at": _now(), "updated_at": _now(), "reactions": []}
            self.comments[cid] = c
            return c

    def close_pull(self, repo: Repo, number: int, by: str) -> dict:
        """A person closes a pull request without merging it (in the web UI)."""
        with self.lock:
            pr = self.pulls[(repo.full_name, number)]
            pr["state"], pr["closed_at"], pr["closed_by"], pr["updated_at"] = "closed", _now(), by, _now()
            return pr

    # ---- queries for tests
    def pulls_of(self, full_name: str) -> list[dict]:
        return [p for (r, _), p in sorted(self.pulls.items()) if r == full_name]

    def comments_on(self, full_name: str, number: int) -> list[dict]:
        return [c for c in sorted(self.comments.values(), key=lambda c: c["id"]) if c["repo"] == full_name and c["issue_number"] == number]

    def checks_on(self, full_name: str, sha: str) -> list[dict]:
        return [c for c in sorted(self.check_runs.values(), key=lambda c: c["id"]) if c["repo"] == full_name and c["head_sha"] == sha]

    # ---- JSON shapes
    def user_json(self, login: str) -> dict:
        u = self.users.get(login) or self.add_user(login, "Bot" if login.endswith("[bot]") else "User")
        return {"login": login, "id": u["id"], "node_id": f"U_{u['id']}", "type": u["type"], "site_admin": False,
                "url": f"{self.base}/users/{urllib.parse.quote(login)}", "html_url": f"{self.host}/{login}",
                "avatar_url": f"{self.host}/avatars/{u['id']}"}

    def repo_json(self, repo: Repo, who: dict | None = None) -> dict:
        j = {"id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name, "full_name": repo.full_name,
             "owner": self.user_json(repo.owner), "private": False, "fork": False,
             "default_branch": repo.default_branch, "url": f"{self.base}/repos/{repo.full_name}",
             "html_url": f"{self.host}/{repo.full_name}", "clone_url": f"{self.host}/{repo.full_name}.git"}
        if who is not None and not who["installation"]:  # GitHub shows `permissions` to user tokens only
            rank = ROLES.index(self.role_of(repo, who["login"]))
            j["permissions"] = {name: rank >= ROLES.index(role) for name, role in
                                (("admin", "admin"), ("maintain", "maintain"), ("push", "write"), ("triage", "triage"), ("pull", "read"))}
        return j

    def role_of(self, repo: Repo, login: str) -> str:
        if login == repo.owner:
            return "admin"
        return repo.permissions.get(login, "read")

    def pull_json(self, repo: Repo, pr: dict) -> dict:
        url = f"{self.base}/repos/{repo.full_name}"
        head_repo = self.repos.get(pr["head_repo"]) or Repo(pr["head_repo"], repo_id=999)
        base_sha = repo.refs.get(f"refs/heads/{pr['base_ref']}", "")
        return {"id": pr["id"], "node_id": f"PR_{pr['id']}", "number": pr["number"], "state": pr["state"],
                "title": pr["title"], "body": pr["body"], "user": self.user_json(pr["user"]),
                "url": f"{url}/pulls/{pr['number']}", "html_url": f"{self.host}/{repo.full_name}/pull/{pr['number']}",
                "issue_url": f"{url}/issues/{pr['number']}", "comments_url": f"{url}/issues/{pr['number']}/comments",
                "labels": [{"id": i + 1, "name": n, "color": "ededed", "default": False, "url": f"{url}/labels/{n}"} for i, n in enumerate(pr["labels"])],
                "requested_reviewers": [self.user_json(r) for r in pr["requested_reviewers"]],
                "merged": pr["merged"], "draft": pr.get("draft", False), "created_at": pr["created_at"], "updated_at": pr["updated_at"],
                "closed_at": pr.get("closed_at"), "merged_at": None,
                "head": {"ref": pr["head_ref"], "sha": pr["head_sha"], "label": f"{head_repo.owner}:{pr['head_ref']}",
                         "repo": self.repo_json(head_repo), "user": self.user_json(head_repo.owner)},
                "base": {"ref": pr["base_ref"], "sha": base_sha, "label": f"{repo.owner}:{pr['base_ref']}",
                         "repo": self.repo_json(repo), "user": self.user_json(repo.owner)}}

    def issue_json(self, repo: Repo, pr: dict) -> dict:
        j = self.pull_json(repo, pr)
        return {k: j[k] for k in ("id", "node_id", "number", "state", "title", "body", "user", "labels", "created_at", "updated_at", "closed_at")} | {
            "closed_by": self.user_json(pr["closed_by"]) if pr.get("closed_by") else None,
            "url": j["issue_url"], "html_url": j["html_url"], "comments_url": j["comments_url"], "comments": len(self.comments_on(repo.full_name, pr["number"])),
            "pull_request": {"url": j["url"], "html_url": j["html_url"]}, "locked": False, "assignees": []}

    def comment_json(self, c: dict) -> dict:
        url = f"{self.base}/repos/{c['repo']}"
        return {"id": c["id"], "node_id": f"IC_{c['id']}", "body": c["body"], "user": self.user_json(c["user"]),
                "url": f"{url}/issues/comments/{c['id']}", "html_url": f"{self.host}/{c['repo']}/pull/{c['issue_number']}#issuecomment-{c['id']}",
                "issue_url": f"{url}/issues/{c['issue_number']}", "created_at": c["created_at"], "updated_at": c["updated_at"],
                "author_association": "MEMBER"}

    def check_json(self, c: dict) -> dict:
        url = f"{self.base}/repos/{c['repo']}"
        return {"id": c["id"], "node_id": f"CR_{c['id']}", "name": c["name"], "head_sha": c["head_sha"], "status": c["status"],
                "conclusion": c.get("conclusion"), "started_at": c["started_at"], "completed_at": c.get("completed_at"),
                "external_id": c.get("external_id", ""), "details_url": c.get("details_url"),
                "url": f"{url}/check-runs/{c['id']}", "html_url": f"{self.host}/{c['repo']}/runs/{c['id']}",
                "output": {"title": c["output"].get("title"), "summary": c["output"].get("summary"), "text": c["output"].get("text"),
                           "annotations_count": 0, "annotations_url": f"{url}/check-runs/{c['id']}/annotations"},
                "app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"}, "pull_requests": []}

    def git_commit_json(self, repo: Repo, sha: str) -> dict:
        c = repo.commits[sha]
        url = f"{self.base}/repos/{repo.full_name}/git"
        who = {"name": c["author"], "email": f"{c['author']}@users.noreply.github.com", "date": c["date"]}
        return {"sha": sha, "node_id": f"C_{sha}", "url": f"{url}/commits/{sha}", "html_url": f"{self.host}/{repo.full_name}/commit/{sha}",
                "message": c["message"], "author": who, "committer": who,
                "tree": {"sha": c["tree"], "url": f"{url}/trees/{c['tree']}"},
                "parents": [{"sha": p, "url": f"{url}/commits/{p}", "html_url": f"{self.host}/{repo.full_name}/commit/{p}"} for p in c["parents"]],
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None, "verified_at": None}}

    def ref_json(self, repo: Repo, ref: str) -> dict:
        sha = repo.refs[ref]
        url = f"{self.base}/repos/{repo.full_name}/git"
        return {"ref": ref, "node_id": f"REF_{ref}", "url": f"{url}/{ref}", "object": {"sha": sha, "type": "commit", "url": f"{url}/commits/{sha}"}}

    # ---- dispatch
    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes) -> tuple[int, Any, dict[str, str]]:
        parsed = urllib.parse.urlsplit(raw_path)
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        record = {"method": method, "path": parsed.path, "query": query, "body": None}
        with self.lock:
            self.requests.append(record)
        try:
            if not parsed.path.startswith(PREFIX + "/"):
                raise ApiError(404, f"{parsed.path}: outside the API prefix {PREFIX}", violation=True)
            path = parsed.path[len(PREFIX):]
            template, op, values = self.api.match(method, path)
            record["operation"] = op.get("operationId")
            body = None
            has_body = bool(raw_body.strip())
            if has_body:
                try:
                    body = json.loads(raw_body)
                except ValueError as e:
                    raise ApiError(400, f"body is not JSON: {e}", violation=True) from e
                record["body"] = body
            self.api.validate(op, values, query, body, has_body)
            auth = headers.get("authorization", "")
            token = auth.split(" ", 1)[1] if " " in auth else ""
            who = self.tokens.get(token)
            if who is None:
                raise ApiError(401, "Bad credentials")
            with self.lock:
                return self.route(op["operationId"], values, query, body, who)
        except ApiError as e:
            if e.violation:
                with self.lock:
                    self.violations.append(f"{method} {raw_path}: {e.message}")
            return e.status, {"message": e.message, "documentation_url": "https://docs.github.com/rest"}, {}

    def _repo(self, v: dict) -> Repo:
        repo = self.repos.get(f"{v['owner']}/{v['repo']}")
        if repo is None:
            raise ApiError(404, "Not Found")
        return repo

    def _pull(self, repo: Repo, number: Any) -> dict:
        pr = self.pulls.get((repo.full_name, int(number)))
        if pr is None:
            raise ApiError(404, "Not Found")
        return pr

    def _comment(self, repo: Repo, cid: Any) -> dict:
        c = self.comments.get(int(cid))
        if c is None or c["repo"] != repo.full_name:
            raise ApiError(404, "Not Found")
        return c

    def _authorize(self, op_id: str, repo: Repo, who: dict) -> None:
        need = WRITES.get(op_id)
        if need is None:
            return
        if who["installation"]:
            if not any(who["permissions"].get(cat, "write") == "write" for cat in need):
                raise ApiError(403, "Resource not accessible by integration")
        elif op_id.startswith("checks/"):  # the Checks API is for GitHub Apps only
            raise ApiError(403, "You must authenticate via a GitHub App.")
        elif op_id not in ("issues/create-comment", "reactions/create-for-issue-comment"):  # anyone may comment
            if ROLES.index(self.role_of(repo, who["login"])) < ROLES.index("write"):
                raise ApiError(403, "Must have push access to repository")

    def route(self, op_id: str, v: dict, q: dict, body: Any, who: dict) -> tuple[int, Any, dict[str, str]]:
        login = who["login"]
        if op_id == "users/get-authenticated":
            if who["installation"]:
                raise ApiError(403, "Resource not accessible by integration")
            return 200, self.user_json(login), {}
        repo = self._repo(v)
        self._authorize(op_id, repo, who)
        base = f"{self.base}/repos/{repo.full_name}"
        if op_id == "repos/get":
            return 200, self.repo_json(repo, who), {}
        if op_id == "repos/get-content":
            ref = q.get("ref", [repo.default_branch])[0]
            sha = repo.refs.get(f"refs/heads/{ref}", ref)
            if sha not in repo.commits:
                raise ApiError(404, f"No commit found for the ref {ref}")
            entries = repo.trees[repo.commits[sha]["tree"]]
            path = v["path"].strip("/")
            if path not in entries:
                raise ApiError(404, "Not Found")
            data = repo.blobs[entries[path]]
            return 200, {"type": "file", "encoding": "base64", "size": len(data), "name": path.rsplit("/", 1)[-1], "path": path,
                         "content": base64.b64encode(data).decode(), "sha": entries[path],
                         "url": f"{base}/contents/{path}?ref={ref}", "git_url": f"{base}/git/blobs/{entries[path]}",
                         "html_url": f"{self.host}/{repo.full_name}/blob/{ref}/{path}", "download_url": None,
                         "_links": {"self": f"{base}/contents/{path}", "git": None, "html": None}}, {}
        if op_id == "git/get-ref":
            ref = "refs/" + v["ref"]
            if ref not in repo.refs:
                raise ApiError(404, "Not Found")
            return 200, self.ref_json(repo, ref), {}
        if op_id == "git/create-ref":
            ref, sha = body["ref"], body["sha"]
            if not ref.startswith("refs/") or ref.count("/") < 2:
                raise ApiError(422, "Reference name is invalid")
            if ref in repo.refs:
                raise ApiError(422, "Reference already exists")
            if sha not in repo.commits:
                raise ApiError(422, "Object does not exist")
            repo.refs[ref] = sha
            return 201, self.ref_json(repo, ref), {}
        if op_id == "git/update-ref":
            ref = "refs/" + v["ref"]
            if ref not in repo.refs:
                raise ApiError(422, "Reference does not exist")
            sha = body["sha"]
            if sha not in repo.commits:
                raise ApiError(422, "Object does not exist")
            if not body.get("force") and not self._is_ancestor(repo, repo.refs[ref], sha):
                raise ApiError(422, "Update is not a fast forward")
            repo.refs[ref] = sha
            self._sync_pull_heads(repo, ref)
            return 200, self.ref_json(repo, ref), {}
        if op_id == "git/delete-ref":
            ref = "refs/" + v["ref"]
            if ref not in repo.refs:
                raise ApiError(422, "Reference does not exist")
            if ref == f"refs/heads/{repo.default_branch}":
                raise ApiError(422, "Cannot delete the default branch")
            del repo.refs[ref]
            for pr in self.pulls_of(repo.full_name):  # GitHub closes the open pull requests of a deleted branch
                if pr["state"] == "open" and f"refs/heads/{pr['head_ref']}" == ref and pr["head_repo"] == repo.full_name:
                    pr["state"], pr["closed_at"], pr["closed_by"] = "closed", _now(), login
            return 204, None, {}
        if op_id == "git/get-commit":
            if v["commit_sha"] not in repo.commits:
                raise ApiError(404, "Not Found")
            return 200, self.git_commit_json(repo, v["commit_sha"]), {}
        if op_id == "repos/get-commit":
            sha = repo.refs.get(f"refs/heads/{v['ref']}", v["ref"])
            if sha not in repo.commits:
                raise ApiError(422, f"No commit found for SHA: {v['ref']}")
            g = self.git_commit_json(repo, sha)
            author = repo.commits[sha]["author"]  # GitHub links the commit to an account when it knows the author
            account = self.user_json(author) if author in self.users else None
            return 200, {"sha": sha, "node_id": g["node_id"], "url": f"{base}/commits/{sha}", "html_url": g["html_url"],
                         "commit": g, "parents": g["parents"], "files": [], "author": account, "committer": account}, {}
        if op_id == "git/create-tree":
            entries = dict(repo.trees[body["base_tree"]]) if body.get("base_tree") else {}
            if body.get("base_tree") and body["base_tree"] not in repo.trees:
                raise ApiError(422, "base_tree does not exist")
            files = {p: repo.blobs[s] for p, s in entries.items()}
            for e in body["tree"]:
                if e.get("sha", "") is None:
                    files.pop(e["path"], None)
                elif "content" in e:
                    files[e["path"]] = e["content"].encode()
                elif e.get("sha") in repo.blobs:
                    files[e["path"]] = repo.blobs[e["sha"]]
                else:
                    raise ApiError(422, f"tree entry {e['path']}: needs content or an existing blob sha")
            tree = self.put_tree(repo, files)
            return 201, {"sha": tree, "url": f"{base}/git/trees/{tree}", "truncated": False,
                         "tree": [{"path": p, "mode": "100644", "type": "blob", "sha": s, "size": len(repo.blobs[s]), "url": f"{base}/git/blobs/{s}"}
                                  for p, s in sorted(repo.trees[tree].items())]}, {}
        if op_id == "git/create-commit":
            if body["tree"] not in repo.trees:
                raise ApiError(422, "Tree SHA does not exist")
            for p in body.get("parents", []):
                if p not in repo.commits:
                    raise ApiError(422, "Parent SHA does not exist or is not a commit object")
            sha = hashlib.sha1(json.dumps([body, self.next_id()]).encode()).hexdigest()
            repo.commits[sha] = {"tree": body["tree"], "parents": list(body.get("parents", [])), "message": body["message"],
                                 "author": (body.get("author") or {}).get("name", login), "date": _now()}
            return 201, self.git_commit_json(repo, sha), {}
        if op_id == "pulls/list":
            state = q.get("state", ["open"])[0]
            head = q.get("head", [None])[0]
            out = []
            for pr in self.pulls_of(repo.full_name):
                if state != "all" and pr["state"] != state:
                    continue
                if head:
                    owner, _, ref = head.partition(":")
                    if pr["head_ref"] != ref or pr["head_repo"].split("/")[0] != owner:
                        continue
                if "base" in q and pr["base_ref"] != q["base"][0]:
                    continue
                out.append(self.pull_json(repo, pr))
            return self._page(out, q, f"{base}/pulls")
        if op_id == "pulls/create":
            if login == ACTIONS_BOT and who["installation"] and not repo.actions_can_create_prs:
                raise ApiError(403, ACTIONS_PR_REFUSED)
            head = body["head"].split(":")[-1]
            if f"refs/heads/{head}" not in repo.refs:
                raise ApiError(422, "Validation Failed: head does not exist")
            for pr in self.pulls_of(repo.full_name):
                if pr["state"] == "open" and pr["head_ref"] == head and pr["head_repo"] == repo.full_name:
                    raise ApiError(422, f"A pull request already exists for {repo.owner}:{head}.")
            pr = self.add_pull(repo, head_ref=head, head_sha=repo.refs[f"refs/heads/{head}"], base_ref=body["base"],
                               title=body["title"], body=body.get("body", ""), user=login)
            return 201, self.pull_json(repo, pr), {}
        if op_id == "pulls/get":
            return 200, self.pull_json(repo, self._pull(repo, v["pull_number"])), {}
        if op_id == "pulls/update":
            pr = self._pull(repo, v["pull_number"])
            for key in ("title", "body"):
                if key in body:
                    pr[key] = body[key]
            if body.get("state") == "closed" and pr["state"] == "open":
                pr["state"], pr["closed_at"], pr["closed_by"] = "closed", _now(), login
            elif body.get("state") == "open" and pr["state"] == "closed":
                pr["state"], pr["closed_at"], pr["closed_by"] = "open", None, None
                pr["reopened_by"] = login
            pr["updated_at"] = _now()
            return 200, self.pull_json(repo, pr), {}
        if op_id == "pulls/request-reviewers":
            pr = self._pull(repo, v["pull_number"])
            for r in body.get("reviewers", []):
                if r == pr["user"]:
                    raise ApiError(422, "Review cannot be requested from pull request author.")
                if r not in pr["requested_reviewers"]:
                    pr["requested_reviewers"].append(r)
            return 201, self.pull_json(repo, pr), {}
        if op_id == "issues/get":
            return 200, self.issue_json(repo, self._pull(repo, v["issue_number"])), {}
        if op_id == "issues/add-labels":
            pr = self._pull(repo, v["issue_number"])
            for label in body["labels"]:
                name = label if isinstance(label, str) else label["name"]
                if name not in pr["labels"]:
                    pr["labels"].append(name)
            return 200, self.pull_json(repo, pr)["labels"], {}
        if op_id == "issues/list-comments":
            self._pull(repo, v["issue_number"])
            items = [self.comment_json(c) for c in self.comments_on(repo.full_name, int(v["issue_number"]))]
            return self._page(items, q, f"{base}/issues/{v['issue_number']}/comments")
        if op_id == "issues/create-comment":
            self._pull(repo, v["issue_number"])
            return 201, self.comment_json(self.add_comment(repo, int(v["issue_number"]), body["body"], login)), {}
        if op_id == "issues/get-comment":
            return 200, self.comment_json(self._comment(repo, v["comment_id"])), {}
        if op_id == "issues/update-comment":
            c = self._comment(repo, v["comment_id"])
            if c["user"] != login:
                raise ApiError(403, "You can only edit your own comments")
            c["body"], c["updated_at"] = body["body"], _now()
            return 200, self.comment_json(c), {}
        if op_id == "reactions/create-for-issue-comment":
            c = self._comment(repo, v["comment_id"])
            for r in c["reactions"]:
                if r["content"] == body["content"] and r["user"] == login:
                    return 200, self._reaction_json(r), {}
            r = {"id": self.next_id(), "content": body["content"], "user": login, "created_at": _now()}
            c["reactions"].append(r)
            return 201, self._reaction_json(r), {}
        if op_id == "repos/get-collaborator-permission-level":
            perm = repo.permissions.get(v["username"])
            if perm is None:  # on a public repository every account can read
                if v["username"] not in self.users:
                    raise ApiError(404, f"{v['username']} is not a user")
                perm = "read"
            legacy = {"maintain": "write", "triage": "read"}.get(perm, perm)
            return 200, {"permission": legacy, "role_name": perm, "user": self.user_json(v["username"])}, {}
        if op_id == "checks/create":
            if body["head_sha"] not in repo.commits:
                raise ApiError(422, "No commit found for SHA")
            c = {"id": self.next_id(), "repo": repo.full_name, "name": body["name"], "head_sha": body["head_sha"],
                 "status": body.get("status", "queued"), "conclusion": body.get("conclusion"), "started_at": body.get("started_at", _now()),
                 "completed_at": body.get("completed_at"), "details_url": body.get("details_url"), "external_id": body.get("external_id", ""),
                 "output": body.get("output", {}), "app": login}
            if c["conclusion"]:
                c["status"] = "completed"
            self._check_output(body)
            self.check_runs[c["id"]] = c
            return 201, self.check_json(c), {}
        if op_id == "checks/update":
            c = self.check_runs.get(int(v["check_run_id"]))
            if c is None or c["repo"] != repo.full_name:
                raise ApiError(404, "Not Found")
            self._check_output(body)
            for key in ("name", "status", "conclusion", "details_url", "external_id", "completed_at"):
                if key in body:
                    c[key] = body[key]
            if body.get("conclusion"):
                c["status"] = "completed"
                c.setdefault("completed_at", _now())
                c["completed_at"] = c["completed_at"] or _now()
            if "output" in body:
                c["output"] = body["output"]
            return 200, self.check_json(c), {}
        if op_id == "checks/list-for-ref":
            sha = repo.refs.get(f"refs/heads/{v['ref']}", v["ref"])
            runs = [self.check_json(c) for c in self.checks_on(repo.full_name, sha)
                    if "check_name" not in q or c["name"] == q["check_name"][0]]
            status, page, headers = self._page(runs, q, f"{base}/commits/{v['ref']}/check-runs")
            return status, {"total_count": len(runs), "check_runs": page}, headers
        raise ApiError(501, f"fake GitHub does not implement {op_id}")

    def _check_output(self, body: dict) -> None:
        out = body.get("output") or {}
        for key in ("summary", "text"):
            if len(out.get(key) or "") > 65535:
                raise ApiError(422, f"output.{key} is longer than 65535 characters", violation=True)

    def _reaction_json(self, r: dict) -> dict:
        return {"id": r["id"], "node_id": f"RE_{r['id']}", "content": r["content"], "user": self.user_json(r["user"]), "created_at": r["created_at"]}

    def _page(self, items: list, q: dict, url: str) -> tuple[int, list, dict[str, str]]:
        per_page = int(q.get("per_page", ["30"])[0])
        page = int(q.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        links = []
        keep = {k: v[0] for k, v in q.items() if k not in ("page",)}
        if page * per_page < len(items):
            links.append(f'<{url}?{urllib.parse.urlencode({**keep, "page": page + 1})}>; rel="next"')
            last = (len(items) + per_page - 1) // per_page
            links.append(f'<{url}?{urllib.parse.urlencode({**keep, "page": last})}>; rel="last"')
        if links:
            headers["Link"] = ", ".join(links)
        return 200, chunk, headers

    def _is_ancestor(self, repo: Repo, old: str, new: str) -> bool:
        todo, seen = [new], set()
        while todo:
            sha = todo.pop()
            if sha == old:
                return True
            if sha in seen or sha not in repo.commits:
                continue
            seen.add(sha)
            todo.extend(repo.commits[sha]["parents"])
        return False

    def _sync_pull_heads(self, repo: Repo, ref: str) -> None:
        for pr in self.pulls_of(repo.full_name):
            if pr["state"] == "open" and f"refs/heads/{pr['head_ref']}" == ref and pr["head_repo"] == repo.full_name:
                pr["head_sha"] = repo.refs[ref]

    def human_push(self, repo: Repo, branch: str, files: dict[str, bytes], author: str = "octocat") -> str:
        """Simulate a person pushing a commit on top of `branch`."""
        with self.lock:
            ref = f"refs/heads/{branch}"
            files_now = self.files_at(repo, repo.refs[ref])
            sha = self.put_commit(repo, {**files_now, **files}, [repo.refs[ref]], "human edit", author=author)
            repo.refs[ref] = sha
            self._sync_pull_heads(repo, ref)
            return sha

    # ---- state dump/load (standalone mode, for act)
    def dump(self) -> dict:
        with self.lock:
            return {
                "violations": list(self.violations),
                "requests": copy.deepcopy(self.requests),
                "pulls": [dict(p, repo=r) for (r, _), p in sorted(self.pulls.items())],
                "comments": sorted(self.comments.values(), key=lambda c: c["id"]),
                "check_runs": sorted(self.check_runs.values(), key=lambda c: c["id"]),
                "refs": {name: dict(r.refs) for name, r in self.repos.items()},
                "files": {name: {ref: {p: d.decode("utf-8", "replace") for p, d in self.files_at(r, sha).items()}
                                 for ref, sha in r.refs.items()} for name, r in self.repos.items()},
            }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/__state__" and self.command == "GET":
            status, payload, headers = 200, self.fake.dump(), {}
        else:
            status, payload, headers = self.fake.handle(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
        data = b"" if status == 204 else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


def load_state(fake: FakeGitHub, state: dict) -> None:
    """Seed from JSON: {"tokens": {tok: login}, "installation_tokens": [...], "read_only_tokens": [...],
    "repos": [{"full_name", "default_branch", "git": workdir, "branches": {name: rev}, "permissions": {login: perm},
    "actions_can_create_prs": bool, "pulls": [...]}]}"""
    for token, login in state.get("tokens", {}).items():
        fake.add_token(token, login, installation=token in state.get("installation_tokens", []),
                       permissions=READ_ONLY if token in state.get("read_only_tokens", []) else None)
    for r in state.get("repos", []):
        repo = fake.add_repo(r["full_name"], r.get("default_branch", "main"))
        repo.permissions.update(r.get("permissions", {}))
        repo.actions_can_create_prs = r.get("actions_can_create_prs", True)
        for branch, rev in r.get("branches", {}).items():
            repo.refs[f"refs/heads/{branch}"] = fake.import_git(repo, r["git"], rev)
        for extra in r.get("commits", []):
            fake.import_git(repo, r["git"], extra)
        for p in r.get("pulls", []):
            fake.add_pull(repo, head_ref=p["head_ref"], head_sha=fake.import_git(repo, r["git"], p["head_rev"]),
                          base_ref=p.get("base_ref", repo.default_branch), title=p.get("title", "PR"), user=p.get("user", "octocat"),
                          head_repo=p.get("head_repo"), draft=p.get("draft", False))
        for c in r.get("comments", []):
            fake.add_comment(repo, c["issue_number"], c["body"], c["user"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--state", help="JSON seed (see load_state)")
    args = ap.parse_args(argv)
    fake = FakeGitHub()
    if args.state:
        load_state(fake, json.loads(Path(args.state).read_text()))
    fake.start(args.port)
    if args.port_file:
        Path(args.port_file).write_text(str(fake.httpd.server_address[1]))
    print(f"fake GitHub on {fake.base}", flush=True)
    try:
        fake.thread.join()
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
