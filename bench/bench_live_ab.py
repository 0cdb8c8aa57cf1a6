"""Two checkouts of the engine, live, side by side: which one is faster on this machine right now.

    python bench/bench_live_ab.py A_DIR B_DIR [--pairs 3] [--seconds 5] [--rate 10000] [--apart]

Why side by side: on this shared VM the CPU's speed moves by 1.5-2x from one
minute to the next (the plain loop ran at 4.2M and 8.3M ticks/s on one day),
so two live runs one after the other compare phases of the machine, not code.
Run at the same time, A and B see the same phase; each gets one of the two
cores. Absolute figures are then worse than alone (the two share the cache
and the memory bus), but the comparison holds. ``--apart`` runs them one
after the other instead, alternating which goes first.

Each side runs ``engine.bench.measure_live`` from its own directory (build
its kernels first: ``cd DIR && python -m engine.kernels``). Per pair it
prints tick -> venue and tick -> order at venue percentiles, the loop's CPU
per batch and batches per second. Writes bench/results/live_ab.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from loguru import logger
logger.remove()
from engine.bench import measure_live
r = measure_live(seconds=float(sys.argv[2]), rate=float(sys.argv[3]))
lat = r["latency_us"]
print(json.dumps({"venue": lat["feed_to_venue"], "order": lat.get("tick_to_order_at_venue", {}),
                  "loop_cpu_us_per_batch": sum(r["loop_threads_cpu_us_per_batch"].values()),
                  "batches_per_s": round(r["batches"] / float(sys.argv[2])), "mean_batch": r["mean_batch"]}))
"""


def _start(directory: Path, seconds: float, rate: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(directory), str(seconds), str(rate)], cwd=str(directory),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip


def _result(proc: subprocess.Popen, timeout: float) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0 or not out.strip():
        raise SystemExit(f"a live run failed (exit {proc.returncode}); run it alone to see why")
    return json.loads(out.strip().splitlines()[-1])


def _line(tag: str, r: dict) -> str:
    v, o = r["venue"], r["order"]
    return (f"  {tag}  venue p50 {v.get('p50', 0):7.1f} p99 {v.get('p99', 0):7.1f} us | order p50 {o.get('p50', 0):7.1f} "
            f"p99 {o.get('p99', 0):8.1f} us | loop {r['loop_cpu_us_per_batch']:6.1f} us/batch, "
            f"{r['batches_per_s']:,} batches/s")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="checkout A (a directory with engine/)")
    ap.add_argument("b", type=Path, help="checkout B")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=10_000.0)
    ap.add_argument("--apart", action="store_true", help="one after the other (alternating), not side by side")
    ap.add_argument("--json", metavar="PATH", default=str(ROOT / "bench" / "results" / "live_ab.json"))
    args = ap.parse_args()
    for d in (args.a, args.b):
        if not (d / "engine" / "bench.py").is_file():
            ap.error(f"{d}: not a checkout of the engine (no engine/bench.py)")
    timeout = args.seconds + 120
    pairs = []
    for i in range(args.pairs):
        if args.apart:
            order = [("A", args.a), ("B", args.b)] if i % 2 == 0 else [("B", args.b), ("A", args.a)]
            got = {tag: _result(_start(d, args.seconds, args.rate), timeout) for tag, d in order}
        else:
            procs = {"A": _start(args.a, args.seconds, args.rate), "B": _start(args.b, args.seconds, args.rate)}
            got = {tag: _result(p, timeout) for tag, p in procs.items()}
        pairs.append(got)
        print(f"pair {i + 1}")
        print(_line("A", got["A"]))
        print(_line("B", got["B"]))
    # Loop CPU per batch compares in both regimes: below saturation it is the batch's cost; at
    # saturation the loop is always busy, so it is one second over the batches handled.
    wins = sum(p["A"]["loop_cpu_us_per_batch"] < p["B"]["loop_cpu_us_per_batch"] for p in pairs)
    print(f"A's batches took less loop CPU in {wins} of {len(pairs)} pairs")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"a": str(args.a), "b": str(args.b), "side_by_side": not args.apart,
                                           "seconds": args.seconds, "rate": args.rate, "pairs": pairs}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
