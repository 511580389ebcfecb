r"""A scripted model server on 127.0.0.1 that speaks the providers' real wire formats.

Tests point the real `openai` / `anthropic` SDKs, the `claude` and `codex` CLIs, or a whole
`act` run at this server instead of the network, script what the "model" answers, and then
assert what the client sent. Standard library only.

Endpoints (the query string is ignored for routing, e.g. Claude Code's `?beta=true`):

    POST /v1/chat/completions, /chat/completions            OpenAI Chat Completions
    POST /openai/deployments/{name}/chat/completions        Azure style (?api-version=...)
    POST /openai/v1/chat/completions
    POST /v1/responses, /responses, /openai/v1/responses    OpenAI Responses API
    POST /openai/deployments/{name}/responses
    POST /v1/messages, /messages                            Anthropic Messages
    POST /v1/messages/count_tokens                          Anthropic token count (no script use)
    GET  /v1/models, /models                                model list (Anthropic shape when the
                                                            request has an `anthropic-version` header)

Any other path is a 404 and a wrong method a 405, with a JSON error body in the provider's shape
(`{"error": {...}}` for OpenAI, `{"type": "error", "error": {...}}` for Anthropic; a request is
"Anthropic" when it hits /messages or carries an `anthropic-version` header).

Every request to /chat/completions, /responses or /messages consumes one reply spec. Both
non-streamed JSON and `stream: true` server-sent events are produced:

- Chat Completions: `chat.completion` JSON, or `chat.completion.chunk` events (`data:` lines
  only) ending with `data: [DONE]`. As with the real API, a streamed reply carries `usage` (in an
  extra chunk with `choices: []`) only when the client sends
  `stream_options: {"include_usage": true}`; non-streamed replies always carry it.
- Responses: the `response` object, or `event:`/`data:` pairs with increasing `sequence_number`:
  response.created, response.in_progress, then per output item response.output_item.added,
  (message) response.content_part.added, response.output_text.delta..., response.output_text.done,
  response.content_part.done, (function_call) response.function_call_arguments.delta...,
  response.function_call_arguments.done, then response.output_item.done, and finally
  response.completed with usage (response.incomplete for `Text(..., finish="length")`).
- Messages: the `message` JSON, or message_start, content_block_start, ping,
  content_block_delta (text_delta / input_json_delta), content_block_stop, message_delta
  (stop_reason, usage), message_stop. Tool calls are `tool_use` blocks, stop_reason "tool_use".

Streams use chunked transfer encoding, so clients keep their connections alive.

Reply specs (dataclasses; `spec.to_dict()` / `spec_from_dict(d)` for JSON scripts)
-----------------------------------------------------------------------------------
    Text(text, input_tokens=None, output_tokens=None, finish="stop")
        A plain answer. Token counts default to an estimate (about 4 characters per token) of
        the request text and of `text`. finish="length" renders a truncated reply
        (finish_reason "length" / stop_reason "max_tokens" / status "incomplete").
    ToolCall(name, arguments: dict, id=None, text=None, input_tokens=None, output_tokens=None)
        One tool call: `tool_calls` (chat), a `function_call` output item (responses), a
        `tool_use` block (messages); `text`, when given, comes before it. `id` is the call id
        (generated when None: call_..., toolu_...).
    Fault(status, retry_after=None, body=None, message=None)
        An HTTP error with the provider's error body (or `body` verbatim when given) and a
        `Retry-After` header when `retry_after` is set (seconds).
    Hang(seconds, then=None, mid_stream=False)
        Waits `seconds` (capped at the server's `max_hang`, and cut short when the server
        closes), then answers with the spec `then`, or when `then` is None closes the
        connection without an answer. mid_stream=True (for `stream: true` requests; others
        hang as usual) sends the 200 headers and the first event of the streamed reply before
        waiting, then drops the connection (a stalled stream).
    Malformed(raw, status=200, content_type=None)
        Sends `raw` (str or bytes) as the body; content type defaults to JSON, or
        text/event-stream when the request asked for a stream.

Choosing the reply for a request, first match wins:
    1. rules added with `server.when(match, spec, times=None)`; `match` is a substring of
       `request.text` or a callable(request) -> bool. Use them to answer side requests that a
       CLI makes on its own (title generation, quota probes) without consuming the queue.
    2. the queue (`server.reply(*specs)` or `ModelServer(replies=[...])`), in order;
    3. `responder(request) -> spec | None` when given;
    4. `Text(default_text)`.

Recording
---------
`server.requests` is the list of every request that reached the server (including 404s), each a
`Request` with: method, path, query (dict of str -> str, last value wins), headers (dict with
lower-cased names), json (parsed body or None), raw (bytes), api ("chat", "responses",
"messages", "count_tokens", "models" or None), time (time.monotonic()), reply (the spec used).
Helpers on a Request: `.stream`, `.model`, `.system` (system/developer/instructions text),
`.text` (system plus every message's text), `.last_user_text`, `.tool_names`, `.tool_results`
(tool outputs sent back by the client), `.api_key` (from Authorization: Bearer, x-api-key or
api-key). On the server: `last_request(api=None)`, `requests_for(api)`,
`wait_for_requests(n, timeout=5, api=None)`, `pending()` (queued replies not yet used).

In-process use
--------------
    with ModelServer(replies=[Text("hello")]) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="k")
        ...
        assert server.last_request().model == "gpt-test"

    ModelServer(replies=(), responder=None, default_text="OK", models=("test-model",),
                require_api_key=None, max_hang=30.0, verbose=False)
    ModelServer.from_script(path, **kwargs): replies, rules, default_text, models from a script file.
    .start() / .close() (the context manager does both), .port, .url ("http://127.0.0.1:PORT"),
    .openai_base_url (url + "/v1"), .anthropic_base_url (url), .reply(*specs),
    .when(match, spec, times=None), .check() (raises if a responder or the server itself failed;
    called on a clean context exit, so such failures never pass silently).

`require_api_key`: when set, a request whose key differs gets a 401 in the provider's shape.

A pytest fixture `model_server` is defined here; tests/conftest.py registers this module as a plugin, so
any test can take `model_server` as an argument.

Standalone process (for `act` runs and CLI subprocesses)
--------------------------------------------------------
    python tests/model_server.py --port 0 --script script.json --port-file PATH
        [--max-seconds N] [--requests-log PATH] [--default-text TEXT]
        [--require-api-key KEY] [--model NAME ...] [--max-hang S] [--verbose]

Binds 127.0.0.1 only. The bound port is written to PATH (atomically, after binding) and
`listening on http://127.0.0.1:PORT` is printed. Serves until SIGTERM/SIGINT or `--max-seconds`.
`--requests-log` appends one JSON object per request (method, path, query, headers, json, api,
reply); secret headers (authorization, x-api-key, api-key) are replaced by
`"sha256:<first 16 hex>"` of their value so logs can be checked without holding the key.

Script file: either a JSON list of replies, or an object
    {"replies": [...], "rules": [...], "default_text": "...", "models": [...]}
with replies like {"type": "text", "text": "hi"}, {"type": "tool_call", "name": "Write",
"arguments": {...}}, {"type": "fault", "status": 429, "retry_after": 1},
{"type": "hang", "seconds": 5, "then": {...}}, {"type": "malformed", "raw": "{not json"}.
A rule is {"reply": {...}, "times": N (optional)} plus any of the conditions "contains",
"last_user_contains", "system_contains" (substrings), "api" ("chat"/"responses"/"messages") and
"has_tools" (bool: whether the request offers tools), all of which must hold.
`write_script(path, replies, rules=None, default_text=None, models=None)` writes one.

Agent CLIs make requests of their own. Claude Code 2.1 (`claude -p`) first sends `HEAD /` and
then, besides the agent turns (which carry ~25 tools), a session-title request with no tools that
asks for JSON `{"title": ...}`; keep it off the queue with
    {"api": "messages", "has_tools": false, "reply": {"type": "text", "text": "{\"title\": \"Test\"}"}}
(in-process: `server.when(lambda r: not r.tool_names, Text('{"title": "Test"}'))`).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Union
from urllib.parse import parse_qsl, urlsplit

HOST = "127.0.0.1"

# --------------------------------------------------------------------------- reply specs


@dataclass
class Text:
    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish: str = "stop"  # "stop" or "length"
    model: str | None = None  # the model name the response reports (default: the requested one)

    def __post_init__(self) -> None:
        if self.finish not in ("stop", "length"):
            raise ValueError(f"Text.finish must be 'stop' or 'length', not {self.finish!r}")


@dataclass
class ToolCall:
    name: str
    arguments: dict = field(default_factory=dict)
    id: str | None = None
    text: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.arguments, dict):
            raise TypeError(f"ToolCall.arguments must be a dict, not {type(self.arguments).__name__}")


@dataclass
class Fault:
    status: int
    retry_after: float | None = None
    body: Any = None
    message: str | None = None


@dataclass
class Hang:
    seconds: float
    then: Spec | None = None
    mid_stream: bool = False


@dataclass
class Malformed:
    raw: str | bytes
    status: int = 200
    content_type: str | None = None


Spec = Union[Text, ToolCall, Fault, Hang, Malformed]  # noqa: UP007 (a runtime alias: keep it valid on 3.9)
SPEC_TYPES: dict[str, type] = {
    "text": Text,
    "tool_call": ToolCall,
    "fault": Fault,
    "hang": Hang,
    "malformed": Malformed,
}
_TYPE_NAMES = {cls: name for name, cls in SPEC_TYPES.items()}


def spec_to_dict(spec: Spec) -> dict:
    """A JSON-serialisable dict for a spec (inverse of `spec_from_dict`)."""
    if type(spec) not in _TYPE_NAMES:
        raise TypeError(f"not a reply spec: {spec!r}")
    if isinstance(spec, Hang):
        d = {"seconds": spec.seconds, "mid_stream": spec.mid_stream,
             "then": None if spec.then is None else spec_to_dict(spec.then)}
    elif isinstance(spec, Malformed) and isinstance(spec.raw, bytes):
        d = asdict(spec)
        d["raw"] = spec.raw.decode("utf-8", errors="surrogateescape")
    else:
        d = asdict(spec)
    return {"type": _TYPE_NAMES[type(spec)], **d}


def spec_from_dict(d: dict) -> Spec:
    if not isinstance(d, dict) or "type" not in d:
        raise ValueError(f"a reply must be an object with a 'type' ({', '.join(SPEC_TYPES)}): {d!r}")
    d = dict(d)
    kind = d.pop("type")
    cls = SPEC_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown reply type {kind!r}; use one of {', '.join(SPEC_TYPES)}")
    if cls is Hang and d.get("then") is not None:
        d["then"] = spec_from_dict(d["then"])
    try:
        return cls(**d)
    except TypeError as exc:
        raise ValueError(f"bad {kind} reply {d!r}: {exc}") from exc


for _cls in SPEC_TYPES.values():
    _cls.to_dict = spec_to_dict  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- recorded requests


def _content_text(content: Any) -> str:
    """Text of a message content in any of the three protocols (str or list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif part.get("type") == "tool_result":
                    parts.append(_content_text(part.get("content")))
        return "\n".join(p for p in parts if p)
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return ""


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    json: Any
    raw: bytes
    api: str | None
    time: float
    reply: Spec | None = None
    client_disconnected: bool = False  # the client went away before the answer was complete

    # -- plain fields of the body
    @property
    def body(self) -> dict:
        return self.json if isinstance(self.json, dict) else {}

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        if model is None:
            m = re.match(r"^/openai/deployments/([^/]+)/", self.path)
            if m:
                return m.group(1)
        return model

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return self.headers.get("x-api-key") or self.headers.get("api-key")

    # -- derived text
    def _messages(self) -> list:
        if self.api == "responses":
            inp = self.body.get("input")
            if isinstance(inp, str):
                return [{"role": "user", "content": inp}]
            return inp if isinstance(inp, list) else []
        msgs = self.body.get("messages")
        return msgs if isinstance(msgs, list) else []

    @property
    def system(self) -> str:
        parts = []
        if self.api == "messages":
            parts.append(_content_text(self.body.get("system")))
        if self.api == "responses" and isinstance(self.body.get("instructions"), str):
            parts.append(self.body["instructions"])
        for m in self._messages():
            if isinstance(m, dict) and m.get("role") in ("system", "developer"):
                parts.append(_content_text(m.get("content")))
        return "\n".join(p for p in parts if p)

    @property
    def text(self) -> str:
        """System text plus the text of every message / input item, in order."""
        parts = [self.system]
        for m in self._messages():
            if not isinstance(m, dict) or m.get("role") in ("system", "developer"):
                continue
            if "content" in m:
                parts.append(_content_text(m.get("content")))
            elif m.get("type") == "function_call_output":
                parts.append(_content_text(m.get("output")))
        return "\n".join(p for p in parts if p)

    @property
    def last_user_text(self) -> str:
        for m in reversed(self._messages()):
            if isinstance(m, dict) and m.get("role") == "user":
                return _content_text(m.get("content"))
        return ""

    @property
    def tool_names(self) -> list[str]:
        names = []
        for t in self.body.get("tools") or []:
            if not isinstance(t, dict):
                continue
            if isinstance(t.get("function"), dict):
                names.append(t["function"].get("name"))
            elif "name" in t:
                names.append(t["name"])
        return names

    @property
    def tool_results(self) -> list[str]:
        """Tool outputs the client sent back: role "tool" messages (chat), function_call_output
        items (responses), tool_result blocks (messages)."""
        out = []
        for m in self._messages():
            if not isinstance(m, dict):
                continue
            if m.get("role") == "tool":
                out.append(_content_text(m.get("content")))
            elif m.get("type") == "function_call_output":
                out.append(_content_text(m.get("output")))
            elif isinstance(m.get("content"), list):
                for block in m["content"]:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        out.append(_content_text(block.get("content")))
        return out

    def to_log(self) -> dict:
        headers = {
            k: ("sha256:" + hashlib.sha256(v.encode()).hexdigest()[:16]
                if k in _SECRET_HEADERS else v)
            for k, v in self.headers.items()
        }
        return {
            "method": self.method, "path": self.path, "query": self.query, "headers": headers,
            "json": self.json, "api": self.api,
            "reply": None if self.reply is None else spec_to_dict(self.reply),
        }


_SECRET_HEADERS = {"authorization", "x-api-key", "api-key"}


# --------------------------------------------------------------------------- routing

_ROUTES: list[tuple[re.Pattern, str, str]] = [
    (re.compile(r"^(/v1)?/chat/completions$"), "POST", "chat"),
    (re.compile(r"^/openai/deployments/[^/]+/chat/completions$"), "POST", "chat"),
    (re.compile(r"^/openai/v1/chat/completions$"), "POST", "chat"),
    (re.compile(r"^(/v1)?/responses$"), "POST", "responses"),
    (re.compile(r"^/openai(/v1)?/responses$"), "POST", "responses"),
    (re.compile(r"^/openai/deployments/[^/]+/responses$"), "POST", "responses"),
    (re.compile(r"^(/v1)?/messages$"), "POST", "messages"),
    (re.compile(r"^(/v1)?/messages/count_tokens$"), "POST", "count_tokens"),
    (re.compile(r"^(/v1)?/models$"), "GET", "models"),
]


def _route(path: str) -> tuple[str | None, str | None]:
    for pattern, method, api in _ROUTES:
        if pattern.match(path):
            return api, method
    return None, None


def _estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def _pieces(text: str, size: int = 12) -> list[str]:
    """Split text into stream deltas of a few characters each, at word boundaries when possible."""
    if not text:
        return []
    words = re.findall(r"\s*\S+\s*|\s+", text)
    out, cur = [], ""
    for w in words:
        if cur and len(cur) + len(w) > size:
            out.append(cur)
            cur = ""
        cur += w
    if cur:
        out.append(cur)
    return out


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


# --------------------------------------------------------------------------- error bodies

_OPENAI_ERR = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
}
_ANTHROPIC_ERR = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _error_body(anthropic: bool, status: int, message: str) -> dict:
    if anthropic:
        etype = _ANTHROPIC_ERR.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": etype, "message": message}}
    etype, code = _OPENAI_ERR.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


