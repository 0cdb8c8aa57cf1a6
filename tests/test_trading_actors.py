"""SafetyActor, OrderActor and the paper VenueActor wired together, without a feed."""

from __future__ import annotations

import queue
import threading

import msgspec
import numpy as np
import pytest

from actors.base import EngineActor, handles
from actors.directory import Directory
from actors.order import OrderActor
from actors.safety import KillFlag, SafetyActor
from actors.venue import VenueActor
from engine.config import config_from_dict
from engine import faults
from engine.journal import Journal, WalCheckpointer
from engine.messages import (
    BatchDone, CancelOrder, DenyReason, GetOrder, GetTradingState, KillSwitch, OrderBatch, OrderRequest, OrderStatus,
    OrderType, OrderUpdates, SetTradingState, Side, TradingState, VenueReport, freeze,
)  # fmt: skip
from engine.venues.paper import PaperVenue


class Collector(EngineActor):
    def __init__(self, name, directory, supervisor=None, *, inbox: queue.Queue):
        super().__init__(name, directory, supervisor)
        self.inbox = inbox

    @handles(OrderUpdates, BatchDone, VenueReport)
    def on_any(self, msg):
        self.inbox.put(msg)


@pytest.fixture
def rig(tmp_path):
    cfg = config_from_dict({"instruments": [{"symbol": "SPY"}], "risk": {"max_order_qty": 10, "max_position": 10}})
    d = Directory()
    kill = KillFlag()
    got: queue.Queue = queue.Queue()
    path = tmp_path / "j.sqlite"
    refs = []

    def start(name, ref):
        d.register(name, ref)
        refs.append(ref)

    start("strategy:s", Collector.start("strategy:s", d, inbox=got))
    start("feed", Collector.start("feed", d, inbox=got))
    # As the engine opens it: the OrderActor checkpoints the WAL on a thread of its own.
    start("orders", OrderActor.start("orders", d, journal=lambda: Journal.open(path, autocheckpoint=False), kill=kill,
                                     events=None))  # fmt: skip
    start("venue", VenueActor.start("venue", d, venue=PaperVenue(cfg.venue)))
    start("safety", SafetyActor.start("safety", d, cfg=cfg, routes={"SPY": ["s"]}, kill=kill))
    yield d, kill, got, path
    for ref in reversed(refs):
        ref.stop()


def order(cid, side=Side.BUY, qty=1.0, seq=0, **kw):
    return OrderRequest(client_order_id=cid, strategy_id="s", symbol="SPY", side=side, quantity=qty, decision_seq=seq,
                        decision_ts_ns=1_000 + seq, decision_price=100.0, **kw)


def round_of(d, batch_seq, first, prices, orders=()):
    p = freeze(np.asarray(prices, dtype=float))
    d.tell("safety", OrderBatch(strategy_id="s", feed="feed", batch_seq=batch_seq, orders=list(orders), symbol="SPY",
                                first_tick_seq=first, ts_ns=freeze(np.arange(first, first + len(p), dtype=np.int64) + 1000),
                                price=p))


def wait_for(got: queue.Queue, pred, timeout=10.0, seen=None):
    """Wait for a message matching ``pred``; ``seen`` may already hold it (two senders race)."""
    for msg in seen or ():
        if pred(msg):
            return msg, seen
    seen = list(seen or [])
    while True:
        msg = got.get(timeout=timeout)
        seen.append(msg)
        if pred(msg):
            return msg, seen


def test_round_trip_fills_on_next_tick_and_returns_the_credit(rig):
    d, _kill, got, path = rig
    round_of(d, 0, 0, [100.0, 101.0, 102.0], [order("s-1", seq=0)])
    upd, seen = wait_for(got, lambda m: isinstance(m, OrderUpdates) and m.fills)
    assert upd.fills[0].event_seq == 1 and upd.fills[0].price == 101.0
    wait_for(got, lambda m: isinstance(m, BatchDone) and m.batch_seq == 0, seen=seen)
    o = d.ask("orders", GetOrder(client_order_id="s-1"))
    assert o.status is OrderStatus.FILLED
    with Journal.open(path) as j:
        kinds = [type(r).__name__ for _, r in j.records()]
    assert kinds.index("OrderRequest") < kinds.index("Fill")  # write-ahead: the order is durable before its fill


