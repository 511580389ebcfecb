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

import difflib
import json
import re
from dataclasses import dataclass, field

from unidiff import PatchSet

OPS = ("add", "insert_after", "replace", "delete")
SOURCES = ("", "failure", "success")
EDIT_KEYS = ("op", "anchor", "content", "rationale", "source", "support", "tasks")

PROTECTED_OPEN = "<!-- skillopt:protected -->"
PROTECTED_CLOSE = "<!-- /skillopt:protected -->"

# Lenient about spacing and case inside the comment, so a hand-written
# `<!--skillopt:protected-->` protects as well (more protection is the safe side).
_OPEN_RE = re.compile(r"<!--\s*skillopt:protected\s*-->", re.IGNORECASE)
_CLOSE_RE = re.compile(r"<!--\s*/\s*skillopt:protected\s*-->", re.IGNORECASE)
_ANY_MARKER_RE = re.compile(r"<!--\s*/?\s*skillopt:protected", re.IGNORECASE)

_WS_RE = re.compile(r"\s+")
_ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_ATX_CLOSING_RE = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-{2,})[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_LIST_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:\s|$)")
_NOT_SETEXT_TEXT_RE = re.compile(r"^\s*(?:[-*+>|]|\d{1,9}[.)]\s|<!--)")
_YAML_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]*:(?:\s|$)")
_HEADING_ANCHOR_RE = re.compile(r"^\s*(#+)\s*(.*?)\s*#*\s*$", re.DOTALL)

_PREVIEW = 60


# --------------------------------------------------------------------------- edits


def _norm_ws(text: str) -> str:
    return _WS_RE.sub(" ", text).strip()


def _heading_text(anchor: str) -> tuple[int, str]:
    """('## Output  format ##') -> (2, 'Output format'); plain text -> (0, text)."""
    m = _HEADING_ANCHOR_RE.match(anchor)
    if m and anchor.lstrip().startswith("#"):
        return len(m.group(1)), _norm_ws(m.group(2))
    return 0, _norm_ws(anchor)


@dataclass
class Edit:
    op: str
    anchor: str | None
    content: str = ""
    rationale: str = ""
    source: str = ""
    support: int = 1
    tasks: tuple[str, ...] = ()

    def key(self) -> str:
        """Identity for dedup and the rejected-edit memory.

        Two edits have the same key when op, anchor and content agree after collapsing
        whitespace and case (and, for `add`, ignoring the heading's '#' marks), so
        "## Rules" / "rules" and "Cite  sources.\\n" / "cite sources." are the same edit.
        """
        anchor = self.anchor or ""
        if self.op == "add":
            anchor = _heading_text(anchor)[1]
        return json.dumps(
            [self.op, _norm_ws(anchor).casefold(), _norm_ws(self.content or "").casefold()],
            ensure_ascii=False,
        )

    def to_dict(self) -> dict:
        return {
            "op": self.op,
            "anchor": self.anchor,
            "content": self.content,
            "rationale": self.rationale,
            "source": self.source,
            "support": self.support,
            "tasks": list(self.tasks),
        }

    @classmethod
    def from_dict(cls, d) -> "Edit":
        """Inverse of to_dict (validated like parse_edit; raises ValueError on bad data)."""
        return parse_edit(d)


def _validation_error(op, anchor, content) -> str | None:
    """Why (op, anchor, content) is not a well-formed edit, or None."""
    if not isinstance(op, str):
        return f"op must be a string, got {type(op).__name__}"
    if op not in OPS:
        return f"unknown op {op!r}; expected one of {', '.join(OPS)}"
    if anchor is not None and not isinstance(anchor, str):
        return f"anchor must be a string, got {type(anchor).__name__}"
    if not isinstance(content, str):
        return f"content must be a string, got {type(content).__name__}"
    if op != "add" and not (anchor or "").strip():
        return f"{op} needs an anchor: the exact text to find in the skill"
    if op == "add" and anchor and anchor.lstrip().startswith("#"):
        level, text = _heading_text(anchor)
        if not text:
            return f"add anchor {anchor!r} is a heading without text"
        if level > 6:
            return f"add anchor {anchor!r} has {level} '#' marks; a Markdown heading has at most 6"
    if op == "delete":
        if content.strip():
            return "delete takes no content (use replace to change text)"
    elif not content.strip():
        if op == "replace":
            return "replace needs content (use delete to remove text)"
        return f"{op} needs content: the text to add"
    return None


