"""IndicatorActor: TickBatch in, IndicatorBatch out, one numba pass per batch.

It keeps one :class:`engine.indicators.IndicatorSet` per symbol (the
indicators whose ``symbols`` list names it or ``"*"``) and, optionally, a
ring buffer of the last ``history`` values of the price and of every
indicator key, for strategies that ask for lookbacks without recomputing.

Restart-safe: :meth:`snapshot` captures every streaming state, the last
processed ``batch_seq`` per feed and the rings; ``restore_from=`` rebuilds
them. A TickBatch whose ``batch_seq`` was already processed for its feed (a
re-send after a feed restart) is dropped, so no indicator ever sees a tick
twice.
"""

from __future__ import annotations

from typing import Any

import time

import msgspec
import numpy as np

from actors.base import EngineActor, handles
from actors.directory import Directory
from engine.indicators import IndicatorSet
from engine.messages import BatchDone, EndOfStream, IndicatorBatch, PipelineCheckpoint, TickBatch, freeze
from engine.ringbuffer import RingBuffer

try:
    from engine import metrics as _metrics
except ImportError:  # pragma: no cover
    _metrics = None


class _State(msgspec.Struct, frozen=True):
    version: int
    last_batch: dict[str, int]
    sets: dict[str, bytes]
    rings: dict[str, dict[str, bytes]] = {}


def specs_for_symbol(specs: list[Any], symbol: str) -> list[Any]:
    return [s for s in specs if "*" in s.symbols or symbol in s.symbols]


class IndicatorActor(EngineActor):
    _VERSION = 1

    def __init__(
        self,
        name: str,
        directory: Directory,
        supervisor: str | None = None,
        *,
        specs: list[Any],
        routes: dict[str, list[str]],
        restore_from: bytes | None = None,
        history: int = 0,
        ack_to: str | None = None,
    ):
        """``routes``: symbol (or ``"*"``) -> strategy actor names.

        ``ack_to``: if set, the name of the feed actor to send ``BatchDone``
        (consumer = this actor's name) after each batch, for pipelines where
        the IndicatorActor is the last stage (benchmarks, no strategies).
        """
        super().__init__(name, directory, supervisor)
        self.specs = list(specs)
        self.routes = {sym: list(dict.fromkeys(names)) for sym, names in routes.items()}
        self._targets_by_symbol: dict[str, list[str]] = {}
        self.history = int(history)
        self.ack_to = ack_to
        self.sets: dict[str, IndicatorSet] = {}
        self.rings: dict[str, dict[str, RingBuffer]] = {}
        self.last_batch: dict[str, int] = {}
        self.duplicates_dropped = 0
        if restore_from is not None:
            self._restore(restore_from)

    # -- handlers
    @handles(TickBatch)
    def on_tick_batch(self, batch: TickBatch) -> None:
        if batch.batch_seq <= self.last_batch.get(batch.feed, -1):
            self.duplicates_dropped += 1
            if _metrics is not None:
                _metrics.inc("indicator_duplicate_batches_total", 1, feed=batch.feed)
        else:
            if _metrics is not None and batch.recv_wall_ns:
                _metrics.record_ns("feed_to_indicators", time.time_ns() - batch.recv_wall_ns)
            out = self.compute(batch)
            self.last_batch[batch.feed] = batch.batch_seq
            for name in self._targets(batch.symbol):
                self.addr(name).tell(out)
        if self.ack_to is not None:
            self.addr(self.ack_to).tell(BatchDone(feed=batch.feed, batch_seq=batch.batch_seq, consumer=self.name))

    @handles(EndOfStream)
    def on_end_of_stream(self, msg: EndOfStream) -> None:
        names = dict.fromkeys(n for targets in self.routes.values() for n in targets)
        for name in names:
            self.addr(name).tell(msg)

    @handles(PipelineCheckpoint)
    def on_checkpoint(self, cp: PipelineCheckpoint) -> None:
        """Add this actor's state to the cut and pass it on behind the batches it follows."""
        marked = msgspec.structs.replace(cp, states={**cp.states, self.name: self.snapshot()})
        for name in dict.fromkeys(n for targets in self.routes.values() for n in targets):
            self.addr(name).tell(marked)

    # -- logic (also callable directly, e.g. by tests and benchmarks)
    def compute(self, batch: TickBatch) -> IndicatorBatch:
        iset = self.sets.get(batch.symbol)
        if iset is None:
            iset = self.sets[batch.symbol] = IndicatorSet(specs_for_symbol(self.specs, batch.symbol))
        values = iset.update(batch.price, batch.high, batch.low)
        if self.history:
            self._remember(batch.symbol, batch.price, values)
        return IndicatorBatch(
            feed=batch.feed,
            batch_seq=batch.batch_seq,
            symbol=batch.symbol,
            first_tick_seq=batch.first_tick_seq,
            ts_ns=batch.ts_ns,
            price=batch.price,
            size=batch.size,
            values={k: freeze(v) for k, v in values.items()},
            recv_wall_ns=batch.recv_wall_ns,
        )

    def last(self, symbol: str, series: str, n: int | None = None) -> np.ndarray:
        """The last ``n`` values of ``series`` ("price" or an indicator key) for ``symbol``."""
        return self.rings[symbol][series].last(n)

    def _targets(self, symbol: str) -> list[str]:
        found = self._targets_by_symbol.get(symbol)  # routes are fixed for the actor's life
        if found is None:
            found = self._targets_by_symbol[symbol] = list(dict.fromkeys(self.routes.get(symbol, []) + self.routes.get("*", [])))
        return found

    def _remember(self, symbol: str, price: np.ndarray, values: dict[str, np.ndarray]) -> None:
        rings = self.rings.setdefault(symbol, {})
        for key, col in (("price", price), *values.items()):
            ring = rings.get(key)
            if ring is None:
                ring = rings[key] = RingBuffer(self.history)
            ring.extend(col)

    # -- restart safety
    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(
            _State(
                version=self._VERSION,
                last_batch=dict(self.last_batch),
                sets={sym: s.snapshot() for sym, s in self.sets.items()},
                rings={sym: {k: r.snapshot() for k, r in rs.items()} for sym, rs in self.rings.items()},
            )
        )

    def _restore(self, data: bytes) -> None:
        state = msgspec.msgpack.decode(data, type=_State)
        if state.version != self._VERSION:
            raise ValueError(f"{self.name}: snapshot version {state.version}, expected {self._VERSION}")
        self.last_batch = dict(state.last_batch)
        self.sets = {sym: IndicatorSet.restore(specs_for_symbol(self.specs, sym), blob) for sym, blob in state.sets.items()}
        self.rings = {sym: {k: RingBuffer.restore(b) for k, b in rs.items()} for sym, rs in state.rings.items()}
