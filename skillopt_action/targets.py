"""The Target protocol: what runs the agent under a candidate skill.

A Target takes the skill text and one task and returns a `Completion`: the
final answer, the transcript, token usage and, for agent harnesses, the
workspace it left behind so workspace scorers can inspect it. The loop never
asks what kind of target it holds.

Chat targets (openai, anthropic, local) put the skill in the system prompt.
Agent harness targets (command, claude-code, codex) register themselves in
`TARGET_TYPES` from `skillopt_action.harness`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from .config import TargetSettings
    from .tasks import Task


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # set when the provider or CLI reports a cost itself

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Completion:
    """What one rollout produced. Everything in it is untrusted data."""

    text: str
    transcript: list[dict] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    error: str | None = None  # set when the run failed (timeout, crash); scorers then score 0
    workspace: str | None = None  # harness targets: the directory to score; removed after scoring
    exit_code: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("workspace")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Completion":
        d = dict(d)
        d["usage"] = Usage(**d.get("usage", {}))
        d.pop("workspace", None)
        return cls(**d)


@runtime_checkable
class Target(Protocol):
    name: str

    def fingerprint(self) -> dict:
        """Everything that changes what `run` produces (provider, model, sampling, command...).
        Used in the rollout cache key; must not contain secrets."""

    def run(self, skill: str, task: "Task", sample: int) -> Completion:
        """Run the task once under `skill`. `sample` distinguishes repeated rollouts.
        Raise errors.TransientError for retryable failures and errors.ProviderError for fatal ones;
        return a Completion with `error` set for failures that should simply score 0."""


def fingerprint_digest(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()


# provider name -> factory(settings: TargetSettings, project_root: Path) -> Target
TARGET_TYPES: dict[str, Callable[..., Target]] = {}


def register_target(*names: str):
    def deco(factory):
        for n in names:
            TARGET_TYPES[n] = factory
        return factory

    return deco


class ChatTarget:
    """Any chat model as a target: the skill goes into the system prompt."""

    def __init__(self, model: Any, system_template: str = "target_system.md.j2"):
        self.model = model  # a providers.ChatModel
        self.name = f"{model.settings.provider}:{model.settings.model}"
        self.price_model = model.settings.model  # the ledger prices tokens by this name
        self._system_template = system_template

    def fingerprint(self) -> dict:
        return {"kind": "chat", "model": self.model.fingerprint(), "system_template": self._system_template}

    def run(self, skill: str, task: "Task", sample: int) -> Completion:
        from .reflect import strip_thinking
        from .render import render

        system = render(self._system_template, skill=skill, task=task)
        reply = self.model.complete(system, task.messages(), seed=sample)
        transcript = [{"role": "system", "content": system}, *task.messages(),
                      {"role": "assistant", "content": reply.text}]
        # the answer scored is what follows a reasoning model's <think> block; the transcript keeps it all
        return Completion(text=strip_thinking(reply.text), transcript=transcript, usage=reply.usage)


def _chat_factory(settings: "TargetSettings", project_root=None) -> Target:
    from .providers import make_chat_model

    return ChatTarget(make_chat_model(settings))


for _p in ("openai", "azure", "anthropic", "local"):
    register_target(_p)(_chat_factory)


def make_target(settings: "TargetSettings", project_root=None) -> Target:
    if settings.provider not in TARGET_TYPES:
        # harness targets register on import
        from . import harness  # noqa: F401
    try:
        factory = TARGET_TYPES[settings.provider]
    except KeyError:
        from .errors import ConfigError

        raise ConfigError(f"unknown target provider {settings.provider!r}", settings.file, settings.line,
                          f"use one of: {', '.join(sorted(TARGET_TYPES))}") from None
    return factory(settings, project_root)
