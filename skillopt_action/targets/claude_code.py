"""The `claude-code` target: `claude -p --output-format stream-json --verbose` in the workspace, prompt on stdin.

Options: install: skill (default: .claude/skills/<skill_name>/SKILL.md) | claude_md (CLAUDE.md);
skill_name (default: the skill's front-matter `name`, else "skill"); skill_description (front matter added
when the skill has none); allowed_tools (default ["Read(./**)", "Edit(./**)", "Write(./**)", Skill]: file
tools inside the workspace only; a bare `Write` would allow writes anywhere); disallowed_tools;
permission_mode (default: not passed, so nothing outside allowed_tools runs); max_turns; config_dir
(CLAUDE_CONFIG_DIR); extra_args, binary, env, pass_env, base_dir, output_format (stream-json | json).
`model` -> --model; `base_url` -> ANTHROPIC_BASE_URL; the key named by `api_key_env` (default
ANTHROPIC_API_KEY) -> ANTHROPIC_API_KEY. The answer, usage, `total_cost_usd` and the tool calls (the
transcript) come from the CLI's JSON output.
"""

from __future__ import annotations

from pathlib import Path

from ..text import quote, quote_tail
from ..types import Completion, Usage
from ..workspace import Prepared
from .base import register_target
from .command import (
    COMMON_OPTIONS,
    PresetTarget,
    RunResult,
    clip_middle,
    expand_env,
    json_lines,
    option_error,
    short,
    str_list,
)

CLAUDE_OPTIONS = COMMON_OPTIONS | {"install", "skill_name", "skill_description", "allowed_tools", "disallowed_tools",
                                   "permission_mode", "max_turns", "config_dir", "output_format"}
# Path-scoped to the working directory: a bare `Write` would let the agent write anywhere on disk.
# Read rules also cover Claude Code's search tools (Glob, Grep) where this version offers them.
CLAUDE_DEFAULT_TOOLS = ("Read(./**)", "Edit(./**)", "Write(./**)", "Skill")
TRANSCRIPT_MAX_ITEMS = 200

@register_target("claude-code")
class ClaudeCodeTarget(PresetTarget):
    kind = "claude-code"
    binary_name = "claude"
    allowed_options = CLAUDE_OPTIONS
    install_choices = {"skill": ".claude/skills/<name>/SKILL.md", "claude_md": "CLAUDE.md"}
    default_install = "skill"
    default_key_env = "ANTHROPIC_API_KEY"

    def _configure(self) -> None:
        super()._configure()
        o, s = self.options, self.settings
        self.allowed_tools = str_list(s, "allowed_tools", o.get("allowed_tools", list(CLAUDE_DEFAULT_TOOLS)))
        self.disallowed_tools = str_list(s, "disallowed_tools", o.get("disallowed_tools", []))
        pm = o.get("permission_mode")
        if pm is not None and pm not in ("default", "acceptEdits", "dontAsk", "plan", "auto", "bypassPermissions"):
            raise option_error(s, "permission_mode", f"unknown `permission_mode` {pm!r}",
                           "use default, acceptEdits, dontAsk, plan, auto or bypassPermissions (the last one "
                           "lets the agent run anything: only in a disposable sandbox)")
        self.permission_mode = pm
        mt = o.get("max_turns")
        if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt < 1):
            raise option_error(s, "max_turns", "`max_turns` must be a positive integer", "write e.g. `max_turns: 20`")
        self.max_turns = mt
        fmt = o.get("output_format", "stream-json")
        if fmt not in ("stream-json", "json"):
            raise option_error(s, "output_format", f"unknown `output_format` {fmt!r}",
                           "use stream-json (keeps the tool calls as the transcript) or json")
        self.output_format = fmt
        if any(a in ("--dangerously-skip-permissions", "--allow-dangerously-skip-permissions")
               for a in self.extra_args):
            raise option_error(s, "extra_args", "`extra_args` may not skip permission checks",
                           "set `permission_mode: bypassPermissions` explicitly if you really want that")
        cd = o.get("config_dir")
        self.config_dir = None
        if cd:
            p = Path(expand_env(str(cd))).expanduser()
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
        events = json_lines(res.stdout)
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
                                           {"name": block.get("name"), "input": short(block.get("input"))}})
                    elif block.get("type") == "text" and block.get("text", "").strip():
                        transcript.append({"role": "assistant", "content": short(block["text"])})
            elif t == "user":
                content = (ev.get("message") or {}).get("content")
                for block in content if isinstance(content, list) else []:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        c = block.get("content")
                        if isinstance(c, list):
                            c = "\n".join(x.get("text", "") for x in c if isinstance(x, dict))
                        transcript.append({"role": "tool", "content": short(
                            ("[error] " if block.get("is_error") else "") + str(c or ""), 1500)})
        if res.stderr.strip():
            transcript.append({"role": "stderr", "content": clip_middle(res.stderr, 2000)})
        transcript = transcript[-TRANSCRIPT_MAX_ITEMS:]
        extra = self._extra(prep, res)
        if res.timed_out:
            return Completion("", transcript, error=self._timeout_error(res), workspace=str(prep.ws), extra=extra)
        usage, text, error = Usage(), "", None
        if result is None:
            error = (f"claude printed no result (exit code {res.exit_code})"
                     + (f"; stderr {quote_tail(res.stderr)}" if res.stderr.strip() else
                        f"; stdout {quote_tail(res.stdout)}" if res.stdout.strip() else ""))
        else:
            u = result.get("usage") or {}
            inp = sum(int(u.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                   "cache_read_input_tokens"))
            cost = result.get("total_cost_usd")
            usage = Usage(inp, int(u.get("output_tokens") or 0), float(cost) if cost is not None else None)
            text = str(result.get("result") or "")
            extra.update(num_turns=result.get("num_turns"), subtype=result.get("subtype"))
            usage_by_model = result.get("modelUsage")
            models = sorted(usage_by_model) if isinstance(usage_by_model, dict) else []
            if models:
                extra["model"] = ",".join(models)
            denials = result.get("permission_denials") or []
            if denials:
                extra["permission_denials"] = [short(d, 300) for d in denials[:10]]
                transcript.append({"role": "harness", "content": "permission denied for: " + ", ".join(
                    str(d.get("tool_name", "?")) for d in denials[:10] if isinstance(d, dict))})
            if result.get("is_error"):
                error = f"claude reported {result.get('subtype') or 'an error'}: {quote(text, 200)}"
        return Completion(text=text, transcript=transcript, usage=usage, error=error, workspace=str(prep.ws),
                          exit_code=res.exit_code, extra=extra)


