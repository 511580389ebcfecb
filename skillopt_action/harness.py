"""Agent harness targets and workspace scorers.

A harness target runs a CLI agent once per rollout in a fresh workspace:

    <base_dir>/skillopt-ws-XXXXXXXX/        one directory per rollout (never shared)
        .skillopt-rollout                   marker: remove_workspace only deletes such directories
        prompt.txt, stdout, stderr          the prompt and what the agent printed
        last-message.txt                    (codex) the final message
        work/                               the workspace: the agent's working directory
            <fixture files>                 copied from the task's `fixture:` directory
            <skill_path>                    the candidate skill (AGENTS.md, CLAUDE.md, .claude/skills/...)
            .git/                           baseline commit of the above, so `diff_paths` sees changes

Target providers (config `target.provider`), settings under `target.options`:

  command      command: list of arguments or a bash command string (required)
               skill_path: where the skill goes in the workspace (default AGENTS.md)
               prompt_via: stdin (default) | arg | file
                 arg: a list command gets the prompt in place of a `{prompt}` item, or appended;
                      a string command gets it as "$1".
                 file: the prompt is in $SKILLOPT_PROMPT_FILE (also `{prompt_file}` in a list).
               output: text (default: all of stdout) | json:<dotted.field> (stdout, or its last
                 JSON line, parsed) | file:<path in the workspace>
               env: {NAME: value} extra environment; `${VAR}` is taken from skillopt's environment
               pass_env: [NAMES] secret-looking variables to pass through (see below)
               allow_nonzero_exit: false (default: a non-zero exit is a failed run, scored 0)
               base_dir: where rollout directories are created (default: the system temp dir)
               In list items, `{workspace}`, `{prompt_file}` and `{skill_path}` are replaced;
               the same values are in $SKILLOPT_WORKSPACE, $SKILLOPT_PROMPT_FILE, $SKILLOPT_SKILL_PATH.

  claude-code  `claude -p --output-format stream-json --verbose` in the workspace, prompt on stdin.
               install: skill (default: .claude/skills/<skill_name>/SKILL.md) | claude_md (CLAUDE.md)
               skill_name (default: the skill's front-matter `name`, else "skill"),
               skill_description (front matter added when the skill has none),
               allowed_tools (default ["Read(./**)", "Edit(./**)", "Write(./**)", Skill]: file tools inside
               the workspace only; a bare `Write` would allow writes anywhere), disallowed_tools,
               permission_mode (default: not passed, so nothing outside allowed_tools runs),
               max_turns, config_dir (CLAUDE_CONFIG_DIR), extra_args, binary, env, pass_env, base_dir.
               `model` -> --model; `base_url` -> ANTHROPIC_BASE_URL; the key named by
               `api_key_env` (default ANTHROPIC_API_KEY) -> ANTHROPIC_API_KEY.

  codex        `codex exec --skip-git-repo-check --sandbox workspace-write -C <ws> --json -o <file>`,
               prompt on stdin.
               install: agents_md (default: AGENTS.md) | skill (.agents/skills/<skill_name>/SKILL.md)
               sandbox (default workspace-write, with /tmp and $TMPDIR excluded so commands can
               write only inside the workspace), codex_home (CODEX_HOME; default: generated under
               ~/.cache/skillopt/codex-home/ when `base_url` is set, else the user's own),
               wire_api (default responses), extra_args, binary, env, pass_env, base_dir, skill_name.
               `model` -> -m; `base_url` -> a generated model provider whose env_key is `api_key_env`
               (default OPENAI_API_KEY).

The agent's environment is skillopt's minus variables whose names look secret (KEY, TOKEN,
SECRET, PASSWORD, PASSWD, CREDENTIAL) — except the one named by `api_key_env` and those in
`pass_env` — plus `env`. Key values never reach fingerprints, transcripts or logs.

A rollout that runs past `target.timeout` seconds has its whole process group killed and comes
back as a failed run ("timed out after Ns"), which scores 0 with that feedback; the run goes on.

Workspace scorers (they read `completion.workspace`; paths are relative to it and may not leave it):

  workspace_command  run (bash, in the workspace), timeout, score_from: exit_code | stdout, pass_env
  file_exists        path
  file_contains      path, value (text or list: score = fraction found), case_sensitive: false
  file_matches       path, pattern, flags (i, m, s)
  diff_paths         allowed: [globs]. Every path changed, added or deleted since the baseline commit
                     (git diff + untracked files, .gitignore respected), and anything the agent left
                     next to the workspace, must match one of the globs (`*` stays within a directory,
                     `**` crosses directories, a trailing `/` means everything below). The installed
                     skill file is ignored. Otherwise 0, with the offending paths in the feedback.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .scorers import (CommandScorer, ScoreResult, _bool, _check_keys, _clip, kill_process_group, scrubbed_env,
                      wait_process_group, _q, _read_tail, _regex_flags, _rmtree, _tail, _texts, _validate_command,
                      _validate_regex, register_scorer)
from .targets import Completion, Usage, register_target

if TYPE_CHECKING:  # pragma: no cover
    from .tasks import Task

log = logging.getLogger(__name__)

PRESET_VERSION = 1  # bump when a preset's command line or parsing changes what a rollout produces
MARKER = ".skillopt-rollout"
WORK = "work"
GIT_AUTHOR = ("skillopt", "skillopt@localhost")
TRANSCRIPT_ITEM_CHARS = 4000  # per transcript entry (head and tail kept)
TRANSCRIPT_MAX_ITEMS = 200
STREAM_MAX_CHARS = 16000  # stdout/stderr kept in a transcript

COMMON_OPTIONS = {"env", "pass_env", "base_dir", "binary", "extra_args", "skill_path"}
COMMAND_OPTIONS = COMMON_OPTIONS | {"command", "prompt_via", "output", "allow_nonzero_exit"}
CLAUDE_OPTIONS = COMMON_OPTIONS | {"install", "skill_name", "skill_description", "allowed_tools", "disallowed_tools",
                                   "permission_mode", "max_turns", "config_dir", "output_format"}
CODEX_OPTIONS = COMMON_OPTIONS | {"install", "skill_name", "sandbox", "codex_home", "wire_api"}
# Path-scoped to the working directory: a bare `Write` would let the agent write anywhere on disk.
# Read rules also cover Claude Code's search tools (Glob, Grep) where this version offers them.
CLAUDE_DEFAULT_TOOLS = ("Read(./**)", "Edit(./**)", "Write(./**)", "Skill")
NPM_PACKAGES = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex"}


# --------------------------------------------------------------------------- small helpers

def _opt_err(settings, key: str | None, message: str, fix: str) -> ConfigError:
    opts = getattr(settings, "options", None)
    file = getattr(opts, "file", None) or getattr(settings, "file", None)
    line = None
    if key is not None and hasattr(opts, "line_of") and key in opts:
        line = opts.line_of(key)
    line = line or getattr(opts, "line", None) or getattr(settings, "line", None)
    return ConfigError(f"target {settings.provider!r}: {message}", file, line, fix)


def _clip_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def _str_list(settings, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool)
                                                for x in value):
        raise _opt_err(settings, key, f"`{key}` must be a list of texts, got {value!r}",
                       f"write e.g. `{key}: [\"--flag\", \"value\"]`")
    return [str(x) for x in value]


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: str) -> str:
    return _VAR.sub(lambda m: os.environ.get(m.group(1), ""), value)


def _safe_rel(settings_or_none, key: str, rel: Any, what: str) -> str:
    p = str(rel)
    parts = Path(p).parts
    if not p or Path(p).is_absolute() or ".." in parts or (parts and parts[0] == ".git"):
        fix = "give a path relative to the workspace, e.g. `AGENTS.md` or `.claude/skills/my-skill/SKILL.md`"
        if settings_or_none is None:
            raise ConfigError(f"{what} {p!r} must be a relative path inside the workspace", None, None, fix)
        raise _opt_err(settings_or_none, key, f"{what} {p!r} must be a relative path inside the workspace", fix)
    return Path(p).as_posix()


def _front_matter(skill: str) -> dict:
    m = re.match(r"^---\r?\n(.*?)\r?\n---\r?\n", skill, re.S)
    if not m:
        return {}
    out = {}
    for line in m.group(1).splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() and not k.startswith((" ", "\t")):
            out[k.strip()] = v.strip().strip("'\"")
    return out


def _slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return s[:64] or "skill"


def _git(ws: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_AUTHOR_NAME=GIT_AUTHOR[0],
               GIT_AUTHOR_EMAIL=GIT_AUTHOR[1], GIT_COMMITTER_NAME=GIT_AUTHOR[0], GIT_COMMITTER_EMAIL=GIT_AUTHOR[1],
               GIT_AUTHOR_DATE="2000-01-01T00:00:00Z", GIT_COMMITTER_DATE="2000-01-01T00:00:00Z")
    try:
        return subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=" + os.devnull,
                               "-c", "init.defaultBranch=main", "-c", "core.autocrlf=false", *args],
                              cwd=ws, env=env, capture_output=True, text=True, check=check, timeout=120)
    except FileNotFoundError:
        raise ConfigError("`git` was not found on PATH; agent workspaces need it for the baseline commit", None,
                          None, "install git (e.g. `apt-get install git`)") from None
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"git {' '.join(args)} failed in {ws}: {exc.stderr.strip()}") from None


_version_cache: dict[str, str] = {}


def _binary_version(path: str) -> str:
    if path not in _version_cache:
        try:
            r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            _version_cache[path] = (r.stdout.strip().splitlines() or ["unknown"])[0][:100]
        except (OSError, subprocess.TimeoutExpired) as exc:
            _version_cache[path] = f"unknown ({type(exc).__name__})"
    return _version_cache[path]


def remove_workspace(path: str | os.PathLike) -> None:
    """Delete a rollout's directory (the workspace and its prompt/output files).

    Only directories this module created (with the marker file next to the workspace) are removed;
    anything else raises ValueError rather than deleting a user's directory by mistake."""
    ws = Path(path)
    root = ws.parent if ws.name == WORK else ws
    if not (root / MARKER).is_file():
        raise ValueError(f"refusing to remove {ws}: not a skillopt rollout workspace (no {MARKER} next to it)")
    _rmtree(str(root))


