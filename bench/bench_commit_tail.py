"""The tail of one-order journal commits: SQLite's automatic checkpoint, and cold caches.

    python bench/bench_commit_tail.py [--commits 6000] [--sweep-mb 32]

A live order is journaled alone, in a commit of its own, on the pipeline's
thread. Two things make such a commit slow, and this measures both in one run:

* ``autocheckpoint``: SQLite copies the WAL into the main file inside the
  commit that crosses 1000 WAL pages (with an fsync at synchronous=NORMAL);
  the engine's journal turns that off and checkpoints from another thread
  (engine.journal.WalCheckpointer). Compared: the same commits with SQLite's
  default and with ``autocheckpoint=False``.
* ``cold``: the same commit after ``--sweep-mb`` of other memory was read, as
  a busy pipeline evicts SQLite's code and pages between two orders.

Prints a table and writes bench/results/commit_tail.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.journal import Journal  # noqa: E402
from engine.messages import OrderRequest, Side  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _orders(n: int, tag: str) -> list[OrderRequest]:
    return [OrderRequest(client_order_id=f"{tag}-{i + 1}", strategy_id=tag, symbol="SPY", side=Side.BUY, quantity=1.0,
                         decision_seq=i) for i in range(n)]  # fmt: skip


def _stats(us: np.ndarray) -> dict[str, float]:
    p50, p99, p999 = np.percentile(us, [50, 99, 99.9])
    return {"p50_us": round(float(p50), 1), "p99_us": round(float(p99), 1), "p99.9_us": round(float(p999), 1),
            "max_us": round(float(us.max()), 1), "over_1ms": int((us > 1000).sum()), "commits": int(us.size)}  # fmt: skip


def commits(directory: Path, n: int, autocheckpoint: bool, sweep: np.ndarray | None) -> dict[str, float]:
    journal = Journal.open(directory / f"j-{autocheckpoint}-{sweep is not None}.sqlite", autocheckpoint=autocheckpoint)
    took = np.empty(n)
    try:
        for i, order in enumerate(_orders(n, "s")):
            if sweep is not None:
                sweep.sum()
            t0 = time.perf_counter_ns()
            journal.append([order])
            took[i] = (time.perf_counter_ns() - t0) / 1000
    finally:
        journal.close()
    return _stats(took)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=6000, help="one-order commits per case (default 6000)")
    ap.add_argument("--cold-commits", type=int, default=500, help="commits in the cold-cache cases (default 500)")
    ap.add_argument("--sweep-mb", type=float, default=32.0, help="memory read between cold commits (default 32)")
    ap.add_argument("--json", type=Path, default=RESULTS / "commit_tail.json")
    args = ap.parse_args()
    sweep = np.random.default_rng(0).random(int(args.sweep_mb * 2**20 / 8))
    out: dict[str, object] = {"python": platform.python_version(), "sweep_mb": args.sweep_mb}
    with tempfile.TemporaryDirectory(prefix="actortrader-commit-") as tmp:
        for auto in (True, False):
            out[f"warm, autocheckpoint={auto}"] = commits(Path(tmp), args.commits, auto, None)
        out["cold, autocheckpoint=False"] = commits(Path(tmp), args.cold_commits, False, sweep)
    print(f"{'case':34s} {'p50':>8s} {'p99':>8s} {'p99.9':>8s} {'max':>8s} {'>1ms':>5s}")
    for case, s in out.items():
        if isinstance(s, dict):
            print(f"{case:34s} {s['p50_us']:8.1f} {s['p99_us']:8.1f} {s['p99.9_us']:8.1f} {s['max_us']:8.1f} "
                  f"{s['over_1ms']:5d}  (us, {s['commits']} commits)")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
