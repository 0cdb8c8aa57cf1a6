"""The journal stores what it is given, in order, and its digest means what it says."""

from __future__ import annotations

import hashlib
import sqlite3
import time

import msgspec
import numpy as np
import pytest

import engine.journal as journal_module
from engine.journal import SCHEMA_VERSION, Journal, JournalError, WalCheckpointer, recompute_digest
from engine.messages import (
    ActorCheckpoint,
    ActorStatus,
    CancelOrder,
    DenyReason,
    FeedCheckpoint,
    Fill,
    MetricsSnapshot,
    OrderDenied,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    StrategyLifecycle,
    SupervisorDecision,
    TickBatch,
    TradingState,
    TradingStateChanged,
    freeze,
    to_msgpack,
)


def sample_records(wall: int = 0, qty: float = 10.0) -> list:
    """One of every record type the engine journals, wall-clock fields set to ``wall``."""
    return [
        StrategyLifecycle(strategy_id="rsi_mr", event="started", detail="v1"),
        OrderRequest(client_order_id="rsi_mr-1", strategy_id="rsi_mr", symbol="SPY", side=Side.BUY, quantity=qty,
                     order_type=OrderType.LIMIT, limit_price=168.25, decision_seq=41, decision_ts_ns=1_381_152_600_000_000_000),
        OrderEvent(client_order_id="rsi_mr-1", strategy_id="rsi_mr", symbol="SPY", status=OrderStatus.ACCEPTED,
                   event_seq=42, ts_ns=1_381_152_600_100_000_000, venue_order_id="P-1"),
        Fill(client_order_id="rsi_mr-1", strategy_id="rsi_mr", trade_id="T-1", symbol="SPY", side=Side.BUY,
             quantity=qty, price=168.26, fee=0.01, event_seq=42, ts_ns=1_381_152_600_100_000_000),
        OrderDenied(client_order_id="rsi_mr-2", strategy_id="rsi_mr", reason=DenyReason.MAX_POSITION, detail="cap 100"),
        TradingStateChanged(state=TradingState.HALTED, previous=TradingState.ACTIVE, reason="daily loss", ts_wall_ns=wall),
        SupervisorDecision(supervisor="root", child="order", action="restart", reason="boom", restarts=1, ts_wall_ns=wall),
        FeedCheckpoint(feed="spy", batch_seq=7, last_tick_seq=28671),
        ActorCheckpoint(name="indicator", batch_seq=7, state=b"\x00\x01state\xff"),
        TickBatch(feed="spy", batch_seq=8, symbol="SPY", first_tick_seq=28672,
                  ts_ns=freeze(np.array([1, 2, 3], dtype=np.int64)), price=freeze(np.array([1.5, 2.5, 3.5])),
                  size=freeze(np.array([100.0, 200.0, 50.0])), recv_wall_ns=wall),
        MetricsSnapshot(ts_wall_ns=wall, rss_bytes=1 << 20, cpu_percent=3.5, threads=9, open_fds=12,
                        actors=[ActorStatus(name="order", supervisor="root", status="running", last_error_wall_ns=wall)]),
    ]


