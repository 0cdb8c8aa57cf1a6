"""IndicatorActor: routing, values == batch functions, duplicates, snapshot/restore, end to end."""

from pathlib import Path

import numpy as np
import pytest

from actors.indicator import IndicatorActor
from actors.market_feed import MarketFeedActor
from engine import indicators as ind
from engine.config import IndicatorSpec, Instrument
from engine.data.sources import open_tick_source
from engine.data.synthetic import SyntheticSource
from engine.messages import EndOfStream, GetFeedStats, StartFeed, TickBatch, freeze
from tests.test_feed_support import Collector, harness  # noqa: F401 - fixture

WAIT = 30.0
INSTR = [Instrument(symbol="AAA"), Instrument(symbol="BBB", start_price=50.0)]
SPECS = [
    IndicatorSpec(kind="rsi", period=14),
    IndicatorSpec(kind="macd", fast=12, slow=26, signal=9, symbols=["AAA"]),
    IndicatorSpec(kind="bollinger", period=20, k=2.0, symbols=["BBB"]),
    IndicatorSpec(kind="atr", period=14),
]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPY_TICKS = DATA / "ticks" / "spy_trades_lean" / "SPY_trades_20131007-20131011.norm.csv.gz"


def pipeline(h, source, batch_size, *, routes=None, specs=SPECS, max_in_flight=4):
    """feed -> indicators -> sinks; the sinks routed every symbol ("*") are the consumers.

    (A sink routed one symbol never sees the other symbols' batches, so it
    cannot return their credit.)
    """
    routes = routes or {"AAA": ["sink_a"], "*": ["sink_all"]}
    consumers = routes["*"]
    sinks = {
        n: h.start(Collector, n, feed="feed" if n in consumers else None)
        for n in dict.fromkeys(x for v in routes.values() for x in v)
    }
    h.start(IndicatorActor, "ind", specs=specs, routes=routes)
    feed = h.start(MarketFeedActor, "feed", feed_id="feed", source=source, subscribers=["ind"],
                   consumers=consumers, batch_size=batch_size, max_in_flight=max_in_flight)  # fmt: skip
    feed.tell(StartFeed())
    for ref in sinks.values():
        assert ref.proxy().done.get().wait(WAIT)
    return feed, {n: ref.proxy().items.get() for n, ref in sinks.items()}


def by_symbol(items, symbol, key):
    return np.concatenate([b.values[key] if key != "price" else b.price for b in items if b.symbol == symbol])


def test_routes_and_values_equal_the_batch_functions(harness):
    feed, got = pipeline(harness, SyntheticSource(INSTR, seed=9, max_ticks=6000, chunk_rows=300), 128)
    assert all(b.symbol == "AAA" for b in got["sink_a"])
    assert {b.symbol for b in got["sink_all"]} == {"AAA", "BBB"}
    for sym, keys in (("AAA", ["rsi_14", "macd_12_26_9", "atr_14"]), ("BBB", ["rsi_14", "bb_upper_20_2", "atr_14"])):
        batches = [b for b in got["sink_all"] if b.symbol == sym]
        assert set(batches[0].values) == set(keys + (["macd_signal_12_26_9", "macd_hist_12_26_9"] if sym == "AAA"
                                                      else ["bb_middle_20_2", "bb_lower_20_2"]))  # fmt: skip
        price = by_symbol(got["sink_all"], sym, "price")
        np.testing.assert_array_equal(by_symbol(got["sink_all"], sym, "rsi_14"), ind.rsi(price, 14))
        np.testing.assert_array_equal(by_symbol(got["sink_all"], sym, "atr_14"), ind.atr(price, price, price, 14))
        assert not batches[0].values["rsi_14"].flags.writeable
    np.testing.assert_array_equal(by_symbol(got["sink_a"], "AAA", "macd_hist_12_26_9"),
                                  ind.macd(by_symbol(got["sink_a"], "AAA", "price"))[2])  # fmt: skip
    assert feed.ask(GetFeedStats(), timeout=5).ticks == 6000


def test_batch_size_never_changes_the_values(harness):
    results = []
    for size in (1, 4096):
        h = type(harness)()
        try:
            _, got = pipeline(h, SyntheticSource(INSTR, seed=2, max_ticks=3000, chunk_rows=500), size, routes={"*": ["s"]})
            results.append({k: by_symbol(got["s"], "BBB", k) for k in ("price", "rsi_14", "bb_lower_20_2", "atr_14")})
        finally:
            h.stop()
    for k in results[0]:
        np.testing.assert_array_equal(results[0][k], results[1][k])


