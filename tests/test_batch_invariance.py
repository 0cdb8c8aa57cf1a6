"""Batch size is a throughput knob only: 1 .. 65536 ticks per batch give the same journal.

Why it must hold: strategies decide optimistically over a whole batch and the
journal digest is canonical (event-time order), so micro-batching may change
speed but never a single record. Run through every actor on real SPY ticks.
"""

from __future__ import annotations

import json

import pytest

from engine.indicators import rsi
from engine.replay import run_replay
from tests.paths import SPY_TICKS, needs_shared, spy_prices
from tests.test_replay_e2e import job_config
from tests.test_trading_pure import reference_fills

pytestmark = needs_shared

TICKS = 20_000
BATCH_SIZES = (1, 7, 64, 4096, 65536)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    # One data_dir for all runs: the columnar cache is built once, each run gets its own journal.
    tmp = tmp_path_factory.mktemp("invariance")
    out = {}
    for batch in BATCH_SIZES:
        cfg = job_config(tmp, TICKS, batch_size=batch)
        out[batch] = run_replay(cfg, str(SPY_TICKS), symbol="SPY", progress=False, timeout_s=90)
    return out


def test_every_batch_size_journals_the_same_digest(reports):
    digests = {batch: rep["journal_digest"] for batch, rep in reports.items()}
    assert len(set(digests.values())) == 1, digests
    assert len({rep["journal"] for rep in reports.values()}) == len(BATCH_SIZES)  # really separate journals


def test_every_batch_size_gives_the_plain_loop_fills(reports):
    _, prices = spy_prices(TICKS)
    expected = reference_fills(prices, rsi(prices, 14))
    position = sum(q for _, q, _ in expected)
    for batch, rep in reports.items():
        assert rep["ticks"] == TICKS, batch
        assert rep["batch_size"] == batch
        assert rep["fills"] == len(expected) > 20, batch
        assert rep["position"] == {"SPY": position}, batch
    summary = {(rep["orders"], rep["fills"], rep["realized_pnl"], rep["max_drawdown"], json.dumps(rep["position"]))
               for rep in reports.values()}
    assert len(summary) == 1, summary


@pytest.mark.parametrize("threads", [0, 2])
def test_the_thread_layout_of_the_pipeline_changes_nothing(reports, tmp_path, threads):
    """engine.pipeline_threads is a latency knob only: a thread per actor, or market and order side apart."""
    import msgspec

    for batch in (7, 4096):
        cfg = job_config(tmp_path, TICKS, batch_size=batch)
        cfg = msgspec.structs.replace(cfg, engine=msgspec.structs.replace(cfg.engine, pipeline_threads=threads))
        rep = run_replay(cfg, str(SPY_TICKS), symbol="SPY", progress=False, timeout_s=90)
        assert rep["journal_digest"] == reports[batch]["journal_digest"], (threads, batch)
        assert rep["fills"] == reports[batch]["fills"]


def test_a_report_rides_with_the_next_rounds_commit_and_changes_no_record(reports, tmp_path, monkeypatch):
    """Group commit: one transaction for a report and the round waiting behind it; the same records."""
    import sqlite3

    from actors.order import OrderActor

    def rows(rep):
        with sqlite3.connect(f"file:{rep['journal']}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM batches").fetchone()[0]

    grouped = reports[64]
    monkeypatch.setattr(OrderActor, "_defer", lambda self, rep, records: False)
    apart = run_replay(job_config(tmp_path, TICKS, batch_size=64), str(SPY_TICKS), symbol="SPY", progress=False,
                       timeout_s=90)  # fmt: skip
    assert apart["journal_digest"] == grouped["journal_digest"] and apart["fills"] == grouped["fills"]
    assert rows(grouped) < 0.8 * rows(apart)  # measured: ~300 rows vs 398


def test_rounds_that_end_at_the_order_actor_change_no_record(tmp_path, monkeypatch):
    """A quiet round's credit returns at the OrderActor without a venue report: the journal is the one with every report."""
    from actors.order import OrderActor

    ticks = 5_000  # batch size 1: every tick a round
    quiet = []
    original = OrderActor._quiet

    def counting(self, rnd):
        ended = original(self, rnd)
        quiet.append(ended)
        return ended

    monkeypatch.setattr(OrderActor, "_quiet", counting)
    short = run_replay(job_config(tmp_path / "short", ticks, batch_size=1), str(SPY_TICKS), symbol="SPY",
                       progress=False, timeout_s=90)  # fmt: skip
    assert sum(quiet) > ticks // 2  # most one-tick rounds ended at the OrderActor
    monkeypatch.setattr(OrderActor, "_quiet", lambda self, rnd: False)
    every = run_replay(job_config(tmp_path / "every", ticks, batch_size=1), str(SPY_TICKS), symbol="SPY",
                       progress=False, timeout_s=90)  # fmt: skip
    assert every["fills"] > 0 and short["fills"] == every["fills"]
    assert short["journal_digest"] == every["journal_digest"]
    # The digest covers the trading history; the feed checkpoints (outside it) are the same too.
    from engine.journal import Journal
    from engine.messages import FeedCheckpoint

    def checkpoints(rep):
        with Journal.open(rep["journal"], readonly=True) as j:
            return [r for _, r in j.records(types=(FeedCheckpoint,))]

    assert checkpoints(short) == checkpoints(every) != []