# --------------------------------------------------------------------------- the command target

@dataclass
class RunResult:
    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    seconds: float


@dataclass
class Prepared:
    root: Path
    ws: Path
    skill_path: str
    baseline: str
    prompt_file: Path
    extra: dict = field(default_factory=dict)


class CommandTarget:
    """Any CLI agent, run in a fresh workspace per rollout. Presets subclass it."""

    kind = "command"
    allowed_options = COMMAND_OPTIONS
    default_skill_path = "AGENTS.md"

    def __init__(self, settings, project_root=None):
        self.settings = settings
        self.project_root = Path(project_root) if project_root else Path.cwd()
        self.options: dict = dict(settings.options or {})
        unknown = sorted(set(self.options) - self.allowed_options)
        if unknown:
            raise _opt_err(settings, unknown[0], f"unknown option {unknown[0]!r}",
                           f"allowed options for {settings.provider}: {', '.join(sorted(self.allowed_options))}")
        self.timeout = float(getattr(settings, "timeout", None) or 600.0)
        self.env_templates = self._env_option()
        self.pass_env = _str_list(settings, "pass_env", self.options.get("pass_env", []))
        self.key_env = getattr(settings, "api_key_env", None)
        base = self.options.get("base_dir")
        self.base_dir = Path(_expand(str(base))).expanduser() if base else None
        if self.base_dir is not None and not self.base_dir.is_absolute():
            self.base_dir = self.project_root / self.base_dir
        self.extra_args = _str_list(settings, "extra_args", self.options.get("extra_args", []))
        self.skill_path = self._skill_path()
        self.name = f"{settings.provider}:{getattr(settings, 'model', None) or self.kind}"
        self.price_model = getattr(settings, "model", None)
        self._configure()

    # ---- configuration (subclasses override)

    def _env_option(self) -> dict[str, str]:
        env = self.options.get("env", {}) or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
            raise _opt_err(self.settings, "env", "`env` must be a mapping of NAME: value",
                           "write e.g. `env: {MY_FLAG: \"1\", TOKEN: \"${MY_TOKEN}\"}`")
        return {k: "" if v is None else str(v) for k, v in env.items()}

    def _skill_path(self) -> str:
        return _safe_rel(self.settings, "skill_path", self.options.get("skill_path", self.default_skill_path),
                         "`skill_path`")

    def _configure(self) -> None:
        cmd = self.options.get("command")
        if cmd is None or cmd == "" or cmd == []:
            raise _opt_err(self.settings, None, "needs `options.command`: the agent to run",
                           "write e.g. `options: {command: [\"my-agent\", \"--yes\"], prompt_via: stdin}`")
        self.shell = isinstance(cmd, str)
        self.command = [cmd] if self.shell else _str_list(self.settings, "command", cmd)
        via = self.options.get("prompt_via", "stdin")
        if via not in ("stdin", "arg", "file"):
            raise _opt_err(self.settings, "prompt_via", f"unknown `prompt_via` {via!r}",
                           "use stdin, arg or file")
        self.prompt_via = via
        if self.shell and "{prompt}" in cmd:
            raise _opt_err(self.settings, "command", "a string command cannot contain {prompt} (the prompt would "
                           "be run as shell code)", "use `prompt_via: arg` (the prompt is \"$1\") or "
                           "`prompt_via: file` ($SKILLOPT_PROMPT_FILE), or write `command` as a list")
        out = str(self.options.get("output", "text"))
        if out != "text" and not re.fullmatch(r"json:[^\s]+|file:.+", out):
            raise _opt_err(self.settings, "output", f"unknown `output` {out!r}",
                           "use `text`, `json:<field>` (e.g. json:result) or `file:<path in the workspace>`")
        if out.startswith("file:"):
            _safe_rel(self.settings, "output", out[5:], "`output` file")
        self.output = out
        self.allow_nonzero = self.options.get("allow_nonzero_exit", False)
        if not isinstance(self.allow_nonzero, bool):
            raise _opt_err(self.settings, "allow_nonzero_exit", "`allow_nonzero_exit` must be true or false",
                           "write `allow_nonzero_exit: true`")
        if not self.shell:
            self.binary = self._resolve_binary(self.command[0], "command")

    def _resolve_binary(self, name: str, key: str, package: str | None = None) -> str:
        name = _expand(name)
        if os.sep in name:
            p = Path(name).expanduser()
            if not p.is_absolute():
                p = self.project_root / p
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
            found = None
        else:
            found = shutil.which(name)
        if found:
            return found
        fix = (f"install it (`npm install -g {package}`) or set `options.binary` to its path" if package
               else "install it, put it on PATH, or give its full path")
        raise _opt_err(self.settings, key, f"agent binary {name!r} not found", fix)

    # ---- fingerprint

    def _env_fingerprint(self) -> dict:
        # values may hold secrets: only a digest of what the config says (the ${VAR} text, not its value)
        return {k: hashlib.sha256(v.encode()).hexdigest()[:12] for k, v in sorted(self.env_templates.items())}

    def fingerprint(self) -> dict:
        opts = {k: v for k, v in self.options.items() if k not in ("env", "base_dir", "binary", "config_dir",
                                                                     "codex_home")}
        return {"kind": "harness", "provider": self.settings.provider, "preset_version": PRESET_VERSION,
                "command": self._fingerprint_command(), "model": getattr(self.settings, "model", None),
                "base_url": getattr(self.settings, "base_url", None), "skill_path": self.skill_path,
                "options": json.loads(json.dumps(opts, default=str)), "env": self._env_fingerprint()}

    def _fingerprint_command(self) -> Any:
        if self.shell:
            return self.command[0]
        return [Path(self.command[0]).name, *self.command[1:]]

    # ---- one rollout

    def run(self, skill: str, task: "Task", sample: int) -> Completion:
        prep = self._prepare(skill, task)
        try:
            argv, stdin_text, env = self._invocation(prep, task)
            res = self._execute(argv, stdin_text, env, prep)
            return self._completion(prep, res)
        except BaseException:
            remove_workspace(prep.ws)
            raise

    def _new_root(self) -> Path:
        base = self.base_dir
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="skillopt-ws-", dir=str(base) if base else None)).resolve()

    def _install_skill(self, ws: Path, skill: str) -> str:
        dest = ws / self.skill_path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(skill, encoding="utf-8")
        return self.skill_path

    def _prepare(self, skill: str, task: "Task") -> Prepared:
        root = self._new_root()
        (root / MARKER).write_text("created by skillopt for one rollout; safe to delete\n")
        ws = root / WORK
        try:
            if task.fixture:
                shutil.copytree(task.fixture, ws, symlinks=True)
                if (ws / ".git").exists():  # a fixture that is itself a repository: start from its files only
                    _rmtree(str(ws / ".git"))
            else:
                ws.mkdir()
            skill_rel = self._install_skill(ws, skill)
            _git(ws, "init", "-q")
            _git(ws, "add", "-A", "-f")
            _git(ws, "commit", "-q", "--allow-empty", "--no-verify", "-m", "skillopt baseline")
            baseline = _git(ws, "rev-parse", "HEAD").stdout.strip()
            prompt_file = root / "prompt.txt"
            prompt_file.write_text(task.prompt_text(), encoding="utf-8")
        except BaseException:
            _rmtree(str(root))
            raise
        return Prepared(root, ws, skill_rel, baseline, prompt_file)

    def _base_env(self, prep: Prepared) -> dict:
        keep = set(self.pass_env)
        if self.key_env:
            keep.add(self.key_env)
        env = scrubbed_env(keep)
        env.update(SKILLOPT_WORKSPACE=str(prep.ws), SKILLOPT_PROMPT_FILE=str(prep.prompt_file),
                   SKILLOPT_SKILL_PATH=str(prep.ws / prep.skill_path))
        return env

    def _with_user_env(self, env: dict) -> dict:
        for k, v in self.env_templates.items():
            env[k] = _expand(v)
        return env

    def _invocation(self, prep: Prepared, task: "Task") -> tuple[list[str], str | None, dict]:
        prompt = task.prompt_text()
        env = self._with_user_env(self._base_env(prep))
        subs = {"{workspace}": str(prep.ws), "{prompt_file}": str(prep.prompt_file),
                "{skill_path}": str(prep.ws / prep.skill_path)}
        if self.shell:
            argv = ["bash", "-c", self.command[0], "skillopt-agent"]
            if self.prompt_via == "arg":
                argv.append(prompt)
        else:
            argv = [self.binary]
            for a in self.command[1:]:
                if a == "{prompt}" and self.prompt_via == "arg":
                    argv.append(prompt)
                    continue
                for k, v in subs.items():
                    a = a.replace(k, v)
                argv.append(a)
            argv += self.extra_args
            if self.prompt_via == "arg" and "{prompt}" not in self.command[1:]:
                argv.append(prompt)
        return argv, (prompt if self.prompt_via == "stdin" else None), env

    def _execute(self, argv: list[str], stdin_text: str | None, env: dict, prep: Prepared) -> RunResult:
        out_path, err_path = prep.root / "stdout", prep.root / "stderr"
        t0 = time.monotonic()
        with open(out_path, "wb") as so, open(err_path, "wb") as se:
            try:
                proc = subprocess.Popen(argv, cwd=prep.ws, env=env, stdin=subprocess.PIPE if stdin_text is not None
                                        else subprocess.DEVNULL, stdout=so, stderr=se, start_new_session=True)
            except FileNotFoundError as exc:
                raise _opt_err(self.settings, "command", f"cannot start the agent: {exc.strerror}: {argv[0]!r}",
                               "install the agent or fix the command / binary path") from None
            if stdin_text is not None:
                try:
                    proc.stdin.write(stdin_text.encode("utf-8"))
                except BrokenPipeError:
                    log.debug("agent closed stdin before reading the whole prompt")
                finally:
                    try:
                        proc.stdin.close()
                    except BrokenPipeError:
                        log.debug("agent closed stdin early")
            timed_out = wait_process_group(proc, self.timeout)
            kill_process_group(proc)  # the agent may leave children behind (servers, watchers): the whole group goes
            code = proc.wait()
        return RunResult(_read_all(out_path), _read_all(err_path), None if timed_out else code, timed_out,
                         time.monotonic() - t0)

    def _transcript(self, argv_shown: Any, res: RunResult) -> list[dict]:
        t = [{"role": "command", "content": argv_shown}]
        if res.stdout.strip():
            t.append({"role": "stdout", "content": _clip_middle(res.stdout, STREAM_MAX_CHARS)})
        if res.stderr.strip():
            t.append({"role": "stderr", "content": _clip_middle(res.stderr, STREAM_MAX_CHARS // 4)})
        t.append({"role": "exit", "content": "timed out" if res.timed_out else f"exit code {res.exit_code}"})
        return t

    def _extra(self, prep: Prepared, res: RunResult) -> dict:
        return {"agent": self.settings.provider, "skill_path": prep.skill_path, "baseline": prep.baseline,
                "seconds": round(res.seconds, 3), **prep.extra}

    def _timeout_error(self, res: RunResult) -> str:
        return f"timed out after {self.timeout:g}s" + (f"; stderr {_tail(res.stderr)}" if res.stderr.strip() else "")

    def _completion(self, prep: Prepared, res: RunResult) -> Completion:
        transcript = self._transcript(self._fingerprint_command(), res)
        extra = self._extra(prep, res)
        if res.timed_out:
            return Completion(text="", transcript=transcript, error=self._timeout_error(res),
                              workspace=str(prep.ws), exit_code=None, extra=extra)
        text, parse_error = self._answer(prep, res)
        error = parse_error
        if res.exit_code != 0 and not self.allow_nonzero:
            status = f"exit code {res.exit_code}" if res.exit_code >= 0 else f"killed by signal {-res.exit_code}"
            error = f"agent failed ({status})" + (f"; stderr {_tail(res.stderr)}" if res.stderr.strip() else "")
        return Completion(text=text, transcript=transcript, error=error, workspace=str(prep.ws),
                          exit_code=res.exit_code, extra=extra)

    def _answer(self, prep: Prepared, res: RunResult) -> tuple[str, str | None]:
        if self.output == "text":
            return res.stdout.strip(), None
        if self.output.startswith("file:"):
            p = _inside(prep.ws, self.output[5:])
            if p is None or not p.is_file():
                return "", f"the agent wrote no {self.output[5:]!r} (output: {self.output})"
            return p.read_text(encoding="utf-8", errors="replace").strip(), None
        fieldname = self.output[5:]
        obj = _parse_json_output(res.stdout)
        if obj is None:
            return res.stdout.strip(), f"stdout is not JSON (output: {self.output}); stdout {_tail(res.stdout)}"
        value = _lookup(obj, fieldname)
        if value is _MISSING:
            return res.stdout.strip(), f"stdout JSON has no field {fieldname!r}"
        return (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)), None


def _read_all(path: Path, limit: int = 4 * 1024 * 1024) -> str:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... output cut at 4 MiB ...]" if len(data) > limit else "")


_MISSING = object()


def _lookup(obj: Any, dotted: str) -> Any:
    cur = obj
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def _parse_json_output(stdout: str) -> Any:
    """The whole stdout as JSON, else its last line that is JSON (CLIs often log before the result); None if neither."""
    for candidate in [stdout, *reversed(stdout.strip().splitlines())]:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue  # not JSON: try the next candidate
    return None


def _json_lines(stdout: str) -> list[dict]:
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _inside(ws: Path, rel: str) -> Path | None:
    """`rel` under the workspace, following symlinks only if they stay inside it."""
    p = (ws / rel)
    try:
        resolved = p.resolve()
    except OSError:
        return None
    base = ws.resolve()
    if resolved != base and base not in resolved.parents:
        return None
    return resolved


def _short(value: Any, limit: int = TRANSCRIPT_ITEM_CHARS) -> Any:
    if isinstance(value, str):
        return _clip_middle(value, limit)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return value if len(text) <= limit else _clip_middle(text, limit)


# --------------------------------------------------------------------------- presets

class _PresetTarget(CommandTarget):
    binary_name = ""
    install_choices: dict[str, str] = {}
    default_install = ""

    def _skill_path(self) -> str:
        if "skill_path" in self.options:
            return _safe_rel(self.settings, "skill_path", self.options["skill_path"], "`skill_path`")
        install = self.options.get("install", self.default_install)
        if install not in self.install_choices:
            raise _opt_err(self.settings, "install", f"unknown `install` {install!r}",
                           f"use one of: {', '.join(self.install_choices)}")
        self.install = install
        return self.install_choices[install]

    def _install_skill(self, ws: Path, skill: str) -> str:
        rel = self.skill_path
        if "<name>" in rel:
            name = self.options.get("skill_name") or _front_matter(skill).get("name") or "skill"
            rel = rel.replace("<name>", _slug(str(name)))
            skill = self._with_front_matter(skill, _slug(str(name)))
        dest = ws / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(skill, encoding="utf-8")
        return rel

    def _with_front_matter(self, skill: str, name: str) -> str:
        """Skill folders need front matter (name, description) to be discovered; add it when missing."""
        if _front_matter(skill):
            return skill
        desc = self.options.get("skill_description") or (
            "Instructions for the tasks in this repository. Use it for every task here.")
        return f"---\nname: {name}\ndescription: {json.dumps(str(desc))}\n---\n\n{skill}"

    def _configure(self) -> None:
        self.binary = self._resolve_binary(str(self.options.get("binary", self.binary_name)), "binary",
                                           NPM_PACKAGES.get(self.binary_name))
        self.command = [self.binary]
        self.shell = False
        self.prompt_via = "stdin"
        self.output = "preset"
        self.allow_nonzero = False

    def _fingerprint_command(self) -> Any:
        return [Path(self.binary).name, _binary_version(self.binary), *self._flags(None)]

    def _flags(self, prep: Prepared | None) -> list[str]:
        raise NotImplementedError

    def _invocation(self, prep: Prepared, task: "Task") -> tuple[list[str], str | None, dict]:
        env = self._with_user_env(self._preset_env(self._base_env(prep), prep))
        return [self.binary, *self._flags(prep), *self.extra_args], task.prompt_text(), env

    def _preset_env(self, env: dict, prep: Prepared) -> dict:
        return env

    def _key_value(self) -> str | None:
        name = self.key_env or self.default_key_env
        return os.environ.get(name) if name else None


@register_target("claude-code")
class ClaudeCodeTarget(_PresetTarget):
    kind = "claude-code"
    binary_name = "claude"
    allowed_options = CLAUDE_OPTIONS
    install_choices = {"skill": ".claude/skills/<name>/SKILL.md", "claude_md": "CLAUDE.md"}
    default_install = "skill"
    default_key_env = "ANTHROPIC_API_KEY"

    def _configure(self) -> None:
        super()._configure()
        o, s = self.options, self.settings
        self.allowed_tools = _str_list(s, "allowed_tools", o.get("allowed_tools", list(CLAUDE_DEFAULT_TOOLS)))
        self.disallowed_tools = _str_list(s, "disallowed_tools", o.get("disallowed_tools", []))
        pm = o.get("permission_mode")
        if pm is not None and pm not in ("default", "acceptEdits", "dontAsk", "plan", "auto", "bypassPermissions"):
            raise _opt_err(s, "permission_mode", f"unknown `permission_mode` {pm!r}",
                           "use default, acceptEdits, dontAsk, plan, auto or bypassPermissions (the last one "
                           "lets the agent run anything: only in a disposable sandbox)")
        self.permission_mode = pm
        mt = o.get("max_turns")
        if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt < 1):
            raise _opt_err(s, "max_turns", "`max_turns` must be a positive integer", "write e.g. `max_turns: 20`")
        self.max_turns = mt
        fmt = o.get("output_format", "stream-json")
        if fmt not in ("stream-json", "json"):
            raise _opt_err(s, "output_format", f"unknown `output_format` {fmt!r}",
                           "use stream-json (keeps the tool calls as the transcript) or json")
        self.output_format = fmt
        if any(a in ("--dangerously-skip-permissions", "--allow-dangerously-skip-permissions")
               for a in self.extra_args):
            raise _opt_err(s, "extra_args", "`extra_args` may not skip permission checks",
                           "set `permission_mode: bypassPermissions` explicitly if you really want that")
        cd = o.get("config_dir")
        self.config_dir = None
        if cd:
            p = Path(_expand(str(cd))).expanduser()
            self.config_dir = p if p.is_absolute() else self.project_root / p

    def _flags(self, prep: Prepared | None) -> list[str]:
        flags = ["-p", "--output-format", self.output_format]
        if self.output_format == "stream-json":
            flags.append("--verbose")
        if self.allowed_tools:
            flags += ["--allowedTools", ",".join(self.allowed_tools)]
        if self.disallowed_tools:
            flags += ["--disallowedTools", ",".join(self.disallowed_tools)]
        if self.permission_mode:
            flags += ["--permission-mode", self.permission_mode]
        if self.max_turns:
            flags += ["--max-turns", str(self.max_turns)]
        if getattr(self.settings, "model", None):
            flags += ["--model", self.settings.model]
        return flags

    def _preset_env(self, env: dict, prep: Prepared) -> dict:
        base_url = getattr(self.settings, "base_url", None)
        if base_url:
            env["ANTHROPIC_BASE_URL"] = base_url
        key = self._key_value()
        if key:
            env["ANTHROPIC_API_KEY"] = key
        if self.config_dir:
            self.config_dir.mkdir(parents=True, exist_ok=True)
            env["CLAUDE_CONFIG_DIR"] = str(self.config_dir)
        env.setdefault("DISABLE_AUTOUPDATER", "1")
        env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        return env

    def _completion(self, prep: Prepared, res: RunResult) -> Completion:
        events = _json_lines(res.stdout)
        transcript: list[dict] = []
        result = None
        for ev in events:
            t = ev.get("type")
            if t == "result":
                result = ev
            elif t == "assistant":
                for block in (ev.get("message") or {}).get("content") or []:
                    if block.get("type") == "tool_use":
                        transcript.append({"role": "assistant", "type": "tool_use", "content":
                                           {"name": block.get("name"), "input": _short(block.get("input"))}})
                    elif block.get("type") == "text" and block.get("text", "").strip():
                        transcript.append({"role": "assistant", "content": _short(block["text"])})
            elif t == "user":
                content = (ev.get("message") or {}).get("content")
                for block in content if isinstance(content, list) else []:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        c = block.get("content")
                        if isinstance(c, list):
                            c = "\n".join(x.get("text", "") for x in c if isinstance(x, dict))
                        transcript.append({"role": "tool", "content": _short(
                            ("[error] " if block.get("is_error") else "") + str(c or ""), 1500)})
        if res.stderr.strip():
            transcript.append({"role": "stderr", "content": _clip_middle(res.stderr, 2000)})
        transcript = transcript[-TRANSCRIPT_MAX_ITEMS:]
        extra = self._extra(prep, res)
        if res.timed_out:
            return Completion("", transcript, error=self._timeout_error(res), workspace=str(prep.ws), extra=extra)
        usage, text, error = Usage(), "", None
        if result is None:
            error = (f"claude printed no result (exit code {res.exit_code})"
                     + (f"; stderr {_tail(res.stderr)}" if res.stderr.strip() else
                        f"; stdout {_tail(res.stdout)}" if res.stdout.strip() else ""))
        else:
            u = result.get("usage") or {}
            inp = sum(int(u.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                   "cache_read_input_tokens"))
            cost = result.get("total_cost_usd")
            usage = Usage(inp, int(u.get("output_tokens") or 0), float(cost) if cost is not None else None)
            text = str(result.get("result") or "")
            extra.update(num_turns=result.get("num_turns"), subtype=result.get("subtype"))
            denials = result.get("permission_denials") or []
            if denials:
                extra["permission_denials"] = [_short(d, 300) for d in denials[:10]]
                transcript.append({"role": "harness", "content": "permission denied for: " + ", ".join(
                    str(d.get("tool_name", "?")) for d in denials[:10] if isinstance(d, dict))})
            if result.get("is_error"):
                error = f"claude reported {result.get('subtype') or 'an error'}: {_q(text, 200)}"
        return Completion(text=text, transcript=transcript, usage=usage, error=error, workspace=str(prep.ws),
                          exit_code=res.exit_code, extra=extra)


