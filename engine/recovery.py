"""Journal records -> state, and the canonical digest of a run. Pure.

Recovery folds the journal in order into an :class:`~engine.orders.OrderBook`
(orders, fills, positions), the next client order id per strategy, the
trading state, the feed checkpoint and the latest actor checkpoints. The
OrderActor runs it on start; `--resume` runs it before restarting the feed.

The digest orders events by *event time* (tick seq), not by the order the
OrderActor happened to write them in: with batch size 4096 a round's
submissions are written before its fills, with batch size 1 they alternate,
yet both runs are the same trading history and must hash the same. Each
record has a canonical key (tick, phase, order id, step); bookkeeping records
(checkpoints, lifecycle, supervisor decisions) are not part of the history
and are left out. Fields ending in ``_wall_ns`` are zeroed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import msgspec

from engine.messages import (
    ActorCheckpoint, FeedCheckpoint, Fill, OrderDenied, OrderEvent, OrderRequest, OrderStatus,
    TradingState, TradingStateChanged, to_msgpack,
)  # fmt: skip
from engine.orders import OrderBook

HISTORY_TYPES = (OrderRequest, OrderDenied, OrderEvent, Fill, TradingStateChanged)

# Within one tick: fills and completions first (they happen "on" the tick,
# before anyone decides on it), then decisions, then acknowledgements.
_PHASE_OF_STATUS = {
    OrderStatus.FILLED: 0, OrderStatus.PARTIALLY_FILLED: 0, OrderStatus.CANCELED: 0,
    OrderStatus.EXPIRED: 0, OrderStatus.REJECTED: 2, OrderStatus.ACCEPTED: 2,
    OrderStatus.SUBMITTED: 1, OrderStatus.DENIED: 1, OrderStatus.PENDING_CANCEL: 2,
    OrderStatus.INITIALIZED: 1,
}  # fmt: skip
_STEP_OF_STATUS = {s: k for k, s in enumerate(OrderStatus)}


def canonical_key(rec: Any) -> tuple:
    if isinstance(rec, OrderRequest):
        return (rec.decision_seq, 1, rec.client_order_id, 0, "")
    if isinstance(rec, OrderDenied):
        return (rec.decision_seq, 1, rec.client_order_id, 1, "")
    if isinstance(rec, OrderEvent):
        return (rec.event_seq, _PHASE_OF_STATUS[rec.status], rec.client_order_id, 10 + _STEP_OF_STATUS[rec.status], "")
    if isinstance(rec, Fill):
        return (rec.event_seq, 0, rec.client_order_id, 5, rec.trade_id)
    if isinstance(rec, TradingStateChanged):
        return (rec.event_seq, 3, "", 0, rec.state.value + rec.reason)
    raise TypeError(f"not a history record: {type(rec).__name__}")


_WALL_FIELDS: dict[type, dict[str, int]] = {}


def _scrub(rec: Any) -> Any:
    walls = _WALL_FIELDS.get(type(rec))
    if walls is None:  # once per type: a digest of a long run scrubs millions of records
        walls = _WALL_FIELDS[type(rec)] = {f: 0 for f in rec.__struct_fields__ if f.endswith("_wall_ns")}
    return msgspec.structs.replace(rec, **walls) if walls else rec


def canonical_digest(records: Iterable[Any]) -> str:
    """sha256 over the history records in canonical event order (see module doc)."""
    history = [r for r in records if isinstance(r, HISTORY_TYPES)]
    history.sort(key=canonical_key)
    h = hashlib.sha256()
    for rec in history:
        body = to_msgpack(_scrub(rec))
        h.update(type(rec).__name__.encode())
        h.update(len(body).to_bytes(4, "little"))
        h.update(body)
    return h.hexdigest()


_CID_RE = re.compile(r"^(?P<sid>.+)-(?P<n>\d+)$")


@dataclass
class RecoveredState:
    book: OrderBook = field(default_factory=OrderBook)
    next_id: dict[str, int] = field(default_factory=dict)  # strategy id -> next client order number
    trading_state: TradingState | None = None
    trading_reason: str = ""
    feed_checkpoints: dict[str, FeedCheckpoint] = field(default_factory=dict)
    actor_checkpoints: dict[str, ActorCheckpoint] = field(default_factory=dict)
    denied: int = 0
    records: int = 0


def fold(records: Iterable[tuple[int, Any]]) -> RecoveredState:
    """Rebuild engine state from journal records, in journal order."""
    st = RecoveredState()
    book = st.book
    for _seq, rec in records:
        st.records += 1
        if isinstance(rec, OrderRequest):
            if not book.known(rec.client_order_id):
                book.submit(rec)
            _bump(st, rec.client_order_id)
        elif isinstance(rec, OrderDenied):
            if not book.known(rec.client_order_id):
                book.deny(None, rec.client_order_id, rec.strategy_id, rec.decision_seq)
                st.denied += 1
            _bump(st, rec.client_order_id)
        elif isinstance(rec, OrderEvent):
            book.apply_event(rec)
        elif isinstance(rec, Fill):
            book.apply_fill(rec)
        elif isinstance(rec, TradingStateChanged):
            st.trading_state = rec.state
            st.trading_reason = rec.reason
        elif isinstance(rec, FeedCheckpoint):
            st.feed_checkpoints[rec.feed] = rec
        elif isinstance(rec, ActorCheckpoint):
            st.actor_checkpoints[rec.name] = rec
    return st


def _bump(st: RecoveredState, cid: str) -> None:
    m = _CID_RE.match(cid)
    if m:
        sid, n = m.group("sid"), int(m.group("n"))
        if n + 1 > st.next_id.get(sid, 1):
            st.next_id[sid] = n + 1
