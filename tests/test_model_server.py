"""The scripted model server, driven by the real openai / anthropic SDKs over loopback HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import anthropic
import openai
import pytest
from model_server import (
    Fault,
    Hang,
    Malformed,
    ModelServer,
    Text,
    ToolCall,
    load_script,
    spec_from_dict,
    spec_to_dict,
    write_script,
)

HERE = Path(__file__).resolve().parent
WEATHER_TOOL_CHAT = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def oai(server: ModelServer, **kw) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test-key", **kw)


def anth(server: ModelServer, **kw) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="ant-test-key", **kw)


def raw_post(url: str, body: dict, headers: dict | None = None, timeout: float = 5) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of a server-sent event stream."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
        out.append((name, "\n".join(data)))
    return out


# --------------------------------------------------------------------------- OpenAI chat


def test_openai_chat_non_stream_answers_and_records_the_request(model_server):
    model_server.reply(Text("The answer is 42.", input_tokens=31, output_tokens=7))
    client = oai(model_server)
    resp = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "system", "content": "SKILL: always answer with a number"},
                  {"role": "user", "content": "What is six times seven?"}],
        tools=[WEATHER_TOOL_CHAT], temperature=0,
    )
    assert resp.choices[0].message.content == "The answer is 42."
    assert resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (31, 7, 38)
    assert resp.model == "gpt-test"

    req = model_server.last_request()
    assert (req.method, req.path, req.api) == ("POST", "/v1/chat/completions", "chat")
    assert req.model == "gpt-test" and req.stream is False
    assert "always answer with a number" in req.system
    assert req.last_user_text == "What is six times seven?"
    assert req.headers["authorization"] == "Bearer sk-test-key" and req.api_key == "sk-test-key"
    assert req.tool_names == ["get_weather"]
    assert req.json["temperature"] == 0
    assert isinstance(req.reply, Text)


def test_openai_chat_tool_call_non_stream(model_server):
    model_server.reply(ToolCall("get_weather", {"city": "Paris"}, id="call_abc"))
    resp = oai(model_server).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL_CHAT])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert (call.id, call.function.name) == ("call_abc", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert resp.usage.total_tokens > 0


def test_openai_chat_stream_text_and_usage_chunk(model_server):
    text = "Streaming works across several chunks of words."
    model_server.reply(Text(text, input_tokens=12, output_tokens=9), Text(text))
    client = oai(model_server)
    chunks = list(client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "go"}], stream=True,
        stream_options={"include_usage": True}))
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 1, "text must arrive in several deltas"
    assert "".join(c.choices[0].delta.content for c in content_chunks) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 12
    assert chunks[-1].usage.completion_tokens == 9
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)

    # like the real API: no usage unless the client asks for it
    chunks = list(client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "go"}], stream=True))
    assert all(getattr(c, "usage", None) is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text


def test_openai_chat_stream_wire_format_ends_with_done(model_server):
    model_server.reply(ToolCall("get_weather", {"city": "Oslo"}, text="Checking."))
    status, headers, body = raw_post(model_server.openai_base_url + "/chat/completions",
                                     {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(body)
    assert all(name is None for name, _ in events), "chat completions SSE has data lines only"
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in events[:-1]]
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["id"] and calls[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"city": "Oslo"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_azure_deployment_path(model_server):
    model_server.reply(Text("from azure"))
    client = openai.AzureOpenAI(azure_endpoint=model_server.url, api_key="az-key",
                                api_version="2024-10-21", max_retries=0)
    resp = client.chat.completions.create(model="my-deploy", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "from azure"
    req = model_server.last_request()
    assert req.path == "/openai/deployments/my-deploy/chat/completions"
    assert req.query == {"api-version": "2024-10-21"}
    assert req.headers["api-key"] == "az-key" and req.api_key == "az-key"


# --------------------------------------------------------------------------- OpenAI responses


def test_openai_responses_stream_with_function_call(model_server):
    model_server.reply(ToolCall("get_weather", {"city": "Paris"}, text="Let me check.",
                                input_tokens=100, output_tokens=20))
    client = oai(model_server)
    events = list(client.responses.create(
        model="gpt-test", instructions="SKILL: use tools", input="Weather in Paris?", stream=True,
        tools=[{"type": "function", "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]))
    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    for expected in ("response.content_part.added", "response.output_text.delta", "response.output_text.done",
                     "response.content_part.done", "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done"):
        assert expected in types
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))

    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Let me check."
    args_done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(args_done.arguments) == {"city": "Paris"}

    final = events[-1].response
    assert final.status == "completed"
    message, call = final.output
    assert message.type == "message" and message.content[0].text == "Let me check."
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (100, 20, 120)
    done_items = [e.item for e in events if e.type == "response.output_item.done"]
    assert [i.type for i in done_items] == ["message", "function_call"]

    req = model_server.last_request("responses")
    assert req.path == "/v1/responses" and req.stream
    assert req.system == "SKILL: use tools" and req.last_user_text == "Weather in Paris?"
    assert req.tool_names == ["get_weather"]


def test_openai_responses_stream_helper_and_tool_result_round_trip(model_server):
    model_server.reply(Text("It is sunny."))
    client = oai(model_server)
    with client.responses.stream(model="gpt-test", input=[
        {"role": "user", "content": "Weather?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 25C"},
    ]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "It is sunny."
    assert model_server.last_request().tool_results == ["sunny, 25C"]


def test_openai_responses_sse_lines_name_their_event(model_server):
    model_server.reply(Text("hi there"))
    status, _, body = raw_post(model_server.openai_base_url + "/responses",
                               {"model": "m", "input": "x", "stream": True})
    assert status == 200
    events = sse_events(body)
    for name, data in events:
        assert name == json.loads(data)["type"]
    assert "[DONE]" not in body.decode()


def test_openai_responses_non_stream(model_server):
    model_server.reply(Text("plain answer", input_tokens=5, output_tokens=2))
    resp = oai(model_server).responses.create(model="gpt-test", input="q")
    assert resp.output_text == "plain answer" and resp.status == "completed"
    assert resp.usage.total_tokens == 7


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_messages_non_stream(model_server):
    model_server.reply(Text("Bonjour.", input_tokens=40, output_tokens=3))
    client = anth(model_server)
    msg = client.messages.create(model="claude-test", max_tokens=64, system="SKILL: answer in French",
                                 messages=[{"role": "user", "content": "Say hello"}])
    assert msg.content[0].type == "text" and msg.content[0].text == "Bonjour."
    assert msg.stop_reason == "end_turn" and msg.role == "assistant"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (40, 3)
    req = model_server.last_request("messages")
    assert req.path == "/v1/messages" and req.system == "SKILL: answer in French"
    # this SDK version sends the key as a Bearer token; older ones use x-api-key
    assert req.api_key == "ant-test-key" and "anthropic-version" in req.headers
    assert req.json["max_tokens"] == 64 and req.stream is False


def test_anthropic_stream_with_text_and_tool_use(model_server):
    model_server.reply(ToolCall("Write", {"path": "out.txt", "content": "hello"}, id="toolu_1",
                                text="I will write the file.", input_tokens=50, output_tokens=12))
    client = anth(model_server)
    tools = [{"name": "Write", "description": "write a file",
              "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
    with client.messages.stream(model="claude-test", max_tokens=256, tools=tools,
                                system=[{"type": "text", "text": "SKILL: write files"}],
                                messages=[{"role": "user", "content": "Write out.txt"}]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and "message_stop" in kinds
    assert "input_json" in kinds and "text" in kinds  # the SDK's parsed deltas
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "I will write the file."
    tool = final.content[1]
    assert (tool.id, tool.name, tool.input) == ("toolu_1", "Write", {"path": "out.txt", "content": "hello"})
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (50, 12)
    req = model_server.last_request()
    assert req.stream and req.system == "SKILL: write files" and req.tool_names == ["Write"]


def test_anthropic_sse_wire_format(model_server):
    model_server.reply(ToolCall("Read", {"path": "a"}))
    status, headers, body = raw_post(model_server.url + "/v1/messages",
                                     {"model": "c", "max_tokens": 5, "stream": True,
                                      "messages": [{"role": "user", "content": "x"}]},
                                     headers={"anthropic-version": "2023-06-01"})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(body)
    names = [n for n, _ in events]
    for name, data in events:
        assert name == json.loads(data)["type"]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    delta = json.loads(events[5][1])
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] > 0


def test_tool_results_are_visible_to_tests(model_server):
    client = anth(model_server)
    client.messages.create(model="c", max_tokens=10, messages=[
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "exit 0"}]},
    ])
    assert model_server.last_request().tool_results == ["exit 0"]


# --------------------------------------------------------------------------- truncation, models


def test_truncated_reply_in_each_protocol(model_server):
    model_server.reply(Text("cut", finish="length"), Text("cut", finish="length"), Text("cut", finish="length"))
    chat = oai(model_server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert chat.choices[0].finish_reason == "length"
    events = list(oai(model_server).responses.create(model="m", input="x", stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    msg = anth(model_server).messages.create(model="c", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    assert msg.stop_reason == "max_tokens"


def test_models_list_in_both_shapes():
    with ModelServer(models=["alpha", "beta"]) as server:
        assert [m.id for m in oai(server).models.list()] == ["alpha", "beta"]
        assert [m.id for m in anth(server).models.list()] == ["alpha", "beta"]


# --------------------------------------------------------------------------- faults


def test_429_retry_after_is_honoured_by_the_sdk(model_server):
    model_server.reply(Fault(429, retry_after=1), Text("after the wait"))
    client = oai(model_server, max_retries=1)
    resp = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].message.content == "after the wait"
    first, second = model_server.requests
    assert second.time - first.time >= 0.9, "the client must wait for Retry-After before retrying"
    assert isinstance(first.reply, Fault) and isinstance(second.reply, Text)


def test_fault_bodies_have_each_providers_shape(model_server):
    model_server.reply(Fault(429, retry_after=7), Fault(401), Fault(500, message="boom"))
    with pytest.raises(anthropic.RateLimitError) as exc:
        anth(model_server).messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert exc.value.body == {"type": "error", "error": {"type": "rate_limit_error",
                                                         "message": "Rate limit reached. Please try again later."}}
    assert exc.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.AuthenticationError) as exc2:
        oai(model_server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert exc2.value.code == "invalid_api_key"
    with pytest.raises(openai.InternalServerError) as exc3:
        oai(model_server).responses.create(model="m", input="x", stream=True)
    assert exc3.value.body["message"] == "boom"


def test_custom_fault_body_is_sent_verbatim(model_server):
    model_server.reply(Fault(400, body={"error": {"message": "context too long", "code": "context_length_exceeded",
                                                  "type": "invalid_request_error", "param": None}}))
    with pytest.raises(openai.BadRequestError) as exc:
        oai(model_server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert exc.value.code == "context_length_exceeded"


def test_hang_makes_the_sdk_time_out(model_server):
    model_server.reply(Hang(2))
    client = oai(model_server, timeout=0.5)
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - start < 1.5
    assert len(model_server.requests) == 1


def test_hang_then_answers_late(model_server):
    model_server.reply(Hang(0.3, then=Text("late")))
    start = time.monotonic()
    msg = anth(model_server, timeout=5).messages.create(model="c", max_tokens=5,
                                                        messages=[{"role": "user", "content": "x"}])
    assert msg.content[0].text == "late" and time.monotonic() - start >= 0.3


def test_mid_stream_stall_times_out_the_reader(model_server):
    model_server.reply(Hang(5, mid_stream=True))
    client = oai(model_server, timeout=0.5)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    received = []
    with pytest.raises(openai.APITimeoutError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 1 and received[0].choices[0].delta.role == "assistant"


def test_close_does_not_wait_for_a_long_hang():
    server = ModelServer(replies=[Hang(30)]).start()
    result = {}

    def call():
        try:
            raw_post(server.openai_base_url + "/chat/completions", {"model": "m", "messages": []}, timeout=10)
        except Exception as exc:  # the server drops the connection: that is the expected outcome
            result["error"] = exc

    t = threading.Thread(target=call)
    t.start()
    server.wait_for_requests(1)
    start = time.monotonic()
    server.close()
    t.join(5)
    assert time.monotonic() - start < 3
    assert not t.is_alive() and "error" in result


def test_a_closed_server_does_not_answer_on_pooled_connections():
    server = ModelServer(replies=[Text("first"), Text("second")]).start()
    client = oai(server)
    assert client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}]).choices[0].message.content == "first"
    server.close()
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert server.pending() == 1


def test_malformed_body_reaches_the_client(model_server):
    """What client code must be ready for: both SDKs raise a bare json.JSONDecodeError (not an
    APIError) on a 200 with a broken JSON body or a broken SSE event, and the openai SDK hands back
    the raw *string* when the content type is not JSON (a proxy's HTML error page)."""
    model_server.reply(Malformed("{not json"), Malformed("event: message_start\ndata: {broken\n\n"),
                       Malformed("<html>502 Bad Gateway</html>", content_type="text/html"),
                       Malformed(b"data: {broken\n\n"))
    with pytest.raises(json.JSONDecodeError):
        oai(model_server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(json.JSONDecodeError):
        list(anth(model_server).messages.create(model="c", max_tokens=5, stream=True,
                                                messages=[{"role": "user", "content": "x"}]))
    got = oai(model_server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert got == "<html>502 Bad Gateway</html>"
    status, headers, body = raw_post(model_server.openai_base_url + "/chat/completions",
                                     {"model": "m", "messages": [], "stream": True})
    assert (status, body) == (200, b"data: {broken\n\n")
    assert headers["Content-Type"] == "text/event-stream"


def test_unknown_path_and_wrong_method_get_json_errors(model_server):
    status, _, body = raw_post(model_server.url + "/v1/embeddings", {"input": "x"})
    assert status == 404 and json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = raw_post(model_server.url + "/v2/nothing", {}, headers={"anthropic-version": "2023-06-01"})
    assert status == 404 and json.loads(body) == {"type": "error", "error": {
        "type": "not_found_error", "message": "Invalid URL (POST /v2/nothing)"}}
    with urllib.request.urlopen(model_server.url + "/v1/models") as resp:
        assert resp.status == 200
    try:
        urllib.request.urlopen(model_server.url + "/v1/chat/completions")
        raise AssertionError("GET on chat completions must fail")
    except urllib.error.HTTPError as err:
        assert err.code == 405 and "error" in json.loads(err.read())
    assert [r.path for r in model_server.requests][:2] == ["/v1/embeddings", "/v2/nothing"]


def test_required_api_key_rejects_wrong_keys():
    with ModelServer(require_api_key="right") as server:
        with pytest.raises(anthropic.AuthenticationError):
            anth(server).messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        ok = anthropic.Anthropic(base_url=server.url, api_key="right", max_retries=0)
        assert ok.messages.create(model="c", max_tokens=5,
                                  messages=[{"role": "user", "content": "x"}]).content[0].text == "OK"


# --------------------------------------------------------------------------- scripting


def test_rules_then_queue_then_responder_then_default():
    def responder(req):
        if "capital" in req.last_user_text:
            return Text("Paris")
        return None

    with ModelServer(replies=[Text("queued")], responder=responder, default_text="fallback") as server:
        server.when("quota probe", Text("rule answer"), times=1)
        client = oai(server)

        def ask(q):
            return client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": q}]).choices[0].message.content

        assert ask("quota probe") == "rule answer"
        assert ask("quota probe") == "queued"  # rule used up; queue next
        assert ask("capital of France?") == "Paris"
        assert ask("something else") == "fallback"
        assert server.pending() == 0


def test_side_requests_without_tools_do_not_consume_the_queue(tmp_path):
    """The pattern agent CLIs need: Claude Code's session-title request carries no tools."""
    script = write_script(tmp_path / "s.json", [ToolCall("Write", {"file_path": "a"})], rules=[
        {"api": "messages", "has_tools": False, "reply": Text('{"title": "T"}')}])
    with ModelServer.from_script(script, default_text="unused") as server:
        client = anth(server)
        title = client.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert json.loads(title.content[0].text) == {"title": "T"}
        turn = client.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}],
                                      tools=[{"name": "Write", "input_schema": {"type": "object"}}])
        assert turn.content[0].type == "tool_use" and server.pending() == 0


