"""The `skillopt / gate` check run on a head SHA: created in_progress, completed with a verdict.

A re-run for the same SHA finds the existing check run by name and updates it instead of adding one.
"""

from __future__ import annotations

from ..render import render

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
    """success: the candidate passed the gate; failure: it did not; neutral: there was nothing to gate."""
    if report.get("gate") is None:
        return "neutral"
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


def summary_for(report: dict, run_url: str) -> tuple[str, str, str]:
    """(title, summary, text) of the completed check for a compare or optimize report."""
    verdict = conclusion_for(report)
    g = report.get("gate") or {}
    if verdict == "neutral":
        title = "No gate: no val tasks to compare on"
    elif verdict == "success":
        title = f"Passes the gate: val Δ {g.get('delta', 0):+.3f}" + (
            f", p={g['p_value']:.3f}" if g.get("p_value") is not None else ""
        )
    else:
        title = f"Does not pass the gate: val Δ {g.get('delta', 0):+.3f}" + (
            f", p={g['p_value']:.3f}" if g.get("p_value") is not None else ""
        )
    summary = render("github_check_summary.md.j2", r=report, verdict=verdict, run_url=run_url)
    text = render("github_check_text.md.j2", r=report)
    return title, summary, text
