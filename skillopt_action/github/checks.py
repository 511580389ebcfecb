"""The `skillopt / gate` check run on a head SHA: created in_progress, completed with a verdict.

A re-run for the same SHA finds the existing check run by name and updates it instead of adding one.
"""

from __future__ import annotations

from .. import fmt
from ..render import render
from .present import edits_markdown

CHECK_NAME = "skillopt / gate"
MAX_OUTPUT = 65535  # GitHub's limit for output.summary and output.text, each


def fit(text: str, limit: int, more_url: str | None) -> str:
    """Cut `text` to at most `limit` characters, ending with a pointer to the full content."""
    if len(text) <= limit:
        return text
    note = "\n\n… truncated to fit GitHub's size limit"
    note += f"; the full report is in the run's artifacts: {more_url}\n" if more_url else ".\n"
    return text[: max(0, limit - len(note))] + note


def conclusion_for(report: dict) -> str:
    """success: the candidate passed the gate; failure: it did not, or it hurts a `transfer:` target beyond its
    margin; neutral: there was nothing to gate."""
    if report.get("gate") is None:
        return "neutral"
    if any(t.get("verdict") == "hurts" for t in report.get("transfer") or []):
        return "failure"  # the skill hurts a `transfer:` target beyond its margin
    return "success" if report.get("improved") else "failure"


def find(repo, head_sha: str):
    for run in repo.get_commit(head_sha).get_check_runs(check_name=CHECK_NAME):
        return run
    return None


def start(repo, head_sha: str, details_url: str, title: str = "Scoring the skill…"):
    """Create the check in_progress, or reset the existing one for this SHA to in_progress."""
    output = {"title": title, "summary": f"skillopt is scoring this commit. [Follow the run]({details_url})."}
    existing = find(repo, head_sha)
    if existing is not None:
        existing.edit(status="in_progress", details_url=details_url, output=output)
        return existing
    return repo.create_check_run(
        name=CHECK_NAME, head_sha=head_sha, status="in_progress", details_url=details_url, output=output
    )


def complete(run, *, conclusion: str, title: str, summary: str, text: str = "", more_url: str | None = None) -> None:
    output = {"title": title[:1000], "summary": fit(summary, MAX_OUTPUT, more_url)}
    if text:
        output["text"] = fit(text, MAX_OUTPUT, more_url)
    run.edit(status="completed", conclusion=conclusion, output=output)


def post_neutral(repo, head_sha: str, *, title: str, summary: str, details_url: str) -> None:
    existing = find(repo, head_sha)
    output = {"title": title, "summary": fit(summary, MAX_OUTPUT, None)}
    if existing is not None:
        existing.edit(status="completed", conclusion="neutral", details_url=details_url, output=output)
    else:
        repo.create_check_run(name=CHECK_NAME, head_sha=head_sha, status="completed", conclusion="neutral",
                              details_url=details_url, output=output)


def title_for(report: dict) -> str:
    verdict = conclusion_for(report)
    if verdict == "neutral":
        return "No gate: no val tasks to compare on"
    g = report.get("gate") or {}
    p = fmt.p_value(g.get("p_value"))
    figures = f"val Δ {fmt.delta(g.get('delta'))}" + (f", {p}" if p else "")
    return ("Passes the gate: " if verdict == "success" else "Does not pass the gate: ") + figures


def summary_for(report: dict, run_url: str, whose: str = "") -> tuple[str, str, str]:
    """(title, summary, text) of the completed check for a compare or optimize report; `whose` names the author
    of the skill when it is not the bot's (a human's commit on the bot's branch)."""
    verdict = conclusion_for(report)
    summary = render("github_check_summary.md.j2", r=report, verdict=verdict, run_url=run_url, fmt=fmt,
                     edits=edits_markdown(report), whose=whose)
    text = render("github_check_text.md.j2", r=report, fmt=fmt)
    return title_for(report), summary, text
