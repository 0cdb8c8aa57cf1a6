"""A seeded random-walk tick source: the embedded default of ``actortrader run``.

Why deterministic: replays, tests and resume all rely on "same seed, same
ticks". Each instrument has its own generator (``SeedSequence([seed, i])``),
instruments take turns in chunks of ``chunk_rows`` ticks, and timestamps are
event time (``start_ns + tick_seq * interval_ns``), never the wall clock.
Pacing to real time is the feed actor's job, not the source's.

Prices follow a geometric random walk with the instrument's ``volatility``
(std-dev of one tick's log return) from ``start_price``, rounded to the tick
size and never below one tick; sizes are 1..10 lots; ``side`` is +1/-1.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from engine.data.sources import TickChunk, TickSource, instruments_by_symbol

DEFAULT_START_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z


class SyntheticSource(TickSource):
    def __init__(
        self,
        instruments: Any,
        seed: int = 7,
        *,
        max_ticks: int | None = 0,
        chunk_rows: int = 256,
        start_ns: int = DEFAULT_START_NS,
        interval_ns: int = 1_000_000,
    ):
        super().__init__()
        self.instruments = list(instruments_by_symbol(instruments).values())
        if not self.instruments:
            raise ValueError("synthetic source: expected at least one instrument, got none")
        max_ticks = 0 if max_ticks is None else max_ticks
        if max_ticks < 0:
            raise ValueError(f"synthetic source: max_ticks must be >= 0 (0 = unbounded), got {max_ticks}")
        if not 1 <= chunk_rows <= 1 << 20:
            raise ValueError(f"synthetic source: chunk_rows must be 1..{1 << 20}, got {chunk_rows}")
        self.seed = int(seed)
        self.max_ticks = int(max_ticks)
        self.chunk_rows = int(chunk_rows)
        self.start_ns = int(start_ns)
        self.interval_ns = int(interval_ns)
        self.name = f"synthetic(seed={self.seed})"

    def _generate(self) -> Iterator[TickChunk]:
        rngs = [np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, i]))) for i in range(len(self.instruments))]
        log_price = [float(np.log(inst.start_price)) for inst in self.instruments]
        seq = 0
        turn = 0
        while self.max_ticks == 0 or seq < self.max_ticks:
            i = turn % len(self.instruments)
            turn += 1
            inst, rng = self.instruments[i], rngs[i]
            n = self.chunk_rows if self.max_ticks == 0 else min(self.chunk_rows, self.max_ticks - seq)
            steps = rng.standard_normal(n) * inst.volatility
            path = log_price[i] + np.cumsum(steps)
            log_price[i] = float(path[-1])
            tick = inst.tick_size
            price = np.maximum(np.round(np.exp(path) / tick) * tick, tick)
            size = rng.integers(1, 11, n).astype(np.float64) * inst.lot_size
            side = np.where(rng.random(n) < 0.5, -1, 1).astype(np.int8)
            ts = self.start_ns + (seq + np.arange(n, dtype=np.int64)) * self.interval_ns
            self.rows_read += n
            yield TickChunk(inst.symbol, seq, ts, price, size, side)
            seq += n
