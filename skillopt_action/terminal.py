"""Markdown (report.md, comments) -> text for a terminal: what `skillopt report` prints.

Headings, aligned tables, lists, block quotes, `<details>` blocks, diffs (coloured), and the Mermaid
`xychart-beta` score chart drawn as text bars. With `colour=False` the output has no escape codes at all
(for pipes, files and NO_COLOR); the words and layout are the same either way.
"""

from __future__ import annotations

import html
import re
import textwrap

RESET = "\033[0m"
STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "cyan": "36",
          "heading": "1;36", "added": "32", "removed": "31", "hunk": "36"}
_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`|\[([^\]]+)\]\(([^)\s]+)\)")
_TAG = re.compile(r"</?(details|summary|br|sub|sup|b|i|em|strong|code|p|div|span)\b[^>]*>", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ROW = re.compile(r"^\s*\|.*\|\s*$")
_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


class _Style:
    def __init__(self, colour: bool):
        self.colour = colour

    def __call__(self, text: str, style: str) -> str:
        if not self.colour or not text:
            return text
        return f"\033[{STYLES[style]}m{text}{RESET}"


def visible_len(text: str) -> int:
    """Length on screen: escape codes take no room."""
    return len(re.sub(r"\033\[[0-9;]*m", "", text))


def _inline(text: str, s: _Style) -> str:
    def sub(m: re.Match) -> str:
        if m.group(1) is not None:
            return s(m.group(1), "bold")
        if m.group(2) is not None:
            return s(m.group(2), "cyan")
        return f"{m.group(3)} ({m.group(4)})"

    return html.unescape(_INLINE.sub(sub, text))


def _cells(row: str) -> list[str]:
    body = row.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body)]


def _table(rows: list[str], s: _Style, width: int) -> list[str]:
    header, rule, body = _cells(rows[0]), _cells(rows[1]), [_cells(r) for r in rows[2:]]
    n = len(header)
    right = [c.endswith(":") and not c.startswith(":") for c in rule] + [False] * n
    grid = [[_inline(c, s) for c in header]] + [[_inline(c, s) for c in (r + [""] * n)[:n]] for r in body]
    widths = [max(visible_len(r[i]) for r in grid) for i in range(n)]
    # too wide for the terminal: the last column (usually free text) gives way
    spare = width - (sum(widths[:-1]) + 2 * (n - 1))
    if n > 1 and widths[-1] > spare >= 12:
        widths[-1] = spare
        for r in grid:
            if visible_len(r[-1]) > spare:
                r[-1] = _strip(r[-1])[: spare - 1] + "…"

    def line(cells: list[str], bold: bool = False) -> str:
        out = []
        for i, c in enumerate(cells):
            pad = " " * (widths[i] - visible_len(c))
            cell = pad + c if right[i] else c + (pad if i < n - 1 else "")
            out.append(s(_strip(cell), "bold") if bold else cell)
        return "  ".join(out).rstrip()

    return [line(grid[0], bold=True), s("  ".join("─" * w for w in widths), "dim")] + [line(r) for r in grid[1:]]


def _strip(text: str) -> str:
    return re.sub(r"\033\[[0-9;]*m", "", text)


def _numbers(text: str) -> list[float]:
    inner = text[text.index("[") + 1:text.rindex("]")] if "[" in text and "]" in text else ""
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", inner)]


def _xychart(lines: list[str], s: _Style, width: int) -> list[str]:
    """A Mermaid xychart-beta with one bar series and one line series, as rows of text bars."""
    xs: list[str] = []
    bars: list[float] = []
    kept: list[float] = []
    title = ""
    for raw in lines:
        t = raw.strip()
        if t.startswith("title"):
            title = t[len("title"):].strip().strip('"')
        elif t.startswith("x-axis") and "[" in t:
            xs = [x.strip().strip('"') for x in t[t.index("[") + 1:t.rindex("]")].split(",")]
        elif t.startswith("bar"):
            bars = _numbers(t)
        elif t.startswith("line"):
            kept = _numbers(t)
    if not xs:
        return [s("(chart: open report.md on GitHub to see it)", "dim")]
    span = max(10, min(40, width - 40))
    out = [s(title, "bold")] if title else []
    out.append(s(f"{'step':>6}  {'candidate':<{span}}  score   kept", "dim"))
    for i, x in enumerate(xs):
        b = bars[i] if i < len(bars) else None
        k = kept[i] if i < len(kept) else None
        filled = round(max(0.0, min(1.0, b or 0.0)) * span)
        bar = "█" * filled + "·" * (span - filled)
        score = f"{b:.3f}" if b is not None else "  —  "
        out.append(f"{x:>6}  {s(bar, 'blue')}  {score}  {f'{k:.3f}' if k is not None else ''}")
    return out


def _code(lang: str, lines: list[str], s: _Style, width: int) -> list[str]:
    if lang == "mermaid" and lines and lines[0].strip().startswith("xychart"):
        return ["    " + x for x in _xychart(lines, s, width)]
    out = []
    for ln in lines:
        style = None
        if lang == "diff":
            if ln.startswith("@@"):
                style = "hunk"
            elif ln.startswith("+") and not ln.startswith("+++"):
                style = "added"
            elif ln.startswith("-") and not ln.startswith("---"):
                style = "removed"
        out.append("    " + (s(ln, style) if style else ln))
    return out


def render(markdown: str, *, colour: bool = False, width: int = 100) -> str:
    """`markdown` as terminal text, `width` columns wide (tables and paragraphs fit; code is not wrapped)."""
    s = _Style(colour)
    text = _COMMENT.sub("", markdown)
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)", line)
        if fence:
            mark, lang = fence.group(1), fence.group(2).lower()
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(mark):
                code.append(lines[i])
                i += 1
            out += _code(lang, code, s, width)
            i += 1
            continue
        if _ROW.match(line) and i + 1 < len(lines) and _RULE.match(lines[i + 1]):
            rows = [line, lines[i + 1]]
            i += 2
            while i < len(lines) and _ROW.match(lines[i]):
                rows.append(lines[i])
                i += 1
            out += _table(rows, s, width)
            continue
        summary = re.search(r"<summary>(.*?)</summary>", line, re.IGNORECASE)
        if summary:
            out.append("▸ " + _inline(summary.group(1), s))
            i += 1
            continue
        line = _TAG.sub("", line)
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            level, title = len(heading.group(1)), _inline(heading.group(2), s)
            if out and out[-1] != "":
                out.append("")
            out.append(s(_strip(title), "heading"))
            if level <= 2:
                out.append(s(("═" if level == 1 else "─") * min(width, visible_len(title)), "dim"))
            i += 1
            continue
        if not line.strip():
            if out and out[-1] != "":
                out.append("")
            i += 1
            continue
        quote = re.match(r"^\s*>\s?(.*)$", line)
        item = re.match(r"^(\s*)([-*+]|\d+\.)\s+(.*)$", line)
        if quote:
            prefix, first, rest, body = s("│ ", "yellow"), "", "", quote.group(1)
        elif item:
            indent = item.group(1)
            bullet = "•" if item.group(2) in "-*+" else item.group(2)
            prefix, first, rest, body = indent, bullet + " ", " " * (len(bullet) + 1), item.group(3)
        else:
            prefix, first, rest, body = "", "", "", line.strip()
        wrapped = textwrap.wrap(_inline(body, s), width=max(20, width - visible_len(prefix) - len(first)),
                                break_long_words=False, break_on_hyphens=False) or [""]
        out.append(prefix + first + wrapped[0])
        out += [prefix + rest + w for w in wrapped[1:]]
        i += 1
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"
