"""MarketFeedActor: batching, credits, resume, real-time pacing, end of stream."""

import gzip
import time

import numpy as np
import pytest

from actors.loop import SharedLoop
from actors.market_feed import MarketFeedActor
from engine.config import Instrument
from engine.data.sources import open_tick_source
from engine.data.synthetic import SyntheticSource
from engine.messages import GetFeedStats, StartFeed
from tests.test_feed_support import Collector, harness  # noqa: F401 - fixture

INSTR = [Instrument(symbol="AAA"), Instrument(symbol="BBB", start_price=50.0)]
WAIT = 20.0


def synthetic(n, chunk_rows=256):
    return SyntheticSource(INSTR, seed=5, max_ticks=n, chunk_rows=chunk_rows)


def start_feed(h, source, *, batch_size, max_in_flight=4, consumers=("sink",), subscribers=("sink",), **kw):
    return h.start(
        MarketFeedActor, "feed", feed_id="feed", source=source, subscribers=list(subscribers),
        consumers=list(consumers), batch_size=batch_size, max_in_flight=max_in_flight, **kw,
    )  # fmt: skip


def test_every_tick_arrives_once_in_order_with_contiguous_numbering(harness):
    sink = harness.start(Collector, "sink", feed="feed")
    feed = start_feed(harness, synthetic(5000), batch_size=100, max_in_flight=2)
    feed.tell(StartFeed())
    assert sink.proxy().done.get().wait(WAIT)
    items = sink.proxy().items.get()
    assert [b.batch_seq for b in items] == list(range(len(items)))
    seq = 0
    for b in items:
        assert b.first_tick_seq == seq and 1 <= len(b) <= 100 and b.feed == "feed"
        assert not b.price.flags.writeable and not b.ts_ns.flags.writeable and b.side is not None
        seq += len(b)
    assert seq == 5000
    expected = np.concatenate([c.price for c in synthetic(5000)])
    np.testing.assert_array_equal(np.concatenate([b.price for b in items]), expected)
    (eos,) = sink.proxy().eos.get()
    assert (eos.last_tick_seq, eos.last_batch_seq) == (4999, len(items) - 1)
    stats = feed.ask(GetFeedStats(), timeout=5)
    assert stats.finished and stats.ticks == 5000 and stats.batches == len(items) and stats.in_flight == 0
    for sym in ("AAA", "BBB"):  # per symbol, batches never reorder
        ticks = [b.first_tick_seq for b in items if b.symbol == sym]
        assert ticks == sorted(ticks)


def test_credits_bound_batches_in_flight_and_count_backpressure(harness):
    sink = harness.start(Collector, "sink", feed="feed", hold=True, count_target=3)
    feed = start_feed(harness, synthetic(10_000), batch_size=50, max_in_flight=3)
    feed.tell(StartFeed())
    assert sink.proxy().count_event.get().wait(WAIT)
    stats = feed.ask(GetFeedStats(), timeout=5)  # answered after any pending pump
    assert stats.in_flight == 3 and stats.credits == 0 and stats.backpressure_waits >= 1 and not stats.finished
    assert len(sink.proxy().items.get()) == 3  # nothing more without credit
    sink.proxy().release().get()
    assert sink.proxy().done.get().wait(WAIT)
    final = feed.ask(GetFeedStats(), timeout=5)
    assert final.ticks == 10_000 and final.finished and final.in_flight == 0


def test_credit_returns_only_when_every_consumer_is_done(harness):
    a = harness.start(Collector, "a", feed="feed", count_target=1)
    b = harness.start(Collector, "b", feed="feed", hold=True, count_target=1)
    feed = start_feed(harness, synthetic(1000), batch_size=10, max_in_flight=1, consumers=["a", "b"], subscribers=["a", "b"])
    feed.tell(StartFeed())
    assert b.proxy().count_event.get().wait(WAIT)
    assert feed.ask(GetFeedStats(), timeout=5).in_flight == 1
    assert len(a.proxy().items.get()) == 1  # a acknowledged, but b holds the credit
    b.proxy().release().get()
    assert a.proxy().done.get().wait(WAIT) and b.proxy().done.get().wait(WAIT)
    assert sum(len(x) for x in a.proxy().items.get()) == 1000


def test_start_feed_resumes_after_a_checkpoint(harness):
    sink = harness.start(Collector, "sink", feed="feed")
    feed = start_feed(harness, synthetic(3000), batch_size=64)
    feed.tell(StartFeed(after_tick_seq=1199, after_batch_seq=41))
    assert sink.proxy().done.get().wait(WAIT)
    items = sink.proxy().items.get()
    assert items[0].batch_seq == 42 and items[0].first_tick_seq == 1200
    expected = np.concatenate([c.price for c in synthetic(3000)])[1200:]
    np.testing.assert_array_equal(np.concatenate([b.price for b in items]), expected)


@pytest.mark.parametrize("on_loop", [False, True], ids=["pacer-thread", "loop-timers"])
def test_realtime_mode_paces_ticks_and_batches_what_is_due(harness, on_loop):
    # A thread per actor paces with a pacer thread; on a shared loop the loop's timers do it.
    kw = {"loop": SharedLoop("realtime")} if on_loop else {}
    sink = harness.start(Collector, "sink", feed="feed", **kw)
    feed = start_feed(harness, synthetic(300, chunk_rows=1000), batch_size=4096, realtime_rate=1500.0, **kw)
    t0 = time.monotonic()
    feed.tell(StartFeed())
    assert sink.proxy().done.get().wait(WAIT)
    elapsed = time.monotonic() - t0
    items = sink.proxy().items.get()
    assert sum(len(b) for b in items) == 300
    assert elapsed >= 0.15  # 300 ticks at 1500/s take 0.2 s; not dumped at once
    # Small batches of what was due (a loaded machine wakes late and batches more: >= 5, not 300 at once).
    assert len(items) >= 5 and max(len(b) for b in items) < 300


