"""The order state machine and the book of orders and positions. Pure, no I/O.

Why a table: every legal transition is one line below, so a reviewer can see
the whole lifecycle at once and an illegal transition (a fill after a cancel,
a second FILLED) is refused by lookup, never by scattered ``if``s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loguru import logger

from engine.messages import Fill, Order, OrderEvent, OrderRequest, OrderStatus, OrderType, PnL, Position, Side

S = OrderStatus

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.INITIALIZED: frozenset({S.DENIED, S.SUBMITTED}),
    S.SUBMITTED: frozenset({S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.ACCEPTED, S.EXPIRED}),
    S.DENIED: frozenset(),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}  # fmt: skip

TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
OPEN = frozenset({S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL})


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new in TRANSITIONS[current]


class IllegalTransition(Exception):
    pass


@dataclass(slots=True)
class OrderState:
    """Mutable state of one order; owned by exactly one OrderBook (one actor)."""

    request: OrderRequest
    status: OrderStatus = S.INITIALIZED
    filled_qty: float = 0.0
    avg_price: float = 0.0
    last_event_seq: int = -1
    venue_order_id: str = ""
    reason: str = ""

    @property
    def remaining(self) -> float:
        return self.request.quantity - self.filled_qty

    def view(self) -> Order:
        r = self.request
        return Order(
            client_order_id=r.client_order_id, strategy_id=r.strategy_id, symbol=r.symbol, side=r.side,
            quantity=r.quantity, order_type=r.order_type, status=self.status, limit_price=r.limit_price,
            filled_qty=self.filled_qty, avg_price=self.avg_price, decision_seq=r.decision_seq,
            last_event_seq=self.last_event_seq, venue_order_id=self.venue_order_id, reason=self.reason,
        )  # fmt: skip


@dataclass(slots=True)
class PositionState:
    symbol: str
    quantity: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    last_price: float = 0.0

    def apply_fill(self, side: Side, qty: float, price: float, fee: float) -> float:
        """Apply a fill; return the realized PnL it produced (before fees)."""
        signed = qty if side is Side.BUY else -qty
        realized = 0.0
        q = self.quantity
        if q == 0 or (q > 0) == (signed > 0):
            new_q = q + signed
            self.avg_price = (self.avg_price * abs(q) + price * abs(signed)) / abs(new_q)
            self.quantity = new_q
        else:
            closing = min(abs(signed), abs(q))
            direction = 1.0 if q > 0 else -1.0
            realized = (price - self.avg_price) * closing * direction
            new_q = q + signed
            if new_q == 0:
                self.avg_price = 0.0
            elif (new_q > 0) != (q > 0):  # flipped through zero
                self.avg_price = price
            self.quantity = new_q
        self.realized_pnl += realized
        self.fees += fee
        self.last_price = price
        return realized

    @property
    def unrealized_pnl(self) -> float:
        if self.quantity == 0 or self.last_price == 0:
            return 0.0
        return (self.last_price - self.avg_price) * self.quantity

    def view(self) -> Position:
        return Position(
            symbol=self.symbol, quantity=self.quantity, avg_price=self.avg_price,
            realized_pnl=self.realized_pnl, unrealized_pnl=self.unrealized_pnl,
            fees=self.fees, last_price=self.last_price,
        )  # fmt: skip


@dataclass
class OrderBook:
    """All orders, fills and positions. The OrderActor owns one; recovery rebuilds one."""

    orders: dict[str, OrderState] = field(default_factory=dict)
    positions: dict[str, PositionState] = field(default_factory=dict)
    trade_ids: set[str] = field(default_factory=set)
    open_ids: set[str] = field(default_factory=set)
    fills_count: int = 0
    illegal_transitions: int = 0
    # Filled position per (strategy id, symbol): what each strategy holds, for its restart.
    strategy_positions: dict[tuple[str, str], float] = field(default_factory=dict)
    # Equity curve points (event_seq, realized - fees) for reports; one per fill.
    equity: list[tuple[int, float]] = field(default_factory=list)

    def add(self, request: OrderRequest) -> OrderState:
        st = OrderState(request=request)
        self.orders[request.client_order_id] = st
        return st

    def get(self, cid: str) -> OrderState | None:
        return self.orders.get(cid)

    def apply_event(self, ev: OrderEvent) -> bool:
        """Apply a status change; refuse (log, count, return False) if illegal."""
        st = self.orders.get(ev.client_order_id)
        if st is None:
            logger.warning("event for unknown order {} ({})", ev.client_order_id, ev.status.value)
            self.illegal_transitions += 1
            return False
        if ev.status is st.status and ev.status is not S.PARTIALLY_FILLED:
            return False  # duplicate delivery: already applied
        if not can_transition(st.status, ev.status):
            logger.warning("illegal transition {} -> {} for {} refused", st.status.value, ev.status.value, ev.client_order_id)
            self.illegal_transitions += 1
            return False
        st.status = ev.status
        st.last_event_seq = ev.event_seq
        if ev.venue_order_id:
            st.venue_order_id = ev.venue_order_id
        if ev.reason:
            st.reason = ev.reason
        if ev.status in OPEN:
            self.open_ids.add(ev.client_order_id)
        else:
            self.open_ids.discard(ev.client_order_id)
        return True

    def apply_fill(self, fill: Fill) -> bool:
        """Apply a fill once (deduplicated by venue trade id)."""
        if fill.trade_id in self.trade_ids:
            return False
        st = self.orders.get(fill.client_order_id)
        if st is None:
            logger.warning("fill {} for unknown order {}", fill.trade_id, fill.client_order_id)
            return False
        self.trade_ids.add(fill.trade_id)
        total = st.filled_qty + fill.quantity
        st.avg_price = (st.avg_price * st.filled_qty + fill.price * fill.quantity) / total if total else 0.0
        st.filled_qty = total
        pos = self.positions.get(fill.symbol)
        if pos is None:
            pos = self.positions[fill.symbol] = PositionState(fill.symbol)
        pos.apply_fill(fill.side, fill.quantity, fill.price, fill.fee)
        key = (fill.strategy_id, fill.symbol)
        self.strategy_positions[key] = self.strategy_positions.get(key, 0.0) + (
            fill.quantity if fill.side is Side.BUY else -fill.quantity)
        self.fills_count += 1
        self.equity.append((fill.event_seq, self.realized_total() - self.fees_total()))
        return True

    def mark(self, symbol: str, price: float) -> None:
        pos = self.positions.get(symbol)
        if pos is not None and price > 0:
            pos.last_price = price

    def realized_total(self) -> float:
        return sum(p.realized_pnl for p in self.positions.values())

    def fees_total(self) -> float:
        return sum(p.fees for p in self.positions.values())

    def pnl(self) -> PnL:
        realized = self.realized_total()
        unrealized = sum(p.unrealized_pnl for p in self.positions.values())
        fees = self.fees_total()
        return PnL(
            realized_pnl=realized, unrealized_pnl=unrealized, fees=fees, total=realized + unrealized - fees,
            by_symbol={s: p.view() for s, p in self.positions.items()},
        )

    def open_orders(self) -> list[OrderState]:
        return [self.orders[c] for c in sorted(self.open_ids)]

    def position_qty(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.quantity if pos else 0.0


def is_market(request: OrderRequest) -> bool:
    return request.order_type is OrderType.MARKET