@register_target("codex")
class CodexTarget(_PresetTarget):
    kind = "codex"
    binary_name = "codex"
    allowed_options = CODEX_OPTIONS
    install_choices = {"agents_md": "AGENTS.md", "skill": ".agents/skills/<name>/SKILL.md"}
    default_install = "agents_md"
    default_key_env = "OPENAI_API_KEY"

    def _configure(self) -> None:
        super()._configure()
        o, s = self.options, self.settings
        sb = o.get("sandbox", "workspace-write")
        if sb not in ("read-only", "workspace-write", "danger-full-access"):
            raise _opt_err(s, "sandbox", f"unknown `sandbox` {sb!r}",
                           "use workspace-write (default), read-only, or danger-full-access (no sandbox at all)")
        self.sandbox = sb
        wire = o.get("wire_api", "responses")
        if wire != "responses":
            raise _opt_err(s, "wire_api", f"codex speaks only the Responses API, not {wire!r}",
                           "remove `wire_api` (the server must implement POST /v1/responses with streaming)")
        bad = [a for a in self.extra_args if a in ("--dangerously-bypass-approvals-and-sandbox", "--yolo")]
        if bad:
            raise _opt_err(s, "extra_args", f"`extra_args` may not contain {bad[0]}",
                           "widen the sandbox explicitly with `sandbox: danger-full-access` instead")
        self.codex_home = self._codex_home()

    def _codex_home(self) -> Path | None:
        o, s = self.options, self.settings
        given = o.get("codex_home")
        base_url = getattr(s, "base_url", None)
        if given:
            p = Path(_expand(str(given))).expanduser()
            home = p if p.is_absolute() else self.project_root / p
        elif base_url:
            cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
            digest = hashlib.sha256(json.dumps([base_url, s.model, self.key_env]).encode()).hexdigest()[:16]
            home = cache / "skillopt" / "codex-home" / digest
        else:
            return None
        if base_url:
            home.mkdir(parents=True, exist_ok=True)
            key_env = self.key_env or self.default_key_env
            lines = []
            if s.model:
                lines.append(f"model = {json.dumps(s.model)}")
            lines += ['model_provider = "skillopt"', "", "[model_providers.skillopt]", 'name = "skillopt"',
                      f"base_url = {json.dumps(base_url)}", f"env_key = {json.dumps(key_env)}",
                      'wire_api = "responses"', ""]
            text = "\n".join(lines)
            cfg = home / "config.toml"
            if not cfg.is_file() or cfg.read_text() != text:
                tmp = home / f".config.toml.{os.getpid()}"
                tmp.write_text(text)
                os.replace(tmp, cfg)
        return home

    def _flags(self, prep: Prepared | None) -> list[str]:
        flags = ["exec", "--skip-git-repo-check", "--sandbox", self.sandbox, "--json"]
        if self.sandbox == "workspace-write":
            # workspace-write also lets commands write to /tmp and $TMPDIR: keep them to the workspace
            flags += ["-c", "sandbox_workspace_write.exclude_slash_tmp=true",
                      "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true"]
        if prep is not None:
            flags += ["-C", str(prep.ws), "-o", str(prep.root / "last-message.txt")]
        if getattr(self.settings, "model", None):
            flags += ["-m", self.settings.model]
        return flags + ["-"]

    def _invocation(self, prep: Prepared, task: "Task") -> tuple[list[str], str | None, dict]:
        argv, stdin_text, env = super()._invocation(prep, task)
        # the prompt marker `-` goes last, after any extra args
        argv.remove("-")
        return [*argv, "-"], stdin_text, env

    def _preset_env(self, env: dict, prep: Prepared) -> dict:
        if self.codex_home is not None:
            env["CODEX_HOME"] = str(self.codex_home)
        key_env = self.key_env or self.default_key_env
        if key_env and key_env not in env and os.environ.get(key_env):
            env[key_env] = os.environ[key_env]
        return env

    def _completion(self, prep: Prepared, res: RunResult) -> Completion:
        transcript: list[dict] = []
        usage = Usage()
        errors: list[str] = []
        last_text = None
        for ev in _json_lines(res.stdout):
            t = ev.get("type")
            if t in ("item.completed",):
                item = ev.get("item") or {}
                it = item.get("type")
                if it == "agent_message":
                    last_text = item.get("text", "")
                    transcript.append({"role": "assistant", "content": _short(last_text)})
                elif it == "command_execution":
                    transcript.append({"role": "assistant", "type": "tool_use", "content": {
                        "name": "shell", "input": _short(item.get("command"), 1500)}})
                    transcript.append({"role": "tool", "content": _short(
                        f"exit code {item.get('exit_code')}\n{item.get('aggregated_output') or ''}", 1500)})
                elif it == "file_change":
                    transcript.append({"role": "assistant", "type": "tool_use", "content": {
                        "name": "apply_patch", "input": _short(item.get("changes"), 1500)}})
                elif it == "error":
                    errors.append(str(item.get("message", "")))
                    transcript.append({"role": "error", "content": _short(item.get("message", ""), 1500)})
                elif it:
                    transcript.append({"role": "assistant", "type": it, "content": _short(
                        {k: v for k, v in item.items() if k not in ("id", "type")}, 1500)})
            elif t == "turn.completed":
                u = ev.get("usage") or {}
                usage = Usage(usage.input_tokens + int(u.get("input_tokens") or 0),
                              usage.output_tokens + int(u.get("output_tokens") or 0))
            elif t in ("turn.failed", "error"):
                msg = ev.get("message") or (ev.get("error") or {}).get("message") or json.dumps(ev)[:300]
                errors.append(str(msg))
                transcript.append({"role": "error", "content": _short(msg, 1500)})
        if res.stderr.strip():
            transcript.append({"role": "stderr", "content": _clip_middle(res.stderr, 2000)})
        transcript = transcript[-TRANSCRIPT_MAX_ITEMS:]
        extra = self._extra(prep, res)
        if res.timed_out:
            return Completion("", transcript, usage=usage, error=self._timeout_error(res), workspace=str(prep.ws),
                              extra=extra)
        last = prep.root / "last-message.txt"
        text = last.read_text(encoding="utf-8", errors="replace").strip() if last.is_file() else (last_text or "")
        error = None
        if res.exit_code != 0:
            why = errors[-1] if errors else (res.stderr.strip() or res.stdout.strip())
            error = f"codex failed (exit code {res.exit_code}): {_q(why, 200)}"
        return Completion(text=text, transcript=transcript, usage=usage, error=error, workspace=str(prep.ws),
                          exit_code=res.exit_code, extra=extra)


