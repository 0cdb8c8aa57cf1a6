"""Indicator kernels vs TA-Lib on real SPY ticks (a script, not a test).

    python bench/bench_indicators.py [--ticks 1000000] [--repeat 7]

Prints a table and writes bench/results/bench_indicators.json. Ratios are
against baselines measured in the same run: TA-Lib for the batch kernels,
the batch function for streaming over batches of 4096 (targets: RSI ratio
<= 1.0, streaming <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import indicators as ind  # noqa: E402
from engine.config import Instrument  # noqa: E402
from engine.replay import ingest  # noqa: E402
from engine.data.sources import open_tick_source  # noqa: E402

def ensure_cache() -> None:
    """Read the whole file once so the columnar cache exists (a partial first pass writes none)."""
    ingest(lambda: open_tick_source(SPY, symbol="SPY", instruments=[Instrument(symbol="SPY")], cache_dir=RESULTS / "cache"))


SPY = ROOT.parent / "shared" / "data" / "ticks" / "spy_trades_lean" / "SPY_trades_20131007-20131011.norm.csv.gz"
RESULTS = ROOT / "bench" / "results"


def load_prices(n: int) -> np.ndarray:
    src = open_tick_source(SPY, symbol="SPY", instruments=[Instrument(symbol="SPY")], cache_dir=RESULTS / "cache")
    parts, have = [], 0
    for chunk in src:
        parts.append(np.array(chunk.price[: n - have]))
        have += len(parts[-1])
        if have >= n:
            break
    return np.concatenate(parts)


def best_of(fn, repeat: int) -> float:
    fn()  # warm (JIT compile / cache load, page faults)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return float(min(times))


def streamed(make, x: np.ndarray, batch: int, call):
    def run():
        state = make()
        for start in range(0, x.shape[0], batch):
            call(state, x[start : start + batch])

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--batch", type=int, default=4096, help="streaming batch size")
    args = ap.parse_args()
    if not SPY.exists():
        print(f"real market data not found at {SPY}", file=sys.stderr)
        return 2
    try:
        import talib
    except ImportError:
        print("ta-lib is needed for the baseline: pip install ta-lib", file=sys.stderr)
        return 2
    ensure_cache()
    x = load_prices(args.ticks)
    n = x.shape[0]
    rows = []
    cases = [
        ("rsi_14", lambda: ind.rsi(x, 14), lambda: talib.RSI(x, 14), lambda: ind.RSIState(14), lambda s, b: s.update(b)),
        ("sma_20", lambda: ind.sma(x, 20), lambda: talib.SMA(x, 20), lambda: ind.SMAState(20), lambda s, b: s.update(b)),
        ("ema_20", lambda: ind.ema(x, 20), lambda: talib.EMA(x, 20), lambda: ind.EMAState(20), lambda s, b: s.update(b)),
        ("bollinger_20_2", lambda: ind.bollinger(x, 20, 2.0), lambda: talib.BBANDS(x, 20, 2.0, 2.0, 0),
         lambda: ind.BollingerState(20, 2.0), lambda s, b: s.update(b)),
        ("macd_12_26_9", lambda: ind.macd(x), lambda: talib.MACD(x, 12, 26, 9), lambda: ind.MACDState(), lambda s, b: s.update(b)),
        ("atr_14", lambda: ind.atr(x, x, x, 14), lambda: talib.ATR(x, x, x, 14), lambda: ind.ATRState(14),
         lambda s, b: s.update(b, b, b)),
    ]  # fmt: skip
    for name, ours, theirs, make, call in cases:
        t_ours = best_of(ours, args.repeat)
        t_talib = best_of(theirs, args.repeat)
        t_stream = best_of(streamed(make, x, args.batch, call), args.repeat)
        rows.append({
            "indicator": name,
            "ns_per_point": round(t_ours / n, 3),
            "talib_ns_per_point": round(t_talib / n, 3),
            "ratio_vs_talib": round(t_ours / t_talib, 3),
            "stream_ns_per_point": round(t_stream / n, 3),
            "stream_ratio_vs_batch": round(t_stream / t_ours, 3),
        })  # fmt: skip
    print(f"{n:,} SPY ticks, best of {args.repeat}, streaming batches of {args.batch}")
    print(f"{'indicator':<16}{'ns/pt':>8}{'talib':>8}{'ratio':>8}{'stream':>9}{'s/batch':>9}")
    for r in rows:
        print(f"{r['indicator']:<16}{r['ns_per_point']:>8.2f}{r['talib_ns_per_point']:>8.2f}{r['ratio_vs_talib']:>8.2f}"
              f"{r['stream_ns_per_point']:>9.2f}{r['stream_ratio_vs_batch']:>9.2f}")  # fmt: skip
    rsi_row = rows[0]
    targets = {
        "rsi_ratio_vs_talib<=1.0": rsi_row["ratio_vs_talib"] <= 1.0,
        "rsi_stream_ratio_vs_batch<=1.5": rsi_row["stream_ratio_vs_batch"] <= 1.5,
    }
    for k, ok in targets.items():
        print(f"target {k}: {'met' if ok else 'MISSED'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_indicators.json"
    out.write_text(json.dumps({
        "bench": "indicators", "ticks": n, "repeat": args.repeat, "stream_batch": args.batch,
        "python": platform.python_version(), "machine": platform.machine(), "results": rows, "targets": targets,
    }, indent=2))  # fmt: skip
    print(f"wrote {out}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