_DEFAULT_MESSAGES = {
    400: "Bad request.",
    401: "Incorrect API key provided.",
    403: "Permission denied.",
    404: "Not found.",
    429: "Rate limit reached. Please try again later.",
    500: "The server had an error while processing your request.",
    503: "The server is overloaded. Please try again later.",
    529: "Overloaded",
}


# --------------------------------------------------------------------------- renderers


@dataclass
class _Turn:
    """What the scripted model says, independent of protocol."""

    text: str | None
    tool: ToolCall | None
    input_tokens: int
    output_tokens: int
    truncated: bool
    model: str | None = None  # overrides the model name the response reports


def _turn(spec: Text | ToolCall, req: Request) -> _Turn:
    if isinstance(spec, Text):
        text, tool, truncated = spec.text, None, spec.finish == "length"
        out_text = spec.text
    else:
        text, tool, truncated = spec.text, spec, False
        out_text = (spec.text or "") + spec.name + json.dumps(spec.arguments)
    inp = spec.input_tokens if spec.input_tokens is not None else _estimate_tokens(req.text)
    out = spec.output_tokens if spec.output_tokens is not None else _estimate_tokens(out_text)
    return _Turn(text, tool, inp, out, truncated, spec.model if isinstance(spec, Text) else None)


class _Sink:
    """Where a renderer writes: either one JSON body or a sequence of SSE events."""

    def __init__(self, handler: _Handler) -> None:
        self.h = handler

    def json(self, obj: dict, status: int = 200, headers: dict | None = None) -> None:
        self.h._send_json(status, obj, headers)

    def start_stream(self) -> None:
        self.h._start_stream()

    def event(self, name: str | None, data: dict | str) -> None:
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        lines = (f"event: {name}\n" if name else "") + f"data: {payload}\n\n"
        self.h._write_chunk(lines.encode())

    def end_stream(self) -> None:
        self.h._end_chunks()


