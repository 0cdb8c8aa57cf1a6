"""Pre-trade checks: pure functions of (order, risk state, limits).

Why pure: the SafetyActor only owns the state and the mailbox; every rule is
here, testable without threads, and each denial carries a stable
:class:`~engine.messages.DenyReason` a client can match on (after SEC 15c3-5's
list: size, price, credit, duplicates, rate; after NautilusTrader's states).

Exposure, not fills: the position limit is checked against the *worst-case*
exposure (filled position plus every approved order, as if it fills). That
is what a prudent risk engine does, and it also makes the check a function of
the approved-order sequence only, so a replay decides the same whatever the
thread timing or batch size.
"""

from __future__ import annotations

import collections
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from engine.config import Instrument, RiskSection
from engine.kernels import kernel
from engine.messages import DenyReason, OrderBlock, OrderRequest, OrderType, Side, TradingState


@dataclass
class RiskState:
    """Mutable inputs of the checks; owned by the SafetyActor."""

    trading_state: TradingState = TradingState.ACTIVE
    kill_switch: bool = False
    # Signed worst-case exposure per symbol: position plus approved, not yet terminal orders.
    exposure: dict[str, float] = field(default_factory=dict)
    last_price: dict[str, float] = field(default_factory=dict)
    last_ts_ns: dict[str, int] = field(default_factory=dict)
    seen_ids: "SeenIds" = field(default_factory=lambda: SeenIds())
    # Event-time stamps (ns) of recently approved orders, for the rate limit.
    recent: collections.deque = field(default_factory=collections.deque)
    realized_pnl_today: float = 0.0


def snapshot_state(state: RiskState) -> dict:
    """The risk state as plain data (for a pipeline checkpoint)."""
    return {
        "trading_state": state.trading_state.value, "kill_switch": state.kill_switch,
        "exposure": state.exposure, "last_price": state.last_price, "last_ts_ns": state.last_ts_ns,
        "seen_ids": state.seen_ids.to_builtins(), "recent": list(state.recent),
        "realized_pnl_today": state.realized_pnl_today,
    }  # fmt: skip


def restore_state(data: dict) -> RiskState:
    return RiskState(
        trading_state=TradingState(data["trading_state"]), kill_switch=data["kill_switch"],
        exposure=dict(data["exposure"]), last_price=dict(data["last_price"]), last_ts_ns=dict(data["last_ts_ns"]),
        seen_ids=SeenIds.from_builtins(data["seen_ids"]), recent=collections.deque(data["recent"]),
        realized_pnl_today=data["realized_pnl_today"],
    )  # fmt: skip


def signed(side: Side, qty: float) -> float:
    return qty if side is Side.BUY else -qty


@functools.lru_cache(maxsize=4096)
def _client_number(cid: str, strategy_id: str) -> int | None:
    """``n`` of a strategy-minted id ``<strategy>-<n>`` (each order is looked at thrice: parse once)."""
    sid, sep, n = cid.rpartition("-")
    if sep and sid == strategy_id and n.isdigit():
        return int(n)
    return None


class SeenIds:
    """Client ids already approved, in bounded memory.

    A strategy mints ``<strategy>-<n>`` with ``n`` rising, so for those one
    number per strategy says which ids were seen (the OrderActor, owner of
    order state, answers a re-send with what already happened). Other ids
    (API, operator) keep their signature, so a different order under a used
    id is told apart from a re-send.
    """

    def __init__(self) -> None:
        self._max_n: dict[str, int] = {}
        self._other: dict[str, tuple] = {}

    @staticmethod
    def _n(order: OrderRequest) -> int | None:
        return _client_number(order.client_order_id, order.strategy_id)

    def add(self, order: OrderRequest) -> None:
        n = self._n(order)
        if n is None:
            self._other[order.client_order_id] = signature(order)
        elif n > self._max_n.get(order.strategy_id, 0):
            self._max_n[order.strategy_id] = n

    def max_number(self, strategy_id: str) -> int:
        """The highest ``n`` of ``<strategy_id>-<n>`` seen (0: none)."""
        return self._max_n.get(strategy_id, 0)

    def add_numbers(self, strategy_id: str, last: int) -> None:
        """Every id ``<strategy_id>-<n>`` with ``n <= last`` of a block was approved."""
        if last > self._max_n.get(strategy_id, 0):
            self._max_n[strategy_id] = last

    def seen(self, order: OrderRequest) -> bool:
        n = self._n(order)
        if n is None:
            return order.client_order_id in self._other
        return n <= self._max_n.get(order.strategy_id, 0)

    def to_builtins(self) -> dict:
        return {"max_n": self._max_n, "other": {k: list(v) for k, v in self._other.items()}}

    @classmethod
    def from_builtins(cls, data: dict) -> "SeenIds":
        out = cls()
        out._max_n = dict(data["max_n"])
        out._other = {k: tuple(v) for k, v in data["other"].items()}
        return out

    def resubmission(self, order: OrderRequest) -> bool:
        n = self._n(order)
        if n is None:
            return self._other.get(order.client_order_id) == signature(order)
        return n <= self._max_n.get(order.strategy_id, 0)


