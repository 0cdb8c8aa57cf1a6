"""Feed + IndicatorActor throughput and memory on real SPY ticks (a script, not a test).

    python bench/bench_feed.py [--ticks 1000000] [--ticks-batch1 50000] [--skip-memory]

1. Source: CSV first pass (parse + validate + write the columnar cache) vs
   the cached re-read, rows/s.
2. Pipeline: MarketFeedActor -> IndicatorActor (RSI, SMA, EMA, Bollinger,
   MACD, ATR) -> counting sink, with credits (max_in_flight 4), ticks/s for
   batch sizes 1, 64, 4096 (batch size 1 over fewer ticks: it measures the
   per-message cost, which does not depend on the length of the run).
3. Memory: peak RSS of replaying 1M ticks vs 20M ticks (the same 1M SPY
   ticks repeated with shifted timestamps and tick numbers), each in a fresh
   subprocess; target: 20M within +5% of 1M.

Writes bench/results/bench_feed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actors.base import EngineActor, handles  # noqa: E402
from actors.directory import Directory  # noqa: E402
from actors.indicator import IndicatorActor  # noqa: E402
from actors.market_feed import MarketFeedActor  # noqa: E402
from engine.config import IndicatorSpec, Instrument  # noqa: E402
from engine.replay import ingest  # noqa: E402
from engine.data.sources import TickChunk, TickSource, open_tick_source  # noqa: E402
from engine.messages import EndOfStream, GetFeedStats, IndicatorBatch, StartFeed  # noqa: E402

def ensure_cache() -> None:
    """Read the whole file once so the columnar cache exists (a partial first pass writes none)."""
    ingest(lambda: open_tick_source(SPY, symbol="SPY", instruments=[Instrument(symbol="SPY")], cache_dir=RESULTS / "cache"))


SPY = ROOT.parent / "shared" / "data" / "ticks" / "spy_trades_lean" / "SPY_trades_20131007-20131011.norm.csv.gz"
RESULTS = ROOT / "bench" / "results"
CACHE = RESULTS / "cache"
INSTR = [Instrument(symbol="SPY")]
SPECS = [
    IndicatorSpec(kind="rsi", period=14),
    IndicatorSpec(kind="sma", period=20),
    IndicatorSpec(kind="ema", period=20),
    IndicatorSpec(kind="bollinger", period=20, k=2.0),
    IndicatorSpec(kind="macd"),
    IndicatorSpec(kind="atr", period=14),
]


class RepeatSource(TickSource):
    """The first ``base_ticks`` SPY ticks, ``times`` times over, timestamps shifted each lap."""

    def __init__(self, base_ticks: int, times: int):
        super().__init__()
        self.base_ticks, self.times = base_ticks, times

    def _generate(self) -> Iterator[TickChunk]:
        seq = 0
        span = 0
        for lap in range(self.times):
            src = open_tick_source(SPY, symbol="SPY", instruments=INSTR, cache_dir=CACHE)
            have = 0
            first_ts = last_ts = 0
            for chunk in src:
                take = min(len(chunk), self.base_ticks - have)
                if have == 0:
                    first_ts = int(chunk.ts_ns[0])
                ts = chunk.ts_ns[:take] + np.int64(span)  # a bounded copy per chunk
                last_ts = int(chunk.ts_ns[take - 1])
                self.rows_read += take
                yield TickChunk("SPY", seq, ts, chunk.price[:take], chunk.size[:take])
                seq += take
                have += take
                if have >= self.base_ticks:
                    break
            src.close()
            span += last_ts - first_ts + 1


class CountingSink(EngineActor):
    def __init__(self, name, directory, supervisor=None, *, done: threading.Event):
        super().__init__(name, directory, supervisor)
        self.ticks = 0
        self.done = done

    @handles(IndicatorBatch)
    def on_batch(self, msg):
        self.ticks += len(msg)

    @handles(EndOfStream)
    def on_eos(self, _msg):
        self.done.set()


def run_pipeline(source: TickSource, batch_size: int, max_in_flight: int = 4) -> dict:
    directory = Directory()
    done = threading.Event()
    refs = []

    def start(cls, name, **kw):
        ref = cls.start(name, directory, None, **kw)
        directory.register(name, ref)
        refs.append(ref)
        return ref

    sink = start(CountingSink, "sink", done=done)
    start(IndicatorActor, "ind", specs=SPECS, routes={"*": ["sink"]}, ack_to="feed")
    feed = start(MarketFeedActor, "feed", feed_id="feed", source=source, subscribers=["ind"], consumers=["ind"],
                 batch_size=batch_size, max_in_flight=max_in_flight)  # fmt: skip
    t0 = time.perf_counter()
    feed.tell(StartFeed())
    if not done.wait(3600):
        raise RuntimeError("pipeline did not finish")
    elapsed = time.perf_counter() - t0
    stats = feed.ask(GetFeedStats(), timeout=10)
    ticks = sink.proxy().ticks.get(timeout=10)
    for ref in reversed(refs):
        ref.stop(timeout=10)
    return {"batch_size": batch_size, "ticks": ticks, "batches": stats.batches, "seconds": round(elapsed, 3),
            "ticks_per_s": round(ticks / elapsed), "backpressure_waits": stats.backpressure_waits}  # fmt: skip


def memory_child(ticks: int) -> None:
    """(subprocess) replay ``ticks`` through the pipeline, print peak RSS."""
    base = min(ticks, 1_000_000)
    result = run_pipeline(RepeatSource(base, ticks // base), 4096)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    import psutil

    result["rss_end_mb"] = round(psutil.Process().memory_info().rss / 2**20, 1)  # more sensitive to growth
    print(json.dumps(result))


def measure_memory() -> dict:
    out = {}
    for ticks in (1_000_000, 20_000_000):
        proc = subprocess.run([sys.executable, __file__, "--memory-child", str(ticks)], capture_output=True, text=True, check=True)
        out[str(ticks)] = json.loads(proc.stdout.strip().splitlines()[-1])
    base, big = out["1000000"]["peak_rss_mb"], out["20000000"]["peak_rss_mb"]
    out["growth_pct"] = round(100 * (big - base) / base, 2)
    end_base, end_big = out["1000000"]["rss_end_mb"], out["20000000"]["rss_end_mb"]
    out["end_growth_pct"] = round(100 * (end_big - end_base) / end_base, 2)
    return out


def measure_source() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        src = open_tick_source(SPY, symbol="SPY", instruments=INSTR, cache_dir=Path(tmp))
        n = sum(len(c) for c in src)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        src = open_tick_source(SPY, symbol="SPY", instruments=INSTR, cache_dir=Path(tmp))
        n2 = sum(len(c) for c in src)
        cached = time.perf_counter() - t0
    assert n == n2
    return {"rows": n, "csv_first_pass_s": round(first, 3), "csv_rows_per_s": round(n / first),
            "cached_s": round(cached, 4), "cached_rows_per_s": round(n / cached)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--ticks-batch1", type=int, default=50_000)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not SPY.exists():
        print(f"real market data not found at {SPY}", file=sys.stderr)
        return 2
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    ensure_cache()
    source = measure_source()
    print(f"source: CSV first pass {source['csv_rows_per_s']:,} rows/s ({source['csv_first_pass_s']} s), "
          f"cached {source['cached_rows_per_s']:,} rows/s")  # fmt: skip
    run_pipeline(RepeatSource(10_000, 1), 4096)  # warm: JIT cache, imports
    pipeline = []
    for batch in (1, 64, 4096):
        n = args.ticks_batch1 if batch == 1 else args.ticks
        r = run_pipeline(RepeatSource(n, 1), batch)
        pipeline.append(r)
        print(f"pipeline batch {batch:>5}: {r['ticks_per_s']:>12,} ticks/s ({r['ticks']:,} ticks, {r['seconds']} s)")
    result = {"bench": "feed", "python": platform.python_version(), "indicators": [s.kind for s in SPECS],
              "source": source, "pipeline": pipeline}  # fmt: skip
    ok = True
    if not args.skip_memory:
        mem = measure_memory()
        result["memory"] = mem
        ok = mem["growth_pct"] <= 5.0
        print(f"memory: peak RSS 1M ticks {mem['1000000']['peak_rss_mb']} MB, 20M ticks {mem['20000000']['peak_rss_mb']} MB "
              f"({mem['growth_pct']:+.2f}%; target <= +5%: {'met' if ok else 'MISSED'}); RSS at the end "
              f"{mem['1000000']['rss_end_mb']} vs {mem['20000000']['rss_end_mb']} MB ({mem['end_growth_pct']:+.2f}%)")  # fmt: skip
        result["targets"] = {"rss_growth_pct<=5": ok}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_feed.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
