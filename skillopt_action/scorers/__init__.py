"""Scorers: how an answer (or an agent's workspace) becomes a score in [0, 1] with a feedback line.

`base` holds the protocol, the registry and `score_completion`; each sibling module registers its types:
`text` (exact, f1, contains, not_contains, regex), `structured` (json), `code` (python, command), `rubric`
(llm_rubric), `workspace` (workspace_command, file_exists, file_contains, file_matches, diff_paths) and
`trigger` (did an agent harness load the skill for a query labelled should-load / should-not-load).
A new scorer is one module calling `register_scorer(...)`, imported here.
"""

from __future__ import annotations

from . import code, rubric, structured, text, trigger, workspace  # noqa: F401  (each registers its scorer types)
from .base import (
                   SCORER_TYPES,
                   Scorer,
                   ScorerContext,
                   ScorerType,
                   check_tasks,
                   register_scorer,
                   score_completion,
                   validate_spec,
)

__all__ = ["SCORER_TYPES", "Scorer", "ScorerContext", "ScorerType", "check_tasks", "register_scorer",
           "score_completion", "validate_spec"]
