"""`.github/skillopt.yml` -> typed settings.

The JSON Schema in `CONFIG_SCHEMA` is the single source of truth: the loader
validates the YAML against it and turns every violation into a ConfigError
that names the file, the line and what to write instead. The published copy
lives at `skillopt_action/schema/skillopt.schema.json` (`skillopt schema`
prints it; a test keeps the two identical).

Paths in the config are relative to the project root: the repository root
when the config sits in `.github/`, otherwise the config file's directory.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from .errors import ConfigError
from .gate import GateSettings
from .yamlfile import Located, LocatedList, load

DEFAULT_CONFIG = ".github/skillopt.yml"
PROVIDERS = ["openai", "azure", "anthropic", "local", "command", "claude-code", "codex"]
CHAT_PROVIDERS = ["openai", "azure", "anthropic", "local"]
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
                   "claude-code": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY"}
LOCAL_MODEL = "smollm2-135m-instruct"

_num = {"type": "number"}
_MODEL = {
    "type": "object",
    "additionalProperties": False,
    "description": "A model (or agent) and how to reach it.",
    "properties": {
        "provider": {
            "enum": PROVIDERS,
            "description": "openai (also any OpenAI-compatible server via base_url), azure, anthropic, local "
            "(the bundled SmolLM2-135M), or an agent harness: command, claude-code, codex.",
        },
        "model": {"type": "string", "description": "Model name (Azure: the deployment name)."},
        "base_url": {
            "type": "string",
            "description": "API base URL, e.g. http://localhost:11434/v1 for Ollama. Defaults to the provider's "
            "(or OPENAI_BASE_URL / ANTHROPIC_BASE_URL).",
        },
        "api_key_env": {
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "description": "NAME of the environment variable holding the API key (never the key itself).",
        },
        "api_version": {"type": "string", "description": "Azure OpenAI API version."},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "max_tokens": {"type": "integer", "minimum": 1},
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds per call (agent harness: per rollout).",
        },
        "options": {
            "type": "object",
            "description": "Provider-specific settings (agent harnesses, local model_path, n_ctx, "
            "structured_output ...).",
        },
    },
}
CONFIG_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/skillopt/skillopt-action/schema/skillopt.schema.json",
    "title": "skillopt-action configuration (.github/skillopt.yml)",
    "type": "object",
    "additionalProperties": False,
    "required": ["skill", "tasks"],
    "properties": {
        "skill": {
            "type": "string",
            "minLength": 1,
            "description": "Path of the skill file to train (SKILL.md, AGENTS.md, CLAUDE.md ...).",
        },
        "tasks": {
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
            "description": "Glob(s) of YAML/JSONL task files.",
        },
        "splits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "train": {"type": "number", "minimum": 0},
                "val": {"type": "number", "minimum": 0},
                "test": {"type": "number", "minimum": 0},
                "seed": {"type": "integer"},
            },
            "description": "Ratios for tasks without an explicit `split:` (default 0.5/0.25/0.25, seed 0).",
        },
        "target": _MODEL,
        "optimizer": _MODEL,
        "judge": _MODEL,
        "loop": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "epochs": {"type": "integer", "minimum": 1},
                "batch_size": {"type": "integer", "minimum": 1},
                "minibatch_size": {"type": "integer", "minimum": 1},
                "pass_threshold": {"type": "number", "minimum": 0, "maximum": 1},
                "failure_only": {"type": "boolean"},
                "parse_retries": {"type": "integer", "minimum": 0, "maximum": 5},
                "max_trajectory_chars": {"type": "integer", "minimum": 200},
                "candidates": {"type": "integer", "minimum": 1,
                               "description": "sequential gate: proposed edits screened per step, each on its own."},
                "screen_size": {"type": "integer", "minimum": 0,
                                "description": "sequential gate: train tasks added to an edit's motivating tasks "
                                               "when screening it (0: only the motivating tasks)."},
                "edit_budget": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "ops": {"type": "integer", "minimum": 1},
                        "lines": {"type": "integer", "minimum": 1},
                        "min_ops": {"type": "integer", "minimum": 1},
                        "min_lines": {"type": "integer", "minimum": 1},
                        "schedule": {"enum": ["constant", "linear", "cosine"]},
                    },
                },
            },
        },
        "gate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "mode": {"enum": ["sequential", "paired", "strict"],
                         "description": "sequential (default): each edit is tested alone in rounds that stop as soon "
                                        "as the evidence decides; paired: one fixed-sample paired test per step; "
                                        "strict: SkillOpt's 'higher mean wins' (no test, for comparison)."},
                "samples": {"type": "integer", "minimum": 1,
                            "description": "Rollouts per task and skill for the final val/test scores (and for "
                                           "every decision in paired/strict mode)."},
                "min_delta": {"type": "number", "minimum": 0, "maximum": 1},
                "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                          "description": "sequential: the chance that the whole run accepts any edit that does "
                                         "nothing (split across its decisions); paired: per decision."},
                "test": {"enum": ["permutation", "bootstrap"]},
                "resamples": {"type": "integer", "minimum": 100},
                "schedule": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                             "maxItems": 6,
                             "description": "sequential: samples per task and skill after each round, e.g. [1, 3, 6]."},
                "decisions": {"type": "integer", "minimum": 1,
                              "description": "sequential: val decisions per step (screened candidates tested)."},
                "task_alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                               "description": "sequential: the per-task gains must also pass a sign-flip test at "
                                              "this level (no single task can decide)."},
                "confirm": {"type": "boolean",
                            "description": "sequential: re-confirm the final skill against the start on fresh "
                                           "samples before proposing it."},
            },
        },
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 256},
        "retries": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "attempts": {"type": "integer", "minimum": 1, "maximum": 20},
                "base_delay": {"type": "number", "minimum": 0},
                "max_delay": {"type": "number", "minimum": 0},
            },
        },
        "budget": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"max_usd": {"type": "number", "minimum": 0}, "max_calls": {"type": "integer", "minimum": 1}},
        },
        "prices": {
            "type": "object",
            "description": "USD per million tokens by model name: {model: {input: X, output: Y}}.",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["input", "output"],
                "properties": {"input": {"type": "number", "minimum": 0}, "output": {"type": "number", "minimum": 0}},
            },
        },
        "cache_dir": {"type": "string", "description": "Rollout and model-call cache (default .skillopt/cache)."},
    },
}

# Prices in USD per million tokens for a few well-known models; `prices:` in the config overrides/extends.
DEFAULT_PRICES = {
    "gpt-4.1": {"input": 2.0, "output": 8.0},
    "gpt-4.1-mini": {"input": 0.4, "output": 1.6},
    "gpt-4.1-nano": {"input": 0.1, "output": 0.4},
    "gpt-4o": {"input": 2.5, "output": 10.0},
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
    LOCAL_MODEL: {"input": 0.0, "output": 0.0},
}


@dataclass
class ModelSettings:
    role: str
    provider: str = "local"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    api_version: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    timeout: float = 60.0
    options: dict = field(default_factory=Located)
    file: str | None = None
    line: int | None = None

    def fingerprint(self) -> dict:
        """What changes a model's answers: no key values, no timeouts."""
        opts = {k: v for k, v in self.options.items() if k not in ("env",)}
        return {"provider": self.provider, "model": self.model, "base_url": self.base_url,
                "api_version": self.api_version, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "options": opts}


