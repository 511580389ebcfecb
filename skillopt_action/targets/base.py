"""The Target protocol and the registry of target kinds.

A Target takes the skill text and one task and returns a `Completion`: the final answer, the transcript,
token usage and, for agent harnesses, the workspace it left behind so workspace scorers can inspect it. The
loop never asks what kind of target it holds.

A new kind of target is one module that defines a class with `name`, `fingerprint()` and `run()` and
registers a factory for its provider name(s) with `register_target`; `targets/__init__.py` imports it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..types import Completion, Task


@runtime_checkable
class Target(Protocol):
    name: str

    def fingerprint(self) -> dict:
        """Everything that changes what `run` produces (provider, model, sampling, command...).
        Used in the rollout cache key; must not contain secrets."""

    def run(self, skill: str, task: Task, sample: int) -> Completion:
        """Run the task once under `skill`. `sample` distinguishes repeated rollouts.
        Raise errors.TransientError for retryable failures and errors.ProviderError for fatal ones;
        return a Completion with `error` set for failures that should simply score 0."""


def fingerprint_digest(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()


# provider name -> factory(settings: ModelSettings, project_root: Path | None) -> Target
TargetFactory = Callable[..., Any]
TARGET_TYPES: dict[str, TargetFactory] = {}


def register_target(*names: str) -> Callable[[TargetFactory], TargetFactory]:
    def deco(factory: TargetFactory) -> TargetFactory:
        for n in names:
            TARGET_TYPES[n] = factory
        return factory

    return deco
