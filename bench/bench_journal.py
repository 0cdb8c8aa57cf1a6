"""How much does write-ahead journaling cost on the hot path?

Measures amortized wall time per record of :meth:`engine.journal.Journal.append`
(msgpack encode + running digest + one ``executemany`` transaction per batch)
for each ``synchronous`` setting and several batch sizes, with the record mix
a replay writes (order events, fills, checkpoints). Prints a table and writes
``bench/results/journal.json``.

    python bench/bench_journal.py [--records 25000] [--dir /path/on/the/real/disk]

Target (issue 4): < 2 us per record at batches of 100, synchronous=NORMAL.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.journal import Journal  # noqa: E402
from engine.messages import FeedCheckpoint, Fill, OrderEvent, OrderStatus, Side  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "journal.json"
MODES = ("OFF", "NORMAL", "FULL")
BATCH_SIZES = (1, 10, 100, 1000)
TARGET_US = 2.0


def make_records(n: int) -> list:
    """A replay-like mix: 2 order events and 1 fill per order, a checkpoint per 50 records."""
    out = []
    for i in range(n):
        kind = i % 50
        if kind == 49:
            out.append(FeedCheckpoint(feed="spy", batch_seq=i // 50, last_tick_seq=i * 40))
        elif i % 3 == 2:
            out.append(Fill(client_order_id=f"rsi_mr-{i // 3}", strategy_id="rsi_mr", trade_id=f"P-{i}", symbol="SPY",
                            side=Side.BUY, quantity=100.0, price=168.25 + i * 1e-4, fee=0.35, event_seq=i * 40,
                            ts_ns=1_381_152_600_000_000_000 + i))  # fmt: skip
        else:
            out.append(OrderEvent(client_order_id=f"rsi_mr-{i // 3}", strategy_id="rsi_mr", symbol="SPY",
                                  status=OrderStatus.ACCEPTED if i % 3 == 0 else OrderStatus.FILLED, event_seq=i * 40,
                                  ts_ns=1_381_152_600_000_000_000 + i, venue_order_id=f"P-{i // 3}"))  # fmt: skip
    return out


def run_once(directory: Path, mode: str, batch: int, records: list) -> float:
    """Seconds to journal ``records`` in batches of ``batch`` into a fresh file."""
    path = directory / f"bench-{mode}-{batch}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    journal = Journal.open(path, synchronous=mode)
    start = time.perf_counter()
    for i in range(0, len(records), batch):
        journal.append(records[i : i + batch])
    elapsed = time.perf_counter() - start
    assert journal.last_seq == len(records)
    journal.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=25_000, help="records per measurement (default 25000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; the median is reported (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the journals (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.records < 1000 or args.repeat < 1:
        parser.error("--records must be >= 1000 and --repeat >= 1")

    workdir = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    records = make_records(args.records)
    rows = []
    try:
        for mode in MODES:
            for batch in BATCH_SIZES:
                n = args.records if batch >= 10 or mode == "OFF" else min(args.records, 2000)  # FULL x batch 1 = 1 fsync/record
                times = [run_once(workdir, mode, batch, records[:n]) for _ in range(args.repeat)]
                median = statistics.median(times)
                rows.append({"synchronous": mode, "batch": batch, "records": n, "us_per_record": median / n * 1e6,
                             "records_per_s": n / median, "commits_per_s": (n / batch) / median})  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"journal append, {args.records} records, median of {args.repeat}, dir={args.dir or tempfile.gettempdir()}")
    print(f"{'synchronous':>11} {'batch':>6} {'us/record':>10} {'records/s':>12} {'commits/s':>10}")
    for r in rows:
        print(f"{r['synchronous']:>11} {r['batch']:>6} {r['us_per_record']:>10.2f} {r['records_per_s']:>12,.0f} {r['commits_per_s']:>10,.0f}")
    target = next(r for r in rows if r["synchronous"] == "NORMAL" and r["batch"] == 100)
    verdict = "meets" if target["us_per_record"] < TARGET_US else "MISSES"
    print(f"NORMAL, batch 100: {target['us_per_record']:.2f} us/record ({verdict} the < {TARGET_US} us target)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "journal_append",
        "records": args.records,
        "repeat": args.repeat,
        "target_us_per_record_normal_batch100": TARGET_US,
        "meets_target": target["us_per_record"] < TARGET_US,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
        "results": rows,
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
