"""Chat models as targets (openai, azure, anthropic, local): the skill goes into the system prompt."""

from __future__ import annotations

from pathlib import Path

from ..config import ModelSettings
from ..package import as_prompt
from ..providers import ChatModel, make_chat_model
from ..render import context_names, render
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
        # the system prompt, rendered once per skill when the template does not read the task (the default one)
        names = context_names(system_template)
        self._per_skill = names is not None and "task" not in names
        self._systems: dict[str, str] = {}

    def fingerprint(self) -> dict:
        return {"kind": "chat", "model": self.model.fingerprint(), "system_template": self._system_template}

    def system_prompt(self, skill: str, task: Task) -> str:
        if not self._per_skill:
            return render(self._system_template, skill=as_prompt(skill), task=task)
        system = self._systems.get(skill)
        if system is None:
            system = render(self._system_template, skill=as_prompt(skill), task=task)
            if len(self._systems) >= 32:  # a run holds a few skills at a time (incumbent, candidates)
                self._systems.clear()
            self._systems[skill] = system
        return system

    def run(self, skill: str, task: Task, sample: int) -> Completion:
        system = self.system_prompt(skill, task)
        reply = self.model.complete(system, task.messages(), seed=sample)
        transcript = [{"role": "system", "content": system}, *task.messages(),
                      {"role": "assistant", "content": reply.text}]
        # the answer scored is what follows a reasoning model's <think> block; the transcript keeps it all
        return Completion(text=strip_thinking(reply.text), transcript=transcript, usage=reply.usage,
                          extra={"model": reply.model} if reply.model else {})


@register_target(*CHAT_TARGETS)
def chat_target(settings: ModelSettings, project_root: Path | None = None) -> ChatTarget:
    return ChatTarget(make_chat_model(settings))