register_target("command")(CommandTarget)


# --------------------------------------------------------------------------- workspace scorers

def _workspace(completion) -> Path | None:
    ws = getattr(completion, "workspace", None)
    return Path(ws) if ws and Path(ws).is_dir() else None


_NO_WS = ("no workspace to inspect: workspace scorers need an agent harness target "
          "(provider command, claude-code or codex)")


def _validate_path_key(spec: dict, file, line, key: str = "path") -> None:
    if key not in spec or not isinstance(spec[key], str) or not spec[key].strip():
        raise ConfigError(f"scorer {spec['type']!r} needs `{key}`: a path relative to the workspace", file, line,
                          f"write e.g. `{key}: src/app.py`")
    p = spec[key]
    if Path(p).is_absolute() or ".." in Path(p).parts:
        raise ConfigError(f"scorer {spec['type']!r}: `{key}` {p!r} must stay inside the workspace", file, line,
                          "give a relative path without `..`, e.g. `src/app.py`")


def _read_ws_file(ws: Path, rel: str) -> tuple[str | None, str]:
    p = _inside(ws, rel)
    if p is None:
        return None, f"{rel!r} points outside the workspace"
    if not p.exists():
        return None, f"{rel!r} does not exist"
    if not p.is_file():
        return None, f"{rel!r} is not a file"
    return p.read_text(encoding="utf-8", errors="replace"), ""