def parse_edit(d: dict) -> Edit:
    """Validate an optimizer-provided edit dict and build an Edit. Raises ValueError."""
    if not isinstance(d, dict):
        raise ValueError(f"an edit must be an object with an 'op', got {type(d).__name__}")
    unknown = sorted(str(k) for k in d if k not in EDIT_KEYS)
    if unknown:
        raise ValueError(f"unknown edit field(s): {', '.join(unknown)}; allowed: {', '.join(EDIT_KEYS)}")
    if "op" not in d:
        raise ValueError(f"edit has no 'op'; expected one of {', '.join(OPS)}")
    op = d["op"]
    anchor = d.get("anchor")
    content = d.get("content", "")
    if content is None:
        content = ""
    problem = _validation_error(op, anchor, content)
    if problem:
        raise ValueError(problem)
    rationale = d.get("rationale", "")
    if rationale is None:
        rationale = ""
    if not isinstance(rationale, str):
        raise ValueError(f"rationale must be a string, got {type(rationale).__name__}")
    source = d.get("source", "")
    if source is None:
        source = ""
    if source not in SOURCES:
        raise ValueError(f"source must be 'failure' or 'success', got {source!r}")
    support = d.get("support", 1)
    if isinstance(support, bool) or not isinstance(support, int) or support < 1:
        raise ValueError(f"support must be a positive integer, got {support!r}")
    tasks = d.get("tasks", ())
    if tasks is None:
        tasks = ()
    if isinstance(tasks, str) or not isinstance(tasks, (list, tuple)):
        raise ValueError(f"tasks must be a list of task ids, got {type(tasks).__name__}")
    for t in tasks:
        if not isinstance(t, str):
            raise ValueError(f"tasks must be a list of task id strings, got an item {t!r}")
    return Edit(
        op=op,
        anchor=(anchor or None) if op == "add" else anchor,
        content=content,
        rationale=rationale,
        source=source,
        support=support,
        tasks=tuple(tasks),
    )


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


def _to_lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def _content_lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _uses_crlf(text: str) -> bool:
    crlf = text.count("\r\n")
    return crlf > 0 and crlf >= text.count("\n") - crlf


