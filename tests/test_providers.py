"""Provider clients (real openai / anthropic SDKs) against a scripted server on 127.0.0.1:
wire formats, retries honouring Retry-After, timeouts, permanent errors, accounting and caps."""

from __future__ import annotations

import pytest
from model_server import Fault, Hang, Malformed, ModelServer, Text

from skillopt_action.calls import DiskCache, Ledger, ManagedModel, RetryPolicy, with_retries
from skillopt_action.config import ModelSettings
from skillopt_action.errors import BudgetExceeded, ConfigError, ProviderError
from skillopt_action.providers import make_chat_model


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test")


def settings(server, provider="openai", **kw):
    base = server.openai_base_url if provider == "openai" else server.url
    if provider == "azure":
        kw.setdefault("api_version", "2024-10-21")
    return ModelSettings(role="target", provider=provider, model="m1", base_url=kw.pop("base_url", base),
                         api_key_env="TEST_KEY", timeout=kw.pop("timeout", 5.0), **kw)


def managed(model, policy=None, ledger=None, cache=None):
    sleeps: list[float] = []
    policy = policy or RetryPolicy(attempts=3, base_delay=0.5, max_delay=4, sleep=sleeps.append)
    return ManagedModel(model, "optimizer", ledger or Ledger(), cache or DiskCache(None), policy), sleeps


@pytest.mark.parametrize("provider", ["openai", "anthropic", "azure"])
def test_each_provider_sends_system_and_messages_and_reads_usage(provider):
    with ModelServer(replies=[Text("Paris", input_tokens=11, output_tokens=2)]) as s:
        model = make_chat_model(settings(s, provider))
        reply = model.complete("SKILL TEXT", [{"role": "user", "content": "capital of France?"}])
        req = s.last_request()
    assert reply.text == "Paris" and (reply.usage.input_tokens, reply.usage.output_tokens) == (11, 2)
    assert "SKILL TEXT" in req.system and req.last_user_text == "capital of France?"
    assert req.api_key == "sk-test"
    if provider == "azure":
        assert req.path == "/openai/deployments/m1/chat/completions" and req.query["api-version"] == "2024-10-21"
    else:
        assert req.model == "m1"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_429_retry_after_is_honoured(provider):
    with ModelServer(replies=[Fault(429, retry_after=3), Text("ok")]) as s:
        m, sleeps = managed(make_chat_model(settings(s, provider)))
        assert m.complete("sys", [{"role": "user", "content": "hi"}]).text == "ok"
        assert len(s.requests) == 2
    assert sleeps == [3.0]
    assert m.ledger.roles["optimizer"].retries == 1 and m.ledger.calls == 1


def test_500_then_success_uses_bounded_jittered_backoff():
    with ModelServer(replies=[Fault(500), Fault(503), Text("ok")]) as s:
        m, sleeps = managed(make_chat_model(settings(s)))
        assert m.complete("sys", [{"role": "user", "content": "hi"}]).text == "ok"
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_hang_past_timeout_is_retried_then_fails_as_provider_error():
    with ModelServer(replies=[Hang(3), Hang(3), Hang(3)], max_hang=3) as s:
        m, sleeps = managed(make_chat_model(settings(s, timeout=0.3)))
        with pytest.raises(ProviderError, match="failed after 3 attempts: timed out"):
            m.complete("sys", [{"role": "user", "content": "hi"}])


def test_malformed_http_body_is_transient_and_then_a_provider_error():
    with ModelServer(replies=[Malformed("{not json"), Text("ok")]) as s:
        m, _ = managed(make_chat_model(settings(s)))
        assert m.complete("sys", [{"role": "user", "content": "hi"}]).text == "ok"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_auth_error_is_permanent_no_retry(provider):
    with ModelServer(replies=[Fault(401)]) as s:
        m, sleeps = managed(make_chat_model(settings(s, provider)))
        with pytest.raises(ProviderError, match="401"):
            m.complete("sys", [{"role": "user", "content": "hi"}])
        assert len(s.requests) == 1 and sleeps == []