class WorkspaceCommandScorer(CommandScorer):
    """The `command` scorer, run inside the agent's workspace (e.g. its test suite)."""

    def score(self, task, completion) -> ScoreResult:
        ws = _workspace(completion)
        if ws is None:
            return ScoreResult(0.0, _NO_WS)
        tmp = tempfile.mkdtemp(prefix="skillopt-wscore-")
        try:
            answer = Path(tmp) / "answer.txt"
            answer.write_bytes((completion.text or "").encode("utf-8", errors="replace"))
            out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
            env = self._env(answer)
            env["SKILLOPT_WORKSPACE"] = str(ws)
            with open(out_path, "wb") as so, open(err_path, "wb") as se:
                try:
                    proc = subprocess.Popen(["bash", "-c", self.spec["run"]], cwd=ws, env=env,
                                            stdin=subprocess.DEVNULL, stdout=so, stderr=se, start_new_session=True)
                except FileNotFoundError:
                    raise ConfigError("scorer 'workspace_command': `bash` was not found on PATH", None, None,
                                      "install bash") from None
                timed_out = wait_process_group(proc, self.timeout)
                kill_process_group(proc)
                code = proc.wait()
            stdout, stderr = _read_tail(out_path), _read_tail(err_path)
        finally:
            _rmtree(tmp)
        return self._result(timed_out, code, stdout, stderr)