# ---- OpenAI Chat Completions


def _chat_usage(t: _Turn) -> dict:
    return {
        "prompt_tokens": t.input_tokens,
        "completion_tokens": t.output_tokens,
        "total_tokens": t.input_tokens + t.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


def _chat_finish(t: _Turn) -> str:
    return "tool_calls" if t.tool else ("length" if t.truncated else "stop")


def _render_chat(t: _Turn, req: Request, sink: _Sink, first_event_only: bool = False) -> None:
    cid, created, model = _new_id("chatcmpl-"), int(time.time()), t.model or req.model or "test-model"
    call_id = (t.tool.id or _new_id("call_")) if t.tool else None
    if not req.stream:
        message: dict = {"role": "assistant", "content": t.text if (t.text or not t.tool) else None,
                         "refusal": None, "annotations": []}
        if t.tool:
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": {
                "name": t.tool.name, "arguments": json.dumps(t.tool.arguments, separators=(",", ":"))}}]
        sink.json({
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": _chat_finish(t)}],
            "usage": _chat_usage(t), "service_tier": "default", "system_fingerprint": None,
        })
        return
    opts = req.body.get("stream_options")
    include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))

    def chunk(delta: dict, finish: str | None = None) -> dict:
        c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
             "system_fingerprint": None,
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            c["usage"] = None
        return c

    sink.start_stream()
    sink.event(None, chunk({"role": "assistant", "content": "", "refusal": None}))
    if first_event_only:
        return
    for piece in _pieces(t.text or ""):
        sink.event(None, chunk({"content": piece}))
    if t.tool:
        sink.event(None, chunk({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                                "function": {"name": t.tool.name, "arguments": ""}}]}))
        for piece in _pieces(json.dumps(t.tool.arguments, separators=(",", ":"))):
            sink.event(None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    sink.event(None, chunk({}, _chat_finish(t)))
    if include_usage:
        sink.event(None, {"id": cid, "object": "chat.completion.chunk", "created": created,
                          "model": model, "system_fingerprint": None, "choices": [],
                          "usage": _chat_usage(t)})
    sink.event(None, "[DONE]")
    sink.end_stream()


# ---- OpenAI Responses


def _responses_usage(t: _Turn) -> dict:
    return {
        "input_tokens": t.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": t.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": t.input_tokens + t.output_tokens,
    }


def _response_obj(rid: str, created: int, req: Request, status: str, output: list,
                  usage: dict | None) -> dict:
    b = req.body
    return {
        "id": rid, "object": "response", "created_at": created, "status": status,
        "background": False, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": b.get("instructions"), "max_output_tokens": b.get("max_output_tokens"),
        "max_tool_calls": None, "model": req.model or "test-model", "output": output,
        "parallel_tool_calls": b.get("parallel_tool_calls", True),
        "previous_response_id": b.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
        "store": b.get("store", True), "temperature": b.get("temperature", 1.0),
        "text": b.get("text") or {"format": {"type": "text"}},
        "tool_choice": b.get("tool_choice", "auto"), "tools": b.get("tools") or [],
        "top_p": b.get("top_p", 1.0), "truncation": "disabled", "usage": usage,
        "user": None, "metadata": b.get("metadata") or {},
        "completed_at": created if status == "completed" else None,
    }


def _render_responses(t: _Turn, req: Request, sink: _Sink, first_event_only: bool = False) -> None:
    rid, created = _new_id("resp_"), int(time.time())
    final_status = "incomplete" if t.truncated else "completed"
    items: list[dict] = []  # the finished items
    msg_id = _new_id("msg_")
    text_part = None
    if t.text is not None or not t.tool:
        text_part = {"type": "output_text", "text": t.text or "", "annotations": [], "logprobs": []}
        items.append({"id": msg_id, "type": "message", "status": final_status,
                      "role": "assistant", "content": [text_part]})
    fc_id = _new_id("fc_")
    args = json.dumps(t.tool.arguments, separators=(",", ":")) if t.tool else ""
    if t.tool:
        items.append({"id": fc_id, "type": "function_call", "status": "completed",
                      "arguments": args, "call_id": t.tool.id or _new_id("call_"),
                      "name": t.tool.name})
    usage = _responses_usage(t)
    if not req.stream:
        sink.json(_response_obj(rid, created, req, final_status, items, usage))
        return

    seq = iter(range(1_000_000))

    def ev(event_type: str, **data: Any) -> None:
        sink.event(event_type, {"type": event_type, "sequence_number": next(seq), **data})

    sink.start_stream()
    ev("response.created", response=_response_obj(rid, created, req, "in_progress", [], None))
    if first_event_only:
        return
    ev("response.in_progress", response=_response_obj(rid, created, req, "in_progress", [], None))
    for index, item in enumerate(items):
        if item["type"] == "message":
            ev("response.output_item.added", output_index=index,
               item={**item, "status": "in_progress", "content": []})
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            ev("response.content_part.added", item_id=msg_id, output_index=index,
               content_index=0, part=empty)
            for piece in _pieces(text_part["text"]):
                ev("response.output_text.delta", item_id=msg_id, output_index=index,
                   content_index=0, delta=piece, logprobs=[])
            ev("response.output_text.done", item_id=msg_id, output_index=index,
               content_index=0, text=text_part["text"], logprobs=[])
            ev("response.content_part.done", item_id=msg_id, output_index=index,
               content_index=0, part=text_part)
        else:
            ev("response.output_item.added", output_index=index,
               item={**item, "status": "in_progress", "arguments": ""})
            for piece in _pieces(args):
                ev("response.function_call_arguments.delta", item_id=fc_id,
                   output_index=index, delta=piece)
            ev("response.function_call_arguments.done", item_id=fc_id, output_index=index,
               name=item["name"], arguments=args)
        ev("response.output_item.done", output_index=index, item=item)
    final = _response_obj(rid, created, req, final_status, items, usage)
    ev("response.incomplete" if t.truncated else "response.completed", response=final)
    sink.end_stream()


# ---- Anthropic Messages


def _anthropic_usage(input_tokens: int, output_tokens: int) -> dict:
    return {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "output_tokens": output_tokens,
            "service_tier": "standard"}


def _render_messages(t: _Turn, req: Request, sink: _Sink, first_event_only: bool = False) -> None:
    mid, model = _new_id("msg_"), t.model or req.model or "test-model"
    stop = "tool_use" if t.tool else ("max_tokens" if t.truncated else "end_turn")
    blocks: list[dict] = []
    if t.text or not t.tool:
        blocks.append({"type": "text", "text": t.text or ""})
    if t.tool:
        blocks.append({"type": "tool_use", "id": t.tool.id or _new_id("toolu_"),
                       "name": t.tool.name, "input": t.tool.arguments})
    if not req.stream:
        sink.json({"id": mid, "type": "message", "role": "assistant", "model": model,
                   "content": blocks, "stop_reason": stop, "stop_sequence": None,
                   "usage": _anthropic_usage(t.input_tokens, t.output_tokens)})
        return

    def ev(event_type: str, **data: Any) -> None:
        sink.event(event_type, {"type": event_type, **data})

    sink.start_stream()
    ev("message_start", message={"id": mid, "type": "message", "role": "assistant",
                                 "model": model, "content": [], "stop_reason": None,
                                 "stop_sequence": None,
                                 "usage": _anthropic_usage(t.input_tokens, 1)})
    if first_event_only:
        return
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            ev("content_block_start", index=index, content_block={"type": "text", "text": ""})
            if index == 0:
                ev("ping")
            for piece in _pieces(block["text"]):
                ev("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
        else:
            ev("content_block_start", index=index,
               content_block={"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}})
            if index == 0:
                ev("ping")
            for piece in _pieces(json.dumps(block["input"], separators=(",", ":"))):
                ev("content_block_delta", index=index,
                   delta={"type": "input_json_delta", "partial_json": piece})
        ev("content_block_stop", index=index)
    ev("message_delta", delta={"stop_reason": stop, "stop_sequence": None},
       usage={"input_tokens": t.input_tokens, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0, "output_tokens": t.output_tokens})
    ev("message_stop")
    sink.end_stream()


_RENDERERS = {"chat": _render_chat, "responses": _render_responses, "messages": _render_messages}


# --------------------------------------------------------------------------- HTTP plumbing


class _ClientGone(Exception):
    """The client closed the connection while we were writing."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ModelServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut every open connection, so pooled keep-alive clients cannot reach a closed server."""
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer: nothing left to cut


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    server_version = "skillopt-model-server/1"

    # every method goes through the same place, so unknown ones get a proper 405/404 body
    def do_GET(self) -> None: self._handle()
    def do_POST(self) -> None: self._handle()
    def do_PUT(self) -> None: self._handle()
    def do_DELETE(self) -> None: self._handle()
    def do_PATCH(self) -> None: self._handle()
    def do_HEAD(self) -> None: self._handle()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature is fixed)
        if self.server.owner.verbose:
            sys.stderr.write("model_server: " + (format % args) + "\n")

    # -- low-level writers
    def _anthropic(self) -> bool:
        return self._api in ("messages", "count_tokens") or "anthropic-version" in self._headers_lc

    def _common_headers(self) -> None:
        self._answered = True
        rid = _new_id("req_")
        self.send_header("request-id", rid)
        self.send_header("x-request-id", rid)

    def _send_json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has headers only, or keep-alive framing breaks
            self._write(body)

    def _send_error(self, status: int, message: str, headers: dict | None = None) -> None:
        self._send_json(status, _error_body(self._anthropic(), status, message), headers)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self._common_headers()
        self.end_headers()

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            raise _ClientGone(str(exc)) from exc

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunks(self) -> None:
        self._write(b"0\r\n\r\n")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            return data
        return self.rfile.read(length) if length else b""

    # -- the request
    def _handle(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        path = parts.path
        self._headers_lc = {k.lower(): v for k, v in self.headers.items()}
        self._api, want_method = _route(path)
        raw = self._read_body()
        encoding = self._headers_lc.get("content-encoding", "").lower()
        decode_error = None
        try:
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
            elif encoding not in ("", "identity"):
                decode_error = (415, f"Content-Encoding {encoding!r} is not supported by the test server")
        except (OSError, zlib.error) as exc:
            decode_error = (400, f"could not decompress the {encoding} body: {exc}")
        body = None
        if raw and decode_error is None:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                decode_error = (400, f"We could not parse the JSON body of your request: {exc}")
        req = Request(method=self.command, path=path, query=dict(parse_qsl(parts.query)),
                      headers=self._headers_lc, json=body, raw=raw, api=self._api,
                      time=time.monotonic())
        owner._record(req)
        self._answered = False
        try:
            self._dispatch(req, want_method, decode_error)
        except _ClientGone:
            req.client_disconnected = True
            self.close_connection = True
        except Exception as exc:  # a bug here or in a responder: answer 500 and make check() fail
            owner._fail(f"{self.command} {path}: {type(exc).__name__}: {exc}")
            if self._answered:  # too late for a status line: cut the response short
                self.close_connection = True
                return
            try:
                self._send_error(500, f"test server error: {type(exc).__name__}: {exc}")
            except _ClientGone:
                self.close_connection = True

    def _dispatch(self, req: Request, want_method: str | None, decode_error) -> None:
        owner = self.server.owner
        error: tuple[int, str] | None = None
        if req.api is None:
            error = (404, f"Invalid URL ({req.method} {req.path})")
        elif req.method != want_method:
            error = (405, f"Method {req.method} not allowed on {req.path}; use {want_method}")
        elif owner.require_api_key is not None and req.api_key != owner.require_api_key:
            error = (401, "invalid x-api-key" if self._anthropic() else "Incorrect API key provided.")
        elif req.api != "models" and decode_error is not None:
            error = decode_error
        elif req.api != "models" and not isinstance(req.json, dict):
            error = (400, "The request body must be a JSON object.")
        if error is None and req.api in _RENDERERS:
            req.reply = owner._choose(req)
        owner._log(req)  # before answering, so a Hang or a killed process still leaves the line
        if error is not None:
            self._send_error(*error)
        elif req.api == "models":
            self._send_json(200, owner._models_body(self._anthropic()))
        elif req.api == "count_tokens":
            self._send_json(200, {"input_tokens": _estimate_tokens(req.text)})
        else:
            self._answer(req, req.reply)

    def _answer(self, req: Request, spec: Spec) -> None:
        owner = self.server.owner
        render = _RENDERERS[req.api]
        if isinstance(spec, Hang):
            wait = min(max(0.0, float(spec.seconds)), owner.max_hang)
            if spec.mid_stream and req.stream:
                render(_turn(Text(""), req), req, _Sink(self), first_event_only=True)
                owner._stopping.wait(wait)
                self.close_connection = True  # drop it without the terminating chunk
                return
            owner._stopping.wait(wait)
            if spec.then is None or owner._stopping.is_set():
                self.close_connection = True
                return
            self._answer(req, spec.then)
            return
        if isinstance(spec, Fault):
            headers = {}
            if spec.retry_after is not None:
                ra = spec.retry_after
                headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
            if spec.body is not None:
                body = spec.body
            else:
                body = _error_body(self._anthropic(), spec.status,
                                   spec.message or _DEFAULT_MESSAGES.get(spec.status, "Error."))
            self._send_json(spec.status, body, headers)
            return
        if isinstance(spec, Malformed):
            data = spec.raw.encode() if isinstance(spec.raw, str) else bytes(spec.raw)
            ctype = spec.content_type or ("text/event-stream" if req.stream else "application/json")
            self.send_response(spec.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self._common_headers()
            self.end_headers()
            self._write(data)
            return
        if isinstance(spec, (Text, ToolCall)):
            render(_turn(spec, req), req, _Sink(self))
            return
        raise TypeError(f"not a reply spec: {spec!r}")


# --------------------------------------------------------------------------- the server


@dataclass
class _Rule:
    match: str | Callable[[Request], bool]
    spec: Spec
    times: int | None

    def matches(self, req: Request) -> bool:
        if isinstance(self.match, str):
            return self.match in req.text
        return bool(self.match(req))


def _json_rule(d: dict) -> _Rule:
    if not isinstance(d, dict) or "reply" not in d:
        raise ValueError(f"a rule must be an object with a 'reply': {d!r}")
    conds = {k: d[k] for k in ("contains", "last_user_contains", "system_contains", "api", "has_tools")
             if k in d}
    unknown = set(d) - {"reply", "times", *conds}
    if unknown:
        raise ValueError(f"unknown rule keys {sorted(unknown)}; use contains, last_user_contains, "
                         "system_contains, api, has_tools, times, reply")

    def match(req: Request) -> bool:
        return all([
            "contains" not in conds or conds["contains"] in req.text,
            "last_user_contains" not in conds or conds["last_user_contains"] in req.last_user_text,
            "system_contains" not in conds or conds["system_contains"] in req.system,
            "api" not in conds or conds["api"] == req.api,
            "has_tools" not in conds or bool(conds["has_tools"]) == bool(req.tool_names),
        ])

    return _Rule(match, spec_from_dict(d["reply"]), d.get("times"))


class ModelServer:
    """See the module docstring."""

    def __init__(
        self,
        replies: Iterable[Spec] = (),
        responder: Callable[[Request], Spec | None] | None = None,
        default_text: str = "OK",
        models: Iterable[str] = ("test-model",),
        require_api_key: str | None = None,
        max_hang: float = 30.0,
        verbose: bool = False,
        port: int = 0,
        requests_log: str | Path | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._queue: list[Spec] = []
        self._rules: list[_Rule] = []
        self.responder = responder
        self.default_text = default_text
        self.models = list(models)
        self.require_api_key = require_api_key
        self.max_hang = max_hang
        self.verbose = verbose
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self._port_wanted = port
        self._requests_log = Path(requests_log) if requests_log else None
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._arrived = threading.Condition(self._lock)
        self.reply(*replies)

    @classmethod
    def from_script(cls, path: str | Path, **kwargs: Any) -> ModelServer:
        """A server (not yet started) with the replies, rules, default_text and models of a
        script file; keyword arguments are passed to the constructor and win over the file."""
        script = load_script(path)
        if script["default_text"] is not None:
            kwargs.setdefault("default_text", script["default_text"])
        if script["models"] is not None:
            kwargs.setdefault("models", script["models"])
        server = cls(replies=script["replies"], **kwargs)
        server._rules.extend(script["rules"])
        return server

    # -- scripting
    def reply(self, *specs: Spec) -> ModelServer:
        """Queue replies, consumed one per model request in order."""
        for s in specs:
            if type(s) not in _TYPE_NAMES:
                raise TypeError(f"not a reply spec: {s!r}")
        with self._lock:
            self._queue.extend(specs)
        return self

    def when(self, match: str | Callable[[Request], bool], spec: Spec,
             times: int | None = None) -> ModelServer:
        """Answer requests matching `match` with `spec` (before the queue), at most `times` times."""
        if type(spec) not in _TYPE_NAMES:
            raise TypeError(f"not a reply spec: {spec!r}")
        with self._lock:
            self._rules.append(_Rule(match, spec, times))
        return self

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _choose(self, req: Request) -> Spec:
        with self._lock:
            for rule in self._rules:
                if rule.times is not None and rule.times <= 0:
                    continue
                if rule.matches(req):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.spec
            if self._queue:
                return self._queue.pop(0)
        if self.responder is not None:
            spec = self.responder(req)
            if spec is not None:
                if type(spec) not in _TYPE_NAMES:
                    raise TypeError(f"responder returned {spec!r}, not a reply spec")
                return spec
        return Text(self.default_text)

    # -- recording
    def _record(self, req: Request) -> None:
        with self._arrived:
            self.requests.append(req)
            self._arrived.notify_all()

    def _log(self, req: Request) -> None:
        if self._requests_log is None:
            return
        line = json.dumps(req.to_log(), default=str) + "\n"
        with self._lock, open(self._requests_log, "a", encoding="utf-8") as fh:
            fh.write(line)

    def _fail(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
        if self.verbose:
            sys.stderr.write(f"model_server: error: {message}\n")

    def last_request(self, api: str | None = None) -> Request:
        reqs = self.requests_for(api) if api else list(self.requests)
        if not reqs:
            raise AssertionError(f"the model server received no {api or ''} request".replace("  ", " "))
        return reqs[-1]

    def requests_for(self, api: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.api == api]

    def wait_for_requests(self, n: int, timeout: float = 5.0, api: str | None = None) -> list[Request]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                got = [r for r in self.requests if api is None or r.api == api]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} {api or ''} requests within {timeout}s, got {len(got)}")
                self._arrived.wait(left)

    def check(self) -> None:
        """Raise if a responder or the server failed while answering."""
        if self.errors:
            raise AssertionError("model server errors:\n" + "\n".join(self.errors))

    def _models_body(self, anthropic: bool) -> dict:
        if anthropic:
            data = [{"type": "model", "id": m, "display_name": m,
                     "created_at": "2025-01-01T00:00:00Z"} for m in self.models]
            return {"data": data, "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None}
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 1735689600,
                                            "owned_by": "test"} for m in self.models]}

    # -- lifecycle
    def start(self) -> ModelServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((HOST, self._port_wanted), _Handler)
        self._httpd.owner = self
        self._stopping.clear()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"model-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes any Hang
        self._httpd.shutdown()
        self._httpd.drop_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
        if exc_type is None:
            self.check()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the model server is not running; call start() or use it as a context manager")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url


# --------------------------------------------------------------------------- pytest fixture

try:
    import pytest as _pytest
except ImportError:  # the standalone process does not need pytest
    _pytest = None

if _pytest is not None:

    @_pytest.fixture
    def model_server():
        """A started ModelServer; script it with .reply()/.when(); errors fail the test."""
        server = ModelServer().start()
        try:
            yield server
        finally:
            server.close()
        server.check()


# --------------------------------------------------------------------------- scripts & CLI


def load_script(path: str | Path) -> dict:
    """Read a script file into {"replies": [specs], "rules": [...], "default_text", "models"}."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, list):
        data = {"replies": data}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a script is a JSON list of replies or an object with 'replies'")
    unknown = set(data) - {"replies", "rules", "default_text", "models"}
    if unknown:
        raise ValueError(f"{path}: unknown script keys {sorted(unknown)}; "
                         "use replies, rules, default_text, models")
    return {
        "replies": [spec_from_dict(r) for r in data.get("replies", [])],
        "rules": [_json_rule(r) for r in data.get("rules", [])],
        "default_text": data.get("default_text"),
        "models": data.get("models"),
    }


def write_script(path: str | Path, replies: Iterable[Spec], rules: list[dict] | None = None,
                 default_text: str | None = None, models: list[str] | None = None) -> Path:
    """Write a script file for the standalone server. `rules` are dicts as in the module doc,
    whose "reply" may be a spec object."""
    out: dict = {"replies": [spec_to_dict(s) for s in replies]}
    if rules:
        out["rules"] = [{**r, "reply": spec_to_dict(r["reply"]) if type(r["reply"]) in _TYPE_NAMES
                         else r["reply"]} for r in rules]
    if default_text is not None:
        out["default_text"] = default_text
    if models is not None:
        out["models"] = models
    path = Path(path)
    path.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Scripted model server on 127.0.0.1 (OpenAI chat/responses, "
                                             "Anthropic messages).")
    ap.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (0: a free one)")
    ap.add_argument("--script", help="JSON script: a list of replies or {replies, rules, default_text, models}")
    ap.add_argument("--port-file", help="write the bound port to this file once listening")
    ap.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    ap.add_argument("--requests-log", help="append one JSON line per request (secret headers hashed)")
    ap.add_argument("--default-text", help="answer when no reply is scripted (default: OK)")
    ap.add_argument("--require-api-key", help="answer 401 unless the request carries this key")
    ap.add_argument("--model", action="append", dest="models", help="model id for GET /v1/models (repeatable)")
    ap.add_argument("--max-hang", type=float, default=30.0, help="upper bound for Hang replies (seconds)")
    ap.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = ap.parse_args(argv)

    kwargs: dict = {"require_api_key": args.require_api_key, "max_hang": args.max_hang,
                    "verbose": args.verbose, "port": args.port, "requests_log": args.requests_log}
    if args.default_text is not None:
        kwargs["default_text"] = args.default_text
    if args.models:
        kwargs["models"] = args.models
    server = ModelServer.from_script(args.script, **kwargs) if args.script else ModelServer(**kwargs)
    server.start()
    if args.port_file:
        tmp = Path(args.port_file + ".tmp")
        tmp.write_text(str(server.port), encoding="utf-8")
        tmp.replace(args.port_file)
    print(f"listening on {server.url}", flush=True)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait(args.max_seconds)
    server.close()
    for err in server.errors:
        print(f"model_server: error: {err}", file=sys.stderr)
    return 1 if server.errors else 0


if __name__ == "__main__":
    sys.exit(main())
