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

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import package
from .config_schema import (
    CHAT_PROVIDERS,
    CONFIG_SCHEMA,
    DEFAULT_CONFIG,
    DEFAULT_KEY_ENV,
    LOCAL_MODEL,
    PROVIDERS,
    schema_json,
    schema_problems,
)
from .errors import ConfigError, ConfigErrors
from .gate import GateSettings
from .screen import effective_policy
from .yamlfile import Located, load

__all__ = ["CHAT_PROVIDERS", "CONFIG_SCHEMA", "DEFAULT_CONFIG", "DEFAULT_KEY_ENV", "DEFAULT_PRICES", "LOCAL_MODEL",
           "PROVIDERS", "Config", "EditBudget", "LoopSettings", "ModelSettings", "RetrySettings", "TransferTarget",
           "load_config", "load_configs", "skill_names", "project_root_for", "schema_json"]

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
class DescriptionSettings:
    """loop.description: train the front-matter description on trigger tasks (triggering.py)."""

    train: bool = False
    budget_chars: int = 160  # characters changed (inserted + deleted) per accepted description edit


@dataclass
class SlowUpdateSettings:
    """loop.slow_update: at each epoch boundary, a guidance block from comparing the previous epoch's skill with
    the current one, applied only through the gate (epoch_memory.py)."""

    enabled: bool = False
    samples: int = 8  # train tasks rolled out under both skills
    lines: int = 8  # most lines the guidance block may have


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
    description: DescriptionSettings = field(default_factory=DescriptionSettings)
    slow_update: SlowUpdateSettings = field(default_factory=SlowUpdateSettings)
    meta_memo: bool = False  # optimizer-only notes on which edit kinds were accepted/rejected, per epoch


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
    name: str = ""  # the skill's name in a config that lists several (`skills:`); "" for a one-skill config
    branch: str | None = None  # its bot branch, when the config sets one

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


def _raw(cfg_path: Path) -> Located:
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
    return raw


def skill_names(path: str | Path | None = None) -> list[str]:
    """The names of the skills a config lists under `skills:` (in order); [""] for a one-skill config, or for a
    config too broken to say (loading it then reports every problem)."""
    try:
        raw = _raw(Path(path or DEFAULT_CONFIG))
    except ConfigError:
        return [""]
    entries = raw.get("skills")
    if not isinstance(entries, list):
        return [""]
    names = [e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]
    return names or [""]


def _merge(base: Any, over: Any) -> Located:
    """`over`'s keys on top of `base`'s (mappings merged one level further, e.g. loop.edit_budget), with the line of
    each key kept from where it was written."""
    out = Located({**(base or {})})
    out.file, out.line = getattr(base, "file", "") or getattr(over, "file", ""), getattr(base, "line", 0) or getattr(
        over, "line", 0)
    out.lines = {**getattr(base, "lines", {})}
    for key, value in (over or {}).items():
        old = out.get(key)
        out[key] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        out.lines[key] = over.line_of(key) if isinstance(over, Located) else out.line
    return out


def _one_skill(raw: Located, name: str | None, file: str) -> tuple[Located, str, str | None]:
    """The settings of one skill of a `skills:` config: the shared settings with its entry on top."""
    entries = raw["skills"]
    names = [str(e["name"]) for e in entries]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ConfigError(f"two skills are named {n!r}", file, entries.line_of(i),
                              "give each entry of `skills:` its own `name:`")
    if name is None and len(names) > 1:
        raise ConfigError(f"this config lists {len(names)} skills ({', '.join(names)}); say which one", file,
                          raw.line_of("skills"), "pass --skill-name NAME (the Action runs each in turn)")
    chosen = names[0] if name is None else name
    if chosen not in names:
        raise ConfigError(f"no skill named {chosen!r} in `skills:`", file, raw.line_of("skills"),
                          f"use one of: {', '.join(names)}")
    entry = entries[names.index(chosen)]
    shared = Located({k: v for k, v in raw.items() if k != "skills"})
    shared.file, shared.line, shared.lines = raw.file, raw.line, {k: v for k, v in raw.lines.items() if k != "skills"}
    settings = Located({k: v for k, v in entry.items() if k not in ("name", "branch")})
    settings.file, settings.line = entry.file, entry.line
    settings.lines = {k: v for k, v in entry.lines.items() if k in settings}
    return _merge(shared, settings), chosen, entry.get("branch")


def load_configs(path: str | Path | None = None) -> list[Config]:
    """Every skill of a config (one for a one-skill config), each as its own Config."""
    return [load_config(path, name or None) for name in skill_names(path)]


def load_config(path: str | Path | None = None, skill_name: str | None = None) -> Config:
    """The config's settings for one skill: the only one, or with `skills:` the one named `skill_name` (required
    when it lists several)."""
    cfg_path = Path(path or DEFAULT_CONFIG)
    file = str(cfg_path)
    raw = _raw(cfg_path)
    problems = schema_problems(raw, file)
    name, branch = "", None
    if not problems and "skills" in raw:
        raw, name, branch = _one_skill(raw, skill_name, file)
        problems = schema_problems(raw, file)  # its `loop:` and `budget:` on top of the shared ones
    elif skill_name and not problems:
        raise ConfigError(f"--skill-name {skill_name} given, but the config has one skill and no `skills:` list",
                          file, raw.line_of("skill"), "leave out --skill-name, or list the skills under `skills:`")
    errors = list(problems)  # schema problems: the settings below assume a schema-valid config
    root = project_root_for(cfg_path)
    skill = raw.get("skill")
    if isinstance(skill, str) and skill and not package.exists(root / skill):
        folder = (root / skill).is_dir()
        problems.append(ConfigError(
            f"skill folder {skill!r} has no {package.MAIN}" if folder else
            f"skill file {skill!r} not found (looked in {root})", file, raw.line_of("skill"),
            f"add {package.MAIN} to the folder (a skill package: SKILL.md, references/*.md, scripts)" if folder else
            "create it, or fix `skill:` (a file, or a skill folder; paths are relative to the repository root)"))
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
    elif package.exists(root / skill):
        attempt(lambda: package.read(root / skill), None)  # every Markdown file UTF-8, the folder not too big
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
        description=DescriptionSettings(**dict(lp.get("description") or {})),
        slow_update=_slow_update(lp.get("slow_update", False)),
        meta_memo=bool(lp.get("meta_memo", False)),
    )
    g = raw.get("gate") or {}
    try:
        given = {k: g[k] for k in ("mode", "samples", "min_delta", "alpha", "test", "resamples", "decisions",
                                   "task_alpha", "confirm", "no_regression", "control", "effect", "design") if k in g}
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
        name=name, branch=branch,
    )


def _slow_update(raw: Any) -> SlowUpdateSettings:
    """`slow_update: true` or `slow_update: {samples: 8, lines: 8}` (an object turns it on unless enabled: false)."""
    if isinstance(raw, bool):
        return SlowUpdateSettings(enabled=raw)
    return SlowUpdateSettings(**{"enabled": True, **dict(raw)})


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
