"""Every paid model call goes through here: retries, spend accounting, hard caps, and the on-disk cache.

- `Ledger` counts calls, cache hits, tokens and USD per role (target, optimizer, judge) and refuses a call
  that would cross `budget.max_calls` / `budget.max_usd` (errors.BudgetExceeded), so a run stops cleanly.
  With a journal (`<out>/spend.jsonl`) every call is recorded *before* its request is sent, with one appended
  line, so a run killed at any moment resumes (`--resume`) knowing every call it paid: caps hold across kills.
- `with_retries` retries errors.TransientError with exponential backoff and full jitter, honouring the
  server's Retry-After; anything else propagates. An empty answer (errors.EmptyAnswer) is retried the same
  way; when it stays empty, `EmptyAfterRetries` tells the caller to score it as a failure, not to cache it.
- `DiskCache` (cache.py) is content-addressed: the key (`content_key`) is a SHA-256 of everything that determines
  the answer, so an identical call is never paid twice, also across runs. Entries are appended to a pack per
  process with their secrets masked; an entry that fails validation is a miss with one warning.
- `ManagedModel` wraps a ChatModel with all three for one role.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .cache import DiskCache
from .errors import BudgetExceeded, EmptyAnswer, ProviderError, TransientError
from .redact import Appender, masked_json_head, redact
from .types import Reply, Usage

T = TypeVar("T")
Log = Callable[[str], None]
__all__ = ["DiskCache", "Ledger", "ManagedModel", "RetryPolicy", "content_key", "with_retries"]


def content_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


def reply_problem(entry: dict) -> str | None:
    """What is wrong with a cached chat reply ({"text", "usage"}), or None: only a real answer is ever reused."""
    text, usage = entry.get("text"), entry.get("usage")
    if not isinstance(text, str):
        return "has no answer text"
    if not text.strip():
        return "holds an empty answer"
    if not isinstance(usage, dict):
        return "has no usage"
    try:
        Usage(**usage)
    except TypeError:
        return "has a malformed usage"
    return None


@dataclass
class RoleSpend:
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    unpriced_calls: int = 0

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class Ledger:
    prices: dict[str, dict] = field(default_factory=dict)
    max_usd: float | None = None
    max_calls: int | None = None
    roles: dict[str, RoleSpend] = field(default_factory=dict)
    journal: Path | None = None  # spend.jsonl: one line per event; a call's line is appended before it is sent

    def __post_init__(self):
        self._lock = threading.Lock()
        self._appender = Appender(self.journal) if self.journal is not None else None
        self._heads: dict = {}  # masked line heads by event and role (redact.masked_json_head)

    def _role(self, role: str) -> RoleSpend:
        return self.roles.setdefault(role, RoleSpend())

    def _record(self, event: dict) -> None:
        """Journal one event: one `write` on the open journal, outside the ledger's lock (32 rollouts must not queue
        behind each other's disk writes). A call's line is written before its request is sent; the order of lines
        of different threads does not matter, replay adds them up."""
        if self._appender is None:
            return
        # the same line as append_json(event), its head (event and role) masked once, not per line
        if event["e"] != "charge":
            self._appender.append_masked(masked_json_head(event, self._heads) + "}")
        elif type(event["in"]) is int and type(event["out"]) is int and (
                event["usd"] is None or type(event["usd"]) is float and math.isfinite(event["usd"])):
            head = masked_json_head({"e": "charge", "r": event["r"]}, self._heads)
            usd = "null" if event["usd"] is None else repr(event["usd"])  # JSON writes a finite float as its repr
            self._appender.append_masked(f'{head},"in":{event["in"]},"out":{event["out"]},"usd":{usd}}}')
        else:
            self._appender.append_json(event)

    def open_journal(self, path: Path, *, resume: bool) -> tuple[int, int]:
        """Journal every event to `path` from now on. With `resume`, first replay the events already in it (the
        spend of the run being resumed, up to its last call, also one killed mid-step); otherwise start it afresh.
        Returns (events replayed, damaged lines skipped)."""
        replayed = skipped = 0
        with self._lock:
            if resume and path.is_file():
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    try:
                        ev = json.loads(line)
                        self._apply(ev)
                        replayed += 1
                    except (ValueError, KeyError, TypeError, AttributeError):
                        skipped += 1  # only the last line can be torn, and only by a crash of the machine
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("", encoding="utf-8")
            self.journal = path
            if self._appender is not None:
                self._appender.close()
            self._appender = Appender(path)
        return replayed, skipped

    def _apply(self, ev: dict) -> None:
        r = self._role(str(ev["r"]))
        kind = ev["e"]
        if kind == "call":
            r.calls += 1
        elif kind == "hit":
            r.cache_hits += 1
        elif kind == "retry":
            r.retries += 1
        elif kind == "charge":
            r.input_tokens += int(ev["in"])
            r.output_tokens += int(ev["out"])
            if ev.get("usd") is None:
                r.unpriced_calls += 1
            else:
                r.usd += float(ev["usd"])
        else:
            raise ValueError(f"unknown ledger event {kind!r}")

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.roles.values())

    @property
    def usd(self) -> float:
        return sum(r.usd for r in self.roles.values())

    def role_calls(self, role: str) -> int:
        with self._lock:
            return self._role(role).calls

    @property
    def cache_hits(self) -> int:
        return sum(r.cache_hits for r in self.roles.values())

    def reserve(self, role: str) -> None:
        """Count (and journal) a call about to be made, or raise BudgetExceeded if a cap is already reached."""
        with self._lock:
            if self.max_calls is not None and self.calls >= self.max_calls:
                raise BudgetExceeded(f"budget.max_calls = {self.max_calls} reached")
            if self.max_usd is not None and self.usd >= self.max_usd:
                raise BudgetExceeded(f"budget.max_usd = ${self.max_usd:.2f} reached (spent ${self.usd:.4f})")
            self._role(role).calls += 1
        self._record({"e": "call", "r": role})

    def hit(self, role: str) -> None:
        with self._lock:
            self._role(role).cache_hits += 1
        self._record({"e": "hit", "r": role})

    def retried(self, role: str) -> None:
        with self._lock:
            self._role(role).retries += 1
        self._record({"e": "retry", "r": role})

    def charge(self, role: str, model: str | None, usage: Usage) -> None:
        if usage.cost_usd is not None:
            usd: float | None = usage.cost_usd
        elif model in self.prices:
            p = self.prices[model]
            usd = (usage.input_tokens * p["input"] + usage.output_tokens * p["output"]) / 1e6
        else:
            usd = None
        ev = {"e": "charge", "r": role, "in": usage.input_tokens, "out": usage.output_tokens, "usd": usd}
        with self._lock:
            self._apply(ev)
        self._record(ev)

    def to_dict(self) -> dict:
        total = RoleSpend()
        for r in self.roles.values():
            for k, v in r.__dict__.items():
                setattr(total, k, getattr(total, k) + v)
        return {**total.to_dict(), "by_role": {k: v.to_dict() for k, v in sorted(self.roles.items())}}

    def load(self, d: dict) -> None:
        for role, values in (d.get("by_role") or {}).items():
            self.roles[role] = RoleSpend(**values)


@dataclass
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The server's Retry-After when it sent one (capped at 5 minutes), else full-jitter exponential backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), 300.0)
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** attempt))


class EmptyAfterRetries(ProviderError):
    """Every attempt of a call came back empty: the caller scores it as a failure and does not cache it."""


def with_retries(fn: Callable[[], T], policy: RetryPolicy, *, what: str, on_retry: Callable[[], None] | None = None,
                 log: Callable[[str], None] | None = None) -> T:
    rng: random.Random | None = None  # seeded from the OS on the first retry only: most calls never retry
    for attempt in range(policy.attempts):
        try:
            return fn()
        except TransientError as exc:
            if attempt == policy.attempts - 1:
                error = EmptyAfterRetries if isinstance(exc, EmptyAnswer) else ProviderError
                raise error(f"{what} failed after {policy.attempts} attempts: {exc}") from exc
            rng = rng or random.Random()
            wait = policy.delay(attempt, exc.retry_after, rng)
            if log:
                log(f"{what}: {exc}; retry {attempt + 1}/{policy.attempts - 1} in {wait:.1f}s")
            if on_retry:
                on_retry()
            policy.sleep(wait)
    raise AssertionError("unreachable")


def charging_empty(fn: Callable[[], T], charge: Callable[[Usage], None]) -> Callable[[], T]:
    """`fn`, but the tokens an empty answer still cost are charged before it is retried."""
    def attempt() -> T:
        try:
            return fn()
        except EmptyAnswer as exc:
            if isinstance(exc.usage, Usage):
                charge(exc.usage)
            raise
    return attempt


class ManagedModel:
    """A ChatModel with cache, caps, retries and accounting, for one role (optimizer or judge)."""

    def __init__(self, model, role: str, ledger: Ledger, cache: DiskCache, policy: RetryPolicy,
                 log: Callable[[str], None] | None = None):
        self.model, self.role, self.ledger, self.cache, self.policy, self.log = model, role, ledger, cache, policy, log
        self.settings = model.settings

    def fingerprint(self) -> dict:
        return self.model.fingerprint()

    def _once(self, system: str, messages: list[dict], seed: int, json_schema: dict | None) -> Reply:
        reply = self.model.complete(system, messages, seed=seed, json_schema=json_schema)
        if not reply.text.strip() and self.settings.provider != "local":  # local: deterministic, asking again is futile
            raise EmptyAnswer("the model returned an empty answer", reply.usage)
        return reply

    def complete(self, system: str, messages: list[dict], *, seed: int = 0, json_schema: dict | None = None):
        """The answer (secrets masked), from the cache when this exact call was made before. An answer that stays
        empty after the retries is returned empty, uncached: the caller treats it as unusable."""
        key = content_key("chat", self.model.fingerprint(), system, messages, seed, json_schema)
        hit = self.cache.get("calls", key, valid=reply_problem)
        if hit is not None:
            self.ledger.hit(self.role)
            return Reply(hit["text"], Usage(**hit["usage"]), model=hit.get("model"))
        self.ledger.reserve(self.role)
        charge = lambda usage: self.ledger.charge(self.role, self.settings.model, usage)  # noqa: E731
        try:
            reply = with_retries(charging_empty(lambda: self._once(system, messages, seed, json_schema), charge),
                                 self.policy, what=f"{self.role} call", on_retry=lambda: self.ledger.retried(self.role),
                                 log=self.log)
        except EmptyAfterRetries as exc:
            if self.log:
                self.log(f"warning: {exc}; counted as an unusable answer and not cached")
            return Reply("", Usage())
        reply = Reply(redact(reply.text), reply.usage, model=reply.model)
        charge(reply.usage)
        if reply.text.strip():  # only a real answer is ever cached
            self.cache.put("calls", key, {"text": reply.text, "usage": reply.usage.to_dict(), "model": reply.model})
        return reply
