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

from .config_schema import (
    CHAT_PROVIDERS,
    CONFIG_SCHEMA,
    DEFAULT_CONFIG,
    DEFAULT_KEY_ENV,
    LOCAL_MODEL,
    PROVIDERS,
    schema_json,
)
from .errors import ConfigError, ConfigErrors
from .gate import GateSettings
from .screen import effective_policy
from .yamlfile import Located, LocatedList, kind_of, load
from .yamlfile import plain as _plain

__all__ = ["CHAT_PROVIDERS", "CONFIG_SCHEMA", "DEFAULT_CONFIG", "DEFAULT_KEY_ENV", "DEFAULT_PRICES", "LOCAL_MODEL",
           "PROVIDERS", "Config", "EditBudget", "LoopSettings", "ModelSettings", "RetrySettings", "TransferTarget",
           "load_config", "project_root_for", "schema_json"]

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
    ablation: str = "prune"  # prune | report | off
    candidates: int = 6  # sequential gate: edits screened per step
    screen_size: int = 3  # sequential gate: extra train tasks in an edit's screening
    edit_budget: EditBudget = field(default_factory=EditBudget)


@dataclass
class RetrySettings:
    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0


@dataclass
class TransferTarget:
    """A second target the final skill is checked on (config `transfer:`)."""

    name: str
    settings: ModelSettings
    margin: float = 0.05


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
    transfer: list[TransferTarget] = field(default_factory=list)
    edit_policy: dict[str, str] = field(default_factory=lambda: effective_policy(None))

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


def _explain_all(err: jsonschema.ValidationError, raw: Any, file: str) -> list[ConfigError]:
    """One ConfigError per problem: every unknown key of a mapping gets its own line."""
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        path = list(err.absolute_path)
        allowed = sorted((err.schema if isinstance(err.schema, dict) else {}).get("properties", {}))
        dotted = ".".join(str(p) for p in path) or "(top level)"
        out = []
        for key in sorted(set(err.instance) - set(allowed), key=lambda k: _locate(raw, path + [k]) or 0):
            near = difflib.get_close_matches(str(key), allowed, n=1)
            fix = f"did you mean `{near[0]}`?" if near else f"allowed keys here: {', '.join(allowed)}"
            out.append(ConfigError(f"unknown key {key!r} in {dotted}", file, _locate(raw, path + [key]), fix))
        if out:
            return out
    return [_explain(err, raw, file)]


_KIND = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
         "array": "a list", "object": "a mapping (key: value)", "null": "empty"}


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
        return ConfigError(f"`{dotted}` has invalid value {_plain(err.instance)!r}", file, line, fix)
    if v == "type" or v == "oneOf":
        types = sch.get("type") or "a string or a list of strings"
        want = " or ".join(_KIND.get(str(w), str(w)) for w in (types if isinstance(types, list) else [types]))
        key = path[-1] if path else "key"
        return ConfigError(f"`{dotted}` must be {want}, not {kind_of(err.instance)} {_plain(err.instance)!r}", file,
                           line, f"give `{key}` {want}")
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = sch[v]
        rel = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return ConfigError(f"`{dotted}` is {_plain(err.instance)!r} but must be {rel} {bound}", file, line,
                           f"set `{path[-1]}` to a value {rel} {bound}")
    return ConfigError(f"`{dotted}`: {err.message}", file, line, "see the config reference in README.md")


def _model(role: str, raw: Any, file: str, fallback: ModelSettings | None = None,
           where: str | None = None) -> ModelSettings:
    where = where or role
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
        raise ConfigError(f"`{where}.model` is required for provider {provider!r}", file, m.line,
                          f"add `model: ...` under `{where}:` (e.g. gpt-4.1-mini, claude-sonnet-4-5)")
    if m.provider == "azure" and not m.base_url:
        raise ConfigError(f"`{where}.base_url` is required for provider azure", file, m.line,
                          "set `base_url: https://<resource>.openai.azure.com` and `api_version:`")
    if role != "target" and m.provider not in CHAT_PROVIDERS:
        raise ConfigError(f"the {role} must be a chat model, not {provider!r}", file, m.line,
                          f"use one of: {', '.join(CHAT_PROVIDERS)}")
    return m