def _validate_ws_command(spec, file, line):
    spec = _validate_command(spec, file, line)
    return spec


register_scorer("workspace_command", validate=_validate_ws_command,
                build=lambda spec, ctx: WorkspaceCommandScorer(spec, ctx), needs_workspace=True)


def _validate_file_exists(spec, file, line):
    _check_keys(spec, ("path",), file, line)
    _validate_path_key(spec, file, line)
    return spec


class FileExistsScorer:
    def __init__(self, spec):
        self.spec = spec

    def score(self, task, completion) -> ScoreResult:
        ws = _workspace(completion)
        if ws is None:
            return ScoreResult(0.0, _NO_WS)
        rel = self.spec["path"]
        p = _inside(ws, rel)
        if p is None:
            return ScoreResult(0.0, _clip(f"{rel!r} points outside the workspace"))
        if p.exists():
            return ScoreResult(1.0, f"{rel!r} exists")
        return ScoreResult(0.0, _clip(f"{rel!r} does not exist in the workspace"))


register_scorer("file_exists", validate=_validate_file_exists, build=lambda spec, ctx: FileExistsScorer(spec),
                needs_workspace=True)


def _validate_file_contains(spec, file, line):
    _check_keys(spec, ("path", "value", "case_sensitive"), file, line)
    _validate_path_key(spec, file, line)
    _texts(spec, "value", file, line, required=True)
    _bool(spec, "case_sensitive", False, file, line)
    return spec


