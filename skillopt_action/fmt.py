"""The one way numbers are printed: report.md, check titles, PR bodies, comments and the job summary all call
these (every template gets the module as `fmt`), so a figure reads the same wherever it appears.

Scores and score changes are shown with three decimals; a split's change is the gate's mean paired change when
the gate measured that split (so the table and the sentence under it never disagree in the last digit), else
the difference of the two means. p-values below 0.001 print as `p<0.001`, never as `p=0.000`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DECIMALS = 3


def score(x: float | None) -> str:
    return "—" if x is None else f"{x:.{DECIMALS}f}"


def delta(x: float | None) -> str:
    if x is None:
        return "—"
    if round(x, DECIMALS) == 0:
        x = 0.0  # no "-0.000"
    return f"{x:+.{DECIMALS}f}"


def p_value(p: float | None) -> str:
    """`p=0.012`, `p<0.001`, or "" when the gate ran without a test (strict mode)."""
    if p is None:
        return ""
    floor = 10.0 ** -DECIMALS
    if p < floor:
        return f"p<{floor:.{DECIMALS}f}"
    return f"p={p:.{DECIMALS}f}"


def split_delta(report: Mapping[str, Any], split: str) -> float | None:
    """The change shown for a split: the gate's mean paired change, else best - baseline."""
    gate = (report.get("gates") or {}).get(split)
    if gate and gate.get("delta") is not None:
        return float(gate["delta"])
    s = (report.get("scores") or {}).get(split) or {}
    if s.get("best") is None or s.get("baseline") is None:
        return None
    return float(s["best"]) - float(s["baseline"])


def gate_figures(gate: Mapping[str, Any] | None) -> str:
    """`Δ +0.250, p=0.031` for a gate result (an edit's or a split's); "" when there is none."""
    if not gate:
        return ""
    parts = []
    if gate.get("delta") is not None:
        parts.append(f"Δ {delta(gate['delta'])}")
    if gate.get("incumbent_mean") is not None and gate.get("candidate_mean") is not None:
        parts.append(f"val {score(gate['incumbent_mean'])} → {score(gate['candidate_mean'])}")
    if gate.get("p_value") is not None:
        parts.append(p_value(gate["p_value"]))
    return ", ".join(parts)


def output_number(x: float | None) -> str:
    """Step outputs (machine-read): four significant decimals, and small p-values stay non-zero."""
    if x is None:
        return ""
    return f"{x:.4f}" if abs(x) >= 0.001 or x == 0 else f"{x:.2e}"