def test_in_real_time_a_window_of_one_batch_makes_due_ticks_ride_together(harness):
    # What a pipeline sharing one thread gets: a second batch in flight would only queue behind the first.
    sink = harness.start(Collector, "sink", feed="feed", hold=True, count_target=1)
    feed = start_feed(harness, synthetic(100_000, chunk_rows=100_000), batch_size=65536, max_in_flight=4,
                      realtime_rate=1_000_000.0, realtime_window=1)  # fmt: skip
    feed.tell(StartFeed())
    assert sink.proxy().count_event.get().wait(WAIT)
    stats = feed.ask(GetFeedStats(), timeout=5)
    assert stats.in_flight == 1 and stats.credits == 3  # credits left, yet ticks wait for the batch in flight
    sink.proxy().release().get()  # the held batch is done: what fell due meanwhile goes as one batch
    assert sink.proxy().done.get().wait(WAIT)
    items = sink.proxy().items.get()
    assert sum(len(b) for b in items) == 100_000
    assert len(items[1]) > 1


def test_on_a_shared_loop_a_full_window_arms_no_timer_and_the_returning_credit_does(harness):
    """A timer armed while the only credit is out would wake the feed just to find none (a handler per batch)."""
    loop = SharedLoop("window")
    sink = harness.start(Collector, "sink", feed="feed", hold=True, count_target=1, loop=loop)
    feed = start_feed(harness, synthetic(3, chunk_rows=1000), batch_size=4096, max_in_flight=4,
                      realtime_rate=10.0, realtime_window=1, loop=loop)  # fmt: skip
    feed.tell(StartFeed())
    assert sink.proxy().count_event.get().wait(WAIT)  # tick 0 went at 100 ms, and is held
    stats = feed.ask(GetFeedStats(), timeout=5)
    assert stats.in_flight == 1 and stats.ticks == 1
    # Read after the feed answered; only its handlers write it, and nothing is due to run them until the release.
    actor = feed._actor_weakref()
    assert actor._timer_armed is False  # tick 1 falls due at 200 ms: nothing wakes the feed for it
    sink.proxy().release().get()  # the credit comes back: it arms the timer, the rest flows
    assert sink.proxy().done.get().wait(WAIT)
    items = sink.proxy().items.get()
    assert [(b.first_tick_seq, len(b)) for b in items] == [(0, 1), (1, 1), (2, 1)]  # each tick once, when due


def test_without_a_window_real_time_uses_every_credit(harness):
    sink = harness.start(Collector, "sink", feed="feed", hold=True, count_target=4)
    feed = start_feed(harness, synthetic(100_000, chunk_rows=100_000), batch_size=16, max_in_flight=4,
                      realtime_rate=1_000_000.0)  # fmt: skip
    feed.tell(StartFeed())
    assert sink.proxy().count_event.get().wait(WAIT)
    stats = feed.ask(GetFeedStats(), timeout=5)
    assert stats.in_flight == 4 and stats.credits == 0 and stats.backpressure_waits >= 1
    sink.proxy().release().get()


def test_rejected_rows_are_counted_in_feed_stats(harness, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("ts_ns,price,size\n1,10,1\n2,nan,1\n3,11,-1\n4,12,1\n")
    sink = harness.start(Collector, "sink", feed="feed")
    src = open_tick_source(path, symbol="AAA", instruments=INSTR, rejects_path=tmp_path / "r.csv")
    feed = start_feed(harness, src, batch_size=1)
    feed.tell(StartFeed())
    assert sink.proxy().done.get().wait(WAIT)
    stats = feed.ask(GetFeedStats(), timeout=5)
    assert stats.ticks == 2 and stats.rejected == 2
    assert stats.rejected_by_reason == {"price_not_finite": 1, "size_negative": 1}


def test_file_corrupt_half_way_ends_the_stream_with_a_clear_error(harness, tmp_path):
    body = b"ts_ns,price,size\n" + b"".join(b"%d,100.0,1\n" % i for i in range(200_000))
    blob = gzip.compress(body)
    path = tmp_path / "half.csv.gz"
    path.write_bytes(blob[: int(len(blob) * 0.8)])
    sink = harness.start(Collector, "sink", feed="feed")
    feed = start_feed(harness, open_tick_source(path, symbol="AAA", instruments=INSTR, chunk_rows=1000), batch_size=4096)
    feed.tell(StartFeed())
    assert sink.proxy().done.get().wait(WAIT)
    stats = feed.ask(GetFeedStats(), timeout=5)
    assert stats.finished and "half.csv.gz: line" in stats.error and 0 < stats.ticks < 200_000


def test_bad_arguments_are_refused_with_names():
    with pytest.raises(ValueError, match="batch_size must be 1..65536, got 0"):
        MarketFeedActor("f", None, feed_id="f", source=synthetic(1), subscribers=[], consumers=[], batch_size=0, max_in_flight=1)
    with pytest.raises(ValueError, match="max_in_flight"):
        MarketFeedActor("f", None, feed_id="f", source=synthetic(1), subscribers=[], consumers=[], batch_size=1, max_in_flight=0)
