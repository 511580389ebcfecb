"""A fast OpenAI-compatible loopback server for load benchmarks (one asyncio event loop, its own process).

    python bench/loopback_server.py --latency 0.2 [--limit 16]     # prints "PORT <n>" on stdout, then serves

POST .../chat/completions answers after `--latency` seconds with the last word of the last user message (so
an `exact` scorer whose reference is that word passes). With `--limit N`, a request arriving while N are in flight
gets an immediate 429 with `Retry-After: 0.2` (a provider's concurrency limit). GET /stats returns
{"requests", "ok", "rejected", "in_flight", "peak"}; POST /reset zeroes them.

Why not tests/model_server.py: it is a thread-per-connection stdlib server that records every request; in the
benchmark's own process it competes for the GIL with the client it measures. This one runs in a separate
process and keeps only counters, so at 32 connections and 200 ms it adds well under a millisecond per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = self.ok = self.rejected = self.in_flight = self.peak = 0

    def to_dict(self) -> dict:
        return {"requests": self.requests, "ok": self.ok, "rejected": self.rejected, "in_flight": self.in_flight,
                "peak": self.peak}


def _response(status: int, body: bytes, extra: str = "") -> bytes:
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: keep-alive\r\n\r\n")
    return head.encode() + body


def _completion(req: dict, n: int) -> bytes:
    messages = req.get("messages") or []
    user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
    if isinstance(user, list):
        user = " ".join(str(p.get("text", "")) for p in user if isinstance(p, dict))
    words = str(user).split()
    answer = words[-1].rstrip("?.!") if words else "ok"
    prompt = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
    return json.dumps({
        "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
        "model": req.get("model") or "loopback",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1},
    }).encode()


class Server:
    def __init__(self, latency: float, limit: int | None):
        self.latency, self.limit, self.stats = latency, limit, Stats()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                writer.write(await self.answer(method, path, body))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def answer(self, method: str, path: str, body: bytes) -> bytes:
        s = self.stats
        if path.endswith("/stats"):
            return _response(200, json.dumps(s.to_dict()).encode())
        if path.endswith("/reset"):
            s.reset()
            return _response(200, b"{}")
        if method != "POST" or "chat/completions" not in path:
            return _response(404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}')
        s.requests += 1
        if self.limit is not None and s.in_flight >= self.limit:
            s.rejected += 1
            return _response(429, b'{"error": {"message": "Rate limit reached", "type": "requests", '
                                  b'"code": "rate_limit_exceeded"}}', "retry-after: 0.2\r\n")
        s.in_flight += 1
        s.peak = max(s.peak, s.in_flight)
        try:
            await asyncio.sleep(self.latency)
            s.ok += 1
            return _response(200, _completion(json.loads(body or b"{}"), s.requests))
        finally:
            s.in_flight -= 1


async def main(latency: float, limit: int | None, port: int) -> None:
    srv = Server(latency, limit)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    try:
        asyncio.run(main(a.latency, a.limit, a.port))
    except KeyboardInterrupt:
        sys.exit(0)
