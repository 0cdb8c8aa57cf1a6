"""Sliding-window rate limits with an injectable clock.

Why a sliding log instead of Litestar's RateLimitConfig: a fixed window lets a
client send the full quota at the end of one window and again at the start of
the next (2x the limit in a few seconds), and it cannot express "5 per 15
minutes". Here every key keeps the timestamps of its admitted requests inside
the window (at most ``limit`` of them), so "60 per minute" holds over *every*
60-second interval, and memory per key is bounded by construction.

Pure logic: no threads, no I/O. The clock is a parameter so tests move time
instead of sleeping.
"""

from __future__ import annotations

import collections
import math
from typing import Callable, Hashable

import msgspec


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    remaining: int
    retry_after_s: int  # whole seconds a client should wait (0 when allowed)


class SlidingWindowLimiter:
    """At most ``limit`` admitted events per key in any ``window_s`` interval.

    ``max_keys`` bounds the number of tracked clients: when exceeded, keys whose
    windows are empty are dropped first, then the least recently used.
    """

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float], max_keys: int = 10_000):
        if limit < 1 or window_s <= 0:
            raise ValueError(f"rate limit needs limit >= 1 and window_s > 0, got {limit} per {window_s}s")
        self.limit = limit
        self.window_s = float(window_s)
        self._clock = clock
        self._max_keys = max_keys
        self._log: collections.OrderedDict[Hashable, collections.deque[float]] = collections.OrderedDict()

    def _window(self, key: Hashable, now: float) -> collections.deque[float]:
        times = self._log.get(key)
        if times is None:
            self._evict(room_for_one=True)
            times = collections.deque()
            self._log[key] = times
        else:
            self._log.move_to_end(key)
        horizon = now - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        return times

    def check(self, key: Hashable) -> Decision:
        """Would one more event for ``key`` be allowed now? Records nothing."""
        now = self._clock()
        times = self._window(key, now)
        if len(times) < self.limit:
            return Decision(True, self.limit - len(times) - 1, 0)
        wait = times[0] + self.window_s - now
        return Decision(False, 0, max(1, math.ceil(wait)))

    def hit(self, key: Hashable) -> Decision:
        """Admit and record one event for ``key``, or refuse it (refusals are not recorded,
        so a client hammering a closed door does not push its own reopening back)."""
        decision = self.check(key)
        if decision.allowed:
            self._log[key].append(self._clock())
        return decision

    def record(self, key: Hashable) -> None:
        """Record an event unconditionally (used after a combined check of several keys)."""
        self._window(key, self._clock()).append(self._clock())

    def _evict(self, room_for_one: bool) -> None:
        limit = self._max_keys - (1 if room_for_one else 0)
        if len(self._log) <= limit:
            return
        now = self._clock()
        for key in [k for k, t in self._log.items() if not t or t[-1] <= now - self.window_s]:
            del self._log[key]
        while len(self._log) > limit:
            self._log.popitem(last=False)

    def tracked_keys(self) -> int:
        return len(self._log)
