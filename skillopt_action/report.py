"""Run outputs: report.json (machine-readable), report.md (rendered from templates/report.md.j2).

report.json is the contract the GitHub layer reads. Top-level keys:
  schema_version, kind (optimize|eval|compare), status, stop_reason, skill_path, config_path, config_digest,
  improved, scores {split: {baseline, best, n, samples}}, gate (val gate of best vs baseline, or null),
  gates {split: gate}, tasks {split: [{id, baseline, best, delta, feedback}]}, steps [...], accepted_edits,
  rejected_edits, flags (edits that copy task output text verbatim), diff, changed_lines, chart (Mermaid xychart-beta source), spend {calls, cache_hits,
  input_tokens, output_tokens, usd, by_role}, models, wall_time_s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .render import render

SCHEMA_VERSION = 1


def score_series(steps: list[dict], baseline_val: float | None) -> tuple[list[float], list[float | None]]:
    """Incumbent val score after each step (starting at the baseline) and the candidate's score per step."""
    first = baseline_val
    if first is None:
        first = next((s["gate"]["incumbent_mean"] for s in steps if s.get("gate")), 0.0)
    incumbent: list[float] = [first]
    candidate: list[float | None] = [None]
    for s in steps:
        g = s.get("gate")
        incumbent.append((g["candidate_mean"] if s["accepted"] else g["incumbent_mean"]) if g else incumbent[-1])
        candidate.append(g["candidate_mean"] if g else None)
    return incumbent, candidate


def mermaid_chart(steps: list[dict], baseline_val: float | None) -> str:
    if not steps:
        return ""
    inc, cand = score_series(steps, baseline_val)
    xs = ", ".join(str(i) for i in range(len(inc)))
    fmt = lambda v: f"{v:.3f}"  # noqa: E731
    lines = ["xychart-beta", '    title "Validation score by step (0 = baseline)"', f"    x-axis [{xs}]",
             '    y-axis "score" 0 --> 1',
             f"    bar [{', '.join(fmt(c if c is not None else 0.0) for c in cand)}]",
             f"    line [{', '.join(fmt(v) for v in inc)}]"]
    return "\n".join(lines)


def _edits(steps: list[dict]) -> tuple[list[dict], list[dict]]:
    accepted, rejected = [], []
    for s in steps:
        for e in s.get("edits", []):
            row = {"step": s["step"], **e["edit"], "applied": e["applied"], "reason": e["reason"]}
            if not e["applied"]:
                rejected.append({**row, "why": f"not applied: {e['reason']}"})
            elif s["accepted"]:
                accepted.append(row)
            elif s.get("gate"):
                rejected.append({**row, "why": f"gate: {s['gate']['reason']}"})
        for d in s.get("dropped", []):
            rejected.append({"step": s["step"], **d["edit"], "applied": False, "why": d["reason"]})
    return accepted, rejected


def build_report(rt, *, kind: str, status: str, stop_reason: str | None, baseline: str, best: str, scores: dict,
                 tasks: dict, gates: dict, steps: list[dict], diff: str, changed_lines: int, epochs: int | None = None,
                 total_steps: int | None = None) -> dict:
    cfg = rt.cfg
    accepted, rejected = _edits(steps)
    val = scores.get("val") or {}
    if kind == "compare":
        improved = bool(gates.get("val", {}).get("accepted"))
    else:
        improved = best != baseline
    report = {
        "schema_version": SCHEMA_VERSION, "kind": kind, "status": status, "stop_reason": stop_reason,
        "skill_path": cfg.skill, "config_path": _rel(cfg.path, cfg.root), "config_digest": cfg.digest(),
        "improved": improved, "scores": scores, "gate": gates.get("val"), "gates": gates, "tasks": tasks,
        "epochs": epochs, "total_steps": total_steps,
        "steps": steps, "accepted_edits": accepted, "rejected_edits": rejected,
        "flags": [{"step": s["step"], **w} for s in steps for w in s.get("warnings", [])],
        "diff": diff, "changed_lines": changed_lines,
        "chart": mermaid_chart(steps, val.get("baseline")),
        "spend": rt.ledger.to_dict(),
        "models": {"target": rt.engine.target.name, "optimizer": f"{cfg.optimizer.provider}:{cfg.optimizer.model}"},
        "gate_settings": {"mode": cfg.gate.mode, "samples": cfg.gate.samples, "alpha": cfg.gate.alpha,
                          "min_delta": cfg.gate.min_delta, "test": cfg.gate.test},
        "wall_time_s": round(time.monotonic() - rt.t0, 2),
    }
    (rt.out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n",
                                        encoding="utf-8")
    (rt.out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def render_markdown(report: dict) -> str:
    return render("report.md.j2", r=report)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
