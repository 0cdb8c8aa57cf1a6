"""The trading path's pure parts: state table, risk checks, paper venue, the optimistic runner."""

from __future__ import annotations

import numpy as np
import pytest

from engine import risk
from engine.config import Instrument, RiskSection, VenueSection
from engine.indicators import rsi
from engine.messages import (
    DenyReason, Fill, IndicatorBatch, OrderDenied, OrderEvent, OrderRequest, OrderStatus, OrderType, OrderUpdates,
    Round, Side, TradingState, freeze,
)  # fmt: skip
from engine.orders import TRANSITIONS, OrderBook, PositionState, can_transition
from engine.venues.paper import PaperVenue
from strategies.base import StrategyRunner
from strategies.rsi_mean_reversion import RsiMeanReversion, RsiMeanReversionPerTick, RsiParams
from tests.paths import needs_shared, spy_prices

S = OrderStatus


def req(cid="s-1", side=Side.BUY, qty=1.0, seq=0, **kw):
    kw.setdefault("decision_price", 100.0)
    return OrderRequest(client_order_id=cid, strategy_id="s", symbol="SPY", side=side, quantity=qty,
                        decision_seq=seq, decision_ts_ns=seq * 1_000_000, **kw)


# ---------------------------------------------------------------- state machine
def test_terminal_states_have_no_exit():
    for st in (S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED, S.DENIED):
        assert not any(can_transition(st, nxt) for nxt in OrderStatus)


def test_illegal_transition_is_refused_and_counted():
    ev = lambda status, seq: OrderEvent(client_order_id="s-1", strategy_id="s", symbol="SPY", status=status,
                                        event_seq=seq, ts_ns=0)
    book2 = OrderBook()
    book2.submit(req())
    assert book2.apply_event(ev(S.FILLED, 1))
    assert not book2.apply_event(ev(S.CANCELED, 2))  # a cancel after the fill
    assert book2.view("s-1").status is S.FILLED
    assert book2.illegal_transitions == 1
    assert set(TRANSITIONS) == set(OrderStatus)


def test_finished_orders_leave_memory_but_stay_known():
    book = OrderBook(keep_recent=2)
    for n in range(1, 6):
        r = req(f"s-{n}", seq=n)
        book.submit(r)
        book.apply_fill(Fill(client_order_id=r.client_order_id, strategy_id="s", trade_id=f"T{n}", symbol="SPY",
                             side=Side.BUY, quantity=1, price=100.0 + n, fee=0.0, event_seq=n + 1, ts_ns=0))
        book.apply_event(OrderEvent(client_order_id=r.client_order_id, strategy_id="s", symbol="SPY",
                                    status=S.FILLED, event_seq=n + 1, ts_ns=0, filled_qty=1, avg_price=100.0 + n))
    assert not book.live and len(book.recent) == 2 and book.archive.count == 5
    old = book.view("s-1")  # only in the archive now
    assert book.get("s-1") is None and book.known("s-1")
    assert (old.status, old.filled_qty, old.avg_price, old.last_event_seq, old.side) == (S.FILLED, 1.0, 101.0, 2, Side.BUY)
    assert not book.known("s-9") and book.positions["SPY"].quantity == 5


def test_fills_deduplicated_by_trade_id_and_pnl():
    book = OrderBook()
    for cid, side, px in (("a", Side.BUY, 100.0), ("b", Side.SELL, 103.0)):
        book.submit(req(cid, side=side))
        f = Fill(client_order_id=cid, strategy_id="s", trade_id=f"T-{cid}", symbol="SPY", side=side, quantity=2,
                 price=px, fee=0.5, event_seq=1, ts_ns=0)
        assert book.apply_fill(f)
        assert not book.apply_fill(f)
    pos = book.positions["SPY"]
    assert pos.quantity == 0 and pos.realized_pnl == pytest.approx(6.0) and pos.fees == pytest.approx(1.0)


def test_position_flip_resets_average_price():
    p = PositionState("X")
    p.apply_fill(Side.BUY, 1, 10.0, 0)
    realized = p.apply_fill(Side.SELL, 3, 12.0, 0)
    assert realized == pytest.approx(2.0) and p.quantity == -2 and p.avg_price == 12.0


