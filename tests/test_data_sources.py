"""File and synthetic tick sources: validation at the edge, quarantine, cache, resume."""

import gzip
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.config import Instrument
from engine.data.errors import DataError
from engine.data.quarantine import read_rejects
from engine.data.sources import open_tick_source
from engine.data.synthetic import SyntheticSource

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPY_TICKS = DATA / "ticks" / "spy_trades_lean" / "SPY_trades_20131007-20131011.norm.csv.gz"
needs_data = pytest.mark.skipif(not SPY_TICKS.exists(), reason=f"real market data not found at {DATA}")

INSTR = [Instrument(symbol="SPY"), Instrument(symbol="QQQ")]


def drain(src):
    chunks = list(src)
    if not chunks:
        return chunks, np.empty(0, np.int64), np.empty(0)
    return chunks, np.concatenate([c.ts_ns for c in chunks]), np.concatenate([c.price for c in chunks])


BAD_CSV = (
    b"ts_ns,price,size\n"          # line 1
    b"1000,100.5,10\n"             # 2 ok
    b"1001,nan,10\n"               # 3 price_not_finite
    b"1002,-1,10\n"                # 4 price_not_positive
    b"1003,0,10\n"                 # 5 price_not_positive
    b"1004,100.6,inf\n"            # 6 size_not_finite
    b"1005,100.7,-3\n"             # 7 size_negative
    b"999,100.8,5\n"               # 8 ts_decreasing
    b"1005,abc,5\n"                # 9 unparseable (text)
    b"1006,100.9\n"                # 10 unparseable (field count)
    b"1007,\xff\xfe,5\n"           # 11 unparseable (bytes)
    b"\n"                          # 12 blank: skipped
    b"1005,101.0,0\n"              # 13 ok (equal ts is fine, size 0 fine)
    b"1008,101.1,7\n"              # 14 ok
)  # fmt: skip
EXPECTED = [
    ("3", "price_not_finite"), ("4", "price_not_positive"), ("5", "price_not_positive"),
    ("6", "size_not_finite"), ("7", "size_negative"), ("8", "ts_decreasing"),
    ("9", "unparseable"), ("10", "unparseable"), ("11", "unparseable"),
]  # fmt: skip


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("chunk_rows", [1, 3, 65536])
def test_bad_rows_are_quarantined_with_line_and_reason(tmp_path, gz, chunk_rows):
    path = tmp_path / ("bad.csv.gz" if gz else "bad.csv")
    path.write_bytes(gzip.compress(BAD_CSV) if gz else BAD_CSV)
    rejects = tmp_path / "rejects.csv"
    src = open_tick_source(path, symbol="SPY", instruments=INSTR, rejects_path=rejects, chunk_rows=chunk_rows)
    chunks, ts, price = drain(src)
    np.testing.assert_array_equal(ts, [1000, 1005, 1008])
    np.testing.assert_array_equal(price, [100.5, 101.0, 101.1])
    assert [c.first_tick_seq for c in chunks] == list(np.cumsum([0] + [len(c) for c in chunks[:-1]]))
    rows = read_rejects(rejects)
    assert [(r["line"], r["reason"]) for r in rows] == EXPECTED
    assert rows[0]["source"] == str(path) and rows[0]["raw"] == "1001,nan,10"
    assert src.rejected == 9 and src.rows_read == 12
    assert src.rejected_by_reason == {
        "price_not_finite": 1, "price_not_positive": 2, "size_not_finite": 1,
        "size_negative": 1, "ts_decreasing": 1, "unparseable": 3,
    }  # fmt: skip


