"""Reflection: trajectories -> optimizer prompts -> proposed edits (parsed, validated, merged).

Failures and successes are reflected on in separate minibatches (a failure
batch asks what the skill is missing; a success batch asks what it should keep
or generalise). Task inputs and outputs are untrusted data: they are cleaned
(hidden HTML comments and invisible characters removed, length bounded) and
framed inside <task_output> blocks the optimizer is told never to obey.
The optimizer answers JSON edits; malformed answers are retried with the
parse error, then recorded as a failed proposal, never a crash.
"""

from __future__ import annotations

import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import package
from .markdown import protected_spans
from .render import render
from .text import strip_thinking
from .types import OPS, Edit, Rollout, Task, parse_edit

_HIDDEN = re.compile(r"<!--.*?-->", re.S)
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_DELIM = re.compile(r"<(/?)(task_output|task_input|feedback)", re.I)


def untrusted(text: str, limit: int) -> str:
    """Clean untrusted text for an optimizer prompt: no hidden comments, no invisible characters,
    no fake closing delimiters, at most `limit` characters (head and tail kept)."""
    text = _INVISIBLE.sub("", _HIDDEN.sub("[hidden comment removed]", text or ""))
    text = _DELIM.sub(lambda m: f"<{m.group(1)}\u2024{m.group(2)}", text)
    if len(text) > limit:
        head, tail = text[: limit * 2 // 3], text[-(limit // 3):]
        text = f"{head}\n[... {len(text) - len(head) - len(tail)} characters omitted ...]\n{tail}"
    return text


def edits_schema(max_edits: int, files: bool = False) -> dict:
    """The answer's JSON schema; `files`: the skill is a package, so each edit may name its `file`."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "analysis": {"type": "string", "maxLength": 600},
            "edits": {
                "type": "array", "maxItems": max_edits,
                "items": {
                    "type": "object",
                    "properties": {"op": {"enum": list(OPS)}, "anchor": {"type": "string", "maxLength": 200},
                                   "content": {"type": "string", "maxLength": 800},
                                   "rationale": {"type": "string", "maxLength": 300}},
                    "required": ["op", "anchor", "content"],
                },
            },
        },
        "required": ["analysis", "edits"],
    }
    if files:
        schema["properties"]["edits"]["items"]["properties"]["file"] = {"type": "string", "maxLength": 200}
    return schema


@dataclass
class Proposal:
    kind: str  # "failure" | "success"
    tasks: list[str]
    analysis: str = ""
    edits: list[Edit] = field(default_factory=list)
    error: str | None = None
    attempts: int = 0

    def to_dict(self) -> dict:
        return {"kind": self.kind, "tasks": self.tasks, "analysis": self.analysis,
                "edits": [e.to_dict() for e in self.edits], "error": self.error, "attempts": self.attempts}


def extract_json(text: str):
    """The JSON object in an answer: the whole text, a ```json fence, or the first object in the prose
    (preferring one with an "edits" key). Reasoning blocks are ignored."""
    text = strip_thinking(text)
    candidates = [text] + [m.group(1) for m in re.finditer(r"```(?:json)?\s*(.*?)```", text, re.S)]
    last_error = "no JSON object found"
    for c in candidates:
        try:
            return json.loads(c)
        except json.JSONDecodeError as exc:
            last_error = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    decoder, found = json.JSONDecoder(), []
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue  # not an object start: try the next brace
        if isinstance(obj, dict):
            found.append(obj)
            if "edits" in obj:
                return obj
    if found:
        return found[0]
    raise ValueError(last_error)


def parse_proposal(text: str, kind: str, max_edits: int, skill: str = "") -> tuple[str, list[Edit]]:
    """The analysis and edits of an answer. For a skill package (`skill`) each edit keeps the file it names (the
    main file's name becomes ""); a single-file skill has no files to name, so `file` is ignored there."""
    data = extract_json(text)
    files = package.is_package(skill)
    if not isinstance(data, dict) or not isinstance(data.get("edits"), list):
        raise ValueError('the answer must be a JSON object with an "edits" list')
    edits = []
    for i, raw in enumerate(data["edits"][:max_edits]):
        if not isinstance(raw, dict):
            raise ValueError(f"edits[{i}] must be an object")
        keys = ("op", "anchor", "content", "rationale") + (("file",) if files else ())
        fields = {k: raw[k] for k in keys if k in raw}  # bookkeeping is ours
        if fields.get("op") == "delete":
            fields.pop("content", None)  # the answer schema makes every op carry `content`; delete ignores it
        try:
            e = parse_edit(fields)
        except ValueError as exc:
            raise ValueError(f"edits[{i}]: {exc}") from None
        e.source = kind
        e.file = package.normalise_file(skill, e.file) if files else ""
        edits.append(e)
    analysis = data.get("analysis", "")
    return (analysis if isinstance(analysis, str) else json.dumps(analysis)), edits


def _trajectory_view(task: Task, r: Rollout, limit: int) -> dict:
    c = r.completion
    return {
        "id": task.id,
        "input": untrusted(task.prompt_text(), limit),
        "output": untrusted(c.text if not c.error else f"(run failed: {c.error})\n{c.text}", limit),
        "transcript": untrusted("\n".join(_transcript_line(m) for m in c.transcript if m.get("role") not in ("system",)
                                          and m.get("type") != "system"), limit) if c.extra.get("agent") else "",
        "score": round(r.score.score, 3),
        "feedback": untrusted(r.score.feedback(), max(300, limit // 3)),
    }


trajectory_view = _trajectory_view  # what the optimizer sees of one rollout (also used by epoch_memory.py)


def _transcript_line(m: dict) -> str:
    role = m.get("role") or m.get("type") or "event"
    content = m.get("content") if "content" in m else m
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)[:2000]
    return f"[{role}] {content}"


def minibatches(items: list, size: int, seed: int) -> list[list]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return [items[i:i + size] for i in range(0, len(items), size)]


def reflect(optimizer, skill: str, tasks: dict[str, Task], rollouts: list[Rollout], *, minibatch_size: int,
            max_edits: int, max_lines: int, rejected: list[dict], failure_only: bool, parse_retries: int,
            max_chars: int, seed: int, concurrency: int = 1, memo: str = "") -> list[Proposal]:
    """One optimizer call (plus parse retries) per minibatch; failures and successes never mixed. `memo` is the
    optimizer-only meta memo of earlier epochs (loop.meta_memo), shown in the prompt, never in the skill."""
    failures = [r for r in rollouts if not r.score.passed]
    successes = [] if failure_only else [r for r in rollouts if r.score.passed]
    jobs = [("failure", b) for b in minibatches(failures, minibatch_size, seed)]
    jobs += [("success", b) for b in minibatches(successes, minibatch_size, seed + 1)]
    main = package.main_text(skill)
    spans = protected_spans(main)
    headings = [m.group(0) for m in re.finditer(r"^#{1,6} .+$", main, re.M)
                if not any(a <= m.start() < b for a, b in spans)]
    files = package.prompt_files(skill) if package.is_package(skill) else []
    system = render("reflect_system.md.j2", max_edits=max_edits, max_lines=max_lines, ops=OPS,
                    example_heading=headings[-1].strip() if headings else "## Guidelines",
                    main_file=files[0]["path"] if files else "")
    schema = edits_schema(max_edits, files=bool(files))

    def run(idx_job):
        idx, (kind, batch) = idx_job
        user = render("reflect_batch.md.j2", kind=kind, skill=skill, files=files,
                      assets=package.asset_names(skill), max_edits=max_edits, max_lines=max_lines,
                      trajectories=[_trajectory_view(tasks[r.task_id], r, max_chars) for r in batch],
                      rejected=rejected[-12:], memo=memo)
        prop = Proposal(kind, [r.task_id for r in batch])
        messages = [{"role": "user", "content": user}]
        for attempt in range(parse_retries + 1):
            prop.attempts = attempt + 1
            reply = optimizer.complete(system, messages, seed=seed * 1000 + idx * 10 + attempt, json_schema=schema)
            try:
                prop.analysis, prop.edits = parse_proposal(reply.text, kind, max_edits, skill)
                prop.error = None
                for e in prop.edits:
                    e.tasks = tuple(prop.tasks)
                break
            except ValueError as exc:
                prop.error = f"unusable optimizer answer after {attempt + 1} attempt(s): {exc}"
                messages = messages + [{"role": "assistant", "content": reply.text[:4000]},
                                       {"role": "user", "content": render("reflect_retry.md.j2", error=str(exc))}]
        return prop

    indexed = list(enumerate(jobs))
    if concurrency > 1 and len(indexed) > 1:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(run, indexed))
    return [run(j) for j in indexed]


def merge(proposals: list[Proposal], rejected_keys: set[str]) -> tuple[list[Edit], list[dict]]:
    """Deduplicate edits across proposals (support = how many proposed it), failures first, then by support.
    Edits identical to a previously rejected one are dropped and reported."""
    merged: dict[str, Edit] = {}
    order: list[str] = []
    for p in proposals:
        for e in p.edits:
            k = e.key()
            if k in merged:
                m = merged[k]
                m.support += 1
                m.tasks = tuple(dict.fromkeys(m.tasks + e.tasks))
                if e.source == "failure":
                    m.source = "failure"
            else:
                merged[k] = Edit.from_dict(e.to_dict())
                order.append(k)
    dropped = [
        {"edit": merged[k].to_dict(), "reason": "previously rejected by the gate"} for k in order if k in rejected_keys
    ]
    kept = [merged[k] for k in order if k not in rejected_keys]
    kept.sort(key=lambda e: (e.source != "failure", -e.support))  # stable: keeps proposal order within ties
    return kept, dropped
