"""A scripted, deterministic stand-in for two chat models and an optimizer, served on 127.0.0.1 with the
OpenAI Chat Completions wire format, so the evidence example runs offline and gives the same report every time.

It is a toy, on purpose: it shows what the report says about each edit, not what a real model would learn.

- target "toy-a": answers "The capital of X is Y." unless the skill tells it to give the bare city name (either
  rule below), then "Y"; the `exact` scorer wants the bare name, the sentence task wants the sentence.
- target "toy-b" (the transfer check's second model): always answers the bare city name, whatever the skill.
- optimizer "toy-optimizer": proposes two rules that do the same thing (so one of them carries nothing).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RULE_1 = "- Reply with the bare city name, nothing else."
RULE_2 = "- Give only the name of the city."
PROPOSAL = {"analysis": "The answers are full sentences; the exact-match scorer wants the city alone.",
            "edits": [{"op": "add", "anchor": "## Answering", "content": RULE_1,
                       "rationale": "exact match needs the bare city name"},
                      {"op": "add", "anchor": "## Answering", "content": RULE_2,
                       "rationale": "answers should be the city only"}]}
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
            "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi", "Norway": "Oslo", "Chile": "Santiago",
            "Cuba": "Havana", "Iran": "Tehran", "Nepal": "Kathmandu", "Ghana": "Accra", "Austria": "Vienna",
            "Greece": "Athens", "Canada": "Ottawa", "Mexico": "Mexico City", "Brazil": "Brasilia",
            "India": "New Delhi"}


def answer(model: str, system: str, user: str) -> str:
    if model == "toy-optimizer":
        return json.dumps(PROPOSAL)
    country = re.search(r"capital of (\w+)", user)
    city = CAPITALS.get(country.group(1), "unknown") if country else "unknown"
    if model == "toy-b":
        return city
    bare = RULE_1 in system or RULE_2 in system
    return city if bare else f"The capital of {country.group(1) if country else 'it'} is {city}."


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        messages = body.get("messages") or []
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        text = answer(body.get("model", ""), system, user)
        out = json.dumps({"id": "chatcmpl-toy", "object": "chat.completion", "created": int(time.time()),
                          "model": body.get("model"), "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": text}}],
                          "usage": {"prompt_tokens": len(system + user) // 4, "completion_tokens": len(text) // 4,
                                    "total_tokens": (len(system + user) + len(text)) // 4}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args) -> None:  # quiet
        return


def serve() -> tuple[ThreadingHTTPServer, str]:
    """Start the toy server on a free port of 127.0.0.1; returns it and its OpenAI base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"