TargetSettings = ModelSettings


@dataclass
class EditBudget:
    ops: int = 4
    lines: int = 24
    min_ops: int = 2
    min_lines: int = 12
    schedule: str = "cosine"

    def at(self, step: int, total_steps: int) -> tuple[int, int]:
        """Budget (ops, changed lines) for a 0-based step: the textual learning rate."""
        if self.schedule == "constant" or total_steps <= 1:
            frac = 0.0
        elif self.schedule == "linear":
            frac = step / (total_steps - 1)
        else:
            frac = (1 - math.cos(math.pi * step / (total_steps - 1))) / 2
        ops = round(self.ops - (self.ops - min(self.min_ops, self.ops)) * frac)
        lines = round(self.lines - (self.lines - min(self.min_lines, self.lines)) * frac)
        return max(1, ops), max(1, lines)


@dataclass
class LoopSettings:
    epochs: int = 2
    batch_size: int = 8
    minibatch_size: int = 4
    pass_threshold: float = 1.0
    failure_only: bool = False
    parse_retries: int = 2
    max_trajectory_chars: int = 1500
    candidates: int = 6  # sequential gate: edits screened per step
    screen_size: int = 3  # sequential gate: extra train tasks in an edit's screening
    edit_budget: EditBudget = field(default_factory=EditBudget)


@dataclass
class RetrySettings:
    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0


@dataclass
class Config:
    path: Path
    root: Path
    skill: str  # relative to root
    tasks: list[str]
    split_ratios: dict[str, float]
    split_seed: int
    target: ModelSettings
    optimizer: ModelSettings
    judge: ModelSettings
    loop: LoopSettings
    gate: GateSettings
    concurrency: int
    retries: RetrySettings
    max_usd: float | None
    max_calls: int | None
    prices: dict[str, dict]
    cache_dir: Path
    raw: dict
    lines: dict = field(default_factory=dict)

    @property
    def skill_path(self) -> Path:
        return self.root / self.skill

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def line_of(self, *path: str) -> int | None:
        node: Any = self.raw
        line = getattr(node, "line", None)
        for key in path:
            if isinstance(node, Located) and key in node:
                line = node.line_of(key)
                node = node[key]
            else:
                break
        return line


