"""Markdown structure a skill edit must respect: front matter, protected regions, headings, code fences.

Some text is never touched: YAML front matter at the very top of the document and every region between
`<!-- skillopt:protected -->` and `<!-- /skillopt:protected -->` (an opener without a closer protects to the
end of the document). Headings (ATX and setext, outside code fences) are where `add` edits go. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .types import norm_ws

PROTECTED_OPEN = "<!-- skillopt:protected -->"
PROTECTED_CLOSE = "<!-- /skillopt:protected -->"

# Lenient about spacing and case inside the comment, so a hand-written
# `<!--skillopt:protected-->` protects as well (more protection is the safe side).
_OPEN_RE = re.compile(r"<!--\s*skillopt:protected\s*-->", re.IGNORECASE)
_CLOSE_RE = re.compile(r"<!--\s*/\s*skillopt:protected\s*-->", re.IGNORECASE)
ANY_MARKER_RE = re.compile(r"<!--\s*/?\s*skillopt:protected", re.IGNORECASE)

ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_ATX_CLOSING_RE = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-{2,})[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_NOT_SETEXT_TEXT_RE = re.compile(r"^\s*(?:[-*+>|]|\d{1,9}[.)]\s|<!--)")
_YAML_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]*:(?:\s|$)")


def split_lines(text: str) -> list[str]:
    """Lines without their '\\n' (only '\\n' separates lines; a trailing '\\n' adds no line)."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


# --------------------------------------------------------------------------- protection


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str  # "front matter" | "protected region"
    open_ended: bool = False  # an opener with no closer: protects to end of document

    def overlaps(self, start: int, end: int) -> bool:
        return start < self.end and self.start < end

    def contains_point(self, pos: int, length: int) -> bool:
        if self.start < pos < self.end:
            return True
        return self.open_ended and pos == self.end == length and pos > self.start


def front_matter_end(text: str) -> int:
    """End offset (after the closing line) of YAML front matter at the very top, or 0."""
    body = text[1:] if text.startswith("\ufeff") else text
    offset = len(text) - len(body)
    first_nl = body.find("\n")
    if first_nl < 0 or body[:first_nl].rstrip("\r \t") != "---":
        return 0
    pos = first_nl + 1
    while pos < len(body):
        nl = body.find("\n", pos)
        line_end = len(body) if nl < 0 else nl
        if body[pos:line_end].rstrip("\r \t") == "---":
            return offset + (len(body) if nl < 0 else nl + 1)
        if nl < 0:
            break
        pos = nl + 1
    return 0


def spans_of(text: str) -> list[Span]:
    spans = []
    fm_end = front_matter_end(text)
    if fm_end:
        spans.append(Span(0, fm_end, "front matter"))
    pos = fm_end
    while True:
        opener = _OPEN_RE.search(text, pos)
        if not opener:
            break
        closer = _CLOSE_RE.search(text, opener.end())
        if not closer:
            spans.append(Span(opener.start(), len(text), "protected region", open_ended=True))
            break
        spans.append(Span(opener.start(), closer.end(), "protected region"))
        pos = closer.end()
    return spans


def protected_spans(skill: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of `skill` that edits never touch: YAML front matter at
    the top and `<!-- skillopt:protected -->` ... `<!-- /skillopt:protected -->` regions
    (an opener without a closer protects to the end)."""
    return [(s.start, s.end) for s in spans_of(skill)]


def protected_texts(text: str) -> list[str]:
    return [text[s.start:s.end] for s in spans_of(text)]


def overlap_reason(spans: list[Span], start: int, end: int, what: str) -> str | None:
    for s in spans:
        if s.overlaps(start, end):
            return f"{what} overlaps the {kind_label(s)}, which is never edited"
    return None


def point_reason(spans: list[Span], pos: int, length: int) -> str | None:
    for s in spans:
        if s.contains_point(pos, length):
            return f"insertion point is inside the {kind_label(s)}, which is never edited"
    return None


def kind_label(s: Span) -> str:
    if s.kind == "front matter":
        return "YAML front matter"
    return f"protected region ({PROTECTED_OPEN} ... {PROTECTED_CLOSE})"


def looks_like_front_matter(lines: list[str]) -> bool:
    dashes = [i for i, ln in enumerate(lines) if ln.strip() == "---"]
    for a, b in zip(dashes, dashes[1:], strict=False):
        if any(_YAML_KEY_RE.match(ln.strip()) for ln in lines[a + 1:b]):
            return True
    return False




# --------------------------------------------------------------------------- markdown structure


@dataclass(frozen=True)
class Heading:
    first: int  # line index where the heading starts
    last: int  # line index of its last line (the underline for a setext heading)
    level: int
    text: str


def fence_scan(lines: list[str], skip: int) -> tuple[set[int], bool]:
    """Line indices inside fenced code blocks (fence lines included), and whether the
    last fence is still open at the end."""
    inside: set[int] = set()
    fence: tuple[str, int] | None = None
    for i in range(skip, len(lines)):
        m = _FENCE_RE.match(lines[i])
        if fence is None:
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                fence = (m.group(1)[0], len(m.group(1)))
                inside.add(i)
        else:
            inside.add(i)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= fence[1] and not m.group(2).strip():
                fence = None
    return inside, fence is not None


def fenced_lines(lines: list[str], skip: int) -> set[int]:
    return fence_scan(lines, skip)[0]


def headings(lines: list[str], first_body_line: int) -> list[Heading]:
    fenced = fenced_lines(lines, first_body_line)
    found: list[Heading] = []
    i = first_body_line
    while i < len(lines):
        line = lines[i]
        if i in fenced:
            i += 1
            continue
        m = ATX_RE.match(line)
        if m:
            text = _ATX_CLOSING_RE.sub("", m.group(2) or "")
            found.append(Heading(i, i, len(m.group(1)), norm_ws(text)))
            i += 1
            continue
        underline = _SETEXT_RE.match(lines[i + 1]) if i + 1 < len(lines) and i + 1 not in fenced else None
        starts_block = i == first_body_line or not lines[i - 1].strip() or (
            found and found[-1].last == i - 1
        )
        if (
            underline
            and line.strip()
            and starts_block
            and not line.startswith("    ")
            and not _NOT_SETEXT_TEXT_RE.match(line)
        ):
            level = 1 if underline.group(1)[0] == "=" else 2
            found.append(Heading(i, i + 1, level, norm_ws(line)))
            i += 2
            continue
        i += 1
    return found


def dangling_construct(text: str) -> str | None:
    """A construct left open at the end of the document, hiding everything after it."""
    if fence_scan(split_lines(text), 0)[1]:
        return "a code fence (``` or ~~~) that is never closed"
    opener = text.rfind("<!--")
    if opener >= 0 and text.find("-->", opener + 4) < 0:
        return "an HTML comment (<!--) that is never closed"
    return None


def section_body_end(headings: list[Heading], h: Heading, n_lines: int) -> int:
    """Line index where the heading's own text ends: the next heading of any level.

    Text placed after a subsection would read as part of that subsection, so the end of
    a section's own body is before its first subheading (or the next section)."""
    for other in headings:
        if other.first > h.last:
            return other.first
    return n_lines


