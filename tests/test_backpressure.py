"""Bounded in-flight work: credits cap what the feed sends, a burst never grows a mailbox.

Why: pykka mailboxes are unbounded queues, so only the feed's credits keep a
fast source from piling batches up in front of a slower stage. These tests
watch the bound from outside (feed stats, a consumer's hold count, every
actor's mailbox depth sampled from the test thread) while the run goes.
No timing asserts: only counts and bounds.
"""

from __future__ import annotations

import statistics
import threading
import time

import msgspec
import pytest

from actors.base import EngineActor, handles
from actors.directory import actor_of
from actors.market_feed import MarketFeedActor
from engine.assembly import EVENTS, FEED, INDICATORS, ORDERS, SAFETY, VENUE, build_engine, strategy_name
from engine.bench import live_config
from engine.config import Instrument
from engine.data.synthetic import SyntheticSource
from engine.journal_runs import journal_dir, new_run_path
from engine.messages import BatchDone, EndOfStream, GetFeedStats, StartFeed, TickBatch
from tests.test_feed_support import Collector, harness  # noqa: F401 - fixture

WAIT = 30.0
INSTR = [Instrument(symbol="AAA")]


class LaggingConsumer(EngineActor):
    """Acknowledges a batch only once it holds ``lag`` of them: it always sits on as many as it may."""

    def __init__(self, name, directory, supervisor=None, *, feed: str, lag: int):
        super().__init__(name, directory, supervisor)
        self.feed, self.lag = feed, lag
        self.held: list[int] = []
        self.max_held = 0
        self.batches = 0
        self.done = threading.Event()

    @handles(TickBatch)
    def on_batch(self, msg: TickBatch) -> None:
        self.batches += 1
        self.held.append(msg.batch_seq)
        self.max_held = max(self.max_held, len(self.held))  # batches the feed has out right now
        if len(self.held) >= self.lag:
            self._ack(self.held.pop(0))

    @handles(EndOfStream)
    def on_eos(self, _msg: EndOfStream) -> None:
        while self.held:
            self._ack(self.held.pop(0))
        self.done.set()

    def _ack(self, seq: int) -> None:
        self.addr(self.feed).tell(BatchDone(feed="feed", batch_seq=seq, consumer=self.name))


def start_feed(h, source, *, batch_size, max_in_flight, consumer="sink", **kw):
    return h.start(MarketFeedActor, "feed", feed_id="feed", source=source, subscribers=[consumer],
                   consumers=[consumer], batch_size=batch_size, max_in_flight=max_in_flight, **kw)  # fmt: skip


def test_credits_never_exceed_max_in_flight_over_a_whole_run(harness):
    max_in_flight = 3
    sink = harness.start(LaggingConsumer, "sink", feed="feed", lag=max_in_flight)
    feed = start_feed(harness, SyntheticSource(INSTR, seed=1, max_ticks=20_000), batch_size=16,
                      max_in_flight=max_in_flight)
    feed.tell(StartFeed())
    samples = []
    while not sink.proxy().done.get().is_set():
        st = feed.ask(GetFeedStats(), timeout=5)
        samples.append(st)
        assert 0 <= st.in_flight <= max_in_flight and st.credits == max_in_flight - st.in_flight
        if st.finished and st.in_flight == 0:
            break
    assert sink.proxy().done.get().wait(WAIT)
    final = feed.ask(GetFeedStats(), timeout=5)
    assert final.ticks == 20_000 and final.finished and final.in_flight == 0 and final.credits == max_in_flight
    assert sink.proxy().max_held.get() == max_in_flight  # every credit used, never one more
    assert sink.proxy().batches.get() == final.batches == 20_000 // 16
    assert final.backpressure_waits >= 1  # it waited for credit instead of sending
    assert len(samples) > 1  # the bound was checked on every sample above


