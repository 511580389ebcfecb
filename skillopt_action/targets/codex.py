"""The `codex` target: `codex exec --skip-git-repo-check --sandbox workspace-write -C <ws> --json -o <file>`.

Options: install: agents_md (default: AGENTS.md) | skill (.agents/skills/<skill_name>/SKILL.md); sandbox
(default workspace-write, with /tmp and $TMPDIR excluded so commands can write only inside the workspace);
codex_home (CODEX_HOME; default: generated under ~/.cache/skillopt/codex-home/ when `base_url` is set, else
the user's own); wire_api (only `responses`); extra_args, binary, env, pass_env, base_dir, skill_name.
`model` -> -m; `base_url` -> a generated model provider whose env_key is `api_key_env` (default
OPENAI_API_KEY). The prompt goes on stdin; the last message is the answer.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..text import quote
from ..types import Completion, Task, Usage
from ..workspace import Prepared
from .base import register_target
from .command import COMMON_OPTIONS, PresetTarget, RunResult, clip_middle, expand_env, json_lines, option_error, short

CODEX_OPTIONS = COMMON_OPTIONS | {"install", "skill_name", "sandbox", "codex_home", "wire_api"}
TRANSCRIPT_MAX_ITEMS = 200

@register_target("codex")
class CodexTarget(PresetTarget):
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
            raise option_error(s, "sandbox", f"unknown `sandbox` {sb!r}",
                           "use workspace-write (default), read-only, or danger-full-access (no sandbox at all)")
        self.sandbox = sb
        wire = o.get("wire_api", "responses")
        if wire != "responses":
            raise option_error(s, "wire_api", f"codex speaks only the Responses API, not {wire!r}",
                           "remove `wire_api` (the server must implement POST /v1/responses with streaming)")
        bad = [a for a in self.extra_args if a in ("--dangerously-bypass-approvals-and-sandbox", "--yolo")]
        if bad:
            raise option_error(s, "extra_args", f"`extra_args` may not contain {bad[0]}",
                           "widen the sandbox explicitly with `sandbox: danger-full-access` instead")
        self.codex_home = self._codex_home()

    def _codex_home(self) -> Path | None:
        o, s = self.options, self.settings
        given = o.get("codex_home")
        base_url = getattr(s, "base_url", None)
        if given:
            p = Path(expand_env(str(given))).expanduser()
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

    def _invocation(self, prep: Prepared, task: Task) -> tuple[list[str], str | None, dict]:
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
        for ev in json_lines(res.stdout):
            t = ev.get("type")
            if t in ("item.completed",):
                item = ev.get("item") or {}
                it = item.get("type")
                if it == "agent_message":
                    last_text = item.get("text", "")
                    transcript.append({"role": "assistant", "content": short(last_text)})
                elif it == "command_execution":
                    transcript.append({"role": "assistant", "type": "tool_use", "content": {
                        "name": "shell", "input": short(item.get("command"), 1500)}})
                    transcript.append({"role": "tool", "content": short(
                        f"exit code {item.get('exit_code')}\n{item.get('aggregated_output') or ''}", 1500)})
                elif it == "file_change":
                    transcript.append({"role": "assistant", "type": "tool_use", "content": {
                        "name": "apply_patch", "input": short(item.get("changes"), 1500)}})
                elif it == "error":
                    errors.append(str(item.get("message", "")))
                    transcript.append({"role": "error", "content": short(item.get("message", ""), 1500)})
                elif it:
                    transcript.append({"role": "assistant", "type": it, "content": short(
                        {k: v for k, v in item.items() if k not in ("id", "type")}, 1500)})
            elif t == "turn.completed":
                u = ev.get("usage") or {}
                usage = Usage(usage.input_tokens + int(u.get("input_tokens") or 0),
                              usage.output_tokens + int(u.get("output_tokens") or 0))
            elif t in ("turn.failed", "error"):
                msg = ev.get("message") or (ev.get("error") or {}).get("message") or json.dumps(ev)[:300]
                errors.append(str(msg))
                transcript.append({"role": "error", "content": short(msg, 1500)})
        if res.stderr.strip():
            transcript.append({"role": "stderr", "content": clip_middle(res.stderr, 2000)})
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
            error = f"codex failed (exit code {res.exit_code}): {quote(why, 200)}"
        return Completion(text=text, transcript=transcript, usage=usage, error=error, workspace=str(prep.ws),
                          exit_code=res.exit_code, extra=extra)


