"""RSI mean reversion: buy when oversold and flat, sell to flat when overbought.

Rules (the ones the correctness anchor in tests/ reproduces with a plain loop):
buy ``qty`` when flat and RSI(period) < ``lower``; sell the whole long when
long and RSI > ``upper``; decide from the first RSI value on; no new decision
while one of its orders is pending (the runner enforces that).

Two implementations with identical results: :class:`RsiMeanReversion` scans
the batch in one numba call; :class:`RsiMeanReversionPerTick` is the readable
per-tick version of the same rules.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np
from msgspec import Meta

from engine.config import IndicatorSpec
from engine.kernels import kernel
from engine.messages import IndicatorBatch, Side
from strategies.base import Decision, Strategy, TickView


class RsiParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    period: Annotated[int, Meta(ge=2, le=100000)] = 14
    lower: Annotated[float, Meta(ge=0, le=100)] = 30.0
    upper: Annotated[float, Meta(ge=0, le=100)] = 70.0
    qty: Annotated[float, Meta(gt=0)] = 1.0


@kernel("f8[]", "i8", "f8", "f8", "f8")
def first_rsi_signal(rsi: np.ndarray, start: int, position: float, lower: float, upper: float) -> int:
    """Index of the first tick >= start with a signal for ``position``, or -1."""
    n = rsi.shape[0]
    if position == 0.0:
        for i in range(start, n):
            if rsi[i] < lower:  # NaN compares False: warm-up never signals
                return i
    elif position > 0.0:
        for i in range(start, n):
            if rsi[i] > upper:
                return i
    return -1


@kernel("f8[]", "i8", "f8", "f8", "f8", "f8", "f8", "i8[]!", "f8[]!")
def rsi_scan(rsi, start, position, pending, lower, upper, qty, idx, signed):
    """Every decision from ``start`` on, market orders filling on the next tick.

    Writes decision k's tick index to ``idx[k]`` and its signed quantity to
    ``signed[k]`` (both as long as ``rsi``) and returns how many there are.
    The caller allocates: a compiled kernel that returns arrays spends
    ~1.5 µs boxing them, more than the whole scan of a live batch.
    """
    n = rsi.shape[0]
    k = 0
    for i in range(start, n):
        if pending != 0.0:
            position += pending
            pending = 0.0
        x = rsi[i]
        if position == 0.0 and x < lower:
            pending = qty
        elif position > 0.0 and x > upper:
            pending = -position
        else:
            continue
        idx[k] = i
        signed[k] = pending
        k += 1
    return k


class RsiMeanReversion(Strategy):
    Params = RsiParams

    def __init__(self, strategy_id: str, params: RsiParams, symbols: list[str]):
        super().__init__(strategy_id, params, symbols)
        if params.lower >= params.upper:
            raise ValueError(f"lower ({params.lower}) must be below upper ({params.upper})")
        self.key = f"rsi_{params.period}"

    def indicators(self) -> list[IndicatorSpec]:
        return [IndicatorSpec(kind="rsi", period=self.params.period)]

    def value_keys(self) -> list[str]:
        return [self.key]

    def scan(self, batch: IndicatorBatch, start: int, position: float, pending: float):
        p = self.params
        rsi = batch.values[self.key]
        idx, signed = np.empty(rsi.shape[0], np.int64), np.empty(rsi.shape[0], np.float64)
        k = rsi_scan(rsi, start, position, pending, p.lower, p.upper, p.qty, idx, signed)
        return idx[:k], signed[:k]

    def decide(self, batch: IndicatorBatch, start: int, position: float):
        p = self.params
        i = first_rsi_signal(batch.values[self.key], start, position, p.lower, p.upper)
        if i < 0:
            return None
        if position == 0.0:
            return i, Decision(Side.BUY, p.qty)
        return i, Decision(Side.SELL, position)


class RsiMeanReversionPerTick(RsiMeanReversion):
    """The same rules written per tick: slower, and proof the two styles agree."""

    decide = Strategy.decide
    scan = Strategy.scan

    def on_tick(self, tick: TickView) -> Decision | None:
        p = self.params
        rsi = tick.value(self.key)
        if tick.position == 0.0 and rsi < p.lower:
            return Decision(Side.BUY, p.qty)
        if tick.position > 0.0 and rsi > p.upper:
            return Decision(Side.SELL, tick.position)
        return None
