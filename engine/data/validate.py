"""Edge validation of parsed tick columns, vectorized over a block.

Rules (every tick): known symbol, finite price > 0, finite size >= 0, and a
timestamp not earlier than the last *accepted* timestamp of that symbol
(equal timestamps are fine: SPY has many). For bars, open/high/low must also
be finite and > 0 (``price`` is the close). Each row gets at most one reason;
the first failing rule in :data:`RULE_ORDER` wins.
"""

from __future__ import annotations

import numpy as np

from engine.data.quarantine import REASONS

OK = 0
CODE = {reason: i + 1 for i, reason in enumerate(REASONS)}  # 0 = accepted
REASON_OF_CODE = {code: reason for reason, code in CODE.items()}
RULE_ORDER = REASONS  # unparseable first, ts_decreasing last


def price_size_codes(price: np.ndarray, size: np.ndarray, extra_prices: list[np.ndarray] = ()) -> np.ndarray:
    """Reason codes for the value rules (0 = fine); ts and symbol are checked elsewhere."""
    codes = np.zeros(price.shape[0], dtype=np.int8)
    with np.errstate(invalid="ignore"):
        price_bad_finite = ~np.isfinite(price)
        price_bad_sign = price <= 0
        for col in extra_prices:
            price_bad_finite |= ~np.isfinite(col)
            price_bad_sign |= col <= 0
        size_bad_finite = ~np.isfinite(size)
        size_bad_sign = size < 0
    # assign in reverse priority so the first rule wins
    codes[size_bad_sign] = CODE["size_negative"]
    codes[size_bad_finite] = CODE["size_not_finite"]
    codes[price_bad_sign & ~price_bad_finite] = CODE["price_not_positive"]
    codes[price_bad_finite] = CODE["price_not_finite"]
    return codes


def ts_codes(ts: np.ndarray, codes: np.ndarray, last_ts: int) -> tuple[np.ndarray, int]:
    """Mark ``ts_decreasing`` among rows still OK; returns (codes, new last accepted ts).

    A row earlier than the running maximum of the accepted rows before it is
    rejected. Rejected rows never raise that maximum, and including them in a
    cumulative max changes nothing (they are below it), so one
    ``maximum.accumulate`` over the candidates decides the whole block.
    """
    cand = np.flatnonzero(codes == OK)
    if cand.size == 0:
        return codes, last_ts
    t = ts[cand]
    prior = np.empty(t.shape[0], dtype=np.int64)
    prior[0] = last_ts
    if t.shape[0] > 1:
        np.maximum.accumulate(t[:-1], out=prior[1:])
        np.maximum(prior[1:], last_ts, out=prior[1:])
    bad = t < prior
    codes[cand[bad]] = CODE["ts_decreasing"]
    good = t[~bad]
    new_last = int(good.max()) if good.size else last_ts
    return codes, max(new_last, last_ts)


NO_TS = np.iinfo(np.int64).min