class FileContainsScorer:
    def __init__(self, spec):
        self.spec = spec

    def score(self, task, completion) -> ScoreResult:
        ws = _workspace(completion)
        if ws is None:
            return ScoreResult(0.0, _NO_WS)
        text, why = _read_ws_file(ws, self.spec["path"])
        if text is None:
            return ScoreResult(0.0, _clip(why))
        cs = self.spec["case_sensitive"]
        hay = text if cs else text.casefold()
        values = self.spec["value"]
        absent = [v for v in values if (v if cs else v.casefold()) not in hay]
        rel = self.spec["path"]
        if not absent:
            return ScoreResult(1.0, _clip(f"{rel!r} contains {len(values)} of {len(values)}"))
        return ScoreResult((len(values) - len(absent)) / len(values), _clip(
            f"{rel!r} lacks {len(absent)} of {len(values)}: " + ", ".join(_q(v, 50) for v in absent[:5])
            + f"; it starts {_q(text, 120)}"))


register_scorer("file_contains", validate=_validate_file_contains, build=lambda spec, ctx: FileContainsScorer(spec),
                needs_workspace=True)


def _validate_file_matches(spec, file, line):
    _check_keys(spec, ("path", "pattern", "flags"), file, line)
    _validate_path_key(spec, file, line)
    # reuse the regex scorer's checks (pattern compiles, flags known) under this scorer's name
    probe = {k: v for k, v in spec.items() if k != "path"}
    checked = _validate_regex(probe, file, line)
    spec["flags"] = checked["flags"]
    return spec


