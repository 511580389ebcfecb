"""The `command` target: any CLI agent, run once per rollout in a fresh git workspace (see workspace.py).

Settings under `target.options`:

  command      list of arguments or a bash command string (required)
  skill_path   where the skill goes in the workspace (default AGENTS.md)
  prompt_via   stdin (default) | arg | file
                 arg: a list command gets the prompt in place of a `{prompt}` item, or appended;
                      a string command gets it as "$1".
                 file: the prompt is in $SKILLOPT_PROMPT_FILE (also `{prompt_file}` in a list).
  output       text (default: all of stdout) | json:<dotted.field> (stdout, or its last JSON line, parsed)
               | file:<path in the workspace>
  env          {NAME: value} extra environment; `${VAR}` is taken from skillopt's environment
  pass_env     [NAMES] secret-looking variables to pass through (see below)
  allow_nonzero_exit  false (default: a non-zero exit is a failed run, scored 0)
  base_dir     where rollout directories are created (default: the system temp dir)
  In list items, `{workspace}`, `{prompt_file}` and `{skill_path}` are replaced; the same values are in
  $SKILLOPT_WORKSPACE, $SKILLOPT_PROMPT_FILE, $SKILLOPT_SKILL_PATH.

The agent's environment is skillopt's minus variables whose names look secret (KEY, TOKEN, SECRET, PASSWORD,
PASSWD, CREDENTIAL) — except the one named by `api_key_env` and those in `pass_env` — plus `env`. Key values
never reach fingerprints, transcripts or logs.

A rollout that runs past `target.timeout` seconds has its whole process group killed and comes back as a
failed run ("timed out after Ns"), which scores 0 with that feedback; the run goes on.

`PresetTarget` is the base of the claude-code and codex presets: a fixed binary and command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..package import install, main_text, with_main
from ..procs import read_all, run_in_group, scrubbed_env
from ..text import clip_middle, quote_tail
from ..types import Completion, Task
from ..workspace import Prepared, inside, prepare, remove_workspace
from .base import register_target

PRESET_VERSION = 1  # bump when a preset's command line or parsing changes what a rollout produces
TRANSCRIPT_ITEM_CHARS = 4000  # per transcript entry (head and tail kept)
TRANSCRIPT_MAX_ITEMS = 200
STREAM_MAX_CHARS = 16000  # stdout/stderr kept in a transcript

COMMON_OPTIONS = {"env", "pass_env", "base_dir", "binary", "extra_args", "skill_path"}
COMMAND_OPTIONS = COMMON_OPTIONS | {"command", "prompt_via", "output", "allow_nonzero_exit"}
NPM_PACKAGES = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex"}


# --------------------------------------------------------------------------- helpers shared with the presets

def option_error(settings, key: str | None, message: str, fix: str) -> ConfigError:
    opts = getattr(settings, "options", None)
    file = getattr(opts, "file", None) or getattr(settings, "file", None)
    line = None
    if key is not None and opts is not None and hasattr(opts, "line_of") and key in opts:
        line = opts.line_of(key)
    line = line or getattr(opts, "line", None) or getattr(settings, "line", None)
    return ConfigError(f"target {settings.provider!r}: {message}", file, line, fix)


def str_list(settings, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool)
                                                for x in value):
        raise option_error(settings, key, f"`{key}` must be a list of texts, got {value!r}",
                       f"write e.g. `{key}: [\"--flag\", \"value\"]`")
    return [str(x) for x in value]


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str) -> str:
    return _VAR.sub(lambda m: os.environ.get(m.group(1), ""), value)


def safe_rel(settings_or_none, key: str, rel: Any, what: str) -> str:
    p = str(rel)
    parts = Path(p).parts
    if not p or Path(p).is_absolute() or ".." in parts or (parts and parts[0] == ".git"):
        fix = "give a path relative to the workspace, e.g. `AGENTS.md` or `.claude/skills/my-skill/SKILL.md`"
        if settings_or_none is None:
            raise ConfigError(f"{what} {p!r} must be a relative path inside the workspace", None, None, fix)
        raise option_error(settings_or_none, key, f"{what} {p!r} must be a relative path inside the workspace", fix)
    return Path(p).as_posix()


def front_matter(skill: str) -> dict:
    m = re.match(r"^---\r?\n(.*?)\r?\n---\r?\n", skill, re.S)
    if not m:
        return {}
    out = {}
    for line in m.group(1).splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() and not k.startswith((" ", "\t")):
            out[k.strip()] = v.strip().strip("'\"")
    return out


def slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return s[:64] or "skill"


_version_cache: dict[str, str] = {}


def binary_version(path: str) -> str:
    if path not in _version_cache:
        try:
            r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            _version_cache[path] = (r.stdout.strip().splitlines() or ["unknown"])[0][:100]
        except (OSError, subprocess.TimeoutExpired) as exc:
            _version_cache[path] = f"unknown ({type(exc).__name__})"
    return _version_cache[path]


# --------------------------------------------------------------------------- the command target

@dataclass
class RunResult:
    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    seconds: float


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
            raise option_error(settings, unknown[0], f"unknown option {unknown[0]!r}",
                           f"allowed options for {settings.provider}: {', '.join(sorted(self.allowed_options))}")
        self.timeout = float(getattr(settings, "timeout", None) or 600.0)
        self.env_templates = self._env_option()
        self.pass_env = str_list(settings, "pass_env", self.options.get("pass_env", []))
        self.key_env = getattr(settings, "api_key_env", None)
        base = self.options.get("base_dir")
        self.base_dir = Path(expand_env(str(base))).expanduser() if base else None
        if self.base_dir is not None and not self.base_dir.is_absolute():
            self.base_dir = self.project_root / self.base_dir
        self.extra_args = str_list(settings, "extra_args", self.options.get("extra_args", []))
        self.skill_path = self._skill_path()
        self.name = f"{settings.provider}:{getattr(settings, 'model', None) or self.kind}"
        self.price_model = getattr(settings, "model", None)
        self._configure()

    # ---- configuration (subclasses override)

    def _env_option(self) -> dict[str, str]:
        env = self.options.get("env", {}) or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
            raise option_error(self.settings, "env", "`env` must be a mapping of NAME: value",
                           "write e.g. `env: {MY_FLAG: \"1\", TOKEN: \"${MY_TOKEN}\"}`")
        return {k: "" if v is None else str(v) for k, v in env.items()}

    def _skill_path(self) -> str:
        return safe_rel(self.settings, "skill_path", self.options.get("skill_path", self.default_skill_path),
                         "`skill_path`")

    def _configure(self) -> None:
        cmd = self.options.get("command")
        if cmd is None or cmd == "" or cmd == []:
            raise option_error(self.settings, None, "needs `options.command`: the agent to run",
                           "write e.g. `options: {command: [\"my-agent\", \"--yes\"], prompt_via: stdin}`")
        self.shell = isinstance(cmd, str)
        self.command = [cmd] if self.shell else str_list(self.settings, "command", cmd)
        via = self.options.get("prompt_via", "stdin")
        if via not in ("stdin", "arg", "file"):
            raise option_error(self.settings, "prompt_via", f"unknown `prompt_via` {via!r}",
                           "use stdin, arg or file")
        self.prompt_via = via
        if self.shell and "{prompt}" in cmd:
            raise option_error(self.settings, "command", "a string command cannot contain {prompt} (the prompt would "
                           "be run as shell code)", "use `prompt_via: arg` (the prompt is \"$1\") or "
                           "`prompt_via: file` ($SKILLOPT_PROMPT_FILE), or write `command` as a list")
        out = str(self.options.get("output", "text"))
        if out != "text" and not re.fullmatch(r"json:[^\s]+|file:.+", out):
            raise option_error(self.settings, "output", f"unknown `output` {out!r}",
                           "use `text`, `json:<field>` (e.g. json:result) or `file:<path in the workspace>`")
        if out.startswith("file:"):
            safe_rel(self.settings, "output", out[5:], "`output` file")
        self.output = out
        self.allow_nonzero = self.options.get("allow_nonzero_exit", False)
        if not isinstance(self.allow_nonzero, bool):
            raise option_error(self.settings, "allow_nonzero_exit", "`allow_nonzero_exit` must be true or false",
                           "write `allow_nonzero_exit: true`")
        if not self.shell:
            self.binary = self._resolve_binary(self.command[0], "command")

    def _resolve_binary(self, name: str, key: str, package: str | None = None) -> str:
        name = expand_env(name)
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
        raise option_error(self.settings, key, f"agent binary {name!r} not found", fix)

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

    def run(self, skill: str, task: Task, sample: int) -> Completion:
        prep = self._prepare(skill, task)
        try:
            argv, stdin_text, env = self._invocation(prep, task)
            res = self._execute(argv, stdin_text, env, prep)
            return self._completion(prep, res)
        except BaseException:
            remove_workspace(prep.ws)
            raise

    def _install_skill(self, ws: Path, skill: str) -> str:
        install(skill, ws, self.skill_path)  # a package: its other files next to the main one, scripts executable
        return self.skill_path

    def _prepare(self, skill: str, task: Task) -> Prepared:
        return prepare(self.base_dir, task.fixture, lambda ws: self._install_skill(ws, skill), task.prompt_text())

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
            env[k] = expand_env(v)
        return env

    def _invocation(self, prep: Prepared, task: Task) -> tuple[list[str], str | None, dict]:
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
        with open(out_path, "wb") as so, open(err_path, "wb") as se:
            try:
                res = run_in_group(argv, cwd=prep.ws, env=env, stdout=so, stderr=se, timeout=self.timeout,
                                   stdin_text=stdin_text)
            except FileNotFoundError as exc:
                raise option_error(self.settings, "command", f"cannot start the agent: {exc.strerror}: {argv[0]!r}",
                                   "install the agent or fix the command / binary path") from None
        return RunResult(read_all(out_path), read_all(err_path), None if res.timed_out else res.exit_code,
                         res.timed_out, res.seconds)

    def _transcript(self, argv_shown: Any, res: RunResult) -> list[dict]:
        t = [{"role": "command", "content": argv_shown}]
        if res.stdout.strip():
            t.append({"role": "stdout", "content": clip_middle(res.stdout, STREAM_MAX_CHARS)})
        if res.stderr.strip():
            t.append({"role": "stderr", "content": clip_middle(res.stderr, STREAM_MAX_CHARS // 4)})
        t.append({"role": "exit", "content": "timed out" if res.timed_out else f"exit code {res.exit_code}"})
        return t

    def _extra(self, prep: Prepared, res: RunResult) -> dict:
        return {"agent": self.settings.provider, "skill_path": prep.skill_path, "baseline": prep.baseline,
                "seconds": round(res.seconds, 3), **prep.extra}

    def _timeout_error(self, res: RunResult) -> str:
        return f"timed out after {self.timeout:g}s" + (
            f"; stderr {quote_tail(res.stderr)}" if res.stderr.strip() else ""
        )

    def _completion(self, prep: Prepared, res: RunResult) -> Completion:
        transcript = self._transcript(self._fingerprint_command(), res)
        extra = self._extra(prep, res)
        if res.timed_out:
            return Completion(text="", transcript=transcript, error=self._timeout_error(res),
                              workspace=str(prep.ws), exit_code=None, extra=extra)
        text, parse_error = self._answer(prep, res)
        error = parse_error
        if res.exit_code is not None and res.exit_code != 0 and not self.allow_nonzero:
            status = f"exit code {res.exit_code}" if res.exit_code >= 0 else f"killed by signal {-res.exit_code}"
            error = f"agent failed ({status})" + (f"; stderr {quote_tail(res.stderr)}" if res.stderr.strip() else "")
        return Completion(text=text, transcript=transcript, error=error, workspace=str(prep.ws),
                          exit_code=res.exit_code, extra=extra)

    def _answer(self, prep: Prepared, res: RunResult) -> tuple[str, str | None]:
        if self.output == "text":
            return res.stdout.strip(), None
        if self.output.startswith("file:"):
            p = inside(prep.ws, self.output[5:])
            if p is None or not p.is_file():
                return "", f"the agent wrote no {self.output[5:]!r} (output: {self.output})"
            return p.read_text(encoding="utf-8", errors="replace").strip(), None
        fieldname = self.output[5:]
        obj = parse_json_output(res.stdout)
        if obj is None:
            return res.stdout.strip(), f"stdout is not JSON (output: {self.output}); stdout {quote_tail(res.stdout)}"
        value = lookup(obj, fieldname)
        if value is _MISSING:
            return res.stdout.strip(), f"stdout JSON has no field {fieldname!r}"
        return (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)), None


_MISSING = object()


def lookup(obj: Any, dotted: str) -> Any:
    cur = obj
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def parse_json_output(stdout: str) -> Any:
    """The whole stdout as JSON, else its last line that is JSON (CLIs often log before the result); None if neither."""
    for candidate in [stdout, *reversed(stdout.strip().splitlines())]:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue  # not JSON: try the next candidate
    return None


def json_lines(stdout: str) -> list[dict]:
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


def short(value: Any, limit: int = TRANSCRIPT_ITEM_CHARS) -> Any:
    if isinstance(value, str):
        return clip_middle(value, limit)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return value if len(text) <= limit else clip_middle(text, limit)


# --------------------------------------------------------------------------- presets

class PresetTarget(CommandTarget):
    binary_name = ""
    default_key_env: str | None = None
    install_choices: dict[str, str] = {}
    default_install = ""

    def _skill_path(self) -> str:
        if "skill_path" in self.options:
            return safe_rel(self.settings, "skill_path", self.options["skill_path"], "`skill_path`")
        install = self.options.get("install", self.default_install)
        if install not in self.install_choices:
            raise option_error(self.settings, "install", f"unknown `install` {install!r}",
                           f"use one of: {', '.join(self.install_choices)}")
        self.install = install
        return self.install_choices[install]

    def _install_skill(self, ws: Path, skill: str) -> str:
        rel = self.skill_path
        if "<name>" in rel:
            name = self.options.get("skill_name") or front_matter(main_text(skill)).get("name") or "skill"
            rel = rel.replace("<name>", slug(str(name)))
            skill = with_main(skill, self._withfront_matter(main_text(skill), slug(str(name))))
        install(skill, ws, rel)
        return rel

    def _withfront_matter(self, skill: str, name: str) -> str:
        """Skill folders need front matter (name, description) to be discovered; add it when missing."""
        if front_matter(skill):
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
        return [Path(self.binary).name, binary_version(self.binary), *self._flags(None)]

    def _flags(self, prep: Prepared | None) -> list[str]:
        raise NotImplementedError

    def _invocation(self, prep: Prepared, task: Task) -> tuple[list[str], str | None, dict]:
        env = self._with_user_env(self._preset_env(self._base_env(prep), prep))
        return [self.binary, *self._flags(prep), *self.extra_args], task.prompt_text(), env

    def _preset_env(self, env: dict, prep: Prepared) -> dict:
        return env

    def _key_value(self) -> str | None:
        name = self.key_env or self.default_key_env
        return os.environ.get(name) if name else None


register_target("command")(CommandTarget)
