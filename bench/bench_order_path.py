"""What one order costs each actor in a live run, in thread CPU time, and what one hop costs.

    python bench/bench_order_path.py [--seconds 5] [--runs 1] [--hops 200000]

Two figures that decided changes on 2026-12-02 (bench/README.md):

* ``order_round_cpu_us``: the live engine (synthetic feed at 10k ticks/s, the
  default RSI strategy, journal on), with the handlers that see an order
  timed by the thread's CPU clock: safety's check, the OrderActor's round
  (its journal commit) and its fill report, the venue. CPU time, not wall
  time, so the host's preemption stays out of it; what is left is the work
  and the caches it finds cold. Compare code versions interleaved, run
  after run: the second process of a pair tends to run slower.
* ``hop_us``: two actors on one shared loop tell each other a message, best
  of 5 runs of ``--hops`` hops: the framework's cost per message.

Prints the figures and writes bench/results/order_path.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"


def _timed(cls: type, name: str, carries_order: Callable[[Any], bool], into: list[int]) -> Callable[[], None]:
    """Time ``cls.name`` by thread CPU for the messages that carry an order; returns the undo."""
    original = getattr(cls, name)

    def timed(self, msg):
        if not carries_order(msg):
            return original(self, msg)
        t0 = time.thread_time_ns()
        try:
            return original(self, msg)
        finally:
            into.append(time.thread_time_ns() - t0)

    setattr(cls, name, timed)
    return lambda: setattr(cls, name, original)


def order_round_cpu(seconds: float) -> dict[str, Any]:
    from actors.order import OrderActor
    from actors.safety import SafetyActor
    from actors.venue import VenueActor
    from engine import bench

    samples: dict[str, list[int]] = collections.defaultdict(list)
    with_order = lambda m: bool(m.approved or m.blocks)  # noqa: E731 - a Round
    undo = [
        _timed(SafetyActor, "on_order_batch", lambda m: bool(m.orders or m.blocks), samples["safety"]),
        _timed(OrderActor, "on_round", with_order, samples["orders_round"]),
        _timed(VenueActor, "on_round", with_order, samples["venue"]),
        _timed(OrderActor, "on_report", lambda m: bool(m.fills or m.fill_blocks or m.events), samples["orders_report"]),
    ]
    try:
        live = bench.measure_live(seconds=seconds)
    finally:
        for u in undo:
            u()
    p50 = {k: round(statistics.median(v) / 1000, 1) for k, v in samples.items() if v}
    return {"p50_us": p50, "sum_p50_us": round(sum(p50.values()), 1), "rounds": len(samples["orders_round"]),
            "tick_to_venue_p50_us": live["latency_us"]["feed_to_venue"].get("p50")}  # fmt: skip


def hop_cost(hops: int) -> float:
    from actors.base import EngineActor, handles
    from actors.directory import Directory
    from actors.loop import SharedLoop
    from engine.messages import BatchDone

    done = threading.Event()

    class Ping(EngineActor):
        def __init__(self, name, directory, supervisor=None, *, peer: str, count: int):
            super().__init__(name, directory, supervisor)
            self.peer, self.count, self.n = self.addr(peer), count, 0

        @handles(BatchDone)
        def on_ball(self, msg):
            self.n += 1
            if self.count and self.n >= self.count:
                done.set()
                return
            self.peer.tell(msg)

    d, loop = Directory(), SharedLoop("hop")
    a = Ping.start("a", d, loop=loop, peer="b", count=hops // 2)
    d.register("a", a)
    b = Ping.start("b", d, loop=loop, peer="a", count=0)
    d.register("b", b)
    best = float("inf")
    try:
        for _ in range(5):
            done.clear()
            a._actor_weakref().n = 0  # noqa: SLF001 - the bench owns both actors
            t0 = time.perf_counter()
            d.tell("a", BatchDone(feed="f", batch_seq=0, consumer="bench"))
            if not done.wait(120):
                raise RuntimeError("the ping-pong did not finish in 120 s")
            best = min(best, (time.perf_counter() - t0) / hops * 1e6)
    finally:
        a.stop()
        b.stop()
    return round(best, 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="live seconds per run (default 5)")
    ap.add_argument("--runs", type=int, default=1, help="live runs in this process (default 1)")
    ap.add_argument("--hops", type=int, default=200_000, help="messages per ping-pong (default 200000)")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.runs < 1 or args.hops < 2:
        ap.error("--seconds must be > 0, --runs >= 1, --hops >= 2")
    out = {"hop_us": hop_cost(args.hops), "order_round_cpu_us": [order_round_cpu(args.seconds) for _ in range(args.runs)],
           "python": platform.python_version()}  # fmt: skip
    print(f"one hop on a shared loop: {out['hop_us']} µs (best of 5)")
    for r in out["order_round_cpu_us"]:
        parts = ", ".join(f"{k} {v}" for k, v in r["p50_us"].items())
        print(f"order round, thread CPU p50: {parts} -> {r['sum_p50_us']} µs ({r['rounds']} rounds)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "order_path.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS / 'order_path.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
