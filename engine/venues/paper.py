"""Simulated matching driven by event time. Pure: no threads, no clocks.

Rules (the contract a strategy's shadow of its own orders relies on):

* A market order decided on tick ``i`` fills in full at the price of the
  first tick after ``i`` (``i + 1``; no look-ahead), adjusted by
  ``slippage_bps`` against the taker, plus fees (``fee_bps`` of notional +
  ``fee_per_unit``).
* A limit order decided on tick ``i`` fills at its limit price on the first
  tick ``j > i`` whose trade price reaches it (buy: price <= limit; sell:
  price >= limit). Partial fills are not simulated yet (``partial_fills``
  is accepted and ignored; see README "Left out").
* Orders are independent of each other (no shared queue position), so the
  order in which rounds deliver them never changes the result.
* Trade ids are ``T<tick_seq>-<client_order_id>[-n]``: deterministic, unique,
  and what the OrderActor deduplicates fills on.

The venue keeps the last ``history`` rounds of ticks, so an order that
arrives late (a strategy re-deciding after a rollback) still fills on the
tick after its decision.
"""

from __future__ import annotations

import bisect
import collections
import itertools
from dataclasses import dataclass

import numpy as np

from engine.config import VenueSection
from engine.messages import (
    Fill, FillBlock, Order, OrderBlock, OrderEvent, OrderRequest, OrderStatus, OrderType, Round, Side, VenueReport,
    freeze,
)  # fmt: skip


@dataclass(slots=True)
class _Resting:
    request: OrderRequest
    filled: float = 0.0
    fills: int = 0
    accepted: bool = False
    checked_through: int = -1  # last tick seq already matched against


