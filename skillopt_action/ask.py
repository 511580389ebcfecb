"""One question to the optimizer whose answer is a JSON object, with parse retries.

Used by the description training and the epoch-level memory (slow update, meta memo). The answer is untrusted:
`parse` turns the decoded object into a value or raises ValueError with a reason the optimizer is shown on a
retry (templates/ask_retry.md.j2). After the last attempt the reason is returned, never swallowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .reflect import extract_json
from .render import render

T = TypeVar("T")


def ask_json(optimizer: Any, system: str, user: str, schema: dict, parse: Callable[[dict], T], *,
             parse_retries: int, seed: int, shape: str) -> tuple[T | None, str | None]:
    """(value, None) on success, (None, why the last answer was unusable) otherwise."""
    messages = [{"role": "user", "content": user}]
    error = "no answer"
    for attempt in range(parse_retries + 1):
        reply = optimizer.complete(system, messages, seed=seed * 10 + attempt, json_schema=schema)
        try:
            data = extract_json(reply.text)
            if not isinstance(data, dict):
                raise ValueError("the answer must be a JSON object")
            return parse(data), None
        except ValueError as exc:
            error = f"unusable optimizer answer after {attempt + 1} attempt(s): {exc}"
            messages = messages + [{"role": "assistant", "content": reply.text[:4000]},
                                   {"role": "user", "content": render("ask_retry.md.j2", error=str(exc),
                                                                      shape=shape)}]
    return None, error
