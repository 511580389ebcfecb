"""Small text helpers shared by scorers, targets, reflection and reports.

Text that came from a model, an agent or a task is untrusted: when it is shown in feedback it is quoted with
`repr` (so newlines and control characters cannot forge structure) and bounded in length.
"""

from __future__ import annotations

import json
import re
from typing import Any

FEEDBACK_MAX = 300

_THINKING = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.S | re.I)


def quote(text: Any, limit: int = 80) -> str:
    """Quote untrusted text for feedback: one line, truncated, via repr."""
    s = text if isinstance(text, str) else json.dumps(text, default=str, ensure_ascii=False)
    s = s.strip()
    if len(s) > limit:
        s = s[:limit] + "..."
    return repr(s)


def quote_tail(text: str, limit: int = 150) -> str:
    """Quote the end of untrusted text (where errors usually are), via repr."""
    s = text.strip()
    if len(s) > limit:
        s = "..." + s[-limit:]
    return repr(s)


def clip(feedback: str, limit: int = FEEDBACK_MAX) -> str:
    """At most `limit` characters, ending with "..." when cut."""
    return feedback if len(feedback) <= limit else feedback[: limit - 3] + "..."


def clip_middle(text: str, limit: int) -> str:
    """At most about `limit` characters: head and tail kept, the middle replaced by a note."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def strip_thinking(text: str) -> str:
    """Drop the <think>...</think> blocks that reasoning models served by Ollama/vLLM put before the answer."""
    return _THINKING.sub("", text or "").strip()