def test_the_order_actor_checkpoints_its_wal_on_its_own_thread_and_stops_it_with_itself(rig, monkeypatch):
    d, _kill, got, path = rig
    copied = threading.Event()
    real_run = WalCheckpointer.run

    def run(self):
        busy, frames, done = real_run(self)
        if done > 0:
            copied.set()
        return busy, frames, done

    monkeypatch.setattr(WalCheckpointer, "run", run)
    round_of(d, 0, 0, [100.0, 101.0, 102.0], [order("s-1", seq=0)])
    wait_for(got, lambda m: isinstance(m, OrderUpdates) and m.fills)
    assert copied.wait(10), "the journal's WAL was never checkpointed"
    running = [t for t in threading.enumerate() if t.name == "orders-wal-checkpoint"]
    d.ref("orders").stop()  # returns after on_stop, which joins the checkpoint thread
    assert len([t for t in running if not t.is_alive()]) == 1
    with Journal.open(path, readonly=True) as j:  # what the actor wrote is all there after its clean close
        assert [type(r).__name__ for _, r in j.records()].count("Fill") == 1


def test_the_checkpoint_thread_of_an_order_actor_abandoned_as_hung_ends_by_itself(rig):
    d, _kill, got, path = rig
    round_of(d, 0, 0, [100.0, 101.0, 102.0], [order("s-1", seq=0)])
    wait_for(got, lambda m: isinstance(m, OrderUpdates) and m.fills)
    (thread,) = [t for t in threading.enumerate() if t.name == "orders-wal-checkpoint"]
    d.quarantine_thread_of(d.ref("orders"))  # what the supervisor does to a hung child before replacing it
    thread.join(10)  # its thread never comes back to stop this one; a new incarnation checkpoints the file
    assert not thread.is_alive()
    assert d.ref("orders").is_alive()  # the actor itself is left alone, as a zombie is


def test_a_crashed_order_actor_releases_its_journal_and_checkpoint_thread(rig):
    d, _kill, got, path = rig
    round_of(d, 0, 0, [100.0, 101.0, 102.0], [order("s-1", seq=0)])
    wait_for(got, lambda m: isinstance(m, OrderUpdates) and m.fills)
    running = [t for t in threading.enumerate() if t.name == "orders-wal-checkpoint"]
    ref = d.ref("orders")
    actor = ref._actor_weakref()  # to look at its journal after the crash
    fi = faults.FaultInjector()
    faults.install(fi)
    try:
        fired = fi.arm("orders", "raise")
        round_of(d, 1, 3, [103.0])
        assert fired.wait(10)
        ref.actor_stopped.wait(10)
    finally:
        faults.install(None)
    for t in running:
        t.join(5)
    assert not any(t.is_alive() for t in running)
    assert actor.journal.closed  # pykka ran no on_stop; release_resources() closed it (before ending the thread)
    with Journal.open(path, readonly=True) as j:  # and nothing written before the crash is lost
        assert [type(r).__name__ for _, r in j.records()].count("Fill") == 1


def test_denial_reaches_the_strategy_with_reason_and_later_stale_orders_are_superseded(rig):
    d, _kill, got, _ = rig
    round_of(d, 0, 0, [100.0, 100.0], [order("s-1", qty=50, seq=0), order("s-2", seq=1)])
    upd, seen = wait_for(got, lambda m: isinstance(m, OrderUpdates) and m.denials)
    assert [x.reason for x in upd.denials] == [DenyReason.MAX_ORDER_QTY]
    wait_for(got, lambda m: isinstance(m, BatchDone), seen=seen)
    assert d.ask("orders", GetOrder(client_order_id="s-2")) is None  # decided on a discarded view: never journaled


