"""Shared test helpers: write a small project (skill, config, tasks) into a temp dir; brute-force p-value tails."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import yaml

SKILL = """# Capitals

Answer questions about capital cities.

## Answering

- Read the question.
"""

COUNTRIES = ["France:Paris", "Japan:Tokyo", "Italy:Rome", "Spain:Madrid", "Germany:Berlin", "Egypt:Cairo",
             "Peru:Lima", "Kenya:Nairobi", "Norway:Oslo", "Chile:Santiago", "Cuba:Havana", "Iran:Tehran",
             "Nepal:Kathmandu", "Ghana:Accra", "Austria:Vienna", "Greece:Athens"]


def write_project(root: Path, *, base_url: str, target: dict | None = None, optimizer: dict | None = None,
                  extra: dict | None = None, splits: tuple[int, int, int] = (4, 8, 4), skill: str = SKILL) -> Path:
    """A project whose config lives in .github/skillopt.yml; returns the config path."""
    (root / ".github").mkdir(parents=True, exist_ok=True)
    (root / "SKILL.md").write_text(skill)
    tasks = []
    names = ["train"] * splits[0] + ["val"] * splits[1] + ["test"] * splits[2]
    for (pair, split) in zip(COUNTRIES, names, strict=False):
        country, capital = pair.split(":")
        tasks.append({"id": f"capital-{country.lower()}", "input": f"What is the capital of {country}?",
                      "reference": capital, "split": split, "scorers": [{"type": "exact"}]})
    (root / "evals").mkdir(exist_ok=True)
    (root / "evals" / "capitals.yml").write_text(yaml.safe_dump({"tasks": tasks}, sort_keys=False))
    cfg = {
        "skill": "SKILL.md", "tasks": "evals/*.yml",
        "target": target or {"provider": "openai", "model": "target-model", "base_url": base_url,
                             "api_key_env": "TEST_KEY", "timeout": 5},
        "optimizer": optimizer or {"provider": "openai", "model": "optimizer-model", "base_url": base_url,
                                   "api_key_env": "TEST_KEY", "timeout": 5},
        "loop": {"epochs": 1, "batch_size": 4, "minibatch_size": 4},
        "gate": {"samples": 1, "alpha": 0.1},
        "concurrency": 4,
        "retries": {"attempts": 3, "base_delay": 0.01, "max_delay": 0.05},
        **(extra or {}),
    }
    path = root / ".github" / "skillopt.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def dedent(s: str) -> str:
    return textwrap.dedent(s).lstrip()


def enumerated_tails(options: list[list[float]], observed: float) -> tuple[float, float]:
    """P(T >= observed), P(T <= observed) when T sums one value of each list, every combination equally likely (the
    brute-force check of an exact test's p-values)."""
    up = lo = total = 0
    for combo in itertools.product(*options):
        t = sum(combo)
        total += 1
        up += t >= observed - 1e-9
        lo += t <= observed + 1e-9
    return up / total, lo / total