def spec_digest(journal_path) -> str:
    """The digest as the journal module's docstring defines it, computed independently
    here: from the decoded records, wall fields zeroed on the plain msgpack map."""

    def scrub(node):
        if isinstance(node, dict):
            return {k: (0 if k.endswith("_wall_ns") else scrub(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    h = hashlib.sha256()
    with Journal.open(journal_path, readonly=True) as journal:
        for _seq, record in journal.records():
            payload = msgspec.msgpack.encode(scrub(msgspec.msgpack.decode(to_msgpack(record))))
            h.update(type(record).__name__.encode() + b"\x00" + len(payload).to_bytes(8, "little") + payload)
    return h.hexdigest()


def test_every_record_type_round_trips_in_seq_order(tmp_path):
    records = sample_records(wall=time.time_ns())
    with Journal.open(tmp_path / "j.sqlite") as journal:
        assert journal.last_seq == 0
        assert journal.append(records[:4]) == 4
        assert journal.append(records[4:]) == len(records)
        stored = list(journal.records())
    assert [seq for seq, _ in stored] == list(range(1, len(records) + 1))
    for (_, got), want in zip(stored, records):
        assert type(got) is type(want)
        assert to_msgpack(got) == to_msgpack(want)
    batch = stored[9][1]
    assert batch.price.tolist() == [1.5, 2.5, 3.5] and not batch.price.flags.writeable


def test_reads_filter_by_seq_and_type_and_find_the_latest_checkpoint(tmp_path):
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.append(sample_records())
        journal.append([FeedCheckpoint(feed="spy", batch_seq=9, last_tick_seq=30000)])
        assert [s for s, _ in journal.records(after_seq=8)] == [9, 10, 11, 12]
        fills_and_events = list(journal.records(types=(Fill, OrderEvent)))
        assert [type(r).__name__ for _, r in fills_and_events] == ["OrderEvent", "Fill"]
        seq, latest = journal.last_record(FeedCheckpoint)
        assert (seq, latest.batch_seq) == (12, 9)
        assert journal.last_record(CancelOrder) is None
        assert journal.count() == 12 and journal.count((FeedCheckpoint,)) == 2
        assert list(journal.records(types=())) == [] and journal.count(()) == 0


def test_reopening_continues_seq_and_keeps_everything(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        journal.append(sample_records()[:3])
    with Journal.open(path) as journal:
        assert journal.last_seq == 3
        assert journal.append(sample_records()[3:5]) == 5
        assert [type(r).__name__ for _, r in journal.records()] == [
            "StrategyLifecycle", "OrderRequest", "OrderEvent", "Fill", "OrderDenied"]  # fmt: skip


def test_digest_ignores_wall_clock_and_batching(tmp_path):
    with Journal.open(tmp_path / "a.sqlite") as a:
        a.append(sample_records(wall=111))
        digest_a = a.digest()
    with Journal.open(tmp_path / "b.sqlite") as b:
        for record in sample_records(wall=time.time_ns()):  # other wall times, one record per transaction
            b.append([record])
        digest_b = b.digest()
    assert digest_a == digest_b
    assert digest_a == spec_digest(tmp_path / "a.sqlite") == spec_digest(tmp_path / "b.sqlite")


@pytest.mark.parametrize("change", ["quantity", "order", "drop"])
def test_digest_changes_when_an_event_changes(tmp_path, change):
    base = sample_records()
    if change == "quantity":
        other = sample_records(qty=10.5)
    elif change == "order":
        other = [base[1], base[0], *base[2:]]
    else:
        other = base[:-1]
    with Journal.open(tmp_path / "a.sqlite") as a, Journal.open(tmp_path / "b.sqlite") as b:
        a.append(base)
        b.append(other)
        assert a.digest() != b.digest()


def test_incremental_digest_equals_full_recompute(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        empty = journal.digest()
        assert empty == hashlib.sha256().hexdigest()
        for i in range(5):
            journal.append(sample_records(wall=i, qty=1.0 + i))
            assert journal.digest() == spec_digest(path)
        incremental = journal.digest()
    assert recompute_digest(path) == incremental
    with Journal.open(path) as journal:
        assert journal.digest() == incremental
        journal.append(sample_records(wall=99))
        assert journal.digest() == spec_digest(path) != incremental


def test_meta_is_stored_overwritten_and_persisted(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        assert journal.get_meta("status") is None
        journal.set_meta("status", "running")
        journal.set_meta("data_path", "/data/spy.csv.gz")
        journal.set_meta("status", "finished")
        with pytest.raises(TypeError, match="str value"):
            journal.set_meta("created_wall_ns", 12)  # type: ignore[arg-type]
    with Journal.open(path, readonly=True) as journal:
        assert journal.meta() == {"data_path": "/data/spy.csv.gz", "status": "finished"}
        assert journal.get_meta("status") == "finished"


def test_schema_version_is_recorded_and_newer_versions_are_refused(tmp_path):
    path = tmp_path / "j.sqlite"
    Journal.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    for readonly in (False, True):
        with pytest.raises(JournalError) as info:
            Journal.open(path, readonly=readonly)
        assert info.value.kind == "schema"
        assert str(path) in str(info.value) and "newer" in str(info.value)


def test_an_empty_sqlite_file_is_migrated_and_a_foreign_file_is_refused(tmp_path):
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()  # version 0: no tables yet
    with Journal.open(empty) as journal:
        assert journal.append(sample_records()[:1]) == 1
    foreign = tmp_path / "notes.sqlite"
    foreign.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    with pytest.raises(JournalError) as info:
        Journal.open(foreign)
    assert info.value.kind == "corrupt" and str(foreign) in str(info.value)


def test_user_mistakes_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="synchronous.*SOMETIMES"):
        Journal.open(tmp_path / "j.sqlite", synchronous="SOMETIMES")
    with pytest.raises(JournalError, match="no journal file") as info:
        Journal.open(tmp_path / "missing.sqlite", readonly=True)
    assert info.value.kind == "io"
    with Journal.open(tmp_path / "j.sqlite") as journal:
        with pytest.raises(TypeError, match="dict is not a message type"):
            journal.append([{"not": "a struct"}])  # type: ignore[list-item]
        assert journal.failed is None and journal.last_seq == 0  # a programming error does not poison the journal
        assert journal.append(sample_records()[:2]) == 2
    with pytest.raises(JournalError, match="closed"):
        journal.append(sample_records()[:1])


def test_journal_is_in_wal_mode_with_the_requested_durability(tmp_path):
    for mode, level in (("OFF", 0), ("NORMAL", 1), ("FULL", 2), ("EXTRA", 3)):
        with Journal.open(tmp_path / f"{mode}.sqlite", synchronous=mode) as journal:
            assert journal._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == level
            assert journal._conn.execute("PRAGMA cache_size").fetchone()[0] == -256  # KB: a writer needs few pages


def _wal_frames(path) -> int:
    """Frames in the WAL file now (from its size: a 32-byte header, then 24 + page size bytes per frame)."""
    wal = path.with_name(path.name + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    return max(0, (size - 32) // (24 + 4096))


def test_a_journal_without_autocheckpoint_leaves_the_wal_to_a_checkpointer_on_another_connection(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal.open(tmp_path / "auto.sqlite") as auto:
        assert auto.autocheckpoint and auto._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    journal = Journal.open(path, autocheckpoint=False)
    assert not journal.autocheckpoint
    assert journal._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == journal_module.WAL_BACKSTOP_PAGES > 1500
    records = [OrderRequest(client_order_id=f"s-{i}", strategy_id="s", symbol="SPY", side=Side.BUY, quantity=1.0)
               for i in range(1500)]
    for r in records:  # one commit each: past SQLite's 1000-page mark, which would have checkpointed inline
        journal.append([r])
    assert _wal_frames(path) >= 1500  # nothing was copied by the writer's commits
    checkpointer = WalCheckpointer(path)
    busy, frames, done = checkpointer.run()
    assert (busy, frames >= 1500, done) == (0, True, frames)
    journal.append([OrderRequest(client_order_id="s-after", strategy_id="s", symbol="SPY", side=Side.BUY, quantity=1.0)])
    assert checkpointer.run()[1] < 10  # the writer restarted the WAL after the complete checkpoint
    checkpointer.close()
    assert [r.client_order_id for _, r in journal.records()][-2:] == ["s-1499", "s-after"]
    digest = journal.digest()
    journal.close()
    with Journal.open(path, readonly=True) as again:
        assert again.last_seq == 1501 and again.digest() == digest == recompute_digest(path)


def test_a_writer_that_outruns_its_checkpointer_still_keeps_the_wal_bounded(tmp_path, monkeypatch):
    # A replay commits faster than any passive checkpoint finishes (here: none runs at all);
    # past the backstop the writer's own commit completes one and the WAL restarts
    # instead of growing with the run.
    monkeypatch.setattr(journal_module, "WAL_BACKSTOP_PAGES", 64)
    path = tmp_path / "j.sqlite"
    journal = Journal.open(path, autocheckpoint=False)
    most = 0
    for i in range(600):
        journal.append([OrderRequest(client_order_id=f"s-{i}", strategy_id="s", symbol="SPY", side=Side.BUY,
                                     quantity=1.0)])
        most = max(most, _wal_frames(path))
    assert 64 <= most <= 64 + 4  # the backstop's pages and the commit that crossed it (600+ without it)
    digest = journal.digest()
    journal.close()
    with Journal.open(path, readonly=True) as again:
        assert again.last_seq == 600 and again.digest() == digest == recompute_digest(path)


def test_a_checkpointer_names_the_file_it_cannot_open(tmp_path):
    missing = tmp_path / "nowhere" / "j.sqlite"
    with pytest.raises(JournalError, match="nowhere/j.sqlite: checkpointing the WAL failed"):
        WalCheckpointer(missing).run()
