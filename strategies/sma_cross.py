"""SMA trend: long while the fast SMA is above the slow one, flat otherwise.

Buy ``qty`` when flat and SMA(fast) > SMA(slow); sell to flat when long and
SMA(fast) < SMA(slow). Stated as a regime rather than as a "cross event" so a
decision depends only on the current tick and position: no state to carry
across batches, so batch size can never change it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np
from msgspec import Meta

from engine.config import IndicatorSpec
from engine.kernels import kernel
from engine.messages import IndicatorBatch, Side
from strategies.base import Decision, Strategy


class SmaCrossParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    fast: Annotated[int, Meta(ge=2, le=100000)] = 20
    slow: Annotated[int, Meta(ge=3, le=100000)] = 50
    qty: Annotated[float, Meta(gt=0)] = 1.0


@kernel("f8[]", "f8[]", "i8", "f8")
def first_sma_signal(fast: np.ndarray, slow: np.ndarray, start: int, position: float) -> int:
    n = fast.shape[0]
    for i in range(start, n):
        if position == 0.0 and fast[i] > slow[i]:
            return i
        if position > 0.0 and fast[i] < slow[i]:
            return i
    return -1


class SmaCross(Strategy):
    Params = SmaCrossParams

    def __init__(self, strategy_id: str, params: SmaCrossParams, symbols: list[str]):
        super().__init__(strategy_id, params, symbols)
        if params.fast >= params.slow:
            raise ValueError(f"fast ({params.fast}) must be shorter than slow ({params.slow})")
        self.fast_key, self.slow_key = f"sma_{params.fast}", f"sma_{params.slow}"

    def indicators(self) -> list[IndicatorSpec]:
        return [IndicatorSpec(kind="sma", period=self.params.fast), IndicatorSpec(kind="sma", period=self.params.slow)]

    def value_keys(self) -> list[str]:
        return [self.fast_key, self.slow_key]

    def decide(self, batch: IndicatorBatch, start: int, position: float):
        i = first_sma_signal(batch.values[self.fast_key], batch.values[self.slow_key], start, position)
        if i < 0:
            return None
        if position == 0.0:
            return i, Decision(Side.BUY, self.params.qty)
        return i, Decision(Side.SELL, position)