def test_multi_symbol_file_splits_chunks_by_symbol_and_rejects_unknown(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text(
        "ts_ns,price,size,side,symbol\n"
        "1,10,1,1,SPY\n2,11,1,-1,SPY\n2,50,2,1,QQQ\n3,12,1,0,SPY\n4,9,1,1,XYZ\n1,13,1,1,SPY\n5,51,1,1,QQQ\n"
    )
    src = open_tick_source(path, instruments=INSTR, rejects_path=tmp_path / "r.csv")
    chunks = list(src)
    assert [(c.symbol, c.first_tick_seq, len(c)) for c in chunks] == [("SPY", 0, 2), ("QQQ", 2, 1), ("SPY", 3, 1), ("QQQ", 4, 1)]
    assert chunks[0].side.dtype == np.int8 and chunks[0].side.tolist() == [1, -1]
    assert [(r["line"], r["reason"]) for r in read_rejects(tmp_path / "r.csv")] == [("6", "unknown_symbol"), ("7", "ts_decreasing")]
    # with a symbol given, the other symbols are filtered out as unknown
    only = open_tick_source(path, symbol="QQQ", instruments=INSTR)
    assert [(c.symbol, len(c)) for c in only] == [("QQQ", 2)] and only.rejected_by_reason["unknown_symbol"] == 5


@pytest.mark.parametrize(
    "content, line, words",
    [
        (b"", 1, "empty file"),
        (b"time,price,size\n1,2,3\n", 1, "missing column(s) ts_ns"),
        (b"ts_ns,price\n1,2\n", 1, "missing column(s) size"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage", 1, "not a text CSV"),
    ],
)
def test_unparseable_files_fail_with_file_and_line(tmp_path, content, line, words):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        list(open_tick_source(path, symbol="SPY", instruments=INSTR))
    msg = str(info.value)
    assert msg.startswith(f"{path}: line {line}: ") and words in msg


def test_missing_file_and_corrupt_gzip_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        open_tick_source(tmp_path / "nope.csv", symbol="SPY", instruments=INSTR)
    good = gzip.compress(b"ts_ns,price,size\n" + b"".join(b"%d,100.0,1\n" % i for i in range(50000)))
    bad = tmp_path / "broken.csv.gz"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"broken.csv.gz: line \d+: cannot read"):
        list(open_tick_source(bad, symbol="SPY", instruments=INSTR, chunk_rows=1000))
    with pytest.raises(DataError, match="'ABC' is not a configured instrument"):
        open_tick_source(bad, symbol="ABC", instruments=INSTR)
    fine = tmp_path / "fine.csv"
    fine.write_text("ts_ns,price,size\n1,2,3\n")
    with pytest.raises(DataError, match="no symbol column and no symbol was given"):
        list(open_tick_source(fine, instruments=INSTR))
    assert sum(len(c) for c in open_tick_source(fine, instruments=INSTR[:1])) == 1  # the only instrument


def test_parquet_matches_csv_and_quarantines_nulls(tmp_path):
    table = pa.table({
        "ts_ns": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "price": pa.array([10.0, None, 11.0, float("nan"), 12.0]),
        "size": pa.array([1.0, 1.0, 2.0, 3.0, 4.0]),
    })  # fmt: skip
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    src = open_tick_source(path, symbol="SPY", instruments=INSTR, rejects_path=tmp_path / "r.csv", chunk_rows=2)
    _, ts, price = drain(src)
    np.testing.assert_array_equal(ts, [1, 3, 5])
    np.testing.assert_array_equal(price, [10.0, 11.0, 12.0])
    assert [(r["line"], r["reason"]) for r in read_rejects(tmp_path / "r.csv")] == [("2", "unparseable"), ("4", "price_not_finite")]
    pq.write_table(pa.table({"ts_ns": [1], "price": [1.0]}), tmp_path / "short.parquet")
    with pytest.raises(DataError, match="missing column"):
        open_tick_source(tmp_path / "short.parquet", symbol="SPY", instruments=INSTR)


def test_cache_replays_identical_ticks_and_counters_without_rewriting_rejects(tmp_path):
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress(BAD_CSV))
    rejects, cache = tmp_path / "r.csv", tmp_path / "cache"
    first = open_tick_source(path, symbol="SPY", instruments=INSTR, rejects_path=rejects, cache_dir=cache)
    c1, ts1, p1 = drain(first)
    assert not first.cache_hit and len(list(cache.glob("*.cols"))) == 1 and len(list(cache.glob("*.json"))) == 1
    second = open_tick_source(path, symbol="SPY", instruments=INSTR, rejects_path=rejects, cache_dir=cache)
    c2, ts2, p2 = drain(second)
    assert second.cache_hit
    np.testing.assert_array_equal(ts1, ts2)
    np.testing.assert_array_equal(p1, p2)
    assert (second.rows_read, second.rejected_by_reason) == (first.rows_read, first.rejected_by_reason)
    assert len(read_rejects(rejects)) == 9  # not written again
    assert not c2[0].price.flags.writeable  # read-only: every batch cut from a chunk shares its buffer
    # changing the file invalidates the entry
    path.write_bytes(gzip.compress(BAD_CSV + b"1009,101.2,1\n"))
    os.utime(path, ns=(1, 1))
    third = open_tick_source(path, symbol="SPY", instruments=INSTR, cache_dir=cache)
    _, ts3, _ = drain(third)
    assert not third.cache_hit and ts3[-1] == 1009