def test_kill_switch_halts_at_once_and_cancels_still_pass(rig):
    d, kill, got, _ = rig
    limit = order("s-1", order_type=OrderType.LIMIT, limit_price=99.0, seq=0)
    round_of(d, 0, 0, [100.0, 100.5], [limit])
    wait_for(got, lambda m: isinstance(m, BatchDone) and m.batch_seq == 0)
    assert d.ask("orders", GetOrder(client_order_id="s-1")).status is OrderStatus.ACCEPTED
    info = d.ask("safety", KillSwitch(reason="test", requested_by="tester"))
    assert info.state is TradingState.HALTED and kill.is_set()
    round_of(d, 1, 2, [100.0, 100.0], [order("s-2", seq=2, epoch=0)])
    upd, seen = wait_for(got, lambda m: isinstance(m, OrderUpdates) and m.denials)
    assert upd.denials[0].reason in (DenyReason.KILL_SWITCH, DenyReason.TRADING_HALTED)
    # The kill switch cancels the resting limit order (cancels pass while HALTED).
    canceled = lambda m: isinstance(m, OrderUpdates) and any(e.status is OrderStatus.CANCELED for e in m.events)
    wait_for(got, canceled, seen=seen)
    assert d.ask("orders", GetOrder(client_order_id="s-1")).status is OrderStatus.CANCELED
    assert d.ask("safety", CancelOrder(client_order_id="s-1")).accepted  # an explicit cancel is accepted too
    assert d.ask("safety", GetTradingState()).kill_switch


def test_api_order_is_idempotent_by_client_order_id(rig):
    d, _kill, got, path = rig
    round_of(d, 0, 0, [100.0])
    wait_for(got, lambda m: isinstance(m, BatchDone))
    api = OrderRequest(client_order_id="api-7", strategy_id="api", symbol="SPY", side=Side.BUY, quantity=2)
    first = d.ask("safety", api)
    again = d.ask("safety", api)
    assert first.accepted and again.accepted
    round_of(d, 1, 1, [101.0, 102.0])
    wait_for(got, lambda m: isinstance(m, BatchDone) and m.batch_seq == 1)
    with Journal.open(path) as j:
        requests = [r for _, r in j.records() if isinstance(r, OrderRequest) and r.client_order_id == "api-7"]
    assert len(requests) == 1
    assert d.ask("orders", GetOrder(client_order_id="api-7")).status is OrderStatus.FILLED


def test_reducing_state_accepts_only_reducing_orders(rig):
    d, _kill, got, _ = rig
    round_of(d, 0, 0, [100.0, 100.0], [order("s-1", qty=2, seq=0)])
    wait_for(got, lambda m: isinstance(m, BatchDone))
    d.ask("safety", SetTradingState(state=TradingState.REDUCING, reason="test"))
    round_of(d, 1, 2, [100.0, 100.0, 100.0], [order("s-2", qty=1, seq=2), ])
    upd, _ = wait_for(got, lambda m: isinstance(m, OrderUpdates) and m.denials)
    assert upd.denials[0].reason is DenyReason.REDUCING_ONLY
    res = d.ask("safety", OrderRequest(client_order_id="api-1", strategy_id="api", symbol="SPY", side=Side.SELL,
                                       quantity=1, decision_price=100.0))
    assert res.accepted, res