def _split_lines(text: str) -> list[str]:
    """Lines without their '\\n' (only '\\n' separates lines; a trailing '\\n' adds no line)."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


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


# --------------------------------------------------------------------------- diff


def _diff_lines(text: str) -> list[str]:
    """Lines with their '\n' (the last one without, when the text does not end with one)."""
    if not text:
        return []
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


_MYERS_MAX_D = 1000  # beyond this many changed lines (a rewrite, far over any line budget),
# fall back to difflib's matcher: quick, correct, but not always minimal


def _myers_opcodes(a: list[str], b: list[str]) -> list[tuple[str, int, int, int, int]] | None:
    """Opcodes (as difflib's) of a minimal line diff (Myers' O(ND) algorithm), so that the
    added/removed counts are the smallest possible, as git reports them. None when the
    difference exceeds _MYERS_MAX_D lines."""
    n, m = len(a), len(b)
    v = {1: 0}
    trace: list[dict[int, int]] = []
    final_d = None
    for d in range(min(n + m, _MYERS_MAX_D) + 1):
        trace.append(dict(v))
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[k - 1] < v[k + 1]):
                x = v[k + 1]
            else:
                x = v[k - 1] + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            v[k] = x
            if x >= n and y >= m:
                final_d = d
                break
        if final_d is not None:
            break
    if final_d is None:
        return None
    # walk back from (n, m) to (0, 0), collecting the path's points
    steps: list[tuple[str, int, int]] = []  # ("equal"|"delete"|"insert", x, y) at the step's start
    x, y = n, m
    for d in range(final_d, 0, -1):
        vd = trace[d]
        k = x - y
        if k == -d or (k != d and vd[k - 1] < vd[k + 1]):
            prev_k = k + 1
        else:
            prev_k = k - 1
        prev_x = vd[prev_k]
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x -= 1
            y -= 1
            steps.append(("equal", x, y))
        if x == prev_x:
            steps.append(("insert", prev_x, prev_y))
        else:
            steps.append(("delete", prev_x, prev_y))
        x, y = prev_x, prev_y
    while x > 0 and y > 0:
        x -= 1
        y -= 1
        steps.append(("equal", x, y))
    steps.reverse()
    opcodes: list[tuple[str, int, int, int, int]] = []
    for kind, i, j in steps:
        di, dj = (1, 1) if kind == "equal" else (1, 0) if kind == "delete" else (0, 1)
        tag = "equal" if kind == "equal" else "change"
        if opcodes and opcodes[-1][0] == tag:
            t, i1, i2, j1, j2 = opcodes[-1]
            opcodes[-1] = (t, i1, i2 + di, j1, j2 + dj)
        else:
            opcodes.append((tag, i, i + di, j, j + dj))
    result = []
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "change":
            tag = "replace" if i1 < i2 and j1 < j2 else "delete" if i1 < i2 else "insert"
        result.append((tag, i1, i2, j1, j2))
    return result or [("equal", 0, 0, 0, 0)]


class _Matcher(difflib.SequenceMatcher):
    """difflib's hunk grouping on top of a minimal (Myers) line diff."""

    def __init__(self, a: list[str], b: list[str]):
        super().__init__(None, a, b, autojunk=False)
        self._minimal = _myers_opcodes(a, b)

    def get_opcodes(self):
        if self._minimal is None:
            return super().get_opcodes()
        return list(self._minimal)


def _hunk_range(start: int, length: int) -> str:
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def _unified_diff(before: str, after: str, name: str) -> str:
    a, b = _diff_lines(before), _diff_lines(after)
    if a == b:
        return ""
    out = [f"--- a/{name}\n", f"+++ b/{name}\n"]

    def emit(prefix: str, line: str) -> None:
        if line.endswith("\n"):
            out.append(prefix + line)
        else:  # the last line of a text that does not end with a newline
            out.append(prefix + line + "\n\\ No newline at end of file\n")

    for group in _Matcher(a, b).get_grouped_opcodes(3):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_hunk_range(i1, i2 - i1)} +{_hunk_range(j1, j2 - j1)} @@\n")
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                for line in a[a1:a2]:
                    emit(" ", line)
                continue
            for line in a[a1:a2]:
                emit("-", line)
            for line in b[b1:b2]:
                emit("+", line)
    return "".join(out)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "\t\r\n"):
        raise ValueError(f"file name for the diff must be non-empty, without tabs or newlines: {name!r}")


def diff_stats(before: str, after: str, name: str = "SKILL.md") -> tuple[str, int, int]:
    """Unified diff before -> after (labels a/<name>, b/<name>) and its added and removed
    line counts as `unidiff` counts them. CRLF is compared as LF."""
    if not isinstance(before, str) or not isinstance(after, str):
        raise TypeError("diff_stats compares two strings")
    _check_name(name)
    diff = _unified_diff(_to_lf(before), _to_lf(after), name)
    if not diff:
        return "", 0, 0
    patch = PatchSet.from_string(diff)
    return diff, patch.added, patch.removed


# --------------------------------------------------------------------------- protection


@dataclass(frozen=True)
class _Span:
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


def _front_matter_end(text: str) -> int:
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


