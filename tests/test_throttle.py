"""Rate-limit adaptation: on a provider's 429 the engine honours Retry-After and holds the calls in flight under
the provider's limit instead of retrying blindly at full concurrency (throttle.py)."""

from __future__ import annotations

import json
import threading

import pytest
from helpers import COUNTRIES, write_project
from model_server import Fault, Hang, ModelServer, Text

from skillopt_action import api
from skillopt_action.config import ModelSettings
from skillopt_action.errors import TransientError
from skillopt_action.providers import make_chat_model
from skillopt_action.throttle import Throttle

CAPITAL = dict(c.split(":") for c in COUNTRIES)


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test")


def capital(req):
    country = req.last_user_text.split("capital of ")[1].rstrip("?")
    return Hang(0.5, then=Text(CAPITAL[country]))


def test_a_provider_limit_is_learned_from_the_first_429s_and_held(tmp_path):
    """16 workers, a provider that takes 4 at a time: once the first 429s taught the engine the limit, the server
    never again sees more than 4 calls at once, and every rollout finishes with its real answer."""
    limit, workers = 4, 16
    with ModelServer(responder=capital, max_in_flight=limit, limit_retry_after=0.5) as server:
        cfg = write_project(tmp_path, base_url=server.openai_base_url, splits=(0, 16, 0),
                            extra={"concurrency": workers, "gate": {"samples": 3},
                                   "retries": {"attempts": 6, "base_delay": 0.01, "max_delay": 0.05}})
        result = api.evaluate(cfg, out=tmp_path / "run")
        reqs = sorted((r for r in server.requests if r.api == "chat"), key=lambda r: r.time)
        peak = server.peak_in_flight
    assert result.report.scores["val"]["best"] == 1.0, "every rollout finished with the right answer"
    rows = [json.loads(line) for line in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 48 and all(r["score"]["score"] == 1.0 for r in rows)
    rejected = [i for i, r in enumerate(reqs) if r.rate_limited]
    assert rejected, "the opening burst hit the provider's limit"
    # blind retries at 16 in flight would be turned away 12 at a time all run long; learning the limit costs
    # the opening burst and at most a round to settle, then the limit holds
    assert len(rejected) < workers, "calls were held under the limit instead of retried blindly"
    assert max(rejected) < len(reqs) // 2, "the limit was learned early"
    assert all(r.in_flight <= limit for r in reqs[max(rejected) + 1:]) and peak == limit
    spend = result.report.spend["by_role"]["target"]
    assert spend["calls"] == 48 and spend["retries"] == len(rejected), "each turned-away call was retried once"


def test_the_ceiling_is_what_the_provider_answered_when_it_turned_a_call_away():
    now = [0.0]
    t = Throttle(8, probe_after=30.0, clock=lambda: now[0])
    slots = [t.acquire() for _ in range(8)]
    assert t.in_flight == 8 and t.allowed() == 8
    for s in slots[5:]:  # three calls of the same round are turned away: the limit halves once
        t.release(s, rate_limited=True, retry_after=2.0)
    assert t.limit == 4.0 and t.rate_limited == 3 and t.ceiling == 8
    assert t._resume_at == 2.0, "no new call starts before the server's Retry-After"
    for s in slots[:5]:  # the five the provider took at once all come back answered
        t.release(s)
    assert t.ceiling == 5 and t.allowed() == 5, "the provider's limit is learned; increase stops there"
    now[0] = 40.0  # a quiet period: the ceiling is probed one higher
    s = t.acquire()
    assert t.ceiling == 6
    t.release(s)


def test_no_call_starts_until_the_calls_in_flight_at_a_429_are_back():
    t = Throttle(4, clock=lambda: 0.0)
    a, b, c = t.acquire(), t.acquire(), t.acquire()
    t.release(c, rate_limited=True)
    started = threading.Event()
    waiter = threading.Thread(target=lambda: (t.acquire(), started.set()))
    waiter.start()
    assert not started.wait(0.2), "held while the provider's limit is being learned"
    t.release(a)
    t.release(b)
    assert started.wait(5), "released once both calls came back"
    waiter.join()
    assert t.ceiling == 2 and t.in_flight == 1


def test_a_429_of_an_older_round_does_not_halve_again():
    t = Throttle(16, clock=lambda: 0.0)
    old = t.acquire()
    first = t.acquire()
    t.release(first, rate_limited=True)
    assert t.limit == 8.0
    t.release(old, rate_limited=True)  # sent under the old limit: not another halving
    assert t.limit == 8.0


def test_call_reports_the_providers_rate_limit():
    t = Throttle(4, clock=lambda: 0.0)

    def limited():
        raise TransientError("HTTP 429", 0.0, rate_limited=True)

    with pytest.raises(TransientError):
        t.call(limited)
    assert t.rate_limited == 1 and t.in_flight == 0 and t.limit == 2.0
    with pytest.raises(TransientError):
        t.call(lambda: (_ for _ in ()).throw(TransientError("HTTP 500")))
    assert t.rate_limited == 1 and t.limit == 2.0, "a server error is retried, but does not lower the limit"
    assert t.call(lambda: "ok") == "ok" and t.in_flight == 0


@pytest.mark.parametrize("provider,status", [("openai", 429), ("anthropic", 429), ("anthropic", 529),
                                             ("openai", 503)])
def test_providers_mark_rate_limits(provider, status):
    with ModelServer(replies=[Fault(status, retry_after=1)]) as s:
        base = s.openai_base_url if provider == "openai" else s.url
        model = make_chat_model(ModelSettings(role="target", provider=provider, model="m1", base_url=base,
                                              api_key_env="TEST_KEY", timeout=5.0))
        with pytest.raises(TransientError) as exc:
            model.complete("S", [{"role": "user", "content": "hi"}])
    assert exc.value.rate_limited is (status != 503) and exc.value.retry_after == 1.0
