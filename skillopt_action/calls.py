"""Every paid model call goes through here: retries, spend accounting, hard caps, and the on-disk cache.

- `Ledger` counts calls, cache hits, tokens and USD per role (target, optimizer, judge) and refuses a call
  that would cross `budget.max_calls` / `budget.max_usd` (errors.BudgetExceeded), so a run stops cleanly.
- `with_retries` retries errors.TransientError with exponential backoff and full jitter, honouring the
  server's Retry-After; anything else propagates.
- `DiskCache` is content-addressed: the key is a SHA-256 of everything that determines the answer, so an
  identical call is never paid twice, also across runs.
- `ManagedModel` wraps a ChatModel with all three for one role.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import BudgetExceeded, ProviderError, TransientError
from .types import Reply, Usage

T = TypeVar("T")


def content_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


class DiskCache:
    def __init__(self, root: Path | None):
        self.root = Path(root) if root else None

    def _path(self, namespace: str, key: str) -> Path:
        assert self.root is not None
        return self.root / namespace / key[:2] / f"{key}.json"

    def get(self, namespace: str, key: str) -> dict | None:
        if self.root is None:
            return None
        p = self._path(namespace, key)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:  # a torn write from a killed run: treat as a miss and overwrite
            return None

    def put(self, namespace: str, key: str, value: dict) -> None:
        if self.root is None:
            return
        p = self._path(namespace, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, ensure_ascii=False)
        os.replace(tmp, p)


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

    def __post_init__(self):
        self._lock = threading.Lock()

    def _role(self, role: str) -> RoleSpend:
        return self.roles.setdefault(role, RoleSpend())

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
        """Count a call about to be made, or raise BudgetExceeded if a cap is already reached."""
        with self._lock:
            if self.max_calls is not None and self.calls >= self.max_calls:
                raise BudgetExceeded(f"budget.max_calls = {self.max_calls} reached")
            if self.max_usd is not None and self.usd >= self.max_usd:
                raise BudgetExceeded(f"budget.max_usd = ${self.max_usd:.2f} reached (spent ${self.usd:.4f})")
            self._role(role).calls += 1

    def hit(self, role: str) -> None:
        with self._lock:
            self._role(role).cache_hits += 1

    def retried(self, role: str) -> None:
        with self._lock:
            self._role(role).retries += 1

    def charge(self, role: str, model: str | None, usage: Usage) -> None:
        with self._lock:
            r = self._role(role)
            r.input_tokens += usage.input_tokens
            r.output_tokens += usage.output_tokens
            if usage.cost_usd is not None:
                r.usd += usage.cost_usd
            elif model in self.prices:
                p = self.prices[model]
                r.usd += (usage.input_tokens * p["input"] + usage.output_tokens * p["output"]) / 1e6
            else:
                r.unpriced_calls += 1

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


def with_retries(fn: Callable[[], T], policy: RetryPolicy, *, what: str, on_retry: Callable[[], None] | None = None,
                 log: Callable[[str], None] | None = None) -> T:
    rng = random.Random()
    for attempt in range(policy.attempts):
        try:
            return fn()
        except TransientError as exc:
            if attempt == policy.attempts - 1:
                raise ProviderError(f"{what} failed after {policy.attempts} attempts: {exc}") from exc
            wait = policy.delay(attempt, exc.retry_after, rng)
            if log:
                log(f"{what}: {exc}; retry {attempt + 1}/{policy.attempts - 1} in {wait:.1f}s")
            if on_retry:
                on_retry()
            policy.sleep(wait)
    raise AssertionError("unreachable")


class ManagedModel:
    """A ChatModel with cache, caps, retries and accounting, for one role (optimizer or judge)."""

    def __init__(self, model, role: str, ledger: Ledger, cache: DiskCache, policy: RetryPolicy,
                 log: Callable[[str], None] | None = None):
        self.model, self.role, self.ledger, self.cache, self.policy, self.log = model, role, ledger, cache, policy, log
        self.settings = model.settings

    def fingerprint(self) -> dict:
        return self.model.fingerprint()

    def complete(self, system: str, messages: list[dict], *, seed: int = 0, json_schema: dict | None = None):
        key = content_key("chat", self.model.fingerprint(), system, messages, seed, json_schema)
        hit = self.cache.get("calls", key)
        if hit is not None:
            self.ledger.hit(self.role)
            return Reply(hit["text"], Usage(**hit["usage"]))
        self.ledger.reserve(self.role)
        reply = with_retries(lambda: self.model.complete(system, messages, seed=seed, json_schema=json_schema),
                             self.policy, what=f"{self.role} call", on_retry=lambda: self.ledger.retried(self.role),
                             log=self.log)
        self.ledger.charge(self.role, self.settings.model, reply.usage)
        self.cache.put("calls", key, {"text": reply.text, "usage": reply.usage.to_dict()})
        return reply
