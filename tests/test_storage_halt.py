"""A journal that fails mid-replay halts trading at once, through the whole engine.

The disk fails two ways: an injected sqlite error just before COMMIT
(``Journal.open(fault_injector=...)``) and a real SQLITE_FULL from a size
cap (``max_pages``), both through build_engine's ``journal_options`` patch
point. A spy wraps the paper venue. Then: the kill flag is pulled and the
SafetyActor is HALTED with the journal's reason; every order that reached the
venue is in the journal (none unjournaled: those it handles after the kill
were journaled and sent before it); and everything committed before the
failure is still there.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from bench.bench_chaos import chaos_config
from engine.assembly import FEED, SAFETY, build_engine, make_venue
from engine.data import open_tick_source
from engine.journal import Journal
from engine.journal_runs import new_run_path, start_run
from engine.messages import GetTradingState, OrderRequest, StartFeed, TradingState
from engine.replay import capped, replay_config
from tests.paths import SPY_TICKS, needs_shared

pytestmark = needs_shared


class SpyVenue:
    """The paper venue, recording which orders reached it and whether the kill flag was up then."""

    def __init__(self, inner, kill_is_set):
        self.inner = inner
        self.kill_is_set = kill_is_set
        self.seen: list[str] = []
        self.after_kill: list[str] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def on_round(self, rnd):
        for req in rnd.approved:
            self.seen.append(req.client_order_id)
            if self.kill_is_set() and not req.reduce_only:
                self.after_kill.append(req.client_order_id)
        return self.inner.on_round(rnd)


class FailAfter:
    """Lets ``n`` write transactions commit, then fails every later one like a full disk."""

    def __init__(self, n: int):
        self.n = n
        self.commits = 0

    def __call__(self) -> None:
        if self.commits >= self.n:
            raise sqlite3.OperationalError("database or disk is full")
        self.commits += 1


def _run_until_halted(tmp: Path, journal_options: dict):
    cfg = replay_config(chaos_config(tmp, 200_000, batch_size=256), str(SPY_TICKS), "SPY", None)
    path = new_run_path(Path(cfg.journal.dir) / "paper")
    start_run(path, kind="replay").close()
    spies: list[SpyVenue] = []
    holder = {}

    def venue_factory(c):
        spy = SpyVenue(make_venue(c), lambda: holder["eng"].kill.is_set())
        spies.append(spy)
        return spy

    src = lambda: capped(open_tick_source(str(SPY_TICKS), symbol="SPY", instruments=cfg.instruments,  # noqa: E731
                                          cache_dir=Path(cfg.engine.data_dir) / "cache"), cfg.feed.max_ticks)
    eng = build_engine(cfg, source_factory=src, journal_path=path, with_monitor=False,
                       journal_options=journal_options, venue_factory=venue_factory)
    holder["eng"] = eng
    try:
        eng.directory.tell(FEED, StartFeed(after_tick_seq=-1))
        halted = threading.Event()
        while not halted.wait(0.02):
            assert not eng.ended.is_set(), "the run ended without the journal failing"
            info = eng.directory.ask(SAFETY, GetTradingState(), timeout=5)
            if eng.kill.is_set() and info.state is TradingState.HALTED:
                halted.set()
        info = eng.directory.ask(SAFETY, GetTradingState(), timeout=5)
        kill_reason = eng.kill.reason
    finally:
        eng.stop()
    with Journal.open(path, readonly=True) as j:
        records = [r for _, r in j.records()]
    return info, kill_reason, spies, records


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["injected", "max_pages"])
def test_journal_failure_halts_and_nothing_unjournaled_reaches_the_venue(tmp_path, how):
    opts = {"fault_injector": FailAfter(60)} if how == "injected" else {"max_pages": 40}
    info, reason, spies, records = _run_until_halted(tmp_path, opts)
    assert info.state is TradingState.HALTED and info.kill_switch
    assert "journal" in info.reason and "disk_full" in info.reason, info.reason
    assert reason == info.reason
    journaled = {r.client_order_id for r in records if isinstance(r, OrderRequest)}
    seen = [cid for spy in spies for cid in spy.seen]
    assert seen, "no order reached the venue before the failure: the test proves nothing"
    assert set(seen) <= journaled  # write-ahead held: nothing unjournaled at the venue
    # Orders the venue handled after the kill were sent before it, journaled: the same set.
    assert {c for spy in spies for c in spy.after_kill} <= journaled
    if how == "injected":
        # Everything committed before the failure is still there (the run's identity too).
        assert opts["fault_injector"].commits == 60
        assert len(records) >= 60 and len(journaled) >= 1
