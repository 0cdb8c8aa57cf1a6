"""Indicators against TA-Lib on every real series in ../shared/data, plus the edge cases."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from engine import indicators as ind

talib = pytest.importorskip("talib", reason="ta-lib (test-only dependency) is not installed")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SERIES = sorted(DATA.glob("**/*.norm.csv*")) if DATA.is_dir() else []
needs_data = pytest.mark.skipif(not SERIES, reason=f"real market data not found at {DATA}")

_cache: dict = {}


def load(path: Path) -> dict[str, np.ndarray]:
    """(test helper) whole file as float64 columns; fine for tests, the engine streams."""
    if path not in _cache:
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(path)
        _cache.clear()
        _cache[path] = {name: table[name].to_numpy().astype(np.float64) for name in table.column_names}
    return _cache[path]


def hlc(cols):
    if "close" in cols:
        return cols["high"], cols["low"], cols["close"]
    return cols["price"], cols["price"], cols["price"]


def assert_matches(ours, theirs, scale, what):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=f"{what}: warm-up differs")
    ok = ~np.isnan(theirs)
    # 1e-9 relative; the tiny absolute floor (1e-12 of the price level) only
    # matters where a value crosses zero (MACD histogram).
    np.testing.assert_allclose(ours[ok], theirs[ok], rtol=1e-9, atol=1e-12 * scale, err_msg=what)


@needs_data
@pytest.mark.parametrize("path", SERIES, ids=[p.name for p in SERIES])
def test_every_indicator_matches_talib_on_real_series(path):
    cols = load(path)
    high, low, close = hlc(cols)
    scale = float(np.median(close))
    name = path.name
    ours_rsi, ref_rsi = ind.rsi(close, 14), talib.RSI(close, 14)
    # The one documented difference: flat windows read 50 (TA-Lib: 0).
    flat = (ours_rsi == 50.0) & (ref_rsi == 0.0)
    assert_matches(np.where(flat, 0.0, ours_rsi), ref_rsi, 100.0, f"rsi {name}")
    assert_matches(ind.sma(close, 20), talib.SMA(close, 20), scale, f"sma {name}")
    assert_matches(ind.ema(close, 20), talib.EMA(close, 20), scale, f"ema {name}")
    for ours, ref, part in zip(ind.bollinger(close, 20, 2.0), talib.BBANDS(close, 20, 2.0, 2.0, 0), "ubl"):
        assert_matches(ours, ref, scale, f"bollinger {part} {name}")
    for ours, ref, part in zip(ind.macd(close, 12, 26, 9), talib.MACD(close, 12, 26, 9), ("macd", "signal", "hist")):
        assert_matches(ours, ref, scale, f"macd {part} {name}")
    assert_matches(ind.atr(high, low, close, 14), talib.ATR(high, low, close, 14), scale, f"atr {name}")


@needs_data
@pytest.mark.parametrize("period", [2, 5, 50, 1000])
def test_other_periods_match_talib_on_spy_daily(period):
    path = next(p for p in SERIES if p.name == "SPY.norm.csv")
    high, low, close = hlc(load(path))
    assert_matches(ind.rsi(close, period), talib.RSI(close, period), 100.0, "rsi")
    assert_matches(ind.ema(close, period), talib.EMA(close, period), 100.0, "ema")
    assert_matches(ind.atr(high, low, close, period), talib.ATR(high, low, close, period), 100.0, "atr")
    for ours, ref in zip(ind.bollinger(close, period, 1.5), talib.BBANDS(close, period, 1.5, 1.5, 0)):
        assert_matches(ours, ref, 100.0, "bollinger")
    for ours, ref in zip(ind.macd(close, period, 2 * period, 3), talib.MACD(close, period, 2 * period, 3)):
        assert_matches(ours, ref, 100.0, "macd")


# --------------------------------------------------------------------------
# RSI edge cases

def walk(n=300, seed=1):
    rng = np.random.default_rng(seed)
    return 100.0 + np.cumsum(np.round(rng.normal(0, 0.05, n), 2))


def test_rsi_clean_synthetic_matches_talib():
    x = walk()
    np.testing.assert_allclose(ind.rsi(x, 14), talib.RSI(x, 14), rtol=1e-9, equal_nan=True)


def test_flat_prices_give_50_not_talibs_0():
    x = np.full(40, 101.25)
    out = ind.rsi(x, 14)
    assert np.isnan(out[:14]).all()
    assert (out[14:] == 50.0).all()
    assert (talib.RSI(x, 14)[14:] == 0.0).all()  # the behaviour we deliberately do not copy


def test_rising_and_falling_prices_saturate():
    up = np.arange(1.0, 41.0)
    assert (ind.rsi(up, 14)[14:] == 100.0).all()
    assert (ind.rsi(up[::-1], 14)[14:] == 0.0).all()


def test_flat_after_moves_stays_defined_and_decays_symmetrically():
    x = np.concatenate([np.arange(100.0, 120.0), np.full(200, 120.0)])
    out = ind.rsi(x, 14)
    assert (out[14:] == 100.0).all()  # only gains ever: avg loss 0, avg gain decays but stays > 0


def with_bad_values(x, positions, bad):
    y = x.copy()
    y[positions] = bad
    return y


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["start", "warmup", "later", "last"])
def test_rsi_bad_input_is_skipped_and_never_poisons(bad, where):
    x = walk()
    pos = {"start": [0, 1, 2], "warmup": [5], "later": [100, 101], "last": [len(x) - 1]}[where]
    y = with_bad_values(x, pos, bad)
    out = ind.rsi(y, 14)
    clean = ind.rsi(np.delete(y, pos), 14)
    keep = np.setdiff1d(np.arange(len(y)), pos)
    np.testing.assert_array_equal(out[keep], clean)  # every valid index: as if the bad tick never came
    for p in pos:
        expected = out[p - 1] if p > 0 else np.nan
        np.testing.assert_array_equal(out[p], expected)  # repeats the previous output (NaN in warm-up)
    assert np.isfinite(out[-1]) or where == "last"
    if where == "later":
        assert (talib.RSI(y, 14)[101:] == 0.0).all()  # TA-Lib: poisoned for good


def test_leading_nans_align_with_talib():
    x = walk()
    y = with_bad_values(x, [0, 1, 2, 3], np.nan)
    np.testing.assert_allclose(ind.rsi(y, 14), talib.RSI(y, 14), rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("fn", ["rsi", "sma", "ema", "atr"])
def test_too_short_and_empty_inputs_are_all_nan(fn):
    call = {
        "rsi": lambda x: ind.rsi(x, 14),
        "sma": lambda x: ind.sma(x, 14),
        "ema": lambda x: ind.ema(x, 14),
        "atr": lambda x: ind.atr(x, x, x, 14),
    }[fn]
    assert call(np.array([])).shape == (0,)
    short = call(walk(13))
    assert short.shape == (13,) and np.isnan(short).all()


def test_period_bounds():
    x = walk(200)
    for fn in (ind.rsi, ind.sma, ind.ema):
        with pytest.raises(ValueError, match="period: expected an integer 2..100000, got 1"):
            fn(x, 1)
        with pytest.raises(ValueError, match="got 100001"):
            fn(x, 100001)
        assert np.isnan(fn(x, 100000)).all()
    np.testing.assert_allclose(ind.rsi(x, 2), talib.RSI(x, 2), rtol=1e-9, equal_nan=True)
    with pytest.raises(ValueError, match="fast < slow"):
        ind.macd(x, 26, 12, 9)
    with pytest.raises(ValueError, match="bollinger k"):
        ind.bollinger(x, 20, float("nan"))
    with pytest.raises(ValueError, match="1-D"):
        ind.rsi(np.zeros((3, 3)), 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_other_indicators_skip_bad_values_like_rsi(bad):
    x = walk(400)
    pos = [0, 30, 31, 200, 399]
    y = with_bad_values(x, pos, bad)
    keep = np.setdiff1d(np.arange(len(y)), pos)
    clean_x = np.delete(y, pos)
    pairs = [
        (ind.sma(y, 20), ind.sma(clean_x, 20)),
        (ind.ema(y, 20), ind.ema(clean_x, 20)),
        (ind.atr(y, y, y, 14), ind.atr(clean_x, clean_x, clean_x, 14)),
        *zip(ind.bollinger(y, 20, 2.0), ind.bollinger(clean_x, 20, 2.0)),
        *zip(ind.macd(y, 12, 26, 9), ind.macd(clean_x, 12, 26, 9)),
    ]
    for got, clean in pairs:
        np.testing.assert_array_equal(got[keep], clean)
        for p in pos:
            np.testing.assert_array_equal(got[p], got[p - 1] if p else np.nan)
        assert np.isfinite(got[-1])


def test_no_runtime_warnings_or_crashes_for_any_input():
    rng = np.random.default_rng(3)
    nasty = rng.choice([0.0, -1.0, 1e308, -1e308, 5e-324, np.nan, np.inf, -np.inf, 1.0, 2.0], size=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            ind.rsi(nasty, 14)
            ind.sma(nasty, 5)
            ind.ema(nasty, 5)
            ind.bollinger(nasty, 5, 2.0)
            ind.macd(nasty, 3, 6, 2)
            ind.atr(nasty, nasty, nasty, 5)
    out = ind.rsi(nasty, 14)
    finite = out[~np.isnan(out)]
    assert ((finite >= 0) & (finite <= 100)).all()


def test_bollinger_is_stable_where_a_raw_sum_of_squares_cancels():
    # price level 1e6 with 1e-3 moves: mean(x^2) - mean^2 in raw sums would lose everything
    rng = np.random.default_rng(5)
    x = 1e6 + np.round(rng.normal(0, 1e-3, 5000), 4)
    up, mid, _ = ind.bollinger(x, 20, 1.0)
    true = np.array([w.std() for w in np.lib.stride_tricks.sliding_window_view(x, 20)])
    np.testing.assert_allclose((up - mid)[19:], true, rtol=1e-4, atol=1e-9)


def test_int_input_is_accepted():
    x = np.arange(1, 50)
    np.testing.assert_array_equal(ind.sma(x, 3)[2:], np.arange(2.0, 49.0))