def _spans(text: str) -> list[_Span]:
    spans = []
    fm_end = _front_matter_end(text)
    if fm_end:
        spans.append(_Span(0, fm_end, "front matter"))
    pos = fm_end
    while True:
        opener = _OPEN_RE.search(text, pos)
        if not opener:
            break
        closer = _CLOSE_RE.search(text, opener.end())
        if not closer:
            spans.append(_Span(opener.start(), len(text), "protected region", open_ended=True))
            break
        spans.append(_Span(opener.start(), closer.end(), "protected region"))
        pos = closer.end()
    return spans


def protected_spans(skill: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of `skill` that edits never touch: YAML front matter at
    the top and `<!-- skillopt:protected -->` ... `<!-- /skillopt:protected -->` regions
    (an opener without a closer protects to the end)."""
    return [(s.start, s.end) for s in _spans(skill)]


def _protected_texts(text: str) -> list[str]:
    return [text[s.start:s.end] for s in _spans(text)]


def _overlap_reason(spans: list[_Span], start: int, end: int, what: str) -> str | None:
    for s in spans:
        if s.overlaps(start, end):
            return f"{what} overlaps the {_kind_label(s)}, which is never edited"
    return None


def _point_reason(spans: list[_Span], pos: int, length: int) -> str | None:
    for s in spans:
        if s.contains_point(pos, length):
            return f"insertion point is inside the {_kind_label(s)}, which is never edited"
    return None


def _kind_label(s: _Span) -> str:
    if s.kind == "front matter":
        return "YAML front matter"
    return f"protected region ({PROTECTED_OPEN} ... {PROTECTED_CLOSE})"


def _looks_like_front_matter(lines: list[str]) -> bool:
    dashes = [i for i, ln in enumerate(lines) if ln.strip() == "---"]
    for a, b in zip(dashes, dashes[1:]):
        if any(_YAML_KEY_RE.match(ln.strip()) for ln in lines[a + 1:b]):
            return True
    return False


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
    needle = _norm_ws(anchor)
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


# --------------------------------------------------------------------------- markdown structure


@dataclass(frozen=True)
class _Heading:
    first: int  # line index where the heading starts
    last: int  # line index of its last line (the underline for a setext heading)
    level: int
    text: str


def _fence_scan(lines: list[str], skip: int) -> tuple[set[int], bool]:
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


def _fenced_lines(lines: list[str], skip: int) -> set[int]:
    return _fence_scan(lines, skip)[0]


def _headings(lines: list[str], first_body_line: int) -> list[_Heading]:
    fenced = _fenced_lines(lines, first_body_line)
    found: list[_Heading] = []
    i = first_body_line
    while i < len(lines):
        line = lines[i]
        if i in fenced:
            i += 1
            continue
        m = _ATX_RE.match(line)
        if m:
            text = _ATX_CLOSING_RE.sub("", m.group(2) or "")
            found.append(_Heading(i, i, len(m.group(1)), _norm_ws(text)))
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
            found.append(_Heading(i, i + 1, level, _norm_ws(line)))
            i += 2
            continue
        i += 1
    return found


def _dangling_construct(text: str) -> str | None:
    """A construct left open at the end of the document, hiding everything after it."""
    if _fence_scan(_split_lines(text), 0)[1]:
        return "a code fence (``` or ~~~) that is never closed"
    opener = text.rfind("<!--")
    if opener >= 0 and text.find("-->", opener + 4) < 0:
        return "an HTML comment (<!--) that is never closed"
    return None


def _section_body_end(headings: list[_Heading], h: _Heading, n_lines: int) -> int:
    """Line index where the heading's own text ends: the next heading of any level.

    Text placed after a subsection would read as part of that subsection, so the end of
    a section's own body is before its first subheading (or the next section)."""
    for other in headings:
        if other.first > h.last:
            return other.first
    return n_lines


def _doc_end_line(text: str, lines: list[str], starts: list[int], spans: list[_Span], floor: int) -> int:
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
                  spans: list[_Span], *, separate: bool) -> tuple[str | None, str]:
    """Insert `block` as lines after line index `after_line` (-1 = at the top)."""
    if after_line >= 0:
        line_end = starts[after_line] + len(lines[after_line])
        pos = line_end + 1 if line_end < len(text) else len(text)
    else:
        pos = 0
    reason = _point_reason(spans, pos, len(text))
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
        interrupts = bool(_ATX_RE.match(nxt)) or nxt.lstrip().startswith("<!--")
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
    lines = [ln.rstrip() for ln in _split_lines(text)]
    n = len(block)
    return any(lines[i:i + n] == block for i in range(len(lines) - n + 1))