def test_realtime_batches_are_one_tick_when_idle_and_larger_in_a_burst(harness):
    # Idle: 100 ticks/s is far below what the consumer handles, so each tick goes alone
    # (a wake-up more than 10 ms late on a busy machine makes a batch of two: hence the median).
    sink = harness.start(Collector, "sink", feed="feed", count_target=30)
    start_feed(harness, SyntheticSource(INSTR, seed=2, max_ticks=0), batch_size=256, max_in_flight=4,
               realtime_rate=100.0).tell(StartFeed())
    assert sink.proxy().count_event.get().wait(WAIT)
    slow = [len(b) for b in sink.proxy().items.get()[:30]]
    harness.stop()
    assert statistics.median(slow) == 1, slow
    # Burst: 1M ticks/s is faster than one tick per message can go: the feed batches what is due.
    burst = harness.start(Collector, "sink2", feed="feed2", feed_id="feed2", count_target=200)
    harness.start(MarketFeedActor, "feed2", feed_id="feed2", source=SyntheticSource(INSTR, seed=2, max_ticks=0),
                  subscribers=["sink2"], consumers=["sink2"], batch_size=256, max_in_flight=4,
                  realtime_rate=1_000_000.0).tell(StartFeed())  # fmt: skip
    assert burst.proxy().count_event.get().wait(WAIT)
    fast = [len(b) for b in burst.proxy().items.get()[:200]]
    assert max(fast) > 1 and all(n <= 256 for n in fast)
    assert statistics.mean(fast) > statistics.mean(slow)


@pytest.mark.parametrize("threads,orders_per_s", [(1, 1e9), (1, None), (0, 1e9)],
                         ids=["shared-loop", "shared-loop-with-denials", "thread-per-actor"])
def test_a_burst_never_grows_any_mailbox_past_its_bound(tmp_path, threads, orders_per_s):
    """1M ticks/s into the whole engine (journal on): the feed waits for credit, mailboxes stay small.

    With the default order-rate limit (``orders_per_s`` None: 100/s) most orders in
    this burst are denied, and every denial makes the strategy roll back and
    re-decide out of round (``batch_seq`` -1): traffic the feed's credits do not
    cover. On the shared loop (the default layout) every actor handles one
    message per turn, so that traffic cannot queue up either (measured: at most
    4 messages in any mailbox) and the event hub is fed at most every 20 ms. With
    a thread per actor the test lifts the limit and pins what credits alone
    guarantee (with denials, that layout's venue once held 56 re-decided rounds).
    """
    max_in_flight = 4
    cfg = live_config(tmp_path, 1_000_000.0, batch_size=16, max_in_flight=max_in_flight)
    rep = msgspec.structs.replace
    cfg = rep(cfg, engine=rep(cfg.engine, pipeline_threads=threads),
              risk=rep(cfg.risk, max_orders_per_s=orders_per_s or cfg.risk.max_orders_per_s))
    jdir = journal_dir(cfg)
    jdir.mkdir(parents=True, exist_ok=True)
    eng = build_engine(cfg, source_factory=lambda: SyntheticSource(cfg.instruments, seed=3, max_ticks=0),
                       journal_path=new_run_path(jdir, kind="run"), realtime_rate=1_000_000.0, with_monitor=False)
    names = [FEED, INDICATORS, SAFETY, ORDERS, VENUE, EVENTS] + [strategy_name(s.strategy_id) for s in eng.strategies]
    depth = dict.fromkeys(names, 0)
    try:
        eng.directory.tell(FEED, StartFeed(after_tick_seq=-1))
        t0 = time.monotonic()
        stats = eng.directory.ask(FEED, GetFeedStats(), timeout=10)
        rounds = 0
        while stats.ticks < 30_000 and time.monotonic() - t0 < 40:
            for name in names:
                ref = eng.directory.ref(name)
                if ref is not None:
                    depth[name] = max(depth[name], ref.actor_inbox.qsize())
            stats = eng.directory.ask(FEED, GetFeedStats(), timeout=10)  # one round trip paces the sampling
            assert stats.in_flight <= max_in_flight
            rounds += 1
        elapsed = time.monotonic() - t0
        denied = actor_of(eng.directory.ref(SAFETY)).denied
    finally:
        eng.stop()
    if orders_per_s is None:
        assert denied > 10, denied  # the case with out-of-round re-decisions really happened
    assert stats.ticks >= 30_000, f"only {stats.ticks} ticks went through"
    assert rounds > 20
    # Per batch in flight a stage gets at most a couple of messages (data + its outcome).
    bound = 3 * max_in_flight + 4
    assert max(depth.values()) <= bound, depth
    # The source ran far ahead of what the pipeline took: the feed held back (and said so)
    # instead of queueing 1M ticks/s in mailboxes.
    assert stats.backpressure_waits > 0
    assert stats.ticks < elapsed * 1_000_000.0
