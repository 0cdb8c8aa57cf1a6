"""Orders as columns (OrderBlock / FillBlock) mean exactly what the same orders one by one mean.

Every stage has a column path and a per-order path; these tests hold each
column path to its per-order twin: the venue's fills, the risk verdicts and
state, the archive rows, the journal's view, and the runner's decisions.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from engine import risk
from engine.config import Instrument, RiskSection, VenueSection
from engine.indicators import rsi
from engine.journal import Journal
from engine.messages import (
    FillBlock, IndicatorBatch, OrderBlock, OrderDenied, DenyReason, OrderStatus, OrderUpdates, Round, Side,
    TradingState, freeze, from_msgpack, to_msgpack,
)  # fmt: skip
from engine.orders import OrderBook
from engine.venues.paper import PaperVenue
from strategies.base import StrategyRunner
from strategies.rsi_mean_reversion import RsiMeanReversion, RsiParams
from tests.paths import needs_shared, spy_prices

INSTR = {"SPY": Instrument(symbol="SPY")}


def block(first_number=1, seqs=(0, 2, 5), sides=(1, -1, 1), qty=(1.0, 2.5, 0.5), price=100.0, epoch=0, sid="s"):
    seqs = np.asarray(seqs, dtype=np.int64)
    return OrderBlock(
        strategy_id=sid, symbol="SPY", first_number=first_number, epoch=epoch,
        side=freeze(np.asarray(sides, dtype=np.int8)), quantity=freeze(np.asarray(qty, dtype=np.float64)),
        decision_seq=freeze(seqs), decision_ts_ns=freeze(seqs * 1_000_000 + 1),
        decision_price=freeze(np.full(len(seqs), price)), warm=freeze(np.ones(len(seqs), dtype=bool)),
    )  # fmt: skip


def prices_round(first, prices, **kw):
    p = freeze(np.asarray(prices, dtype=np.float64))
    return Round(feed="f", batch_seq=0, symbol="SPY", first_tick_seq=first,
                 ts_ns=freeze(np.arange(first, first + len(p), dtype=np.int64) * 7), price=p, **kw)


# ---------------------------------------------------------------- venue
def test_venue_fills_a_block_exactly_as_it_fills_the_same_orders_one_by_one():
    cfg = VenueSection(slippage_bps=3.7, fee_bps=1.3, fee_per_unit=0.011)
    prices = [100.0, 100.37, 99.91, 101.13, 100.5, 100.01, 99.3, 98.77]
    blk = block(first_number=7)
    as_block = PaperVenue(cfg).on_round(prices_round(10, prices, blocks=[block(first_number=7, seqs=(10, 12, 15))]))
    one_by_one = PaperVenue(cfg).on_round(prices_round(10, prices, approved=block(7, seqs=(10, 12, 15)).requests()))
    (fb,) = as_block.fill_blocks
    assert as_block.fills == [] and as_block.events == []
    key = lambda r: r.client_order_id
    assert sorted(fb.fills(), key=key) == sorted(one_by_one.fills, key=key)
    assert sorted(fb.events(), key=key) == sorted(one_by_one.events, key=key)
    assert len(blk.requests()) == 3 and [r.client_order_id for r in blk.requests()] == ["s-7", "s-8", "s-9"]


def test_venue_lets_a_block_whose_next_tick_is_not_in_the_round_rest_like_single_orders():
    v = PaperVenue(VenueSection())
    rep = v.on_round(prices_round(0, [100.0, 101.0, 102.0], blocks=[block(seqs=(0, 2))]))
    assert rep.fill_blocks == [] and [f.client_order_id for f in rep.fills] == ["s-1"]
    later = v.on_round(prices_round(3, [104.0]))
    assert [(f.client_order_id, f.event_seq, f.price) for f in later.fills] == [("s-2", 3, 104.0)]


# ---------------------------------------------------------------- risk
def sequential(blk, st, limits, now):
    """The per-order path: check_order then record_approval, order by order."""
    for req, t in zip(blk.requests(), now):
        if risk.check_order(req, st, limits, INSTR, t) is not None:
            return False
        risk.record_approval(req, st, t)
    return True


@settings(max_examples=300, deadline=None)
@given(
    sides=hs.lists(hs.sampled_from([1, -1]), min_size=1, max_size=12),
    qty=hs.floats(0.1, 12.0),
    exposure=hs.floats(-20.0, 20.0),
    gaps=hs.lists(hs.integers(0, 600_000_000), min_size=12, max_size=12),
    recent=hs.lists(hs.integers(0, 2_000_000_000), max_size=6),
    max_position=hs.floats(1.0, 30.0),
    max_rate=hs.integers(1, 12),
    state=hs.sampled_from(list(TradingState)),
)
def test_block_verdict_and_state_equal_the_per_order_checks(sides, qty, exposure, gaps, recent, max_position, max_rate,
                                                           state):
    limits = RiskSection(max_order_qty=10, max_notional=1e9, max_position=max_position, max_orders_per_s=max_rate)
    now = list(np.cumsum(gaps[: len(sides)]) + 2_000_000_000)
    blk = block(seqs=range(len(sides)), sides=sides, qty=[qty] * len(sides))
    make = lambda: risk.RiskState(trading_state=state, exposure={"SPY": exposure}, last_price={"SPY": 100.0},
                                  recent=collections.deque(sorted(recent)))  # fmt: skip
    by_block, by_order = make(), make()
    passes = risk.block_passes(blk, by_block, limits, INSTR, now)
    all_pass = sequential(blk, by_order, limits, now)
    if state is TradingState.ACTIVE:
        assert passes == all_pass  # the column check is exact where it answers at all
    else:
        assert not passes  # anything but ACTIVE: the caller checks one by one
    if passes:
        risk.record_block(blk, by_block, now)
        assert by_block.exposure == by_order.exposure
        assert list(by_block.recent) == list(by_order.recent)
        assert by_block.seen_ids.to_builtins() == by_order.seen_ids.to_builtins()


def test_a_block_with_a_used_id_is_left_to_the_per_order_checks():
    st = risk.RiskState(last_price={"SPY": 100.0})
    limits = RiskSection()
    risk.record_block(block(first_number=1), st, [1, 2, 3])
    assert not risk.block_passes(block(first_number=3), st, limits, INSTR, [4, 5, 6])
    assert risk.block_passes(block(first_number=4), st, limits, INSTR, [4, 5, 6])


# ---------------------------------------------------------------- book and journal
def filled(blk, prices, cfg=VenueSection(fee_bps=2.0)):
    first = int(blk.decision_seq[0])
    return PaperVenue(cfg).on_round(prices_round(first, prices, blocks=[blk])).fill_blocks[0]


def test_book_applies_a_fill_block_as_it_applies_its_fills_and_events():
    blk = block(first_number=3, seqs=(0, 1, 4), sides=(1, 1, -1), qty=(2.0, 1.5, 3.0))
    fb = filled(blk, [100.0, 100.5, 99.0, 98.0, 101.25, 102.0])
    columns, single = OrderBook(), OrderBook()
    columns.submit_block(blk)
    columns.apply_fill_block(blk, fb)
    for req in blk.requests():
        single.submit(req)
    for f in fb.fills():
        single.apply_fill(f)
    for ev in fb.events():
        single.apply_event(ev)
    assert columns.positions["SPY"].view() == single.positions["SPY"].view()
    assert columns.strategy_positions == single.strategy_positions and columns.fills_count == single.fills_count == 3
    for k in range(3):
        cid = blk.client_order_id(k)
        assert columns.view(cid) == single.archive.get(cid) and columns.known(cid)
    assert not columns.is_new_block(block(first_number=5)) and columns.is_new_block(block(first_number=6))
    assert [st.request.client_order_id for st in columns.latest(10)] == ["s-3", "s-4", "s-5"]
    assert all(st.status is OrderStatus.FILLED for st in columns.latest(10))


def test_journal_reads_blocks_as_the_records_they_stand_for(tmp_path):
    blk = block(first_number=1, seqs=(0, 2), sides=(1, -1), qty=(1.0, 1.0))
    fb = filled(blk, [100.0, 101.0, 102.0, 103.0])
    back_blk, back_fb = from_msgpack(to_msgpack(blk)), from_msgpack(to_msgpack(fb))  # bool/int8 columns too
    assert back_blk.requests() == blk.requests() and back_blk.warm.dtype == bool and back_blk.side.dtype == np.int8
    assert back_fb.fills() == fb.fills() and back_fb.events() == fb.events()
    with Journal.open(tmp_path / "j.sqlite") as j:
        j.append([blk])
        j.append([fb])
        got = [r for _, r in j.records()]
        assert got == [*blk.requests(), *fb.fills(), *fb.events()]
        assert [type(r).__name__ for _, r in j.records(expand=False)] == ["OrderBlock", "FillBlock"]
        from engine.messages import Fill, OrderEvent, OrderRequest

        assert [r for _, r in j.records(types=(Fill,))] == fb.fills()
        assert j.count((OrderRequest,)) == 2 and j.count((OrderEvent,)) == 2 and j.count() == 2


# ---------------------------------------------------------------- the runner, blocks end to end
def simulate_columns(prices, ts, values, batch, deny=lambda o: False):
    """Runner -> block checks (denials explode a block) -> venue -> updates with FillBlocks, no threads."""
    runner = StrategyRunner(RsiMeanReversion("s", RsiParams(), ["SPY"]))
    venue = PaperVenue(VenueSection())
    fills, min_epoch, blocks_sent = [], 0, 0

    def route(blocks, orders, b, ib):
        nonlocal min_epoch, blocks_sent
        approved, denials, whole = [], [], []
        for blk in blocks:
            if blk.epoch >= min_epoch and not any(deny(o) for o in blk.requests()):
                whole.append(blk)
            else:
                orders = blk.requests() + orders
        for o in orders:
            if o.epoch < min_epoch:
                continue
            if deny(o):
                denials.append(OrderDenied(client_order_id=o.client_order_id, strategy_id="s",
                                           reason=DenyReason.RATE_LIMIT, epoch=o.epoch, decision_seq=o.decision_seq))
                min_epoch = o.epoch + 1
            else:
                approved.append(o)
        blocks_sent += len(whole)
        r = Round(feed="f", batch_seq=b, symbol="SPY", first_tick_seq=ib.first_tick_seq if ib else 0,
                  ts_ns=ib.ts_ns if ib else None, price=ib.price if ib else None, approved=approved, blocks=whole)
        rep = venue.on_round(r)
        fills.extend(rep.fills)
        for fb in rep.fill_blocks:
            fills.extend(fb.fills())
        return runner.on_updates(OrderUpdates(strategy_id="s", events=rep.events, fills=rep.fills, denials=denials,
                                              fill_blocks=rep.fill_blocks))

    for b, s in enumerate(range(0, len(prices), batch)):
        ib = IndicatorBatch(feed="f", batch_seq=b, symbol="SPY", first_tick_seq=s, ts_ns=freeze(ts[s:s + batch]),
                            price=freeze(prices[s:s + batch]), size=freeze(prices[s:s + batch]),
                            values={"rsi_14": freeze(values[s:s + batch])})
        more = route(*runner.on_batch_columns(ib), b, ib)
        while more:
            more = route([], more, -1, None)
    out = sorted((f.event_seq, f.client_order_id, f.side, f.quantity, f.price) for f in fills)
    return out, runner, blocks_sent


@needs_shared
@pytest.mark.parametrize("deny", [None, "decisions on every 50th tick"])
def test_runner_with_blocks_trades_as_with_single_orders(deny):
    ts, prices = spy_prices(60_000)
    values = rsi(prices, 14)
    rule = (lambda o: o.decision_seq % 50 == 0) if deny else (lambda o: False)
    single, _, none_sent = simulate_columns(prices, ts, values, 1, rule)  # a batch of one never holds a block
    columns, runner, sent = simulate_columns(prices, ts, values, 4096, rule)
    assert none_sent == 0 and sent > 0 and len(single) > 100
    assert columns == single
    assert runner.unconfirmed == 0 and (runner.rollbacks > 0) == bool(deny)


def test_archive_keeps_old_orders_compressed_and_every_one_readable():
    book = OrderBook(keep_recent=10)
    prices = np.linspace(100.0, 110.0, 200)
    expected = {}
    for k in range(260):  # 13,000 orders: more than three chunks of rows
        blk = block(first_number=1 + 50 * k, seqs=range(0, 100, 2), sides=[1, -1] * 25, qty=[1.0] * 50)
        fb = filled(blk, prices)
        book.submit_block(blk)
        book.apply_fill_block(blk, fb)
        for j in (0, 49):
            expected[blk.client_order_id(j)] = (float(fb.price[j]), int(fb.event_seq[j]), Side.BUY if j == 0 else Side.SELL)
    rows = book.archive._by_sid["s"]
    cold = [c for c in rows.chunks.values() if isinstance(c, bytes)]
    assert len(rows.hot) == rows.HOT and len(cold) == 2  # 13,000 rows = 4 chunks: the 2 oldest compressed
    assert sum(map(len, cold)) < 2 * rows.ROWS * rows.size / 3
    assert book.archive.count == 13_000 and book.known("s-1") and not book.known("s-13001")
    for cid, (avg, last, side) in expected.items():
        o = book.view(cid)
        assert (o.status, o.avg_price, o.last_event_seq, o.side, o.filled_qty) == (OrderStatus.FILLED, avg, last, side, 1.0)


def test_archive_recycles_the_buffer_of_a_chunk_gone_cold_and_starts_it_empty():
    book = OrderBook(keep_recent=10)
    prices = np.linspace(100.0, 110.0, 200)
    first_raw = None
    for k in range(246):  # 12,300 orders: chunks 0-2 full, chunk 3 with its first 12 rows
        blk = block(first_number=1 + 50 * k, seqs=range(0, 100, 2), sides=[1, -1] * 25, qty=[1.0] * 50)
        book.submit_block(blk)
        book.apply_fill_block(blk, filled(blk, prices))
        first_raw = first_raw or book.archive._by_sid["s"].chunks[0]
    rows = book.archive._by_sid["s"]
    assert isinstance(rows.chunks[0], bytes) and rows.chunks[3] is first_raw  # chunk 0's buffer, reused
    # Row 13 of chunk 3 sits where order 13 was in chunk 0: it must read as never written.
    assert book.known("s-12300") and not book.known("s-12301") and book.view("s-12301") is None
    assert book.view("s-13").status is OrderStatus.FILLED and book.view("s-12300").filled_qty == 1.0


def test_archive_column_codec_gives_back_every_byte_of_any_chunk():
    from engine.orders import OrderArchive, _ChunkedRows

    codec, dt, n = OrderArchive._CODEC, OrderArchive._ROW_DTYPE, _ChunkedRows.ROWS
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8)  # any bytes: NaN payloads, wrapping seqs
    raw[: 100 * dt.itemsize] = 0  # and rows never written
    chunk = bytearray(raw.tobytes())
    assert codec.decompress(codec.compress(chunk)) == chunk


def test_archive_keeps_filled_market_orders_in_a_few_bytes_each():
    book = OrderBook(keep_recent=10)
    prices = 100.0 + np.cumsum(np.random.default_rng(3).normal(0, 0.05, 400))
    for k in range(250):  # 12,500 orders: the oldest chunk of 4096 rows is compressed
        seqs = range(1000 * k, 1000 * k + 150, 3)  # decided on rising ticks, as a run does
        blk = block(first_number=1 + 50 * k, seqs=seqs, sides=[1, -1] * 25, qty=[1.0] * 50)
        book.submit_block(blk)
        book.apply_fill_block(blk, filled(blk, prices))
    rows = book.archive._by_sid["s"]
    cold = [c for c in rows.chunks.values() if isinstance(c, bytes)]
    assert cold and max(map(len, cold)) < rows.ROWS * 4  # < 4 bytes per order (as rows: ~9)
    assert book.view("s-1").status is OrderStatus.FILLED and book.view("s-12500").status is OrderStatus.FILLED