def _transfer(index: int, raw: Any, file: str) -> TransferTarget:
    block = Located({k: v for k, v in raw.items() if k not in ("name", "margin")})
    block.file, block.line = getattr(raw, "file", file), getattr(raw, "line", 0)
    block.lines = {k: v for k, v in getattr(raw, "lines", {}).items() if k in block}
    settings = _model("target", block, file, where=f"transfer[{index}]")
    name = str(raw.get("name") or f"{settings.provider}:{settings.model}")
    return TransferTarget(name=name, settings=settings, margin=float(raw.get("margin", 0.05)))


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
    # Every problem is collected, so `skillopt validate` can report them all in one pass.
    problems: list[ConfigError] = [p for e in errors for p in _explain_all(e, raw, file)]
    root = project_root_for(cfg_path)
    skill = raw.get("skill")
    if isinstance(skill, str) and skill and not (root / skill).is_file():
        problems.append(ConfigError(f"skill file {skill!r} not found (looked in {root})", file, raw.line_of("skill"),
                                    "create it, or fix `skill:` (paths are relative to the repository root)"))
    if errors:  # the settings below assume a schema-valid config
        _raise(problems)
    skill = str(raw["skill"])

    def attempt(build, placeholder):
        try:
            return build()
        except ConfigError as exc:
            problems.extend(ConfigErrors.of(exc))
            return placeholder

    if (root / skill).is_file():
        attempt(lambda: check_utf8(root / skill), None)
    tasks = [raw["tasks"]] if isinstance(raw["tasks"], str) else list(raw["tasks"])
    splits = raw.get("splits") or {}
    ratios = {
        "train": float(splits.get("train", 0.5)),
        "val": float(splits.get("val", 0.25)),
        "test": float(splits.get("test", 0.25)),
    }
    if ratios["train"] <= 0 or ratios["val"] <= 0:
        problems.append(ConfigError("`splits` needs a positive train and val ratio", file, raw.line_of("splits"),
                                    "e.g. `splits: {train: 0.5, val: 0.25, test: 0.25}`"))
    target = attempt(lambda: _model("target", raw.get("target"), file), ModelSettings(role="target"))
    if target.provider not in CHAT_PROVIDERS and raw.get("optimizer") is None:
        problems.append(ConfigError(
            f"`optimizer:` is required when the target is the agent harness {target.provider!r}",
            file, raw.line_of("target"),
            "add e.g. `optimizer: {provider: anthropic, model: claude-sonnet-4-5}` "
            "(the optimizer must be a chat model)"))
    optimizer = attempt(lambda: _model("optimizer", raw.get("optimizer"), file,
                                       fallback=target if target.provider in CHAT_PROVIDERS else None),
                        ModelSettings(role="optimizer"))
    judge = attempt(lambda: _model("judge", raw.get("judge"), file, fallback=optimizer), ModelSettings(role="judge"))
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
                "ablation",
            )
            if k in lp
        },
        edit_budget=budget,
    )
    g = raw.get("gate") or {}
    try:
        given = {k: g[k] for k in ("mode", "samples", "min_delta", "alpha", "test", "resamples", "decisions",
                                   "task_alpha", "confirm", "no_regression") if k in g}
        if "schedule" in g:
            given["schedule"] = tuple(g["schedule"])
        gate = GateSettings(**{"mode": "sequential", "alpha": 0.05, **given}, seed=int(splits.get("seed", 0)))
    except ValueError as exc:
        problems.append(ConfigError(f"invalid gate settings: {exc}", file, raw.line_of("gate"),
                                    "see `gate:` in the config reference (README.md)"))
        gate = GateSettings()
    transfer = [attempt(lambda i=i, item=item: _transfer(i, item, file), None)
                for i, item in enumerate(raw.get("transfer") or [])]
    _raise(problems)
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
        transfer=transfer,
        edit_policy=effective_policy(raw.get("edit_policy")),
    )


def _raise(problems: list[ConfigError]) -> None:
    """Raise the problems found, if any: one ConfigError, or a ConfigErrors in file order."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigErrors(sorted(problems, key=lambda p: p.line or 0))



def check_utf8(path: Path) -> None:
    """ConfigError naming the file, the first bad byte's line and the fix when a skill file is not UTF-8 text."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"the skill file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                          str(path), line, "save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.new` "
                          "and replace the file with FILE.new") from None