def test_cached_chunks_of_any_length_sit_in_buffers_of_one_size(tmp_path):
    # Chunks of one size fit each other's holes in the heap (engine/data/cache.py, read_cached).
    path = tmp_path / "ticks.csv"
    rows = [f"{1000 + i},{100 + i % 7},1" if i % 5 else f"{1000 + i},nan,1" for i in range(40)]
    path.write_text("ts_ns,price,size\n" + "\n".join(rows) + "\n")
    first = open_tick_source(path, symbol="SPY", instruments=INSTR, chunk_rows=8, cache_dir=tmp_path / "c")
    _, ts1, p1 = drain(first)
    second = open_tick_source(path, symbol="SPY", instruments=INSTR, chunk_rows=8, cache_dir=tmp_path / "c")
    chunks, ts2, p2 = drain(second)
    assert second.cache_hit and len({len(c) for c in chunks}) > 1  # the quarantined rows made short chunks

    def owner(a):
        while a.base is not None:
            a = a.base
        return a

    assert {owner(c.price).nbytes for c in chunks} == {owner(c.ts_ns).nbytes for c in chunks} == {8 * 8}
    np.testing.assert_array_equal(ts1, ts2)
    np.testing.assert_array_equal(p1, p2)


def test_cache_keeps_symbols_and_side_and_rebuilds_a_truncated_file(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text("ts_ns,price,size,side,symbol\n1,10,1,1,SPY\n2,11,1,-1,SPY\n2,50,2,1,QQQ\n3,12,1,0,SPY\n5,51,1,1,QQQ\n")

    def read(cache):
        src = open_tick_source(path, instruments=INSTR, chunk_rows=2, cache_dir=cache)
        chunks = [(c.symbol, c.first_tick_seq, c.ts_ns.tolist(), c.price.tolist(), c.side.tolist()) for c in src]
        return chunks, src.cache_hit

    parsed, hit = read(tmp_path / "c")
    assert not hit
    assert read(tmp_path / "c") == (parsed, True)
    data = next((tmp_path / "c").glob("*.cols"))
    data.write_bytes(data.read_bytes()[:-3])  # a torn copy: not trusted, parsed again
    assert read(tmp_path / "c") == (parsed, False)
    assert read(tmp_path / "c") == (parsed, True)


def test_abandoned_first_pass_leaves_no_cache_entry(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("ts_ns,price,size\n" + "".join(f"{i},100,1\n" for i in range(100)))
    src = open_tick_source(path, symbol="SPY", instruments=INSTR, chunk_rows=10, cache_dir=tmp_path / "c")
    next(src)
    src.close()
    assert not list((tmp_path / "c").glob("*.json")) and not list((tmp_path / "c").glob("*.cols*"))


@pytest.mark.parametrize("cached", [False, True])
def test_skip_to_resumes_at_exact_tick_and_can_rewind(tmp_path, cached):
    path = tmp_path / "t.csv"
    path.write_text("ts_ns,price,size\n" + "".join(f"{i},{100 + i % 7},1\n" if i % 13 else f"{i},-1,1\n" for i in range(500)))
    cache = tmp_path / "c" if cached else None
    _, full_ts, _ = drain(open_tick_source(path, symbol="SPY", instruments=INSTR, chunk_rows=32, cache_dir=cache))
    src = open_tick_source(path, symbol="SPY", instruments=INSTR, chunk_rows=32, cache_dir=cache, rejects_path=tmp_path / "r.csv")
    src.skip_to(100)
    first = next(src)
    assert first.first_tick_seq == 100 and first.ts_ns[0] == full_ts[100]
    rest = [first] + list(src)
    np.testing.assert_array_equal(np.concatenate([c.ts_ns for c in rest]), full_ts[100:])
    src.skip_to(5)  # rewind: re-read from the top
    again = list(src)
    assert again[0].first_tick_seq == 5
    np.testing.assert_array_equal(np.concatenate([c.ts_ns for c in again]), full_ts[5:])
    assert src.rejected == 39
    if not cached:
        assert len(read_rejects(tmp_path / "r.csv")) == 39  # rewinding never duplicates rejects


def test_bars_use_close_as_price_and_keep_high_low(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("ts_ns,open,high,low,close,volume\n1,10,12,9,11,100\n2,11,13,0,12,100\n3,12,14,11,13,50\n")
    src = open_tick_source(path, symbol="SPY", instruments=INSTR, kind="bars")
    (chunk,) = list(src)
    np.testing.assert_array_equal(chunk.price, [11, 13])
    np.testing.assert_array_equal(chunk.high, [12, 14])
    np.testing.assert_array_equal(chunk.low, [9, 11])
    assert src.rejected_by_reason == {"price_not_positive": 1}


def test_argument_mistakes_are_named(tmp_path):
    with pytest.raises(ValueError, match="chunk_rows"):
        open_tick_source(tmp_path / "x.csv", symbol="SPY", instruments=INSTR, chunk_rows=0)
    with pytest.raises(ValueError, match="kind"):
        open_tick_source(tmp_path / "x.csv", symbol="SPY", instruments=INSTR, kind="candles")


@needs_data
def test_real_spy_ticks_stream_in_bounded_chunks_and_cache(tmp_path):
    src = open_tick_source(SPY_TICKS, symbol="SPY", instruments=INSTR, chunk_rows=65536, cache_dir=tmp_path)
    n, prev_ts, biggest = 0, -1, 0
    for chunk in src:
        assert chunk.first_tick_seq == n and chunk.symbol == "SPY"
        assert chunk.ts_ns[0] >= prev_ts and (np.diff(chunk.ts_ns) >= 0).all()
        n += len(chunk)
        prev_ts = int(chunk.ts_ns[-1])
        biggest = max(biggest, len(chunk))
    assert n == 1_887_460 and src.rejected == 0 and biggest <= 65536
    cached = open_tick_source(SPY_TICKS, symbol="SPY", instruments=INSTR, cache_dir=tmp_path)
    assert sum(len(c) for c in cached) == n and cached.cache_hit


def test_synthetic_source_is_deterministic_and_resumable():
    instr = [Instrument(symbol="A", start_price=100.0, tick_size=0.05), Instrument(symbol="B", start_price=20.0)]
    a = list(SyntheticSource(instr, seed=11, max_ticks=2000, chunk_rows=100))
    b = list(SyntheticSource(instr, seed=11, max_ticks=2000, chunk_rows=100))
    other = list(SyntheticSource(instr, seed=12, max_ticks=2000, chunk_rows=100))
    assert sum(len(c) for c in a) == 2000 and [c.symbol for c in a[:3]] == ["A", "B", "A"]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.price, y.price)
        np.testing.assert_array_equal(x.size, y.size)
    assert not np.array_equal(a[0].price, other[0].price)
    a_prices = np.concatenate([c.price for c in a if c.symbol == "A"])
    assert np.allclose(np.round(a_prices / 0.05) * 0.05, a_prices) and (a_prices > 0).all()
    ts = np.concatenate([c.ts_ns for c in a])
    assert (np.diff(ts) > 0).all()
    src = SyntheticSource(instr, seed=11, max_ticks=2000, chunk_rows=100)
    src.skip_to(1234)
    tail = list(src)
    assert tail[0].first_tick_seq == 1234
    np.testing.assert_array_equal(np.concatenate([c.price for c in tail]), np.concatenate([c.price for c in a])[1234:])
    with pytest.raises(ValueError, match="at least one instrument"):
        SyntheticSource([], seed=1)
