"""What an Action run produced, and how it is reported back to the runner: the step outputs (GITHUB_OUTPUT),
the job summary (GITHUB_STEP_SUMMARY) and annotations (workflow commands on stdout).

`drifted` (watch runs; empty otherwise) is true when the drift watch found drift; `issue-number` / `issue-url`
name the drift issue it opened, updated, reopened or closed. `pr-operation` is one of: created, updated, closed,
unchanged, none (the bot PR's lifecycle), failed (GitHub refused to open it), would-create, would-update,
would-close (dry runs), and empty for runs that do not manage the bot PR (pull request gates and comment commands).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import fmt
from ..errors import EXIT_OK
from ..redact import redact
from ..render import render
from .checks import fit


@dataclass
class Result:
    """What the run produced, for GITHUB_OUTPUT and the job summary."""

    title: str = ""
    lines: list[str] = field(default_factory=list)
    report: dict | None = None
    report_path: str = ""
    report_md: str = ""
    pr_number: int | None = None
    pr_url: str = ""
    pr_operation: str = ""
    shard_path: str = ""  # a shard job's run directory: the artifact the merge job downloads
    cache_path: str = ""  # a warm-up's merge job: the cache it filled, the artifact the optimize job downloads
    drifted: str = ""  # watch: "true" / "false"
    issue_number: int | None = None  # watch: the drift issue
    issue_url: str = ""
    exit_code: int = EXIT_OK

    def outputs(self) -> dict[str, str]:
        r = self.report or {}
        val = (r.get("scores") or {}).get("val") or {}
        gate = r.get("gate") or {}

        return {
            "baseline-score": fmt.output_number(val.get("baseline")),
            "best-score": fmt.output_number(val.get("best")),
            "accepted": "true" if r.get("improved") else "false",
            "p-value": fmt.output_number(gate.get("p_value")),
            "pr-number": str(self.pr_number or ""),
            "pr-url": self.pr_url,
            "pr-operation": self.pr_operation,
            "report-path": self.report_path,
            "shard-path": self.shard_path,
            "cache-path": self.cache_path,
            "drifted": self.drifted,
            "issue-number": str(self.issue_number or ""),
            "issue-url": self.issue_url,
        }



def write_outputs(path: str | None, outputs: Mapping[str, str]) -> None:
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for k, v in outputs.items():
            delim = f"skillopt_{uuid.uuid4().hex}"
            f.write(f"{k}<<{delim}\n{redact(v)}\n{delim}\n")


def annotation(kind: str, message: str, title: str = "skillopt") -> str:
    """A workflow command (`::notice title=…::…`) with GitHub's escaping of %, CR and LF."""
    def esc(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    return f"::{kind} title={esc(title).replace(':', '%3A').replace(',', '%2C')}::{esc(message)}"


def write_summary(path: str | None, result: Result, run_url: str) -> None:
    if not path:
        return
    lines = list(result.lines)
    if result.issue_url:
        lines.append(f"drift issue: [#{result.issue_number}]({result.issue_url})")
    if result.pr_url:
        lines.append(
            f"pull request: [#{result.pr_number}]({result.pr_url})"
            + (f" ({result.pr_operation})" if result.pr_operation else "")
        )
    if result.report_path:
        lines.append(f"report: `{result.report_path}` ([run artifacts]({run_url}))")
    text = render("github_job_summary.md.j2", title=result.title or "done", lines=lines, report_md=result.report_md)
    with open(path, "a", encoding="utf-8") as f:
        f.write(fit(redact(text), 1024 * 1024 - 1024, run_url))  # the step summary limit is 1 MiB


