"""Fuzzed tick files: zero crashes, every bad row quarantined with its reason, every good row processed.

Hypothesis builds files from good rows (increasing or equal timestamps,
finite positive prices, huge but finite values included) interleaved with
bad ones: NaN / inf / negative / zero / non-numeric prices and sizes,
truncated lines, bytes that are not UTF-8, and timestamps earlier than the
last accepted one. A plain-Python oracle says what must come out; the real
reader (engine.data.open_tick_source, CSV and gzip) must agree row for row.
"""

from __future__ import annotations

import gzip

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import Instrument
from engine.data import open_tick_source
from engine.data.quarantine import REASONS, read_rejects

INSTRUMENTS = [Instrument(symbol="SPY")]

# (raw field text or bytes, expected reason) per mutation of one column
BAD_PRICE = [("nan", "price_not_finite"), ("inf", "price_not_finite"), ("-inf", "price_not_finite"),
             ("1e400", "price_not_finite"), ("-5.5", "price_not_positive"), ("0", "price_not_positive"),
             ("abc", "unparseable"), ("", "unparseable")]
BAD_SIZE = [("nan", "size_not_finite"), ("inf", "size_not_finite"), ("-1", "size_negative"), ("x1", "unparseable")]
BAD_TS = [("abc", "unparseable"), ("", "unparseable"), ("12.5.3", "unparseable")]

good_price = st.one_of(st.floats(min_value=0.01, max_value=1e6, allow_nan=False), st.just(1e300))
good_size = st.one_of(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.just(1e300))

row = st.one_of(
    st.tuples(st.just("good"), good_price, good_size),
    st.tuples(st.just("price"), st.sampled_from(BAD_PRICE), good_size),
    st.tuples(st.just("size"), good_price, st.sampled_from(BAD_SIZE)),
    st.tuples(st.just("ts"), st.sampled_from(BAD_TS), good_size),
    st.tuples(st.just("truncated"), good_price, st.integers(1, 3)),
    st.tuples(st.just("encoding"), good_price, st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\x80"])),
    st.tuples(st.just("back_in_time"), good_price, st.integers(1, 10**9)),
)


def build(rows, start_ts: int = 1_700_000_000_000_000_000):
    """(file bytes, expected accepted (ts, price, size), expected {line: reason})."""
    lines = [b"ts_ns,price,size"]
    accepted, rejected = [], {}
    ts = start_ts
    last_ok = None
    for k, (kind, a, b) in enumerate(rows):
        line_no = k + 2  # 1-based, after the header
        ts += k % 3  # equal timestamps happen (SPY has many)
        if kind == "good":
            lines.append(f"{ts},{a!r},{b!r}".encode())
            accepted.append((ts, a, b))
            last_ok = ts
        elif kind == "price":
            lines.append(f"{ts},{a[0]},{b!r}".encode())
            rejected[line_no] = a[1]
        elif kind == "size":
            lines.append(f"{ts},{a!r},{b[0]}".encode())
            rejected[line_no] = b[1]
        elif kind == "ts":
            lines.append(f"{a[0]},100.0,{b!r}".encode())
            rejected[line_no] = a[1]
        elif kind == "truncated":
            full = f"{ts},{a!r},1.0"
            lines.append(full.encode()[: max(1, len(full.split(",")[0]) + b - 2)])
            rejected[line_no] = "unparseable"
        elif kind == "encoding":
            lines.append(f"{ts},".encode() + b + f"{a!r},1.0".encode())
            rejected[line_no] = "unparseable"
        elif kind == "back_in_time":
            if last_ok is None:  # nothing accepted yet: not out of order, just a good row
                lines.append(f"{ts},{a!r},1.0".encode())
                accepted.append((ts, a, 1.0))
                last_ok = ts
            else:
                lines.append(f"{last_ok - b},{a!r},1.0".encode())
                rejected[line_no] = "ts_decreasing"
    return b"\n".join(lines) + b"\n", accepted, rejected


def read_all(path, rejects):
    src = open_tick_source(str(path), symbol="SPY", instruments=INSTRUMENTS, rejects_path=rejects, chunk_rows=7)
    ts, price, size = [], [], []
    for chunk in src:
        ts.extend(chunk.ts_ns.tolist())
        price.extend(chunk.price.tolist())
        size.extend(chunk.size.tolist())
    by_reason = dict(src.rejected_by_reason)
    src.close()
    return list(zip(ts, price, size)), by_reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, min_size=1, max_size=60), gz=st.booleans())
def test_fuzzed_rows_quarantined_with_reason_and_good_rows_all_processed(tmp_path_factory, rows, gz):
    tmp = tmp_path_factory.mktemp("fz")
    data, accepted, rejected = build(rows)
    path = tmp / ("t.csv.gz" if gz else "t.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    rejects = tmp / "rejects.csv"
    got, by_reason = read_all(path, rejects)
    assert len(got) == len(accepted)
    if accepted:
        np.testing.assert_array_equal([g[0] for g in got], [a[0] for a in accepted])
        np.testing.assert_allclose([g[1] for g in got], [a[1] for a in accepted], rtol=1e-15)
        np.testing.assert_allclose([g[2] for g in got], [a[2] for a in accepted], rtol=1e-15)
    expected_counts: dict[str, int] = {}
    for reason in rejected.values():
        expected_counts[reason] = expected_counts.get(reason, 0) + 1
    assert by_reason == expected_counts
    if rejected:
        file_rows = read_rejects(rejects)
        assert {int(r["line"]): r["reason"] for r in file_rows} == rejected
        assert all(r["reason"] in REASONS for r in file_rows)
    else:
        assert not rejects.exists() or len(read_rejects(rejects)) == 0
