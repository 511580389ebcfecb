"""Apply an optimizer's proposed edits to a Markdown skill document, under a budget.

An `Edit` is one bounded text operation:

  add           append `content` to the end of the text under the heading `anchor`
                ("## Output format" or "Output format"), before its first subheading (text
                after a subsection would read as part of that subsection); anchor None/"" =
                end of document. A missing heading is created at the end when the anchor
                starts with '#'.
  insert_after  insert `content` as new line(s) after the line where the text `anchor` ends
  replace       replace the text `anchor` with `content`
  delete        remove the text `anchor` (and its line, if that leaves the line blank)

Anchors are matched exactly first, then with runs of whitespace (newlines included)
collapsed to one space on both sides. A match must be unique; nothing is guessed beyond that.

Some text is never touched: YAML front matter at the very top of the document and every
region between `<!-- skillopt:protected -->` and `<!-- /skillopt:protected -->` (an opener
without a closer protects to the end of the document).

`apply_edits` applies the edits in order, each to the result of the previous ones, and stops
accepting them once `max_ops` have been applied; an edit that would push the size of the
diff from the original (added + removed lines of a minimal line diff, as git counts them,
counted by `unidiff`) over `max_lines` is refused and the next one is tried. An edit that
would leave a code fence or HTML comment open (hiding the rest of the document) is refused.
Every edit gets an `EditResult`: applied, or a reason why not. Nothing is skipped silently.

Line endings: the document is edited as LF text and written back in its own convention
(CRLF if most of its line breaks are CRLF); the trailing newline, or its absence, is kept.

All functions here are pure: no I/O, no model calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .diff import check_name, diff_stats, to_lf
from .markdown import (
    ANY_MARKER_RE,
    ATX_RE,
    Span,
    dangling_construct,
    headings,
    looks_like_front_matter,
    overlap_reason,
    point_reason,
    protected_spans,
    protected_texts,
    section_body_end,
    spans_of,
    split_lines,
)
from .types import OPS, Edit, edit_problem, heading_text, norm_ws, parse_edit

__all__ = ["OPS", "ApplyReport", "Edit", "EditResult", "apply_edits", "diff_stats", "parse_edit", "protected_spans"]

_LIST_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:\s|$)")
_PREVIEW = 60


# --------------------------------------------------------------------------- results


@dataclass
class EditResult:
    edit: Edit
    applied: bool
    reason: str  # "" when applied; otherwise why not
    changed_lines: int = 0  # added + removed lines this edit contributed


@dataclass
class ApplyReport:
    before: str
    after: str
    results: list[EditResult] = field(default_factory=list)
    diff: str = ""
    added_lines: int = 0
    removed_lines: int = 0

    @property
    def applied(self) -> list[Edit]:
        return [r.edit for r in self.results if r.applied]

    @property
    def changed(self) -> bool:
        return self.after != self.before


# --------------------------------------------------------------------------- text helpers



def _content_lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _uses_crlf(text: str) -> bool:
    crlf = text.count("\r\n")
    return crlf > 0 and crlf >= text.count("\n") - crlf



def _line_starts(text: str) -> list[int]:
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
    if text.endswith("\n") or not text:
        starts.pop()
    return starts


def _block(content: str) -> list[str]:
    """Edit content as lines: CR/LF normalised, surrounding blank lines dropped."""
    lines = _content_lf(content).split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return [ln.rstrip() for ln in lines]


def _preview(text: str) -> str:
    return text[:_PREVIEW].replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")



# --------------------------------------------------------------------------- anchors


def _find_all(haystack: str, needle: str) -> list[int]:
    found, pos = [], haystack.find(needle)
    while pos >= 0:
        found.append(pos)
        pos = haystack.find(needle, pos + 1)
    return found


def _locate(text: str, anchor: str) -> tuple[tuple[int, int] | None, str]:
    """Unique span of `anchor` in `text`: exact first, then whitespace-normalised."""
    anchor = _content_lf(anchor)
    exact = _find_all(text, anchor)
    if len(exact) == 1:
        return (exact[0], exact[0] + len(anchor)), ""
    if len(exact) > 1:
        return None, f"anchor is ambiguous: {len(exact)} matches"
    needle = norm_ws(anchor)
    if not needle:
        return None, f"anchor not found: '{_preview(anchor)}'"
    # normalised text, with the original offset of every normalised character
    norm_chars: list[str] = []
    origin: list[int] = []
    for m in re.finditer(r"\s+|\S+", text):
        if m.group()[0].isspace():
            norm_chars.append(" ")
            origin.append(m.start())
        else:
            norm_chars.extend(m.group())
            origin.extend(range(m.start(), m.end()))
    normalised = "".join(norm_chars)
    hits = _find_all(normalised, needle)
    if not hits:
        return None, f"anchor not found: '{_preview(anchor)}'"
    if len(hits) > 1:
        return None, f"anchor is ambiguous: {len(hits)} matches"
    first = hits[0]
    last = first + len(needle) - 1  # needle is stripped: both ends are non-space characters
    return (origin[first], origin[last] + 1), ""



def _doc_end_line(text: str, lines: list[str], starts: list[int], spans: list[Span], floor: int) -> int:
    """Line index before which appended text goes: the end of the document, or the line
    where the protected region(s) that end the document (only whitespace after) begin."""
    end = len(lines)
    while True:
        last = _last_nonblank(lines, floor, end)
        if last < floor:
            return end
        line_start, line_end = starts[last], starts[last] + len(lines[last])
        boundary = starts[end] if end < len(starts) else len(text)
        region = next(
            (s for s in spans if s.kind == "protected region" and s.start < line_end and s.end > line_start
             and not text[s.end:boundary].strip()),
            None,
        )
        if region is None:
            return end
        first = max(i for i, st in enumerate(starts) if st <= region.start)
        if first < floor or first >= end:
            return end
        end = first


def _is_listish(line: str) -> bool:
    return bool(_LIST_ITEM_RE.match(line)) or (line.startswith("  ") and bool(line.strip()))


def _insert_block(text: str, lines: list[str], starts: list[int], after_line: int, block: list[str],
                  spans: list[Span], *, separate: bool) -> tuple[str | None, str]:
    """Insert `block` as lines after line index `after_line` (-1 = at the top)."""
    if after_line >= 0:
        line_end = starts[after_line] + len(lines[after_line])
        pos = line_end + 1 if line_end < len(text) else len(text)
    else:
        pos = 0
    reason = point_reason(spans, pos, len(text))
    if reason:
        return None, reason
    block = list(block)
    if separate:
        prev = lines[after_line] if after_line >= 0 else ""
        nxt = lines[after_line + 1] if after_line + 1 < len(lines) else ""
        blank_before = bool(prev.strip()) and not (_is_listish(prev) and _LIST_ITEM_RE.match(block[0]))
        if blank_before:
            block.insert(0, "")
        # a following line that could merge into the new text (paragraph, setext heading
        # text) gets a blank line; a following ATX heading or HTML comment cannot merge
        interrupts = bool(ATX_RE.match(nxt)) or nxt.lstrip().startswith("<!--")
        if nxt.strip() and (blank_before or not interrupts):
            block.append("")
    piece = "\n".join(block) + "\n"
    prefix = text[:pos]
    if prefix and not prefix.endswith("\n"):
        prefix += "\n"
    return prefix + piece + text[pos:], ""


def _last_nonblank(lines: list[str], lo: int, hi: int) -> int:
    """Last non-blank line index in [lo, hi), or lo - 1."""
    i = hi - 1
    while i >= lo and not lines[i].strip():
        i -= 1
    return i


# --------------------------------------------------------------------------- operations


def _present(text: str, block: list[str]) -> bool:
    if not block:
        return False
    lines = [ln.rstrip() for ln in split_lines(text)]
    n = len(block)
    return any(lines[i:i + n] == block for i in range(len(lines) - n + 1))


def _op_add(text: str, edit: Edit, block: list[str], spans: list[Span]) -> tuple[str | None, str]:
    lines = split_lines(text)
    starts = _line_starts(text)
    fm_end = next((s.end for s in spans if s.kind == "front matter"), 0)
    first_body = sum(1 for st in starts if st < fm_end)
    doc_end = _doc_end_line(text, lines, starts, spans, first_body)
    anchor = edit.anchor or ""
    if not anchor.strip():
        after = _last_nonblank(lines, first_body, doc_end)
        return _insert_block(text, lines, starts, after, block, spans, separate=True)

    level, wanted = heading_text(anchor)
    found = headings(lines, first_body)
    matches = [h for h in found if h.text.casefold() == wanted.casefold()]
    if len(matches) > 1 and level:
        same_level = [h for h in matches if h.level == level]
        if len(same_level) == 1:
            matches = same_level
    if len(matches) > 1:
        return None, f"heading is ambiguous: {len(matches)} matches for '{_preview(wanted)}'"
    if not matches:
        if not level:
            return None, (
                f"heading not found: '{_preview(wanted)}' (start the anchor with '#' to create the heading)"
            )
        after = _last_nonblank(lines, first_body, doc_end)
        new_block = ["#" * level + " " + wanted, ""] + block
        return _insert_block(text, lines, starts, after, new_block, spans, separate=True)

    h = matches[0]
    h_start = starts[h.first]
    h_end = starts[h.last] + len(lines[h.last])
    reason = overlap_reason(spans, h_start, max(h_end, h_start + 1), f"heading '{_preview(wanted)}'")
    if reason:
        return None, reason
    end = section_body_end(found, h, len(lines))
    if h.last < doc_end < end:
        end = doc_end
    after = _last_nonblank(lines, h.last + 1, end)
    return _insert_block(text, lines, starts, after, block, spans, separate=True)


def _locate_unprotected(text: str, edit: Edit, spans: list[Span]) -> tuple[tuple[int, int] | None, str]:
    """The anchor's unique span, or (None, why): not found, ambiguous, or overlapping a protected region."""
    span, reason = _locate(text, edit.anchor or "")
    if span is None:
        return None, reason
    overlap = overlap_reason(spans, span[0], span[1], "anchor")
    return (None, overlap) if overlap else (span, "")


