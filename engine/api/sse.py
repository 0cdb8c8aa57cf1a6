"""Per-client event channels for the server-sent events stream.

Why a channel per client with a fixed capacity: events are offered from the
EventHub's thread; a client that reads slowly (or a stalled browser tab)
must cost a bounded amount of memory. When the channel is full, new events
are dropped and counted, and the client gets one ``gap`` notice telling it
how many it missed (it can re-read the REST endpoints to resync). Under a
burst the stream also thins order/fill events (``thin``) and says so with a
``skipped`` event carrying the counts.

The loop is woken with ``call_soon_threadsafe`` only on the empty -> non-empty
transition, so even the loop's own callback queue stays bounded.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

import msgspec

from engine.messages import (
    Fill,
    MetricsSnapshot,
    OrderDenied,
    OrderEvent,
    PnL,
    SupervisorDecision,
    TradingStateChanged,
    TradingStateInfo,
)

EVENT_NAMES: dict[type, str] = {
    OrderEvent: "order",
    Fill: "fill",
    OrderDenied: "denied",
    TradingStateChanged: "state",
    TradingStateInfo: "state",
    SupervisorDecision: "supervisor",
    MetricsSnapshot: "metrics",
    PnL: "pnl",
}


class ChannelClosed(Exception):
    pass


class EventChannel:
    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int = 256):
        self._loop = loop
        self.capacity = capacity
        self._items: collections.deque = collections.deque()
        self._dropped = 0
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self.closed = False

    def offer(self, event: Any) -> None:
        """Any thread: enqueue ``event`` or count it as dropped. Never blocks.

        Raises :class:`ChannelClosed` once the client has gone, which makes the
        EventHub drop this subscriber even if its unsubscribe was lost."""
        if self.closed:
            raise ChannelClosed("SSE client disconnected")
        with self._lock:
            if len(self._items) >= self.capacity:
                self._dropped += 1
                return
            self._items.append(event)
            first = len(self._items) == 1
        if first:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # loop closed: the client is gone
                pass

    def offer_many(self, events) -> None:
        """Any thread: ``offer`` for a sequence, under one lock (the EventHub's batch path)."""
        if self.closed:
            raise ChannelClosed("SSE client disconnected")
        with self._lock:
            was_empty = not self._items
            room = self.capacity - len(self._items)
            if room >= len(events):
                self._items.extend(events)
            else:
                if room > 0:
                    self._items.extend(events[:room])
                self._dropped += len(events) - max(room, 0)
            first = was_empty and bool(self._items)
        if first:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # loop closed: the client is gone
                pass

    def close(self) -> None:
        """Loop thread: end the stream at the next read."""
        self.closed = True
        self._wake.set()

    async def take(self, timeout: float) -> tuple[list[Any], int]:
        """Wait up to ``timeout`` s; return ``(events, dropped_since_last_take)``."""
        if not self._items and not self.closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except (asyncio.TimeoutError, TimeoutError):
                pass
        self._wake.clear()
        with self._lock:
            items, self._items = list(self._items), collections.deque()
            dropped, self._dropped = self._dropped, 0
        return items, dropped

    def __len__(self) -> int:
        return len(self._items)


def event_name(event: Any) -> str:
    return EVENT_NAMES.get(type(event), type(event).__name__.lower())


def encode_event(event: Any) -> dict[str, str]:
    """A Litestar SSE message dict: ``{"event": name, "data": json}``."""
    data = msgspec.json.encode(event).decode() if isinstance(event, msgspec.Struct) else msgspec.json.encode(event).decode()
    return {"event": event_name(event), "data": data}


def sse_frame(messages: list[dict[str, str]]) -> bytes:
    """Several SSE messages as one chunk (one socket write): ``event: x\r\ndata: {...}\r\n\r\n`` each.

    The data is compact JSON, which never contains a raw line break, so one
    ``data:`` line per message is the whole encoding."""
    return "".join(f"event: {m['event']}\r\ndata: {m['data']}\r\n\r\n" for m in messages).encode()


BULK_EVENTS = (OrderEvent, Fill)


def thin(events: list[Any], keep: int) -> tuple[list[Any], dict[str, int]]:
    """Keep every rare event (state, denial, supervisor, metrics) and only the newest ``keep``
    order/fill events; return the kept events in order and how many of each kind were skipped.

    Why: the stream is a live view for people, not a feed. A replay at 2M ticks/s makes
    thousands of fills a second; encoding and parsing them all cost the engine (same GIL,
    same two cores) and no one can read them. The journal and ``GET /orders`` have them all.
    """
    bulk = [i for i, e in enumerate(events) if isinstance(e, BULK_EVENTS)]
    if len(bulk) <= keep:
        return events, {}
    drop = set(bulk[: len(bulk) - keep])
    skipped: dict[str, int] = {}
    for i in drop:
        name = event_name(events[i])
        skipped[name] = skipped.get(name, 0) + 1
    return [e for i, e in enumerate(events) if i not in drop], skipped
