"""Soak: the synthetic live feed through the whole engine for a while; does anything grow?

    python bench/bench_soak.py --seconds 600 --rate 5000 --out bench/results/soak.json

Runs the shipped config.toml (synthetic real-time feed, RSI strategy, paper
venue, journal) with private directories, lets the MonitorActor sample RSS,
open fds, threads and every actor's mailbox depth, and asks it for its leak
report (engine.metrics.detect_growth over the samples). The first
``--warmup`` seconds are not judged (imports, caches and the journal's first
pages settle). Exit 0 when no series is flagged.
tests/test_soak.py runs :func:`soak` for a few seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def soak(workdir: Path, seconds: float, rate: float = 5000.0, sample_s: float = 0.25, warmup_s: float = 1.0,
         batch_size: int = 256) -> dict[str, Any]:
    from actors.monitor import GetHistory, GetLeakReport
    from engine import metrics
    from engine.assembly import FEED, MONITOR, build_engine
    from engine.config import load_config
    from engine.data import SyntheticSource
    from engine.journal_runs import new_run_path, start_run
    from engine.messages import StartFeed

    cfg = load_config(REPO / "config.toml")
    r = msgspec.structs.replace
    cfg = r(cfg, engine=r(cfg.engine, data_dir=str(workdir / "data")), journal=r(cfg.journal, dir=str(workdir / "journal")),
            logging=r(cfg.logging, dir=str(workdir / "log")), api=r(cfg.api, enabled=False),
            feed=r(cfg.feed, rate=rate, batch_size=batch_size, max_ticks=0),
            monitor=r(cfg.monitor, sample_interval_s=sample_s, history=100_000))
    journal = new_run_path(workdir / "journal", kind="run")
    start_run(journal, kind="run").close()
    eng = build_engine(cfg, source_factory=lambda: SyntheticSource(cfg.instruments, seed=cfg.feed.seed, max_ticks=None),
                       journal_path=journal, realtime_rate=rate, with_monitor=True)
    t0 = time.monotonic()
    try:
        eng.directory.tell(FEED, StartFeed(after_tick_seq=-1))
        threading.Event().wait(seconds)  # the soak itself: run for this long (nothing to synchronise with)
        history = eng.directory.ask(MONITOR, GetHistory(n=0), timeout=10)
        monitor_flags = eng.directory.ask(MONITOR, GetLeakReport(all=False), timeout=10)
    finally:
        eng.stop()
    judged = [s for s in history if (s.ts_wall_ns - history[0].ts_wall_ns) / 1e9 >= warmup_s] if history else []
    series = {
        "rss_bytes": [s.rss_bytes for s in judged],
        "open_fds": [s.open_fds for s in judged],
        "threads": [s.threads for s in judged],
        "mailbox_depth_total": [sum(a.mailbox_depth for a in s.actors) for s in judged],
    }
    reports = {k: metrics.detect_growth(v) for k, v in series.items()}
    last = history[-1] if history else None
    return {
        "seconds": round(time.monotonic() - t0, 2),
        "rate": rate,
        "samples": len(history),
        "samples_judged": len(judged),
        "ticks": int(last.counters.get('feed_ticks_total{feed="feed"}', 0)) if last else 0,
        "flagged": sorted(k for k, rep in reports.items() if rep.flagged),
        "monitor_flagged": sorted(monitor_flags),
        "series": {k: {"first": v[0] if v else None, "last": v[-1] if v else None, "max": max(v) if v else None,
                       "reason": reports[k].reason} for k, v in series.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--rate", type=float, default=5000.0, help="synthetic ticks per second")
    ap.add_argument("--sample", type=float, default=1.0, help="monitor sample interval (s)")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--workdir", default=str(REPO / "var" / "bench_soak"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "soak.json"))
    args = ap.parse_args(argv)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    report = soak(Path(args.workdir), args.seconds, args.rate, args.sample, args.warmup)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if not report["flagged"] else 1


if __name__ == "__main__":
    sys.exit(main())
