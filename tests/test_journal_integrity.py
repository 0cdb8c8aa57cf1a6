"""The journal notices damage instead of replaying it, keeps seqs gap-free
under concurrent writers and any batching, and can be read from a shell."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.journal import Journal, JournalError, main
from engine.messages import FeedCheckpoint, Fill, OrderEvent, OrderStatus, Side, TradingState, TradingStateChanged


def event(i: int) -> OrderEvent:
    return OrderEvent(client_order_id=f"c{i}", strategy_id="s", symbol="SPY", status=OrderStatus.ACCEPTED,
                      event_seq=i, ts_ns=i)  # fmt: skip


def write(path, n_batches: int = 3, per_batch: int = 4) -> str:
    with Journal.open(path) as journal:
        for b in range(n_batches):
            journal.append([event(b * per_batch + k) for k in range(per_batch)])
        return journal.digest()


def test_a_damaged_record_is_reported_as_corrupt_with_its_place(tmp_path):
    path = tmp_path / "j.sqlite"
    write(path)
    conn = sqlite3.connect(path)
    frames = conn.execute("SELECT frames FROM batches WHERE first_seq = 5").fetchone()[0]
    conn.execute("UPDATE batches SET frames = ? WHERE first_seq = 5", (frames[:-7],))  # torn tail
    conn.commit()
    conn.close()
    with pytest.raises(JournalError) as info:
        Journal.open(path)
    assert info.value.kind == "corrupt" and str(path) in str(info.value) and "seq 5" in str(info.value)


def test_a_missing_batch_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "j.sqlite"
    write(path)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM batches WHERE first_seq = 5")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="seq 9 follows seq 4") as info:
        Journal.open(path, readonly=True)
    assert info.value.kind == "corrupt"


def test_concurrent_writers_get_contiguous_seqs(tmp_path):
    journal = Journal.open(tmp_path / "j.sqlite")
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            start.wait(timeout=10)
            for b in range(50):
                journal.append([Fill(client_order_id=f"w{w}", strategy_id="s", trade_id=f"{w}-{b}-{k}", symbol="SPY",
                                     side=Side.BUY, quantity=1.0, price=1.0, fee=0.0, event_seq=b, ts_ns=k)
                                for k in range(5)])  # fmt: skip
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    stored = list(journal.records())
    assert [s for s, _ in stored] == list(range(1, 4 * 50 * 5 + 1))
    assert len({r.trade_id for _, r in stored}) == 1000
    digest = journal.digest()
    journal.close()
    with Journal.open(tmp_path / "j.sqlite", readonly=True) as reader:
        assert reader.digest() == digest


@settings(max_examples=40, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["event", "fill", "state", "checkpoint"]), min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=8),
    wall=st.integers(min_value=0, max_value=2**62),
)
def test_any_batching_stores_the_same_sequence_and_digest(tmp_path_factory, kinds, cuts, wall):
    records = []
    for i, kind in enumerate(kinds):
        if kind == "event":
            records.append(event(i))
        elif kind == "fill":
            records.append(Fill(client_order_id=f"c{i}", strategy_id="s", trade_id=f"T{i}", symbol="SPY",
                                side=Side.SELL, quantity=2.0, price=10.0 + i, fee=0.1, event_seq=i, ts_ns=i))  # fmt: skip
        elif kind == "state":
            records.append(TradingStateChanged(state=TradingState.HALTED, previous=TradingState.ACTIVE,
                                               reason=f"r{i}", ts_wall_ns=wall + i))  # fmt: skip
        else:
            records.append(FeedCheckpoint(feed="f", batch_seq=i, last_tick_seq=i * 10))
    bounds = sorted({c for c in cuts if c < len(records)} | {0, len(records)})
    directory = tmp_path_factory.mktemp("batching")
    with Journal.open(directory / "one.sqlite") as whole, Journal.open(directory / "cut.sqlite") as pieces:
        whole.append(records)
        for lo, hi in zip(bounds, bounds[1:]):
            pieces.append(records[lo:hi])
        assert [r for _, r in pieces.records()] == [r for _, r in whole.records()] == records
        assert pieces.digest() == whole.digest()
        checkpoints = [(s, r) for s, r in pieces.records(types=(FeedCheckpoint,))]
        assert checkpoints == [(i + 1, r) for i, r in enumerate(records) if isinstance(r, FeedCheckpoint)]
        assert pieces.last_record(FeedCheckpoint) == (checkpoints[-1] if checkpoints else None)
        after = len(records) // 2
        assert [s for s, _ in pieces.records(after_seq=after)] == list(range(after + 1, len(records) + 1))
        assert pieces.count((FeedCheckpoint,)) == len(checkpoints)


def test_shell_dump_prints_json_lines_and_errors_without_traceback(tmp_path, capsys):
    path = tmp_path / "j.sqlite"
    digest = write(path, n_batches=2, per_batch=3)
    assert main([str(path), "--after", "4"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["seq"], d["type"], d["record"]["event_seq"]) for d in lines] == [(5, "OrderEvent", 4), (6, "OrderEvent", 5)]
    assert main([str(path), "--verify"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"path": str(path), "integrity": "ok", "records": 6, "digest": digest, "meta": {}}
    assert main([str(tmp_path / "nope.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "nope.sqlite" in err and "Traceback" not in err