def tick_batch(seq, prices, symbol="AAA", first=0):
    p = np.asarray(prices, dtype=np.float64)
    return TickBatch(feed="f", batch_seq=seq, symbol=symbol, first_tick_seq=first,
                     ts_ns=freeze(np.arange(len(p), dtype=np.int64)), price=freeze(p), size=freeze(np.ones(len(p))))  # fmt: skip


def test_duplicate_batches_are_dropped_and_end_of_stream_forwarded(harness):
    sink = harness.start(Collector, "s")
    actor = harness.start(IndicatorActor, "ind", specs=SPECS, routes={"*": ["s"]})
    prices = 100 + np.cumsum(np.random.default_rng(0).normal(0, 0.1, 60))
    actor.tell(tick_batch(0, prices[:30]))
    actor.tell(tick_batch(0, prices[:30]))  # re-sent after a feed restart
    actor.tell(tick_batch(1, prices[30:], first=30))
    actor.tell(EndOfStream(feed="f", last_batch_seq=1, last_tick_seq=59))
    assert sink.proxy().done.get().wait(WAIT)
    items = sink.proxy().items.get()
    assert [b.batch_seq for b in items] == [0, 1]
    np.testing.assert_array_equal(np.concatenate([b.values["rsi_14"] for b in items]), ind.rsi(prices, 14))
    assert actor.proxy().duplicates_dropped.get() == 1


def test_snapshot_restore_continues_exactly_and_keeps_dedup(harness):
    prices = 100 + np.cumsum(np.random.default_rng(1).normal(0, 0.1, 400))
    first = harness.start(IndicatorActor, "ind1", specs=SPECS, routes={}, history=50)
    for i in range(4):
        first.tell(tick_batch(i, prices[i * 50 : (i + 1) * 50], first=i * 50))
    snap = first.proxy().snapshot().get(timeout=5)
    restored = harness.start(IndicatorActor, "ind2", specs=SPECS, routes={"*": ["s"]}, restore_from=snap, history=50)
    sink = harness.start(Collector, "s")
    np.testing.assert_array_equal(restored.proxy().last("AAA", "price", 10).get(), prices[190:200])
    restored.tell(tick_batch(3, prices[150:200], first=150))  # already processed before the snapshot
    restored.tell(tick_batch(4, prices[200:], first=200))
    restored.tell(EndOfStream(feed="f", last_batch_seq=4, last_tick_seq=399))
    assert sink.proxy().done.get().wait(WAIT)
    (out,) = sink.proxy().items.get()
    assert out.batch_seq == 4
    whole = ind.IndicatorSet(SPECS[:2] + SPECS[3:]).update(prices)
    for key, col in out.values.items():
        np.testing.assert_array_equal(col, whole[key][200:])
    np.testing.assert_array_equal(restored.proxy().last("AAA", "rsi_14").get(), whole["rsi_14"][-50:])


def test_bars_feed_true_range_from_high_low(harness, tmp_path):
    path = tmp_path / "bars.csv"
    rng = np.random.default_rng(3)
    close = 100 + np.cumsum(rng.normal(0, 1, 100))
    high, low = close + rng.uniform(0.1, 1, 100), close - rng.uniform(0.1, 1, 100)
    path.write_text("ts_ns,open,high,low,close,volume\n" + "".join(
        f"{i},{float(c)!r},{float(h)!r},{float(lo)!r},{float(c)!r},10\n" for i, (c, h, lo) in enumerate(zip(close, high, low))))  # fmt: skip
    src = open_tick_source(path, symbol="AAA", instruments=INSTR, kind="bars")
    _, got = pipeline(harness, src, 16, routes={"*": ["s"]}, specs=[IndicatorSpec(kind="atr", period=5)])
    np.testing.assert_array_equal(by_symbol(got["s"], "AAA", "atr_5"), ind.atr(high, low, close, 5))


@pytest.mark.skipif(not SPY_TICKS.exists(), reason=f"real market data not found at {DATA}")
def test_real_spy_replay_end_to_end(harness, tmp_path):
    src = open_tick_source(SPY_TICKS, symbol="SPY", instruments=[Instrument(symbol="SPY")], cache_dir=tmp_path)
    specs = [IndicatorSpec(kind="rsi", period=14), IndicatorSpec(kind="ema", period=20)]
    feed, got = pipeline(harness, src, 4096, routes={"*": ["s"]}, specs=specs)
    price = by_symbol(got["s"], "SPY", "price")
    assert price.shape == (1_887_460,)
    np.testing.assert_array_equal(by_symbol(got["s"], "SPY", "rsi_14"), ind.rsi(price, 14))
    np.testing.assert_array_equal(by_symbol(got["s"], "SPY", "ema_20"), ind.ema(price, 20))
    assert feed.ask(GetFeedStats(), timeout=5).batches == len(got["s"])