def test_a_denied_api_order_never_blocks_later_ones(rig):
    d, _kill, got, _ = rig
    round_of(d, 0, 0, [100.0])
    wait_for(got, lambda m: isinstance(m, BatchDone))
    big = d.ask("safety", OrderRequest(client_order_id="api-1", strategy_id="api", symbol="SPY", side=Side.BUY,
                                       quantity=999))
    assert not big.accepted and big.reason == DenyReason.MAX_ORDER_QTY.value
    ok = d.ask("safety", OrderRequest(client_order_id="api-2", strategy_id="api", symbol="SPY", side=Side.BUY,
                                      quantity=1))
    assert ok.accepted
    round_of(d, 1, 1, [101.0, 102.0])
    wait_for(got, lambda m: isinstance(m, BatchDone) and m.batch_seq == 1)
    assert d.ask("orders", GetOrder(client_order_id="api-2")).status is OrderStatus.FILLED
    denied = d.ask("orders", GetOrder(client_order_id="api-1"))
    assert denied is not None and denied.status is OrderStatus.DENIED


def _held_report_rig(tmp_path, fail_on_write: int | None = None):
    """An OrderActor driven by hand (not started): its handlers called directly, mail faked."""
    from pykka._envelope import Envelope

    from actors.order import OrderActor
    from engine.messages import Fill, OrderEvent, Round, VenueReport

    writes = [0]

    def injector():
        writes[0] += 1
        if writes[0] == fail_on_write:
            raise OSError(28, "No space left on device")

    path = tmp_path / "held.sqlite"
    d = Directory()
    got: queue.Queue = queue.Queue()
    feed = Collector.start("feed", d, inbox=got)
    d.register("feed", feed)
    actor = OrderActor("orders", d, journal=lambda: Journal.open(path, fault_injector=injector), kill=KillFlag(),
                       events=None)  # fmt: skip
    actor.on_start()
    ts = freeze(np.arange(3, dtype=np.int64) + 1000)

    def rnd(batch_seq, *orders):
        return Round(feed="feed", batch_seq=batch_seq, symbol="SPY", first_tick_seq=3 * batch_seq, ts_ns=ts,
                     price=freeze(np.full(3, 100.0)), approved=list(orders))  # fmt: skip

    fill = Fill(client_order_id="s-1", strategy_id="s", trade_id="T1-s-1", symbol="SPY", side=Side.BUY, quantity=1.0,
                price=100.0, fee=0.0, event_seq=1, ts_ns=1001)  # fmt: skip
    done = OrderEvent(client_order_id="s-1", strategy_id="s", symbol="SPY", status=OrderStatus.FILLED, event_seq=1,
                      ts_ns=1001, filled_qty=1.0, avg_price=100.0)  # fmt: skip
    report = VenueReport(feed="feed", batch_seq=0, symbol="SPY", fills=[fill], events=[done], watermark=2)
    actor.on_round(rnd(0, order("s-1", seq=0)))  # journaled and sent: one commit
    actor.actor_inbox.put(Envelope("mail waiting behind the report"))
    actor.on_report(report)
    return actor, path, rnd, got, feed


def test_a_report_with_mail_behind_it_is_committed_with_the_next_round_and_applied_only_then(tmp_path):
    import sqlite3

    actor, path, rnd, got, feed = _held_report_rig(tmp_path)
    try:
        assert actor.book.live["s-1"].status is OrderStatus.SUBMITTED  # held: nothing applied or told yet
        actor.on_round(rnd(1, order("s-2", seq=3)))
        assert actor.book.view("s-1").status is OrderStatus.FILLED and "s-2" in actor.book.live
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT types FROM batches ORDER BY first_seq").fetchall()
        assert [r[0] for r in rows] == [",OrderRequest,", ",FeedCheckpoint,Fill,OrderEvent,OrderRequest,"]
        with Journal.open(path, readonly=True) as j:  # the report's records first, as if committed apart
            kinds = [type(r).__name__ for _, r in j.records()]
        assert kinds[-5:] == ["OrderRequest", "Fill", "OrderEvent", "FeedCheckpoint", "OrderRequest"]
        done, _ = wait_for(got, lambda m: isinstance(m, BatchDone))
        assert done.batch_seq == 0  # the feed's credit came back after the commit
    finally:
        actor.release_resources()
        feed.stop()


