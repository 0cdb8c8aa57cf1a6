"""The benchmark suite as a script: the same code as `actortrader bench`, results in bench/results/bench.json.

    python bench/bench_job.py [--ticks 1000000] [--data PATH] [--json PATH]

See engine/bench.py for what each figure means and bench/README.md for the
figures measured so far.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.bench import run_bench  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=1_000_000, help="ticks for the full job (default 1M)")
    ap.add_argument("--data", metavar="PATH", help="tick file (default: ../shared SPY ticks)")
    ap.add_argument("--json", metavar="PATH", default=str(ROOT / "bench" / "results" / "bench.json"))
    return run_bench(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