def test_cache_and_caps(tmp_path):
    ledger = Ledger(prices={"m1": {"input": 1.0, "output": 2.0}}, max_calls=2)
    with ModelServer(responder=lambda r: Text(f"echo {r.last_user_text}", input_tokens=1000, output_tokens=500)) as s:
        m, _ = managed(make_chat_model(settings(s)), ledger=ledger, cache=DiskCache(tmp_path))
        msg = lambda t: [{"role": "user", "content": t}]  # noqa: E731
        assert m.complete("sys", msg("a")).text == "echo a"
        assert m.complete("sys", msg("a")).text == "echo a"  # cached
        m.complete("sys", msg("b"))
        with pytest.raises(BudgetExceeded, match="max_calls = 2"):
            m.complete("sys", msg("c"))
        assert len(s.requests) == 2
    spend = ledger.to_dict()
    assert spend["calls"] == 2 and spend["cache_hits"] == 1
    assert spend["usd"] == pytest.approx(2 * (1000 * 1.0 + 500 * 2.0) / 1e6)


def test_usd_cap_stops_calls():
    ledger = Ledger(prices={"m1": {"input": 1000.0, "output": 0.0}}, max_usd=0.5)
    with ModelServer(replies=[Text("x", input_tokens=1000, output_tokens=1)] * 3) as s:
        m, _ = managed(make_chat_model(settings(s)), ledger=ledger)
        m.complete("sys", [{"role": "user", "content": "1"}])  # costs $1
        with pytest.raises(BudgetExceeded, match="max_usd"):
            m.complete("sys", [{"role": "user", "content": "2"}])


def test_missing_key_names_the_variable_and_the_fix(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    s = ModelSettings(role="target", provider="openai", model="gpt-4.1-mini", api_key_env="NO_SUCH_KEY_VAR",
                      file=".github/skillopt.yml", line=4)
    with pytest.raises(ConfigError) as e:
        make_chat_model(s)
    assert "NO_SUCH_KEY_VAR" in str(e.value) and ".github/skillopt.yml:4" in str(e.value)
    assert "secrets.NO_SUCH_KEY_VAR" in str(e.value)


def test_with_retries_gives_up_after_attempts():
    from skillopt_action.errors import TransientError

    calls = []

    def fn():
        calls.append(1)
        raise TransientError("HTTP 503", retry_after=1.5)

    sleeps: list[float] = []
    with pytest.raises(ProviderError, match="after 4 attempts"):
        with_retries(fn, RetryPolicy(attempts=4, sleep=sleeps.append), what="call")
    assert len(calls) == 4 and sleeps == [1.5, 1.5, 1.5]


def test_openai_reasoning_model_400s_are_adapted_to_once():
    too_old = "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    no_temp = "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported."
    with ModelServer(replies=[Fault(400, message=too_old), Fault(400, message=no_temp), Text("a"), Text("b")]) as s:
        model = make_chat_model(settings(s, temperature=0.2, max_tokens=99))
        assert model.complete("sys", [{"role": "user", "content": "1"}]).text == "a"
        assert model.complete("sys", [{"role": "user", "content": "2"}]).text == "b"
        bodies = [r.json for r in s.requests]
    assert bodies[0]["max_tokens"] == 99 and bodies[0]["temperature"] == 0.2
    assert "max_tokens" not in bodies[1] and bodies[1]["max_completion_tokens"] == 99
    assert "temperature" not in bodies[2] and "temperature" not in bodies[3], "the adaptation sticks"
    assert bodies[3]["max_completion_tokens"] == 99


def test_other_400s_are_permanent_errors():
    with ModelServer(replies=[Fault(400, message="model 'nope' does not exist")]) as s:
        with pytest.raises(ProviderError, match="does not exist"):
            make_chat_model(settings(s)).complete("sys", [{"role": "user", "content": "1"}])
        assert len(s.requests) == 1
