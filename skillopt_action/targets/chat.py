"""Chat models as targets (openai, azure, anthropic, local): the skill goes into the system prompt."""

from __future__ import annotations

from pathlib import Path

from ..config import ModelSettings
from ..providers import ChatModel, make_chat_model
from ..render import render
from ..text import strip_thinking
from ..types import Completion, Task
from .base import register_target

CHAT_TARGETS = ("openai", "azure", "anthropic", "local")


class ChatTarget:
    """Any chat model as a target: the skill goes into the system prompt (templates/target_system.md.j2)."""

    def __init__(self, model: ChatModel, system_template: str = "target_system.md.j2"):
        self.model = model
        self.name = f"{model.settings.provider}:{model.settings.model}"
        self.price_model = model.settings.model  # the ledger prices tokens by this name
        # an empty answer from a served model is a failed call to retry; the bundled local model is deterministic
        # per seed, so its empty answer is scored as a failed rollout at once (and cached like any other)
        self.retry_empty = model.settings.provider != "local"
        self._system_template = system_template

    def fingerprint(self) -> dict:
        return {"kind": "chat", "model": self.model.fingerprint(), "system_template": self._system_template}

    def run(self, skill: str, task: Task, sample: int) -> Completion:
        system = render(self._system_template, skill=skill, task=task)
        reply = self.model.complete(system, task.messages(), seed=sample)
        transcript = [{"role": "system", "content": system}, *task.messages(),
                      {"role": "assistant", "content": reply.text}]
        # the answer scored is what follows a reasoning model's <think> block; the transcript keeps it all
        return Completion(text=strip_thinking(reply.text), transcript=transcript, usage=reply.usage,
                          extra={"model": reply.model} if reply.model else {})


@register_target(*CHAT_TARGETS)
def chat_target(settings: ModelSettings, project_root: Path | None = None) -> ChatTarget:
    return ChatTarget(make_chat_model(settings))