def test_head_gets_headers_only_and_keeps_the_connection_usable(model_server):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", model_server.port, timeout=5)
    conn.request("HEAD", "/")
    resp = conn.getresponse()
    assert resp.status == 404 and resp.read() == b""
    conn.request("POST", "/v1/messages", body=json.dumps({"model": "c", "max_tokens": 5, "messages": [
        {"role": "user", "content": "x"}]}), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["content"][0]["text"] == "OK"
    conn.close()


def test_responder_errors_fail_the_test_loudly():
    server = ModelServer(responder=lambda req: 1 / 0).start()
    with pytest.raises(openai.InternalServerError):
        oai(server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    server.close()
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        server.check()


def test_specs_round_trip_through_json(tmp_path):
    specs = [Text("a", input_tokens=1), ToolCall("f", {"x": [1]}, text="t"), Fault(429, retry_after=2),
             Hang(1, then=Text("b")), Malformed("raw", status=502)]
    assert [spec_from_dict(json.loads(json.dumps(spec_to_dict(s)))) for s in specs] == specs
    path = write_script(tmp_path / "s.json", specs, rules=[{"contains": "x", "reply": Text("r")}])
    loaded = load_script(path)
    assert loaded["replies"] == specs and len(loaded["rules"]) == 1
    with pytest.raises(ValueError, match="unknown reply type 'txt'"):
        spec_from_dict({"type": "txt", "text": "a"})
    with pytest.raises(ValueError, match="bad text reply"):
        spec_from_dict({"type": "text", "txt": "a"})


# --------------------------------------------------------------------------- standalone process


def _start_standalone(tmp_path, *extra):
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, str(HERE / "model_server.py"), "--port", "0",
                             "--port-file", str(port_file), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"standalone server did not start: {proc.communicate()}")
        time.sleep(0.02)
    return proc, int(port_file.read_text())


def test_standalone_process_serves_a_script_and_logs_requests(tmp_path):
    script = write_script(tmp_path / "script.json",
                          [ToolCall("Write", {"path": "x"}), Text("done")],
                          rules=[{"last_user_contains": "ping", "api": "messages", "reply": Text("pong")}],
                          default_text="nothing scripted")
    log = tmp_path / "requests.jsonl"
    proc, port = _start_standalone(tmp_path, "--script", str(script), "--requests-log", str(log),
                                   "--max-seconds", "60")
    try:
        base = f"http://127.0.0.1:{port}"
        client = anthropic.Anthropic(base_url=base, api_key="secret-key-123", max_retries=0)
        assert client.messages.create(model="c", max_tokens=5, messages=[
            {"role": "user", "content": "ping"}]).content[0].text == "pong"
        with client.messages.stream(model="c", max_tokens=5, messages=[{"role": "user", "content": "go"}]) as s:
            final = s.get_final_message()
        assert final.content[0].name == "Write"
        events = list(openai.OpenAI(base_url=base + "/v1", api_key="k", max_retries=0).responses.create(
            model="m", input="next", stream=True))
        assert events[-1].response.output_text == "done"
        chat = openai.OpenAI(base_url=base + "/v1", api_key="k", max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}])
        assert chat.choices[0].message.content == "nothing scripted"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert f"listening on http://127.0.0.1:{port}" in out
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["api"] for entry in lines] == ["messages", "messages", "responses", "chat"]
    assert lines[0]["reply"] == {"type": "text", "text": "pong", "input_tokens": None,
                                 "output_tokens": None, "finish": "stop", "model": None}
    assert "secret-key-123" not in log.read_text()
    key_header = "x-api-key" if "x-api-key" in lines[0]["headers"] else "authorization"
    assert lines[0]["headers"][key_header].startswith("sha256:")


def test_standalone_process_stops_after_max_seconds(tmp_path):
    proc, port = _start_standalone(tmp_path, "--max-seconds", "0.5")
    try:
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_standalone_rejects_a_bad_script(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"replies": [{"type": "txt"}]}))
    proc = subprocess.run([sys.executable, str(HERE / "model_server.py"), "--script", str(bad)],
                          capture_output=True, text=True, timeout=20, env={**os.environ})
    assert proc.returncode != 0 and "unknown reply type 'txt'" in proc.stderr