class PaperVenue:
    name = "paper"

    def __init__(self, cfg: VenueSection, history: int = 64):
        self.cfg = cfg
        self._orders: dict[str, _Resting] = {}
        self._history: collections.deque = collections.deque(maxlen=history)  # (first_seq, ts, price, size)
        self.watermark = -1

    def connect(self) -> None:
        return None

    # -- rounds
    def on_round(self, rnd: Round) -> VenueReport:
        events: list[OrderEvent] = []
        fills: list[Fill] = []
        for cid in rnd.cancels:
            self._cancel(cid, rnd, events)
        if rnd.price is not None and len(rnd.price):
            self._history.append((rnd.first_tick_seq, rnd.ts_ns, rnd.price))
            self.watermark = max(self.watermark, rnd.first_tick_seq + len(rnd.price) - 1)
        fill_blocks = []
        for blk in rnd.blocks:
            fb = self._fill_block(blk, rnd)
            if fb is not None:
                fill_blocks.append(fb)
            else:  # not matchable inside this round: its orders rest like any other
                for req in blk.requests():
                    self._orders.setdefault(req.client_order_id, _Resting(req))
        for req in rnd.approved:
            if req.client_order_id in self._orders:
                continue  # idempotent: a re-sent order is not entered twice
            self._orders[req.client_order_id] = _Resting(req)
        self._match(events, fills)
        if rnd.end_of_stream:
            for cid in sorted(self._orders):
                r = self._orders[cid]
                if r.request.order_type is OrderType.MARKET:
                    # No tick after the decision: it can never fill.
                    events.append(self._event(r, OrderStatus.EXPIRED, r.request.decision_seq, 0, "no tick after decision"))
                    del self._orders[cid]
        return VenueReport(
            feed=rnd.feed, batch_seq=rnd.batch_seq, symbol=rnd.symbol, events=events, fills=fills,
            watermark=self.watermark, end_of_stream=rnd.end_of_stream, strategies=rnd.strategies,
            recv_wall_ns=rnd.recv_wall_ns, fill_blocks=fill_blocks,
        )  # fmt: skip

    def _fill_block(self, blk: OrderBlock, rnd: Round) -> FillBlock | None:
        """Fill every market order of ``blk`` on the tick after its decision, in one pass.

        The same rule and the same float operations as :meth:`_fill_from`, over
        columns. None if some order's next tick is not in this round's ticks.
        """
        if rnd.price is None or not len(blk):
            return None
        idx = blk.decision_seq - (rnd.first_tick_seq - 1)
        if int(idx.min()) < 1 or int(idx.max()) >= len(rnd.price):
            return None
        px = np.asarray(rnd.price, dtype=np.float64)[idx]
        slip = px * self.cfg.slippage_bps / 1e4
        px = np.where(blk.side > 0, px + slip, px - slip)
        qty = blk.quantity
        fee = px * qty * self.cfg.fee_bps / 1e4 + qty * self.cfg.fee_per_unit
        return FillBlock(
            strategy_id=blk.strategy_id, symbol=blk.symbol, first_number=blk.first_number, side=blk.side,
            quantity=qty, price=freeze(px), fee=freeze(fee), event_seq=freeze(idx + rnd.first_tick_seq),
            ts_ns=freeze(np.asarray(rnd.ts_ns)[idx]),
        )  # fmt: skip

    def _match(self, events: list[OrderEvent], fills: list[Fill]) -> None:
        if not self._orders:
            return  # most rounds: nothing rests, and listing the history's starts is ~2 µs
        done = []
        history = self._history
        firsts = [h[0] for h in history]
        for cid, r in self._orders.items():
            req = r.request
            if not r.accepted and req.order_type is not OrderType.MARKET:
                # A limit order rests: acknowledge it. A market order's next event is its fill.
                r.accepted = True
                events.append(self._event(r, OrderStatus.ACCEPTED, req.decision_seq, req.decision_ts_ns))
            target = max(req.decision_seq + 1, r.checked_through + 1)
            k = max(bisect.bisect_right(firsts, target) - 1, 0)
            for first, ts, price in itertools.islice(history, k, None):
                n = len(price)
                start = target - first
                if start >= n:
                    continue
                if self._fill_from(r, first, ts, price, max(start, 0), events, fills):
                    done.append(cid)
                    break
                r.checked_through = first + n - 1
        for cid in done:
            del self._orders[cid]

    def _fill_from(self, r: _Resting, first: int, ts: np.ndarray, price: np.ndarray, start: int,
                   events: list[OrderEvent], fills: list[Fill]) -> bool:
        """Fill ``r`` over ticks ``start..`` of one history chunk; True when complete."""
        req = r.request
        # Ticks already consumed for this order are those <= last fill seq.
        if req.order_type is OrderType.MARKET:
            idx = start
        else:
            lim = req.limit_price
            seg = price[start:]
            hits = np.flatnonzero(seg <= lim) if req.side is Side.BUY else np.flatnonzero(seg >= lim)
            if not len(hits):
                return False
            idx = start + int(hits[0])
        seq = first + idx
        px = float(price[idx])
        if req.order_type is OrderType.MARKET:
            slip = px * self.cfg.slippage_bps / 1e4
            px = px + slip if req.side is Side.BUY else px - slip
        else:
            px = float(req.limit_price)
        qty = req.quantity - r.filled
        fee = px * qty * self.cfg.fee_bps / 1e4 + qty * self.cfg.fee_per_unit
        r.filled += qty
        r.fills += 1
        trade_id = f"T{seq}-{req.client_order_id}" + (f"-{r.fills}" if r.fills > 1 else "")
        ts_ns = int(ts[idx])
        fills.append(Fill(
            client_order_id=req.client_order_id, strategy_id=req.strategy_id, trade_id=trade_id,
            symbol=req.symbol, side=req.side, quantity=qty, price=px, fee=fee, event_seq=seq, ts_ns=ts_ns,
        ))  # fmt: skip
        events.append(self._event(r, OrderStatus.FILLED, seq, ts_ns, avg=px))
        return True

    def _cancel(self, cid: str, rnd: Round, events: list[OrderEvent]) -> None:
        r = self._orders.pop(cid, None)
        if r is None:
            return
        seq = max(self.watermark, r.request.decision_seq)
        events.append(self._event(r, OrderStatus.CANCELED, seq, 0, "canceled"))

    def _event(self, r: _Resting, status: OrderStatus, seq: int, ts_ns: int, reason: str = "", avg: float = 0.0) -> OrderEvent:
        req = r.request
        return OrderEvent(
            client_order_id=req.client_order_id, strategy_id=req.strategy_id, symbol=req.symbol,
            status=status, event_seq=seq, ts_ns=ts_ns, filled_qty=r.filled, avg_price=avg,
            venue_order_id=f"P-{req.client_order_id}", reason=reason,
        )  # fmt: skip

    # -- reconciliation
    def open_orders(self) -> list[Order]:
        out = []
        for r in self._orders.values():
            q = r.request
            out.append(Order(
                client_order_id=q.client_order_id, strategy_id=q.strategy_id, symbol=q.symbol, side=q.side,
                quantity=q.quantity, order_type=q.order_type, status=OrderStatus.ACCEPTED,
                limit_price=q.limit_price, filled_qty=r.filled, decision_seq=q.decision_seq,
            ))  # fmt: skip
        return out

    def restore(self, orders: list[Order]) -> None:
        for o in orders:
            if o.client_order_id in self._orders or o.status is OrderStatus.SUBMITTED:
                # SUBMITTED = never acknowledged: this venue never knew it, so it is
                # re-sent (and acknowledged) by the OrderActor, not silently adopted.
                continue
            req = OrderRequest(
                client_order_id=o.client_order_id, strategy_id=o.strategy_id, symbol=o.symbol, side=o.side,
                quantity=o.quantity, order_type=o.order_type, limit_price=o.limit_price, decision_seq=o.decision_seq,
            )  # fmt: skip
            self._orders[o.client_order_id] = _Resting(req, filled=o.filled_qty, accepted=True)
