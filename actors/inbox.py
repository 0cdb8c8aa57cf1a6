"""A two-lane actor mailbox: control messages overtake a data backlog.

Why: pykka gives every actor one FIFO ``queue.Queue``. Under a burst an
actor can hold thousands of queued batches, and a ``KillSwitch``, a
``SetTradingState`` or a ``Heartbeat`` would wait behind all of them: the
kill switch would act seconds late and a busy-but-healthy actor would look
hung. :class:`PriorityInbox` keeps two FIFO lanes; ``get`` serves the fast
lane first. Order is preserved *within* each lane, so data stays in order
and so do control messages.

Why a ``queue.Queue`` subclass: ``_init/_qsize/_put/_get`` are the
documented extension points (``PriorityQueue`` uses them), so every caller
of the stock inbox keeps working unchanged: pykka's ``put/get/empty``, the
monitor's ``qsize()``, the directory's ``get_nowait()`` drain, timeouts and
``queue.Empty``. A put costs one extra dict lookup (the lane of the
message's class is cached).

pykka's internal stop message is never a priority type, so it stays in the
normal lane: ``stop()`` still runs after every message sent before it.
"""

from __future__ import annotations

import collections
import queue
from typing import Any, Iterable

from engine.messages import (
    CancelAll,
    Flatten,
    GetActorTree,
    GetMetrics,
    GetOrder,
    GetOrders,
    GetPnL,
    GetPositions,
    GetTradingState,
    Heartbeat,
    KillSwitch,
    SetTradingState,
)


class Lanes:
    """Two FIFO lanes and the rule that picks one: what every mailbox here shares.

    Used under the queue's mutex by :class:`PriorityInbox` and without one by
    the shared loop's mailbox (actors/loop.py).
    """

    __slots__ = ("priority_types", "_is_fast", "fast", "normal")

    def __init__(self, priority_types: Iterable[type] = ()):
        self.priority_types: tuple[type, ...] = tuple(priority_types)
        for typ in self.priority_types:
            if not isinstance(typ, type):
                raise TypeError(f"PriorityInbox: priority_types must be classes, got {typ!r}")
        # message class -> True (fast lane) / False; filled on first sight of a class.
        self._is_fast: dict[type, bool] = {typ: True for typ in self.priority_types}
        self.fast: collections.deque[Any] = collections.deque()
        self.normal: collections.deque[Any] = collections.deque()

    def push(self, envelope: Any) -> None:
        cls = type(envelope.message)  # pykka only ever puts Envelopes
        fast = self._is_fast.get(cls)
        if fast is None:
            fast = self._is_fast[cls] = issubclass(cls, self.priority_types)
        (self.fast if fast else self.normal).append(envelope)

    def pop(self) -> Any:
        """The next envelope, fast lane first; IndexError when both are empty."""
        if self.fast:
            try:
                return self.fast.popleft()
            except IndexError:  # taken meanwhile (the lock-free mailbox has two takers at most)
                pass
        return self.normal.popleft()

    def __len__(self) -> int:
        return len(self.fast) + len(self.normal)

    def sizes(self) -> tuple[int, int]:
        return len(self.fast), len(self.normal)


class PriorityInbox(queue.Queue):
    """Unbounded mailbox with a fast lane for ``priority_types`` (and their subclasses)."""

    def __init__(self, priority_types: Iterable[type] = ()):
        self._lanes = Lanes(priority_types)
        self.priority_types = self._lanes.priority_types
        super().__init__()

    # -- queue.Queue extension points (called with the queue's mutex held)
    def _init(self, maxsize: int) -> None:
        pass  # the lanes exist already

    def _qsize(self) -> int:
        return len(self._lanes)

    def _put(self, envelope: Any) -> None:
        self._lanes.push(envelope)

    def _get(self) -> Any:
        return self._lanes.pop()

    # -- introspection
    def lane_sizes(self) -> tuple[int, int]:
        """(fast, normal) queued counts, read consistently."""
        with self.mutex:
            return self._lanes.sizes()


# Control and query messages: what must not wait behind a data backlog.
DEFAULT_PRIORITY_TYPES: tuple[type, ...] = (
    Heartbeat, KillSwitch, SetTradingState, Flatten, CancelAll, GetTradingState,
    GetOrders, GetOrder, GetPositions, GetPnL, GetActorTree, GetMetrics,
)  # fmt: skip