def signature(order: OrderRequest) -> tuple:
    """What makes two submissions with one client id the same order."""
    return (order.symbol, order.side.value, order.quantity, order.order_type.value, order.limit_price, order.decision_seq)


def is_resubmission(order: OrderRequest, state: RiskState) -> bool:
    """The same client id with the same content: an idempotent re-send, not a new order."""
    return state.seen_ids.resubmission(order)


def is_reducing(order: OrderRequest, position: float) -> bool:
    """True if the order only moves the position toward zero (never through it)."""
    delta = signed(order.side, order.quantity)
    return position != 0 and (position > 0) != (delta > 0) and abs(delta) <= abs(position)


def check_order(
    order: OrderRequest,
    state: RiskState,
    limits: RiskSection,
    instruments: dict[str, Instrument],
    now_ns: int,
) -> tuple[DenyReason, str] | None:
    """Return None to approve, or (reason, detail) to deny. Never mutates ``state``."""
    if state.kill_switch:
        return DenyReason.KILL_SWITCH, "kill switch engaged"
    if state.seen_ids.seen(order):
        return DenyReason.DUPLICATE_CLIENT_ORDER_ID, order.client_order_id
    inst = instruments.get(order.symbol)
    if inst is None:
        return DenyReason.UNKNOWN_INSTRUMENT, order.symbol
    qty = order.quantity
    if not math.isfinite(qty) or qty <= 0:
        return DenyReason.INVALID_QUANTITY, f"quantity must be a finite number > 0, got {qty}"
    if qty > limits.max_order_qty:
        return DenyReason.MAX_ORDER_QTY, f"{qty:g} > {limits.max_order_qty:g}"
    # Exposure, not settled fills: deterministic, and the prudent reading.
    position = state.exposure.get(order.symbol, 0.0)
    if state.trading_state is TradingState.HALTED:
        return DenyReason.TRADING_HALTED, "trading is HALTED"
    if state.trading_state is TradingState.REDUCING and not is_reducing(order, position):
        return DenyReason.REDUCING_ONLY, "trading is REDUCING: only orders that reduce a position"
    if limits.require_warm_indicators and not order.warm:
        return DenyReason.INDICATOR_NOT_WARM, "decided before its indicators were warm"
    last = state.last_price.get(order.symbol, 0.0)
    ref_price = order.limit_price if order.order_type is OrderType.LIMIT else (order.decision_price or last)
    if order.order_type is OrderType.LIMIT:
        lp = order.limit_price
        if lp is None or not math.isfinite(lp) or lp <= 0:
            return DenyReason.INVALID_PRICE, f"limit price must be a finite number > 0, got {lp}"
    if not ref_price or ref_price <= 0:
        return DenyReason.NO_MARKET_DATA, f"no trade seen yet for {order.symbol}"
    if order.order_type is OrderType.LIMIT and last > 0:
        collar = last * limits.price_collar_pct / 100.0
        if abs(ref_price - last) > collar:
            return DenyReason.PRICE_COLLAR, f"limit {ref_price:g} is more than {limits.price_collar_pct:g}% from last {last:g}"
    if limits.stale_data_s > 0:
        last_ts = state.last_ts_ns.get(order.symbol, 0)
        if now_ns - last_ts > limits.stale_data_s * 1e9:
            return DenyReason.STALE_MARKET_DATA, f"last trade is {(now_ns - last_ts) / 1e9:.1f}s old"
    notional = qty * ref_price
    if notional > limits.max_notional:
        return DenyReason.MAX_NOTIONAL, f"{notional:.2f} > {limits.max_notional:g}"
    exposure = state.exposure.get(order.symbol, 0.0) + signed(order.side, qty)
    if abs(exposure) > limits.max_position and not is_reducing(order, position):
        return DenyReason.MAX_POSITION, f"exposure would be {exposure:g} (limit {limits.max_position:g})"
    window_start = now_ns - 1_000_000_000
    recent = sum(1 for t in state.recent if t > window_start)
    if recent + 1 > limits.max_orders_per_s:
        return DenyReason.RATE_LIMIT, f"more than {limits.max_orders_per_s:g} orders in 1 s"
    return None


def record_approval(order: OrderRequest, state: RiskState, now_ns: int) -> None:
    """Update the state after an approval (the caller journals and sends it)."""
    state.seen_ids.add(order)
    state.exposure[order.symbol] = state.exposure.get(order.symbol, 0.0) + signed(order.side, order.quantity)
    state.recent.append(now_ns)
    cutoff = now_ns - 1_000_000_000
    while state.recent and state.recent[0] <= cutoff:
        state.recent.popleft()


