"""Where the shared real market data lives, and a skip for when it is absent."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SPY_TICKS = SHARED_DATA / "ticks" / "spy_trades_lean" / "SPY_trades_20131007-20131011.norm.csv.gz"

needs_shared = pytest.mark.skipif(not SPY_TICKS.is_file(), reason=f"real market data not found at {SHARED_DATA} (../shared absent)")


def spy_prices(n: int):
    import pyarrow.csv as pc

    table = pc.read_csv(SPY_TICKS)
    return table["ts_ns"].to_numpy()[:n], table["price"].to_numpy()[:n].astype("float64")