def _op_insert_after(text: str, edit: Edit, block: list[str], spans: list[Span]) -> tuple[str | None, str]:
    span, reason = _locate_unprotected(text, edit, spans)
    if span is None:
        return None, reason
    lines = split_lines(text)
    starts = _line_starts(text)
    last_char = span[1] - 1
    line_idx = max(i for i, st in enumerate(starts) if st <= last_char)
    return _insert_block(text, lines, starts, line_idx, block, spans, separate=False)


def _op_replace(text: str, edit: Edit, spans: list[Span]) -> tuple[str | None, str]:
    span, reason = _locate_unprotected(text, edit, spans)
    if span is None:
        return None, reason
    matched = text[span[0]:span[1]]
    new = _content_lf(edit.content)
    # mirror the matched text's surrounding newlines, so replacing a phrase inside a line
    # does not split the line and replacing whole lines keeps the next line separate
    if not matched.endswith("\n"):
        new = new.rstrip("\n")
    elif not new.endswith("\n"):
        new += "\n"
    if not matched.startswith("\n"):
        new = new.lstrip("\n")
    return text[:span[0]] + new + text[span[1]:], ""


def _op_delete(text: str, edit: Edit, spans: list[Span]) -> tuple[str | None, str]:
    span, reason = _locate_unprotected(text, edit, spans)
    if span is None:
        return None, reason
    ms, me = span
    result = text[:ms] + text[me:]
    line_start = text.rfind("\n", 0, ms) + 1
    nl = result.find("\n", ms)
    line_end = len(result) if nl < 0 else nl
    if result[line_start:line_end].strip():
        return result, ""
    # the line left behind is blank: remove it with its newline
    if line_end < len(result):
        cut_start, cut_end = line_start, line_end + 1
    elif line_start > 0:
        cut_start, cut_end = line_start - 1, line_end
    else:
        cut_start, cut_end = line_start, line_end
    result = result[:cut_start] + result[cut_end:]
    # and do not leave two blank lines where the removed line sat between blank lines
    if 0 < cut_start < len(result) and cut_start == line_start:
        prev_start = result.rfind("\n", 0, cut_start - 1) + 1
        nl = result.find("\n", cut_start)
        if nl >= 0 and not result[prev_start:cut_start - 1].strip() and not result[cut_start:nl].strip():
            collapsed = result[:cut_start] + result[nl + 1:]
            if protected_texts(collapsed) == protected_texts(result):
                result = collapsed
    return result, ""