# Holds the GIL: a few µs, and releasing it costs a hand-off.
@kernel("i1[]", "f8[]", "f8[]", "i8[]", "f8", "i8[]", "f8", "f8", "f8", "f8", nogil=False)
def _within_limits(side: np.ndarray, qty: np.ndarray, ref: np.ndarray, now: np.ndarray, position: float,
                   window: np.ndarray, max_order_qty: float, max_notional: float, max_position: float,
                   max_rate: float) -> bool:
    """check_order's numeric rules for a run of orders, each seeing the ones before it (no state change)."""
    for k in range(qty.shape[0]):
        q = qty[k]
        if not (np.isfinite(q) and q > 0 and q <= max_order_qty and ref[k] > 0):
            return False
        if q * ref[k] > max_notional:
            return False
        delta = q if side[k] > 0 else -q
        after = position + delta
        reducing = position != 0 and (position > 0) != (delta > 0) and abs(delta) <= abs(position)
        if abs(after) > max_position and not reducing:
            return False
        position = after
    # Rate: orders in (now - 1 s, now], counting the block's earlier ones; the window must be in time order.
    m = window.shape[0]
    times = np.empty(m + now.shape[0], dtype=np.int64)
    for k in range(m):
        if k and window[k] < window[k - 1]:
            return False
        times[k] = window[k]
    lo = 0
    for k in range(now.shape[0]):
        t = now[k]
        size = m + k
        if size and t < times[size - 1]:
            return False
        while lo < size and times[lo] <= t - 1_000_000_000:
            lo += 1
        if size - lo + 1 > max_rate:
            return False
        times[size] = t
    return True


def block_passes(block: OrderBlock, state: RiskState, limits: RiskSection, instruments: dict[str, Instrument],
                 now_ns: list[int]) -> bool:
    """True if every order of ``block``, checked in turn by :func:`check_order`, would pass.

    The same rules over columns, for the common case only: anything that
    needs a closer look (a used id, a state other than ACTIVE, an order a rule
    would deny) answers False, and the caller checks the block's orders one
    by one, so every denial still comes from check_order with its reason.
    ``now_ns[k]`` is order k's "now" (its decision time in event time).
    """
    if state.kill_switch or state.trading_state is not TradingState.ACTIVE:
        return False
    if block.symbol not in instruments or block.first_number <= state.seen_ids.max_number(block.strategy_id):
        return False
    if limits.require_warm_indicators and not bool(block.warm.all()):
        return False
    if limits.stale_data_s > 0:
        last_ts = state.last_ts_ns.get(block.symbol, 0)
        if int(max(now_ns)) - last_ts > limits.stale_data_s * 1e9:  # the latest order is the stalest
            return False
    return bool(_within_limits(
        block.side, block.quantity, block.decision_price, np.asarray(now_ns, dtype=np.int64),
        float(state.exposure.get(block.symbol, 0.0)), np.fromiter(state.recent, dtype=np.int64, count=len(state.recent)),
        float(limits.max_order_qty), float(limits.max_notional), float(limits.max_position),
        float(limits.max_orders_per_s),
    ))  # fmt: skip


# Holds the GIL: a few µs, and releasing it costs a hand-off.
@kernel("f8", "i1[]", "f8[]", nogil=False)
def _sum_in_turn(start: float, side: np.ndarray, qty: np.ndarray) -> float:
    """start + each signed quantity in turn (the same float sums as order by order)."""
    for k in range(qty.shape[0]):
        start += qty[k] if side[k] > 0 else -qty[k]
    return start


def record_block(block: OrderBlock, state: RiskState, now_ns: list[int]) -> None:
    """:func:`record_approval` for every order of a block that passed :func:`block_passes`."""
    state.seen_ids.add_numbers(block.strategy_id, block.last_number)
    state.exposure[block.symbol] = _sum_in_turn(float(state.exposure.get(block.symbol, 0.0)), block.side, block.quantity)
    state.recent.extend(now_ns)
    cutoff = now_ns[-1] - 1_000_000_000
    while state.recent and state.recent[0] <= cutoff:
        state.recent.popleft()


def release_exposure(state: RiskState, symbol: str, side: Side, unfilled_qty: float) -> None:
    """An order ended (canceled, rejected, expired) with ``unfilled_qty`` never filled."""
    if unfilled_qty > 0:
        state.exposure[symbol] = state.exposure.get(symbol, 0.0) - signed(side, unfilled_qty)


def loss_limit_breached(state: RiskState, limits: RiskSection) -> bool:
    return -state.realized_pnl_today >= limits.daily_loss_limit
