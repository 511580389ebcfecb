"""The JSON Schema of `.github/skillopt.yml`: the single source of truth for what a config may say.

It sits next to `config.py` on the parts floor because the `edit_policy` classes come from `screen.py`.

`config.py` validates every config against it (errors name file:line and the fix); the published copy is
`skillopt_action/schema/skillopt.schema.json` (`skillopt schema` prints it; a test keeps the two identical).
"""

from __future__ import annotations

import json
from typing import Any

from .screen import ACTIONS, ALWAYS_REJECT, CLASSES

DEFAULT_CONFIG = ".github/skillopt.yml"
PROVIDERS = ["openai", "azure", "anthropic", "local", "command", "claude-code", "codex"]
CHAT_PROVIDERS = ["openai", "azure", "anthropic", "local"]
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
                   "claude-code": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY"}
LOCAL_MODEL = "smollm2-135m-instruct"

_num = {"type": "number"}
_MODEL: dict[str, Any] = {
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
                "ablation": {"enum": ["prune", "report", "off"],
                             "description": "after the run, leave each accepted edit out in turn: prune (default) "
                                            "removes edits whose removal costs nothing, report only measures."},
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
                "no_regression": {"type": "boolean",
                                  "description": "sequential: reject an edit that makes any val task significantly "
                                                 "worse, even if the mean improves."},
                "confirm": {"type": "boolean",
                            "description": "sequential: re-confirm the final skill against the start on fresh "
                                           "samples before proposing it."},
            },
        },
        "transfer": {
            "type": "array",
            "description": "Other targets (models, providers or harnesses) the final skill must not hurt: each is "
                           "scored with the starting and the final skill on val, with a non-inferiority margin.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    **_MODEL["properties"],
                    "name": {"type": "string", "description": "A label for the report (default provider:model)."},
                    "margin": {"type": "number", "minimum": 0, "maximum": 1,
                               "description": "How much the final skill may lose on this target (absolute, default "
                                              "0.05) before the check fails."},
                },
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
        "edit_policy": {
            "type": "object",
            "additionalProperties": False,
            "description": "What happens to a proposed edit whose new lines fall in a screening class: reject (never "
            "applied), flag (applied if the gate passes, and listed with the matching text at the top of the report, "
            "the PR body and the check summary; the PR title says so) or allow. Defaults: reject answer, secret, "
            "invisible and pipe_to_shell; flag the rest.",
            "properties": {
                cls: {"enum": ["reject"] if cls in ALWAYS_REJECT else list(ACTIONS),
                      "description": f"{what} (default {default})"}
                for cls, (default, what) in CLASSES.items()
            },
        },
    },
}

# Prices in USD per million tokens for a few well-known models; `prices:` in the config overrides/extends.


def schema_json() -> str:
    return json.dumps(CONFIG_SCHEMA, indent=2) + "\n"