def project_root_for(config_path: Path) -> Path:
    parent = config_path.resolve().parent
    return parent.parent if parent.name == ".github" else parent


def _locate(raw: Any, path: list) -> int | None:
    node, line = raw, getattr(raw, "line", None)
    for key in path:
        if isinstance(node, (Located, LocatedList)) and (
            key in node if isinstance(node, dict) else 0 <= key < len(node)
        ):
            line = node.line_of(key)
            node = node[key]
        else:
            break
    return line


def _explain(err: jsonschema.ValidationError, raw: Any, file: str) -> ConfigError:
    path = list(err.absolute_path)
    dotted = ".".join(str(p) for p in path) or "(top level)"
    line = _locate(raw, path)
    v, sch = err.validator, err.schema
    assert isinstance(sch, dict)
    if v == "additionalProperties":
        allowed = sorted(sch.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        key = extra[0] if extra else "?"
        line = _locate(raw, path + [key])
        near = difflib.get_close_matches(str(key), allowed, n=1)
        fix = f"did you mean `{near[0]}`?" if near else f"allowed keys here: {', '.join(allowed)}"
        return ConfigError(f"unknown key {key!r} in {dotted}", file, line, fix)
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        example = {"skill": "`skill: SKILL.md`", "tasks": "`tasks: evals/*.yml`"}.get(missing, f"`{missing}: ...`")
        return ConfigError(f"missing required key {missing!r}", file, line, f"add {example}")
    if v == "enum":
        near = difflib.get_close_matches(str(err.instance), [str(x) for x in sch["enum"]], n=1)
        fix = f"did you mean `{near[0]}`?" if near else f"use one of: {', '.join(map(str, sch['enum']))}"
        return ConfigError(f"`{dotted}` has invalid value {err.instance!r}", file, line, fix)
    if v == "type" or v == "oneOf":
        want = sch.get("type") or "a string or a list of strings"
        return ConfigError(f"`{dotted}` must be {want}, not {type(err.instance).__name__} {err.instance!r}", file, line,
                           f"write `{path[-1] if path else 'key'}:` with a {want} value")
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = sch[v]
        rel = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return ConfigError(f"`{dotted}` is {err.instance!r} but must be {rel} {bound}", file, line,
                           f"set `{path[-1]}` to a value {rel} {bound}")
    return ConfigError(f"`{dotted}`: {err.message}", file, line, "see the config reference in README.md")


def _model(role: str, raw: Any, file: str, fallback: ModelSettings | None = None) -> ModelSettings:
    if raw is None and fallback is not None:
        m = ModelSettings(**{**fallback.__dict__, "role": role})
        return m
    raw = raw if raw is not None else Located()
    provider = raw.get("provider", fallback.provider if fallback else "local")
    defaults = {"local": dict(model=LOCAL_MODEL, temperature=0.7 if role == "target" else 0.3,
                              max_tokens=160 if role == "target" else 384)}.get(provider, {})
    m = ModelSettings(
        role=role, provider=provider,
        model=raw.get("model", defaults.get("model")),
        base_url=raw.get("base_url"),
        api_key_env=raw.get("api_key_env", DEFAULT_KEY_ENV.get(provider)),
        api_version=raw.get("api_version"),
        temperature=float(raw.get("temperature", defaults.get("temperature", 0.0 if role != "target" else 0.7))),
        max_tokens=int(raw.get("max_tokens", defaults.get("max_tokens", 1024 if role != "target" else 512))),
        timeout=float(raw.get("timeout", 300.0 if provider in ("command", "claude-code", "codex") else 60.0)),
        options=raw.get("options") if isinstance(raw.get("options"), Located) else Located(raw.get("options") or {}),
        file=file, line=getattr(raw, "line", None),
    )
    if m.provider in CHAT_PROVIDERS and m.provider != "local" and not m.model:
        raise ConfigError(f"`{role}.model` is required for provider {provider!r}", file, m.line,
                          f"add `model: ...` under `{role}:` (e.g. gpt-4.1-mini, claude-sonnet-4-5)")
    if m.provider == "azure" and not m.base_url:
        raise ConfigError(f"`{role}.base_url` is required for provider azure", file, m.line,
                          "set `base_url: https://<resource>.openai.azure.com` and `api_version:`")
    if role != "target" and m.provider not in CHAT_PROVIDERS:
        raise ConfigError(f"the {role} must be a chat model, not {provider!r}", file, m.line,
                          f"use one of: {', '.join(CHAT_PROVIDERS)}")
    return m


def load_config(path: str | Path | None = None) -> Config:
    cfg_path = Path(path or DEFAULT_CONFIG)
    file = str(cfg_path)
    raw = load(cfg_path)
    if raw is None:
        raise ConfigError(
            "the config file is empty", file, 1, "start from `skillopt init`, or write `skill:` and `tasks:`"
        )
    if not isinstance(raw, Located):
        raise ConfigError(
            "the config must be a mapping of keys", file, getattr(raw, "line", 1), "write `skill: SKILL.md` etc."
        )
    validator = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
    errors = sorted(
        validator.iter_errors(raw), key=lambda e: (_locate(raw, list(e.absolute_path)) or 0, len(list(e.absolute_path)))
    )
    if errors:
        raise _explain(errors[0], raw, file)
    root = project_root_for(cfg_path)
    skill = str(raw["skill"])
    if not (root / skill).is_file():
        raise ConfigError(f"skill file {skill!r} not found (looked in {root})", file, raw.line_of("skill"),
                          "create it, or fix `skill:` (paths are relative to the repository root)")
    tasks = [raw["tasks"]] if isinstance(raw["tasks"], str) else list(raw["tasks"])
    splits = raw.get("splits") or {}
    ratios = {
        "train": float(splits.get("train", 0.5)),
        "val": float(splits.get("val", 0.25)),
        "test": float(splits.get("test", 0.25)),
    }
    if ratios["train"] <= 0 or ratios["val"] <= 0:
        raise ConfigError("`splits` needs a positive train and val ratio", file, raw.line_of("splits"),
                          "e.g. `splits: {train: 0.5, val: 0.25, test: 0.25}`")
    target = _model("target", raw.get("target"), file)
    if target.provider not in CHAT_PROVIDERS and raw.get("optimizer") is None:
        raise ConfigError(f"`optimizer:` is required when the target is the agent harness {target.provider!r}",
                          file, raw.line_of("target"),
                          "add e.g. `optimizer: {provider: anthropic, model: claude-sonnet-4-5}` "
                          "(the optimizer must be a chat model)")
    optimizer = _model("optimizer", raw.get("optimizer"), file,
                       fallback=target if target.provider in CHAT_PROVIDERS else None)
    judge = _model("judge", raw.get("judge"), file, fallback=optimizer)
    lp = raw.get("loop") or {}
    eb = lp.get("edit_budget") or {}
    budget = EditBudget(**{k: eb[k] for k in ("ops", "lines", "min_ops", "min_lines", "schedule") if k in eb})
    loop = LoopSettings(
        **{
            k: lp[k]
            for k in (
                "epochs",
                "batch_size",
                "minibatch_size",
                "pass_threshold",
                "failure_only",
                "parse_retries",
                "max_trajectory_chars",
                "candidates",
                "screen_size",
            )
            if k in lp
        },
        edit_budget=budget,
    )
    g = raw.get("gate") or {}
    try:
        given = {k: g[k] for k in ("mode", "samples", "min_delta", "alpha", "test", "resamples", "decisions",
                                   "task_alpha", "confirm") if k in g}
        if "schedule" in g:
            given["schedule"] = tuple(g["schedule"])
        gate = GateSettings(**{"mode": "sequential", "alpha": 0.05, **given}, seed=int(splits.get("seed", 0)))
    except ValueError as exc:
        raise ConfigError(f"invalid gate settings: {exc}", file, raw.line_of("gate"),
                          "see `gate:` in the config reference (README.md)") from None
    r = raw.get("retries") or {}
    b = raw.get("budget") or {}
    prices = {**DEFAULT_PRICES, **{k: dict(v) for k, v in (raw.get("prices") or {}).items()}}
    return Config(
        path=cfg_path, root=root, skill=skill, tasks=tasks, split_ratios=ratios, split_seed=int(splits.get("seed", 0)),
        target=target, optimizer=optimizer, judge=judge, loop=loop, gate=gate,
        concurrency=int(raw.get("concurrency", 1 if target.provider == "local" else 4)),
        retries=RetrySettings(**{k: r[k] for k in ("attempts", "base_delay", "max_delay") if k in r}),
        max_usd=b.get("max_usd"), max_calls=b.get("max_calls"), prices=prices,
        cache_dir=(root / raw.get("cache_dir", ".skillopt/cache")), raw=raw,
    )


def schema_json() -> str:
    return json.dumps(CONFIG_SCHEMA, indent=2) + "\n"