# ---------------------------------------------------------------- risk
LIMITS = RiskSection(max_order_qty=10, max_notional=5000, max_position=15, max_orders_per_s=2)
INSTR = {"SPY": Instrument(symbol="SPY")}


@pytest.mark.parametrize("order,reason", [
    (req(qty=11), DenyReason.MAX_ORDER_QTY),
    (req(qty=float("nan")), DenyReason.INVALID_QUANTITY),
    (req(qty=-1), DenyReason.INVALID_QUANTITY),
    (OrderRequest(client_order_id="x", strategy_id="s", symbol="NOPE", side=Side.BUY, quantity=1), DenyReason.UNKNOWN_INSTRUMENT),
    (req(qty=10, decision_price=600.0), DenyReason.MAX_NOTIONAL),
    (req(order_type=OrderType.LIMIT, limit_price=120.0), DenyReason.PRICE_COLLAR),
    (req(warm=False), DenyReason.INDICATOR_NOT_WARM),
])  # fmt: skip
def test_each_check_denies_with_its_reason(order, reason):
    st = risk.RiskState(last_price={"SPY": 100.0})
    verdict = risk.check_order(order, st, LIMITS, INSTR, now_ns=0)
    assert verdict is not None and verdict[0] is reason, verdict


def test_position_rate_duplicate_and_states():
    st = risk.RiskState(last_price={"SPY": 100.0})
    assert risk.check_order(req("a", qty=10), st, LIMITS, INSTR, 0) is None
    risk.record_approval(req("a", qty=10), st, 0)
    assert risk.check_order(req("a"), st, LIMITS, INSTR, 1)[0] is DenyReason.DUPLICATE_CLIENT_ORDER_ID
    assert risk.check_order(req("b", qty=6), st, LIMITS, INSTR, 1)[0] is DenyReason.MAX_POSITION
    risk.record_approval(req("b", qty=1), st, 10)
    assert risk.check_order(req("c", qty=1), st, LIMITS, INSTR, 20)[0] is DenyReason.RATE_LIMIT
    assert risk.check_order(req("c", qty=1), st, LIMITS, INSTR, 2_000_000_000) is None  # window slid
    st.trading_state = TradingState.REDUCING
    assert risk.check_order(req("d", qty=1), st, LIMITS, INSTR, 3_000_000_000)[0] is DenyReason.REDUCING_ONLY
    assert risk.check_order(req("e", side=Side.SELL, qty=1), st, LIMITS, INSTR, 3_000_000_000) is None
    st.trading_state = TradingState.HALTED
    assert risk.check_order(req("f", side=Side.SELL, qty=1), st, LIMITS, INSTR, 4_000_000_000)[0] is DenyReason.TRADING_HALTED
    st.kill_switch = True
    assert risk.check_order(req("g"), st, LIMITS, INSTR, 4_000_000_000)[0] is DenyReason.KILL_SWITCH


# ---------------------------------------------------------------- paper venue
def rnd(first, prices, approved=(), seq=0, eos=False):
    p = freeze(np.asarray(prices, dtype=float))
    return Round(feed="f", batch_seq=seq, symbol="SPY", first_tick_seq=first,
                 ts_ns=freeze(np.arange(first, first + len(p), dtype=np.int64)), price=p,
                 approved=list(approved), end_of_stream=eos)


def test_market_order_fills_on_next_tick_even_across_rounds():
    v = PaperVenue(VenueSection(slippage_bps=10, fee_bps=1))
    rep = v.on_round(rnd(0, [100, 101, 102], [req(seq=2)]))
    assert rep.fills == []  # no tick after 2 yet: no look-ahead
    rep = v.on_round(rnd(3, [105, 106], seq=1))
    (f,) = rep.fills
    assert f.event_seq == 3 and f.price == pytest.approx(105 * 1.001) and f.fee == pytest.approx(f.price * 1e-4)


def test_limit_order_fills_when_trade_reaches_price_and_late_orders_use_history():
    v = PaperVenue(VenueSection())
    v.on_round(rnd(0, [100, 99, 98, 97]))
    rep = v.on_round(rnd(4, [96], [req("L", order_type=OrderType.LIMIT, limit_price=98.5, seq=0)], seq=1))
    (f,) = rep.fills  # decided on tick 0, matched over history: first price <= 98.5 is tick 2
    assert f.event_seq == 2 and f.price == 98.5


