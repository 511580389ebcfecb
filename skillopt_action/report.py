"""The run report: a typed `Report`, its JSON form (report.json) and its Markdown form (report.md).

`Report.to_dict()` is the report.json contract the GitHub layer and users' scripts read. Top-level keys:
  schema_version, kind (optimize|eval|compare), status, stop_reason, skill_path, config_path, config_digest,
  improved, scores {split: {baseline, best, n, samples}}, gate (val gate of best vs baseline, or null),
  gates {split: gate}, tasks {split: [{id, baseline, best, delta, feedback}]}, epochs, total_steps, steps [...],
  accepted_edits, rejected_edits, flags (edits that copy task output text verbatim), diff, changed_lines,
  chart (Mermaid xychart-beta source), spend {calls, cache_hits, input_tokens, output_tokens, usd, by_role},
  models, gate_settings, wall_time_s.

Nothing here writes a file unless asked: `Report.write(out_dir)` writes report.json and report.md.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .render import render
from .runtime import Runtime, write_json, write_text

SCHEMA_VERSION = 1


@dataclass
class Report:
    kind: str  # optimize | eval | compare
    status: str  # completed | stopped_budget
    stop_reason: str | None
    skill_path: str
    config_path: str
    config_digest: str
    improved: bool
    scores: dict[str, dict[str, Any]]  # split -> {baseline, best, n, samples}
    gate: dict[str, Any] | None  # the val gate (gate.GateResult.to_dict()), or None
    gates: dict[str, dict[str, Any]]
    tasks: dict[str, list[dict[str, Any]]]
    steps: list[dict[str, Any]]
    accepted_edits: list[dict[str, Any]]
    rejected_edits: list[dict[str, Any]]
    flags: list[dict[str, Any]]
    diff: str
    changed_lines: int
    chart: str
    spend: dict[str, Any]
    models: dict[str, Any]  # target, optimizer (configured) and reported (model ids the target answered with)
    gate_settings: dict[str, Any]
    wall_time_s: float
    epochs: int | None = None
    total_steps: int | None = None
    search: dict[str, Any] | None = None  # sequential gate: decisions, their cost, the run's false-accept bound
    ablation: dict[str, Any] | None = None  # each kept edit's marginal contribution; carried edits removed
    transfer: list[dict[str, Any]] | None = None  # the final skill on the config's `transfer:` targets
    regressions: list[dict[str, Any]] = field(default_factory=list)  # tasks that got worse, with answer + feedback
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a newer report.json this version does not know

    @property
    def val(self) -> dict[str, Any]:
        """The val split's scores ({} when there were no val tasks)."""
        return self.scores.get("val") or {}

    @property
    def transfer_hurts(self) -> list[str]:
        """Names of the `transfer:` targets the final skill hurts beyond their margin (the check fails)."""
        return [t["name"] for t in self.transfer or [] if t["verdict"] == "hurts"]

    @property
    def p_value(self) -> float | None:
        return (self.gate or {}).get("p_value")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        order = ["schema_version", "kind", "status", "stop_reason", "skill_path", "config_path", "config_digest",
                 "improved", "scores", "gate", "gates", "tasks", "epochs", "total_steps", "steps", "accepted_edits",
                 "rejected_edits", "flags", "diff", "changed_lines", "chart", "spend", "models", "gate_settings",
                 "search", "ablation", "transfer", "regressions", "wall_time_s"]
        return {**{k: d[k] for k in order}, **extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in d.items() if k in known}
        for name, default in (("flags", []), ("regressions", []), ("gates", {}), ("tasks", {}), ("steps", []),
                              ("accepted_edits", []),
                              ("rejected_edits", []), ("chart", ""), ("diff", ""), ("changed_lines", 0),
                              ("models", {}), ("gate_settings", {}), ("spend", {}), ("wall_time_s", 0.0),
                              ("stop_reason", None), ("gate", None), ("config_digest", ""), ("config_path", "")):
            kwargs.setdefault(name, default)
        return cls(**kwargs, extra={k: v for k, v in d.items() if k not in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"

    def to_markdown(self) -> str:
        return render_markdown(self.to_dict())

    def write(self, out_dir: Path) -> Path:
        """Write report.json and report.md into `out_dir`; returns the path of report.json."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "report.json"
        write_json(path, self.to_dict())
        write_text(out_dir / "report.md", self.to_markdown())
        return path


def render_markdown(report: dict[str, Any]) -> str:
    return render("report.md.j2", r=report)


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

    def fmt(v: float) -> str:
        return f"{v:.3f}"

    lines = ["xychart-beta", '    title "Validation score by step (0 = baseline)"', f"    x-axis [{xs}]",
             '    y-axis "score" 0 --> 1',
             f"    bar [{', '.join(fmt(c if c is not None else i) for c, i in zip(cand, inc, strict=True))}]",
             f"    line [{', '.join(fmt(v) for v in inc)}]"]
    return "\n".join(lines)


WHY = {"not_applied": "not applied", "duplicate": "duplicate", "screened_out": "screened out",
       "not_tested": "not tested", "not_better": "gate", "harmful": "gate", "inconclusive": "gate",
       "accepted": "gate"}


def edits_by_verdict(steps: list[dict]) -> tuple[list[dict], list[dict]]:
    """(accepted, rejected) edit rows across all steps, each with its step, its text, why it was kept or not,
    and (per-edit search) its own screening and gate figures."""
    accepted, rejected = [], []
    for s in steps:
        if "candidates" in s:  # per-edit search: every edit was its own candidate
            for c in s["candidates"]:
                row = {"step": s["step"], **c["edit"], "applied": c["applied"], "reason": c["reason"],
                       "verdict": c["verdict"], "gate": c.get("gate"), "screen": c.get("screen")}
                if c.get("kept"):
                    accepted.append({**row, "why": (c.get("gate") or {}).get("reason", "")})
                elif c["verdict"] == "accepted":
                    rejected.append({**row, "why": "passed its own gate, but not kept: "
                                                   + ((s.get("combination") or {}).get("reason") or
                                                      "another accepted edit of this step was kept instead")})
                elif c["verdict"] == "screened_out":
                    sc = c.get("screen") or {}
                    rejected.append({**row, "why": f"screened out: {sc.get('candidate', 0):.2f} vs "
                                                   f"{sc.get('incumbent', 0):.2f} on its {len(sc.get('tasks', []))} "
                                                   f"screening task(s)"})
                elif c.get("gate"):
                    rejected.append({**row, "why": f"gate: {c['gate']['reason']}"})
                else:
                    rejected.append({**row, "why": f"{WHY.get(c['verdict'] or '', 'not used')}: {c['reason']}"})
        else:
            for e in s.get("edits", []):
                row = {"step": s["step"], **e["edit"], "applied": e["applied"], "reason": e["reason"],
                       "gate": s.get("gate")}
                if not e["applied"]:
                    rejected.append({**row, "why": f"not applied: {e['reason']}"})
                elif s["accepted"]:
                    accepted.append(row)
                elif s.get("gate"):
                    rejected.append({**row, "why": f"gate: {s['gate']['reason']}"})
        for d in s.get("dropped", []):
            rejected.append({"step": s["step"], **d["edit"], "applied": False, "why": d["reason"]})
    return accepted, rejected


def build_report(rt: Runtime, *, kind: str, status: str, stop_reason: str | None, baseline: str, best: str,
                 scores: dict, tasks: dict, gates: dict, steps: list[dict], diff: str, changed_lines: int,
                 epochs: int | None = None, total_steps: int | None = None,
                 search: dict | None = None, ablation: dict | None = None,
                 transfer: list[dict] | None = None, regressions: list[dict] | None = None) -> Report:
    cfg = rt.cfg
    accepted, rejected = edits_by_verdict(steps)
    removed = {(r["edit"]["op"], r["edit"]["anchor"], r["edit"]["content"]): r
               for r in (ablation or {}).get("removed", [])}
    if removed:
        still = []
        for row in accepted:
            r = removed.get((row["op"], row["anchor"], row["content"]))
            if r is None:
                still.append(row)
            else:
                rejected.insert(0, {**row, "why": f"ablation: carried, not earned (removing it changed val by "
                                                  f"{-r['delta']:+.3f}), so it was removed"})
        accepted = still
    val = scores.get("val") or {}
    if kind == "compare":
        improved = bool(gates.get("val", {}).get("accepted"))
    else:
        improved = best != baseline
    return Report(
        kind=kind, status=status, stop_reason=stop_reason, skill_path=cfg.skill,
        config_path=_rel(cfg.path, cfg.root), config_digest=cfg.digest(), improved=improved, scores=scores,
        gate=gates.get("val"), gates=gates, tasks=tasks, epochs=epochs, total_steps=total_steps, steps=steps,
        accepted_edits=accepted, rejected_edits=rejected,
        flags=[{"step": s["step"], **w} for s in steps for w in s.get("warnings", [])],
        diff=diff, changed_lines=changed_lines, chart=mermaid_chart(steps, val.get("baseline")),
        spend=rt.ledger.to_dict(),
        models={"target": rt.engine.target.name, "optimizer": f"{cfg.optimizer.provider}:{cfg.optimizer.model}",
                "reported": sorted(rt.engine.reported_models)},
        gate_settings={"mode": cfg.gate.mode, "samples": cfg.gate.samples, "alpha": cfg.gate.alpha,
                       "min_delta": cfg.gate.min_delta, "test": cfg.gate.test, "schedule": list(cfg.gate.schedule),
                       "decisions": cfg.gate.decisions, "task_alpha": cfg.gate.task_alpha},
        wall_time_s=round(time.monotonic() - rt.t0, 2), search=search,
        ablation={k: v for k, v in ablation.items() if k != "skill"} if ablation else None, transfer=transfer,
        regressions=regressions or [],
    )


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