def _op_add(text: str, edit: Edit, block: list[str], spans: list[_Span]) -> tuple[str | None, str]:
    lines = _split_lines(text)
    starts = _line_starts(text)
    fm_end = next((s.end for s in spans if s.kind == "front matter"), 0)
    first_body = sum(1 for st in starts if st < fm_end)
    doc_end = _doc_end_line(text, lines, starts, spans, first_body)
    anchor = edit.anchor or ""
    if not anchor.strip():
        after = _last_nonblank(lines, first_body, doc_end)
        return _insert_block(text, lines, starts, after, block, spans, separate=True)

    level, wanted = _heading_text(anchor)
    headings = _headings(lines, first_body)
    matches = [h for h in headings if h.text.casefold() == wanted.casefold()]
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
    reason = _overlap_reason(spans, h_start, max(h_end, h_start + 1), f"heading '{_preview(wanted)}'")
    if reason:
        return None, reason
    end = _section_body_end(headings, h, len(lines))
    if h.last < doc_end < end:
        end = doc_end
    after = _last_nonblank(lines, h.last + 1, end)
    return _insert_block(text, lines, starts, after, block, spans, separate=True)


def _locate_unprotected(text: str, edit: Edit, spans: list[_Span]) -> tuple[tuple[int, int] | None, str]:
    """The anchor's unique span, or (None, why): not found, ambiguous, or overlapping a protected region."""
    span, reason = _locate(text, edit.anchor or "")
    if span is None:
        return None, reason
    reason = _overlap_reason(spans, span[0], span[1], "anchor")
    return (None, reason) if reason else (span, "")


def _op_insert_after(text: str, edit: Edit, block: list[str], spans: list[_Span]) -> tuple[str | None, str]:
    span, reason = _locate_unprotected(text, edit, spans)
    if span is None:
        return None, reason
    lines = _split_lines(text)
    starts = _line_starts(text)
    last_char = span[1] - 1
    line_idx = max(i for i, st in enumerate(starts) if st <= last_char)
    return _insert_block(text, lines, starts, line_idx, block, spans, separate=False)


def _op_replace(text: str, edit: Edit, spans: list[_Span]) -> tuple[str | None, str]:
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


def _op_delete(text: str, edit: Edit, spans: list[_Span]) -> tuple[str | None, str]:
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
            if _protected_texts(collapsed) == _protected_texts(result):
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
    _check_name(name)

    crlf = _uses_crlf(skill)
    original = _to_lf(skill)
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
        if _protected_texts(new) != _protected_texts(current):
            results.append(EditResult(edit, False, "would change the front matter or a protected region"))
            continue
        dangling = _dangling_construct(new)
        if dangling and dangling != _dangling_construct(current):
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
    problem = _validation_error(edit.op, edit.anchor, edit.content)
    if problem:
        return None, f"invalid edit: {problem}"
    if edit.op != "delete":
        if _ANY_MARKER_RE.search(edit.content):
            return None, "content contains a skillopt:protected marker; edits may not create or end protected regions"
        block = _block(edit.content)
        if _looks_like_front_matter(block):
            return None, "content looks like a YAML front matter block (--- / key: value / ---); front matter is never edited"
    spans = _spans(text)
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
