"""How many model calls may be in flight: the configured `concurrency`, lowered when the provider says "slow down".

A provider that answers HTTP 429 (or Anthropic's 529) has a limit below ours. Retrying blindly at full concurrency
only collects more 429s, so the `Throttle` adapts, much as TCP does to a congested link:

- **learn the ceiling**: when a call is turned away, the calls still in flight are watched; no new call starts
  until they are all back, and the number of them that were answered is the provider's limit (it was full when it
  turned the call away). From then on at most that many calls are in flight (the ceiling);
- **multiplicative decrease**: the limit also halves, once per round of calls (a burst of 429s for calls that were
  all sent under the same limit counts once), so a provider limit by rate rather than by concurrency is eased too;
- **additive increase**: each answered call raises the limit by 1/limit (one call per round), up to the ceiling;
- **probe**: after `probe_after` seconds without a 429, the ceiling rises by one, so a limit that was only
  temporary (a burst quota) is not kept for the rest of the run;
- **honour Retry-After**: after the first 429 of a round no new call starts before the time the server asked for
  (capped at 5 minutes); each turned-away call also waits its own Retry-After before it is retried (calls.py).

Only calls count, not their retries' sleeps: a call waiting out its backoff holds no slot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
MAX_PAUSE = 300.0


@dataclass
class Slot:
    """One call in flight, and the round (epoch) of the limit it started under."""

    id: int
    epoch: int


class Throttle:
    def __init__(self, limit: int, *, probe_after: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] | None = None):
        self.max = max(1, int(limit))
        self.limit = float(self.max)
        self.ceiling = self.max
        self.probe_after, self.clock, self.log = probe_after, clock, log
        self.in_flight = 0
        self.peak = 0
        self.rate_limited = 0  # calls the provider turned away
        self._epoch = 0
        self._next_id = 0
        self._outstanding: set[int] = set()
        self._watch: set[int] | None = None  # calls in flight when one was turned away, until all are back
        self._watch_ok = 0  # how many of them were answered
        self._resume_at = 0.0
        self._last_429: float | None = None
        self._cond = threading.Condition()

    def allowed(self) -> int:
        """Calls that may be in flight now."""
        return max(1, min(int(self.limit), self.ceiling))

    def _probe(self, now: float) -> None:
        if self.ceiling < self.max and self._last_429 is not None and now - self._last_429 >= self.probe_after:
            self.ceiling += 1
            self._last_429 = now  # one more per quiet period

    def acquire(self) -> Slot:
        with self._cond:
            while True:
                now = self.clock()
                self._probe(now)
                if now < self._resume_at:
                    self._cond.wait(self._resume_at - now)
                elif self._watch is not None or self.in_flight >= self.allowed():
                    self._cond.wait(1.0)
                else:
                    break
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._next_id += 1
            self._outstanding.add(self._next_id)
            return Slot(self._next_id, self._epoch)

    def release(self, slot: Slot, *, rate_limited: bool = False, retry_after: float | None = None,
                answered: bool = True) -> None:
        """The call of `slot` is back: answered, failed (`answered=False`), or turned away (`rate_limited`)."""
        with self._cond:
            self.in_flight -= 1
            self._outstanding.discard(slot.id)
            before = self.allowed()
            if self._watch is not None and slot.id in self._watch:
                self._watch.discard(slot.id)
                self._watch_ok += answered and not rate_limited
            if rate_limited:
                self.rate_limited += 1
                now = self.clock()
                self._last_429 = now
                if slot.epoch == self._epoch:  # the first 429 of this round: halve once, pause as asked
                    self.limit = max(1.0, self.limit / 2)
                    self._epoch += 1
                    if retry_after is not None:
                        self._resume_at = max(self._resume_at, now + min(max(retry_after, 0.0), MAX_PAUSE))
                if self._watch is None and self._outstanding:
                    self._watch, self._watch_ok = set(self._outstanding), 0
            elif answered and self.limit < self.ceiling:
                self.limit = min(float(self.ceiling), self.limit + 1 / self.limit)
            if self._watch is not None and not self._watch:  # all back: the provider took this many at once
                if self._watch_ok:
                    self.ceiling = min(self.ceiling, self._watch_ok)
                self._watch = None
            if self.log and self.allowed() < before:
                self.log(f"rate limited by the provider: at most {self.allowed()} call(s) in flight now "
                         f"(was {before})")
            self._cond.notify_all()

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` holding a slot; an exception with `rate_limited` (errors.TransientError) lowers the limit."""
        s = self.acquire()
        try:
            out = fn()
        except BaseException as exc:
            self.release(s, rate_limited=bool(getattr(exc, "rate_limited", False)),
                         retry_after=getattr(exc, "retry_after", None), answered=False)
            raise
        self.release(s)
        return out
