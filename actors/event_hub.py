"""EventHub: the engine's live event bus for the API (dashboard, SSE).

Why an actor: engine actors *tell* it what happened (order events, fills,
state changes, supervisor decisions, metrics) and go on; the hub does the
fan-out on its own thread, so a slow or broken consumer can never slow the
trading path. It keeps a bounded ring of recent events so a new dashboard
starts with context, and the latest metrics and trading state.

Subscribers are callbacks; the list is copy-on-write behind a tiny lock, so
fan-out reads it without locking and ``unsubscribe`` may be called from any
thread. A callback must be cheap and non-blocking (the API's one puts the
event into a bounded per-client channel); a callback that raises is dropped.

The hub also counts what passes through it (orders by outcome, fills by
symbol, denials by reason) in the process-wide ``engine.metrics`` registry:
it sees every journaled order event exactly once, so ``/metrics`` gets these
counters without touching the trading path's actors.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Iterable

from loguru import logger

from actors.base import EngineActor, handles
from actors.directory import Directory
from engine import metrics
from engine.messages import (
    Fill,
    FillBlock,
    MetricsSnapshot,
    OrderDenied,
    OrderEvent,
    OrderUpdates,
    SupervisorDecision,
    TradingStateChanged,
)

EVENT_TYPES = (OrderEvent, Fill, OrderDenied, TradingStateChanged, SupervisorDecision, MetricsSnapshot)
Callback = Callable[[Any], None]


class EventHub(EngineActor):
    def __init__(self, name: str = "events", directory: Directory | None = None, supervisor: str | None = None,
                 capacity: int = 500):  # fmt: skip
        super().__init__(name, directory if directory is not None else Directory(), supervisor)
        # The last ``capacity`` events, where a FillBlock holds two per order (its fills and
        # FILLED events). Counted in events, not items: a ring of 500 items held up to 500
        # blocks, ~25k fills (about 1 MB on the bench job) to show the newest 500.
        self._capacity = capacity
        self._recent: collections.deque = collections.deque()
        self._held = 0  # events in _recent
        self._last_metrics: MetricsSnapshot | None = None
        self._last_state: TradingStateChanged | None = None
        self._subscribers: tuple[Callback, ...] = ()
        self._many: dict[Callback, Callable[[Any], None]] = {}
        self._lock = threading.Lock()
        self.published = 0

    # -- what the engine tells us
    @handles(OrderUpdates)
    def on_order_updates(self, msg: OrderUpdates) -> None:
        items = (*msg.events, *msg.fills, *msg.denials)
        for item in items:
            _count(item)
        self._remember(items)
        if msg.fill_blocks:
            # Counted and kept as columns; expanded to events only for someone who looks.
            for fb in msg.fill_blocks:
                _count_block(fb)
            self._remember(msg.fill_blocks)
            if self._subscribers:
                items = (*items, *(e for fb in msg.fill_blocks for e in _expand(fb)))
            else:
                self.published += 2 * sum(len(fb) for fb in msg.fill_blocks)
        self._fan_out_many(items)

    @handles(OrderEvent, Fill, OrderDenied, SupervisorDecision)
    def on_event(self, msg: Any) -> None:
        _count(msg)
        self._publish(msg)

    @handles(TradingStateChanged)
    def on_state(self, msg: TradingStateChanged) -> None:
        self._last_state = msg
        self._publish(msg)

    @handles(MetricsSnapshot)
    def on_metrics(self, msg: MetricsSnapshot) -> None:
        # Metrics are a stream of samples, not history: keep the latest, don't flood the ring.
        self._last_metrics = msg
        self._fan_out(msg)

    # -- subscribers (call through a proxy to get replay ordered with live events)
    def subscribe(self, callback: Callback, replay: bool = True, many: Callable[[Any], None] | None = None) -> Callable[[], None]:
        """Register ``callback``; with ``replay`` it first receives the recent ring and the
        latest state and metrics. ``many`` (optional) takes a sequence of events at once: the
        hub hands it a whole OrderUpdates' worth in one call (one lock for the consumer instead
        of one per event). Returns an idempotent, thread-safe ``unsubscribe``."""
        if replay:
            for event in self.recent():
                callback(event)
        with self._lock:
            self._subscribers = (*self._subscribers, callback)
            if many is not None:
                self._many[callback] = many

        def unsubscribe() -> None:
            self._drop(callback)

        return unsubscribe

    def recent(self) -> list[Any]:
        events: list[Any] = []
        for item in self._recent:
            if isinstance(item, FillBlock):
                events.extend(_expand(item))
            else:
                events.append(item)
        events = events[-self._capacity :]
        if self._last_state is not None and self._last_state not in events:
            events.insert(0, self._last_state)
        if self._last_metrics is not None:
            events.append(self._last_metrics)
        return events

    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # -- internals
    def _publish(self, event: Any) -> None:
        self._remember((event,))
        self._fan_out(event)

    def _remember(self, items: Iterable[Any]) -> None:
        """Keep ``items`` in the ring; drop the oldest while the rest still hold ``capacity`` events."""
        recent = self._recent
        for item in items:
            recent.append(item)
            self._held += _weight(item)
        while recent and self._held - _weight(recent[0]) >= self._capacity:
            self._held -= _weight(recent.popleft())

    def _fan_out(self, event: Any) -> None:
        self.published += 1
        for callback in self._subscribers:  # a snapshot: no lock on the hot path
            try:
                callback(event)
            except Exception as exc:  # noqa: BLE001 - a broken consumer must not break the hub
                logger.warning("event subscriber {!r} failed ({!r}); unsubscribed", callback, exc)
                self._drop(callback)

    def _fan_out_many(self, events: tuple[Any, ...]) -> None:
        if not events:
            return
        self.published += len(events)
        for callback in self._subscribers:
            many = self._many.get(callback)
            try:
                if many is not None:
                    many(events)
                else:
                    for event in events:
                        callback(event)
            except Exception as exc:  # noqa: BLE001 - a broken consumer must not break the hub
                logger.warning("event subscriber {!r} failed ({!r}); unsubscribed", callback, exc)
                self._drop(callback)

    def _drop(self, callback: Callback) -> None:
        with self._lock:
            self._subscribers = tuple(cb for cb in self._subscribers if cb is not callback)
            self._many.pop(callback, None)


_handles: dict[tuple[str, str], Any] = {}


def _counter(name: str, label: str, value: str) -> Any:
    """A cached ``metrics.Counter`` handle: building the labelled key per event cost 8% of actor CPU."""
    handle = _handles.get((name, value))
    if handle is None:
        handle = _handles[(name, value)] = metrics.counter(name, **{label: value})
    return handle


def _count(event: Any) -> None:
    """One counter per order event / fill / denial: a dict lookup and an add each."""
    if isinstance(event, OrderEvent):
        _counter("orders_total", "outcome", event.status.value).inc()
    elif isinstance(event, Fill):
        _counter("fills_total", "symbol", event.symbol).inc()
        _counter("filled_quantity_total", "symbol", event.symbol).inc(event.quantity)
    elif isinstance(event, OrderDenied):
        _counter("order_denials_total", "reason", event.reason.value).inc()


def _weight(item: Any) -> int:
    """Events an item of the ring stands for (see _expand)."""
    return 2 * len(item) if isinstance(item, FillBlock) else 1


def _expand(fb: FillBlock) -> list[Any]:
    return [*fb.fills(), *fb.events()]


def _count_block(fb: FillBlock) -> None:
    """_count for every fill and FILLED event of a FillBlock, in three adds."""
    n = len(fb)
    _counter("orders_total", "outcome", "FILLED").inc(n)
    _counter("fills_total", "symbol", fb.symbol).inc(n)
    _counter("filled_quantity_total", "symbol", fb.symbol).inc(float(fb.quantity.sum()))
