"""`run` (real time) through a pipeline restart: it goes on, never trades an old tick twice."""

from __future__ import annotations

import threading

import pytest

from engine import faults
from engine.assembly import FEED, build_engine
from engine.config import config_from_dict
from engine.data import SyntheticSource
from engine.journal import Journal
from engine.journal_runs import start_run
from engine.messages import Fill, OrderRequest, Side, StartFeed


def run_setup(tmp_path):
    """A real-time engine config (synthetic feed, paper venue) and a fresh `run` journal."""
    cfg = config_from_dict({
        "engine": {"data_dir": str(tmp_path / "data")}, "journal": {"dir": str(tmp_path / "j")},
        "logging": {"dir": str(tmp_path / "log")}, "api": {"enabled": False},
        "feed": {"rate": 4000.0, "max_in_flight": 4},
        "supervision": {"heartbeat_interval_s": 0.25, "heartbeat_misses": 4},
    })  # fmt: skip
    path = tmp_path / "run.sqlite"
    start_run(path, kind="run").close()
    return cfg, path


def assert_long_only_qty_one(fills) -> None:
    """RsiMeanReversion is long-only with qty 1: a trade done twice shows as a position of 2 (or -1)."""
    pos = 0.0
    for f in sorted(fills, key=lambda f: (f.event_seq, f.trade_id)):
        pos += f.quantity if f.side is Side.BUY else -f.quantity
        assert pos in (0.0, 1.0), f"position {pos} after {f.trade_id}: an order was traded twice"


@pytest.mark.timeout(120)
def test_realtime_pipeline_restart_continues_without_double_trading(tmp_path):
    cfg, path = run_setup(tmp_path)
    fi = faults.FaultInjector()
    faults.install(fi)
    pause = threading.Event()
    try:
        eng = build_engine(cfg, source_factory=lambda: SyntheticSource(cfg.instruments, seed=cfg.feed.seed),
                           journal_path=path, realtime_rate=cfg.feed.rate, with_monitor=False)
        try:
            eng.directory.tell(FEED, StartFeed())

            def fills() -> int:
                with Journal.open(path, readonly=True) as j:
                    return j.count((Fill,))

            while fills() < 6:  # bounded by the test timeout
                pause.wait(0.1)
            before = fills()
            assert fi.arm("strategy:rsi_mr", "raise").wait(20), "the fault fired"
            while fills() < before + 6:  # trading goes on after the pipeline restarted
                pause.wait(0.1)
        finally:
            eng.stop()
    finally:
        faults.install(None)
    with Journal.open(path, readonly=True) as j:
        orders = [r for _, r in j.records(types=(OrderRequest,))]
        fill_recs = sorted((r for _, r in j.records(types=(Fill,))), key=lambda f: (f.event_seq, f.trade_id))
    ids = [o.client_order_id for o in orders]
    assert len(ids) == len(set(ids)), "no client id reused"
    assert_long_only_qty_one(fill_recs)


class _VenueThatDiesOnAnOrder:
    """A paper venue that fails once, on the first round carrying an order after it is armed.

    The order is then journaled (SUBMITTED) but never filled when the pipeline restarts: the
    restarted strategy must wait on it, not decide the same trade again.
    """

    def __init__(self, inner, armed: threading.Event, tripped: threading.Event):
        self.inner, self.armed, self.tripped, self.name = inner, armed, tripped, "paper"

    def connect(self):
        return self.inner.connect()

    def on_round(self, rnd):
        if rnd.approved and self.armed.is_set() and not self.tripped.is_set():
            self.tripped.set()
            raise RuntimeError("venue lost while an order was in flight (test)")
        return self.inner.on_round(rnd)

    def open_orders(self):
        return self.inner.open_orders()

    def restore(self, orders):
        return self.inner.restore(orders)


@pytest.mark.timeout(120)
def test_order_in_flight_at_a_restart_is_settled_once_and_not_decided_again(tmp_path):
    from engine.venues.paper import PaperVenue

    cfg, path = run_setup(tmp_path)
    armed, tripped = threading.Event(), threading.Event()
    eng = build_engine(cfg, source_factory=lambda: SyntheticSource(cfg.instruments, seed=cfg.feed.seed),
                       journal_path=path, realtime_rate=cfg.feed.rate, with_monitor=False,
                       venue_factory=lambda c: _VenueThatDiesOnAnOrder(PaperVenue(c.venue), armed, tripped))
    pause = threading.Event()

    def fills() -> int:
        with Journal.open(path, readonly=True) as j:
            return j.count((Fill,))

    try:
        eng.directory.tell(FEED, StartFeed())
        while fills() < 3:
            pause.wait(0.1)
        armed.set()
        assert tripped.wait(30), "the venue failed on an order"
        before = fills()
        while fills() < before + 6:  # the pipeline restarted and trades on
            pause.wait(0.1)
    finally:
        eng.stop()
    with Journal.open(path, readonly=True) as j:
        fill_recs = sorted((r for _, r in j.records(types=(Fill,))), key=lambda f: (f.event_seq, f.trade_id))
        orders = [r for _, r in j.records(types=(OrderRequest,))]
    assert len({o.client_order_id for o in orders}) == len(orders)
    assert_long_only_qty_one(fill_recs)