# --------------------------------------------------------------------------- apply


def _fix_trailing(text: str, ends_with_newline: bool) -> str:
    if ends_with_newline:
        return text if not text or text.endswith("\n") else text + "\n"
    return text.rstrip("\n")


def apply_edits(skill: str, edits: list[Edit], *, max_ops: int, max_lines: int,
                name: str = "SKILL.md") -> ApplyReport:
    """Apply `edits` in order to `skill`, within `max_ops` applied edits and `max_lines`
    changed lines (added + removed in the unified diff from `skill`). Every edit gets a
    result; the report carries the new text and its diff."""
    if not isinstance(skill, str):
        raise TypeError(f"skill must be a string, got {type(skill).__name__}")
    if isinstance(max_ops, bool) or not isinstance(max_ops, int) or max_ops < 0:
        raise ValueError(f"max_ops must be a non-negative integer, got {max_ops!r}")
    if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 0:
        raise ValueError(f"max_lines must be a non-negative integer, got {max_lines!r}")
    edits = list(edits)
    for e in edits:
        if not isinstance(e, Edit):
            raise TypeError(f"edits must be Edit objects (use parse_edit), got {type(e).__name__}")
    check_name(name)

    crlf = _uses_crlf(skill)
    original = to_lf(skill)
    ends_nl = original.endswith("\n") or not original.strip()
    current = original
    results: list[EditResult] = []
    applied = 0

    for edit in edits:
        if applied >= max_ops:
            results.append(EditResult(edit, False, f"over op budget ({max_ops})"))
            continue
        new, reason = _apply_one(current, edit)
        if new is None:
            results.append(EditResult(edit, False, reason))
            continue
        new = _fix_trailing(new, ends_nl)
        if new == current:
            results.append(EditResult(edit, False, "no change"))
            continue
        if protected_texts(new) != protected_texts(current):
            results.append(EditResult(edit, False, "would change the front matter or a protected region"))
            continue
        dangling = dangling_construct(new)
        if dangling and dangling != dangling_construct(current):
            results.append(EditResult(
                edit, False, f"would leave {dangling}, turning the rest of the document into code or a comment",
            ))
            continue
        _, added, removed = diff_stats(original, new, name)
        if added + removed > max_lines:
            results.append(EditResult(
                edit, False,
                f"over line budget: would make {added + removed} changed lines, budget {max_lines}",
            ))
            continue
        _, step_added, step_removed = diff_stats(current, new, name)
        results.append(EditResult(edit, True, "", step_added + step_removed))
        current = new
        applied += 1

    if applied:
        after = current.replace("\n", "\r\n") if crlf else current
    else:
        after = skill
    diff, added, removed = diff_stats(skill, after, name)
    return ApplyReport(skill, after, results, diff, added, removed)


def _apply_one(text: str, edit: Edit) -> tuple[str | None, str]:
    problem = edit_problem(edit.op, edit.anchor, edit.content)
    if problem:
        return None, f"invalid edit: {problem}"
    if edit.op != "delete":
        if ANY_MARKER_RE.search(edit.content):
            return None, "content contains a skillopt:protected marker; edits may not create or end protected regions"
        block = _block(edit.content)
        if looks_like_front_matter(block):
            return (
                None,
                "content looks like a YAML front matter block (--- / key: value / ---); front matter is never edited",
            )
    spans = spans_of(text)
    if edit.op == "add":
        if _present(text, block):
            return None, "already present"
        return _op_add(text, edit, block, spans)
    if edit.op == "insert_after":
        if _present(text, block):
            return None, "already present"
        return _op_insert_after(text, edit, block, spans)
    if edit.op == "replace":
        return _op_replace(text, edit, spans)
    return _op_delete(text, edit, spans)