def test_a_held_report_whose_group_commit_fails_is_neither_applied_nor_told(tmp_path):
    actor, path, rnd, got, feed = _held_report_rig(tmp_path, fail_on_write=2)
    try:
        actor.on_round(rnd(1, order("s-2", seq=3)))  # the merged commit: write 2 fails
        assert actor.kill.is_set() and actor.journal_failed
        assert actor.book.live["s-1"].status is OrderStatus.SUBMITTED and "s-2" not in actor.book.live
        with Journal.open(path, readonly=True) as j:
            assert [type(r).__name__ for _, r in j.records()].count("Fill") == 0
    finally:
        actor.release_resources()
        feed.stop()


def test_a_round_with_nothing_sent_or_open_returns_its_credit_without_a_venue_report(rig, monkeypatch):
    """A quiet round ends at the OrderActor; a round with an order, the one that fills it and a checkpoint batch report."""
    reports: queue.Queue = queue.Queue()
    original = OrderActor.on_report

    def spying(self, rep):
        reports.put(rep.batch_seq)
        return original(self, rep)

    monkeypatch.setattr(OrderActor, "on_report", spying)  # handlers are looked up by name on every message
    d, _kill, got, path = rig
    seen: list = []
    for seq, first, orders in ((1, 0, []), (2, 1, [order("s-1", seq=1)]), (3, 2, []), (4, 3, []), (64, 4, [])):
        round_of(d, seq, first, [100.0 + first], orders)
        _, seen = wait_for(got, lambda m, s=seq: isinstance(m, BatchDone) and m.batch_seq == s, seen=seen)
    # Every report the venue sends is handled before the OrderActor answers this (one mailbox, in order).
    assert d.ask("orders", GetOrder(client_order_id="s-1")).status is OrderStatus.FILLED
    got_reports = []
    while not reports.empty():
        got_reports.append(reports.get_nowait())
    # 2: its order at the venue; 3: the tick that fills it; 64: the FeedCheckpoint batch. 1 and 4: nothing to say.
    assert got_reports == [2, 3, 64]
    with Journal.open(path) as j:
        checkpoints = [r.batch_seq for _, r in j.records() if type(r).__name__ == "FeedCheckpoint"]
    assert checkpoints == [3, 64]  # with the fill's records, and on the checkpoint batch (2 had no record to ride on)


def test_a_venue_told_it_may_skip_its_report_still_sends_one_that_has_something_in_it():
    from engine.messages import Fill, Round

    class _FillingVenue(PaperVenue):  # a fill the OrderActor knew nothing of, on round 2
        def on_round(self, rnd):
            rep = super().on_round(rnd)
            if rnd.batch_seq != 2:
                return rep
            fill = Fill(client_order_id="s-9", strategy_id="s", symbol="SPY", side=Side.BUY, quantity=1.0, price=100.0,
                        fee=0.0, trade_id="t-1", event_seq=rnd.first_tick_seq, ts_ns=0)
            return msgspec.structs.replace(rep, fills=[fill])

    d = Directory()
    got: queue.Queue = queue.Queue()
    venue = _FillingVenue(config_from_dict({"instruments": [{"symbol": "SPY"}]}).venue)
    refs = [Collector.start("orders", d, inbox=got), VenueActor.start("venue", d, venue=venue, readopt_timeout_s=0.5)]
    d.register("orders", refs[0])
    d.register("venue", refs[1])
    try:
        for seq in (1, 2, 3):
            d.tell("venue", Round(feed="feed", batch_seq=seq, symbol="SPY", first_tick_seq=seq, ts_ns=None, price=None,
                                  wants_report=seq == 3))
        first = got.get(timeout=10)
        assert first.batch_seq == 2 and first.fills  # not asked for, but not empty: sent
        assert got.get(timeout=10).batch_seq == 3  # asked for: sent though empty
        assert got.empty()  # 1: neither asked for nor anything in it
    finally:
        for ref in reversed(refs):
            ref.stop()
