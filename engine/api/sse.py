"""Per-client event channels for the server-sent events stream.

Why a channel per client with a fixed capacity: events are offered from the
EventHub's thread; a client that reads slowly (or a stalled browser tab)
must cost a bounded amount of memory. When the channel is full, new events
are dropped and counted, and the client gets one ``gap`` notice telling it
how many it missed (it can re-read the REST endpoints to resync).

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
