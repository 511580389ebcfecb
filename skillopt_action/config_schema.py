"""The JSON Schema of `.github/skillopt.yml`: the single source of truth for what a config may say.

It sits next to `config.py` on the parts floor because the `edit_policy` classes come from `screen.py`.
`schema_problems` turns every violation into a ConfigError naming the line and what to write instead.

`config.py` validates every config against it (errors name file:line and the fix); the published copy is
`skillopt_action/schema/skillopt.schema.json` (`skillopt schema` prints it; a test keeps the two identical).
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import jsonschema

from .errors import ConfigError
from .screen import ACTIONS, ALWAYS_REJECT, CLASSES
from .yamlfile import Located, LocatedList, kind_of
from .yamlfile import plain as _plain

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
_SKILL: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "Path of the skill to train: a file (SKILL.md, AGENTS.md, CLAUDE.md ...) or a skill folder "
                   "(SKILL.md with references/*.md and scripts: every Markdown file is trained, scripts are installed "
                   "as they are).",
}
_TASKS: dict[str, Any] = {
    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
    "description": "Glob(s) of YAML/JSONL task files.",
}
_SPLITS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "train": {"type": "number", "minimum": 0},
        "val": {"type": "number", "minimum": 0},
        "test": {"type": "number", "minimum": 0},
        "seed": {"type": "integer"},
    },
    "description": "Ratios for tasks without an explicit `split:` (default 0.5/0.25/0.25, seed 0).",
}
CONFIG_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/skillopt/skillopt-action/schema/skillopt.schema.json",
    "title": "skillopt-action configuration (.github/skillopt.yml)",
    "type": "object",
    "additionalProperties": False,
    "description": "One skill (`skill:` and `tasks:`) or several (`skills:`, each with its own tasks, budget and "
                   "branch; the other settings are shared).",
    "oneOf": [{"required": ["skill", "tasks"], "not": {"required": ["skills"]}},
              {"required": ["skills"], "not": {"anyOf": [{"required": ["skill"]}, {"required": ["tasks"]}]}}],
    "properties": {
        "skill": _SKILL,
        "tasks": _TASKS,
        "splits": _SPLITS,
        "skills": {
            "type": "array",
            "minItems": 1,
            "description": "Several skills in one repository: each gets its own run, `skillopt / gate (<name>)` check, "
                           "pull request and branch (`skillopt/<name>`); settings not given here are shared.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "skill", "tasks"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$",
                             "description": "The skill's name: lower-case letters, digits, '.', '_' or '-' (used in "
                                            "the check name, the branch and `--skill-name`)."},
                    "skill": _SKILL,
                    "tasks": _TASKS,
                    "splits": _SPLITS,
                    "branch": {"type": "string", "pattern": "^[A-Za-z0-9._/-]+$",
                               "description": "The bot branch of this skill's pull request (default skillopt/<name>)."},
                    "loop": {"type": "object", "description": "`loop:` settings for this skill (e.g. `edit_budget`), "
                                                               "on top of the shared `loop:`."},
                    "budget": {"type": "object", "description": "`budget:` caps for this skill's run."},
                },
            },
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
                "description": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "train the skill's front-matter description on `trigger` tasks (harness targets).",
                    "properties": {
                        "train": {"type": "boolean"},
                        "budget_chars": {"type": "integer", "minimum": 1, "maximum": 1024,
                                         "description": "characters one description edit may change."},
                    },
                },
                "slow_update": {
                    "type": ["boolean", "object"],
                    "additionalProperties": False,
                    "description": "at each epoch boundary, propose a guidance block from comparing the previous "
                                   "epoch's skill with the current one; applied only if it passes the gate.",
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "samples": {"type": "integer", "minimum": 1},
                        "lines": {"type": "integer", "minimum": 1, "maximum": 40},
                    },
                },
                "meta_memo": {"type": "boolean",
                              "description": "optimizer-only notes on which edit kinds were accepted or rejected, "
                                             "fed to later reflection prompts; never written into the skill."},
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
                             "description": "sequential: samples per task and skill after each round, e.g. "
                                            "[1, 3, 6, 10]."},
                "effect": {"type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                           "description": "sequential: the smallest mean gain worth finding; an early look stops "
                                          "for futility once the data rule it out (null: stop as soon as the "
                                          "candidate is not ahead)."},
                "design": {"enum": ["separate", "factorial"],
                           "description": "sequential: factorial (default): the candidates of a step that apply "
                                          "together share pairs of val rollouts (a coin puts each edit in one "
                                          "member of a pair), so every candidate's test runs to its end for two "
                                          "rollouts per task and sample; separate: each candidate draws its own "
                                          "val samples, and the gate.decisions best after a first look go on."},
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
                "control": {"enum": ["final", "decisions"],
                            "description": "sequential: how the run's alpha bounds a neutral change. decisions: "
                                           "split across the run's decisions (Bonferroni); final: every decision "
                                           "at alpha, and the final skill must pass a test at alpha against the "
                                           "starting skill on fresh samples."},
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


# --------------------------------------------------------------------------- violations explained


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
    if v == "oneOf" and not path and isinstance(err.instance, dict):  # one skill (skill + tasks) or `skills:`
        inst = err.instance
        if "skills" in inst and ("skill" in inst or "tasks" in inst):
            both = "skill" if "skill" in inst else "tasks"
            return ConfigError(f"`{both}:` and `skills:` cannot both be given", file, _locate(raw, [both]),
                               f"move `{both}:` into each entry of `skills:` (or remove `skills:` for one skill)")
        missing = next(k for k in ("skill", "tasks") if k not in inst)
        example = {"skill": "`skill: SKILL.md`", "tasks": "`tasks: evals/*.yml`"}[missing]
        return ConfigError(f"missing required key {missing!r}", file, line, f"add {example} (or list several skills "
                           "under `skills:`)")
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


def schema_problems(raw: Located, file: str) -> list[ConfigError]:
    validator = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
    errors = sorted(
        validator.iter_errors(raw), key=lambda e: (_locate(raw, list(e.absolute_path)) or 0, len(list(e.absolute_path)))
    )
    # Every problem is collected, so `skillopt validate` can report them all in one pass.
    return [p for e in errors for p in _explain_all(e, raw, file)]
