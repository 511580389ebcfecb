"""Unified diffs of skill text and their size in changed lines, as git counts them.

`diff_stats(before, after, name)` returns the unified diff (labels a/<name>, b/<name>) and its added and
removed line counts. The line diff is minimal (Myers' O(ND) algorithm), so the counts are the smallest
possible, which is what the edit budget's `lines` limit is measured in. CRLF is compared as LF. Pure.
"""

from __future__ import annotations

import difflib

from unidiff import PatchSet


def to_lf(text: str) -> str:
    return text.replace("\r\n", "\n")


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


def check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "\t\r\n"):
        raise ValueError(f"file name for the diff must be non-empty, without tabs or newlines: {name!r}")


def diff_stats(before: str, after: str, name: str = "SKILL.md") -> tuple[str, int, int]:
    """Unified diff before -> after (labels a/<name>, b/<name>) and its added and removed
    line counts as `unidiff` counts them. CRLF is compared as LF."""
    if not isinstance(before, str) or not isinstance(after, str):
        raise TypeError("diff_stats compares two strings")
    check_name(name)
    diff = _unified_diff(to_lf(before), to_lf(after), name)
    if not diff:
        return "", 0, 0
    patch = PatchSet.from_string(diff)
    return diff, patch.added, patch.removed