def test_unfillable_market_order_expires_at_end_of_stream():
    v = PaperVenue(VenueSection())
    rep = v.on_round(rnd(0, [100, 101], [req(seq=1)], eos=True))
    assert [e.status for e in rep.events] == [S.EXPIRED]  # a market order is never "resting"


# ---------------------------------------------------------------- optimistic runner == reference loop
def reference_fills(prices, rsi_values, lower=30.0, upper=70.0, qty=1.0):
    """Plain loop: decide on tick i, fill at tick i+1, no decision while pending."""
    pos, pending, fills = 0.0, None, []
    for i in range(len(prices)):
        if pending is not None:
            pos += pending
            fills.append((i, pending, prices[i]))
            pending = None
        x = rsi_values[i]
        if pos == 0 and x < lower:
            pending = qty
        elif pos > 0 and x > upper:
            pending = -pos
    return fills


def simulate(strategy_cls, prices, ts, values, batch, deny=lambda o: False):
    """The pipeline without threads: runner -> checks (deny) -> venue -> updates."""
    runner = StrategyRunner(strategy_cls("s", RsiParams(), ["SPY"]))
    venue = PaperVenue(VenueSection())
    fills, min_epoch = [], 0

    def route(orders, b, ib):
        nonlocal min_epoch
        approved, denials = [], []
        for o in orders:
            if o.epoch < min_epoch:
                continue
            if deny(o):
                denials.append(OrderDenied(client_order_id=o.client_order_id, strategy_id="s",
                                           reason=DenyReason.RATE_LIMIT, epoch=o.epoch, decision_seq=o.decision_seq))
                min_epoch = o.epoch + 1
            else:
                approved.append(o)
        r = Round(feed="f", batch_seq=b, symbol="SPY", first_tick_seq=ib.first_tick_seq if ib else 0,
                  ts_ns=ib.ts_ns if ib else None, price=ib.price if ib else None, approved=approved)
        rep = venue.on_round(r)
        fills.extend(rep.fills)
        return runner.on_updates(OrderUpdates(strategy_id="s", events=rep.events, fills=rep.fills, denials=denials))

    for b, s in enumerate(range(0, len(prices), batch)):
        ib = IndicatorBatch(feed="f", batch_seq=b, symbol="SPY", first_tick_seq=s, ts_ns=freeze(ts[s:s + batch]),
                            price=freeze(prices[s:s + batch]), size=freeze(prices[s:s + batch]),
                            values={"rsi_14": freeze(values[s:s + batch])})
        more = route(runner.on_batch(ib), b, ib)
        while more:
            more = route(more, -1, None)
    out = [(f.event_seq, 1.0 if f.side is Side.BUY else -f.quantity, f.price) for f in fills]
    return sorted(out), runner


@needs_shared
@pytest.mark.parametrize("batch", [1, 64, 4096])
def test_runner_equals_reference_loop_on_real_spy(batch):
    n = 30_000 if batch == 1 else 200_000
    ts, prices = spy_prices(n)
    values = rsi(prices, 14)
    ref = reference_fills(prices, values)
    got, runner = simulate(RsiMeanReversion, prices, ts, values, batch)
    assert len(ref) > 100
    assert got == [(i, q, p) for i, q, p in ref]
    assert runner.rollbacks == 0 and runner.unconfirmed == 0


@needs_shared
def test_per_tick_and_batch_styles_agree_and_denials_never_depend_on_batch_size():
    ts, prices = spy_prices(40_000)
    values = rsi(prices, 14)
    deny = lambda o: o.decision_seq % 3 == 0  # a content rule, like a real limit
    results = {}
    for cls in (RsiMeanReversion, RsiMeanReversionPerTick):
        for batch in (1, 5, 64, 4096):
            got, runner = simulate(cls, prices, ts, values, batch, deny)
            results[(cls.__name__, batch)] = got
            assert runner.rollbacks > 0
    first = next(iter(results.values()))
    assert len(first) > 50
    assert all(r == first for r in results.values())
