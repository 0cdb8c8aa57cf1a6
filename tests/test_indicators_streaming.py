"""Streaming state == batch function on the concatenation, whatever the split."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine import indicators as ind
from engine.config import IndicatorSpec

BAD = [np.nan, np.inf, -np.inf]


@st.composite
def series_and_splits(draw):
    n = draw(st.integers(0, 6000))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = 100.0 + np.cumsum(np.round(rng.normal(0, 0.05, n), 2))
    if n and draw(st.booleans()):  # sprinkle NaN / inf
        idx = rng.choice(n, size=min(n, draw(st.integers(1, 20))), replace=False)
        x[idx] = rng.choice(BAD, size=idx.size)
    if n and draw(st.booleans()):  # flat stretch
        a = draw(st.integers(0, n - 1))
        x[a : a + draw(st.integers(1, 200))] = 100.0
    splits = []
    left = n
    while left > 0:
        size = draw(st.integers(1, 4096))
        splits.append(min(size, left))
        left -= size
    return x, splits


def run_split(make, x, splits, arity):
    stream = make()
    parts = [[] for _ in range(arity)]
    start = 0
    for size in splits:
        chunk = x[start : start + size]
        start += size
        out = stream.update(chunk) if not isinstance(stream, ind.ATRState) else stream.update(chunk, chunk, chunk)
        outs = out if isinstance(out, tuple) else (out,)
        for acc, o in zip(parts, outs):
            acc.append(o)
    return [np.concatenate(p) if p else np.empty(0) for p in parts]


CASES = {
    "rsi": (lambda: ind.RSIState(14), lambda x: (ind.rsi(x, 14),)),
    "sma": (lambda: ind.SMAState(20), lambda x: (ind.sma(x, 20),)),
    "ema": (lambda: ind.EMAState(20), lambda x: (ind.ema(x, 20),)),
    "bollinger": (lambda: ind.BollingerState(7, 2.5), lambda x: ind.bollinger(x, 7, 2.5)),
    "macd": (lambda: ind.MACDState(12, 26, 9), lambda x: ind.macd(x, 12, 26, 9)),
    "atr": (lambda: ind.ATRState(14), lambda x: (ind.atr(x, x, x, 14),)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=40, deadline=None)
@given(data=series_and_splits())
def test_streaming_equals_batch_for_any_split(name, data):
    x, splits = data
    make, batch = CASES[name]
    expected = batch(x)
    got = run_split(make, x, splits, len(expected))
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)  # bit for bit, NaN where NaN


def test_batch_of_one_tick_at_a_time_equals_batch():
    x = 100.0 + np.cumsum(np.random.default_rng(0).normal(0, 0.1, 500))
    x[[3, 77]] = np.nan
    for name, (make, batch) in CASES.items():
        got = run_split(make, x, [1] * len(x), len(batch(x)))
        for g, e in zip(got, batch(x)):
            np.testing.assert_array_equal(g, e, err_msg=name)


SPECS = [
    IndicatorSpec(kind="rsi", period=14),
    IndicatorSpec(kind="sma", period=20),
    IndicatorSpec(kind="ema", period=20),
    IndicatorSpec(kind="bollinger", period=20, k=2.0),
    IndicatorSpec(kind="macd", fast=12, slow=26, signal=9),
    IndicatorSpec(kind="atr", period=14),
]


def test_key_for_names_are_stable():
    assert [ind.key_for(s) for s in SPECS] == [
        ["rsi_14"],
        ["sma_20"],
        ["ema_20"],
        ["bb_upper_20_2", "bb_middle_20_2", "bb_lower_20_2"],
        ["macd_12_26_9", "macd_signal_12_26_9", "macd_hist_12_26_9"],
        ["atr_14"],
    ]
    assert ind.key_for(IndicatorSpec(kind="bollinger", period=10, k=2.5)) == [
        "bb_upper_10_2.5", "bb_middle_10_2.5", "bb_lower_10_2.5"
    ]


def test_indicator_set_matches_batch_functions_and_reports_warmup():
    x = 100.0 + np.cumsum(np.random.default_rng(1).normal(0, 0.1, 3000))
    iset = ind.IndicatorSet(SPECS + [IndicatorSpec(kind="rsi", period=14)])  # duplicate computed once
    assert len(iset.keys) == 10
    assert iset.warm_index == {
        "rsi_14": 14, "sma_20": 19, "ema_20": 19,
        "bb_upper_20_2": 19, "bb_middle_20_2": 19, "bb_lower_20_2": 19,
        "macd_12_26_9": 33, "macd_signal_12_26_9": 33, "macd_hist_12_26_9": 33, "atr_14": 14,
    }  # fmt: skip
    first = iset.update(x[:20])
    assert iset.is_warm("rsi_14") and not iset.is_warm("macd_12_26_9")
    rest = iset.update(x[20:])
    got = {k: np.concatenate([first[k], rest[k]]) for k in iset.keys}
    np.testing.assert_array_equal(got["rsi_14"], ind.rsi(x, 14))
    np.testing.assert_array_equal(got["atr_14"], ind.atr(x, x, x, 14))
    for k, col in zip(iset.keys[3:6], ind.bollinger(x, 20, 2.0)):
        np.testing.assert_array_equal(got[k], col)
    for key, lookback in iset.warm_index.items():
        assert np.isnan(got[key][:lookback]).all() and not np.isnan(got[key][lookback])


def test_indicator_set_uses_high_low_for_atr_when_given():
    rng = np.random.default_rng(2)
    close = 100 + np.cumsum(rng.normal(0, 1, 200))
    high, low = close + rng.uniform(0, 1, 200), close - rng.uniform(0, 1, 200)
    out = ind.IndicatorSet([IndicatorSpec(kind="atr", period=5)]).update(close, high, low)
    np.testing.assert_array_equal(out["atr_5"], ind.atr(high, low, close, 5))


def test_snapshot_restore_continues_exactly():
    x = 100.0 + np.cumsum(np.random.default_rng(4).normal(0, 0.1, 2000))
    whole = ind.IndicatorSet(SPECS)
    expected = whole.update(x)
    a = ind.IndicatorSet(SPECS)
    a.update(x[:777])
    b = ind.IndicatorSet.restore(SPECS, a.snapshot())
    tail = b.update(x[777:])
    for k in whole.keys:
        np.testing.assert_array_equal(tail[k], expected[k][777:])


def test_restore_with_other_specs_is_refused_clearly():
    snap = ind.IndicatorSet(SPECS[:2]).snapshot()
    with pytest.raises(ValueError, match="does not match the configured indicators"):
        ind.IndicatorSet.restore(SPECS[:3], snap)