class FileMatchesScorer:
    def __init__(self, spec):
        self.spec = spec
        self.rx = re.compile(spec["pattern"], _regex_flags(spec["flags"]))

    def score(self, task, completion) -> ScoreResult:
        ws = _workspace(completion)
        if ws is None:
            return ScoreResult(0.0, _NO_WS)
        text, why = _read_ws_file(ws, self.spec["path"])
        if text is None:
            return ScoreResult(0.0, _clip(why))
        m = self.rx.search(text)
        rel, shown = self.spec["path"], _q(self.spec["pattern"], 60)
        if m:
            return ScoreResult(1.0, _clip(f"{rel!r} matches {shown}: {_q(m.group(0), 60)}"))
        return ScoreResult(0.0, _clip(f"pattern {shown} not found in {rel!r}, which starts {_q(text, 120)}"))


register_scorer("file_matches", validate=_validate_file_matches, build=lambda spec, ctx: FileMatchesScorer(spec),
                needs_workspace=True)


def _validate_diff_paths(spec, file, line):
    _check_keys(spec, ("allowed",), file, line)
    allowed = spec.get("allowed")
    if isinstance(allowed, str):
        allowed = [allowed]
    if not isinstance(allowed, list) or not all(isinstance(g, str) and g.strip() for g in allowed):
        raise ConfigError("scorer 'diff_paths' needs `allowed`: a list of path globs the agent may change", file,
                          line, "write e.g. `allowed: [\"src/**\", \"README.md\"]` (an empty list [] allows nothing)")
    for g in allowed:
        if Path(g).is_absolute() or ".." in Path(g).parts:
            raise ConfigError(f"scorer 'diff_paths': glob {g!r} must be relative to the workspace", file, line,
                              "write globs like `src/**` or `docs/*.md`")
    spec["allowed"] = list(allowed)
    return spec


def glob_match(path: str, pattern: str) -> bool:
    """`*`, `?`, `[..]` within one path segment; `**` across segments; `dir/` = everything below dir."""
    if pattern.endswith("/"):
        pattern += "**"
    rx, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            rx += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            rx += ".*"
            i += 2
        elif pattern[i] == "*":
            rx += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            rx += "[^/]"
            i += 1
        elif pattern[i] == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                rx += re.escape("[")
                i += 1
            else:
                rx += fnmatch.translate(pattern[i:j + 1])[4:-3]
                i = j + 1
        else:
            rx += re.escape(pattern[i])
            i += 1
    return re.fullmatch(rx, path) is not None


def changed_paths(ws: Path, baseline: str | None) -> list[str]:
    """Paths changed, deleted or added since the baseline commit (untracked files too, .gitignore respected)."""
    base = baseline or "HEAD"
    diff = _git(ws, "-c", "core.quotepath=false", "diff", "--name-only", "--no-renames", "-z", base, "--")
    untracked = _git(ws, "-c", "core.quotepath=false", "ls-files", "--others", "--exclude-standard", "-z")
    paths = {p for p in diff.stdout.split("\0") if p} | {p for p in untracked.stdout.split("\0") if p}
    return sorted(paths)


def outside_entries(ws: Path) -> list[str]:
    """What the agent left next to its workspace, in the rollout directory (e.g. via `../x`)."""
    root = ws.parent
    if not (root / MARKER).is_file():
        return []
    ours = {MARKER, WORK, "prompt.txt", "stdout", "stderr", "last-message.txt"}
    return sorted(f"../{p.name}" for p in root.iterdir() if p.name not in ours)


class DiffPathsScorer:
    def __init__(self, spec):
        self.spec = spec

    def score(self, task, completion) -> ScoreResult:
        ws = _workspace(completion)
        if ws is None:
            return ScoreResult(0.0, _NO_WS)
        extra = completion.extra or {}
        skill_rel = extra.get("skill_path")
        changed = [p for p in changed_paths(ws, extra.get("baseline")) if p != skill_rel]
        allowed = self.spec["allowed"]
        bad = [p for p in changed if not any(glob_match(p, g) for g in allowed)] + outside_entries(ws)
        if bad:
            shown = ", ".join(_q(p, 60) for p in bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
            return ScoreResult(0.0, _clip(f"changed {len(bad)} path(s) outside the allowed "
                                          f"{', '.join(allowed) or '(none)'}: {shown}"))
        if not changed:
            return ScoreResult(1.0, "no files changed")
        return ScoreResult(1.0, _clip(f"all {len(changed)} changed path(s) allowed"))


register_scorer("diff_paths", validate=_validate_diff_paths, build=lambda spec, ctx: DiffPathsScorer(spec),
                needs_workspace=True)
