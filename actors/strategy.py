"""StrategyActor: the mailbox around one StrategyRunner.

It hears indicator batches and order updates, asks the runner what to do,
and sends the decisions to the SafetyActor: the only address it knows, so
no strategy can reach the OrderActor or a venue (safety is structural).
"""

from __future__ import annotations

import time

from actors.base import EngineActor, handles
from actors.directory import Directory
import msgspec

from engine.messages import (
    EndOfStream, GetRecovered, IndicatorBatch, OrderBatch, OrderUpdates, PipelineCheckpoint, StrategyLifecycle,
)
from strategies.base import Strategy, StrategyRunner

try:
    from engine import metrics as _metrics
except ImportError:  # pragma: no cover
    _metrics = None


class StrategyActor(EngineActor):
    def __init__(self, name: str, directory: Directory, supervisor: str | None = None, *,
                 strategy: Strategy, safety: str = "safety", orders: str = "orders", assume_fills: bool = True,
                 restore_from: bytes | None = None):
        super().__init__(name, directory, supervisor)
        self.runner = StrategyRunner(strategy, assume_fills=assume_fills)
        if restore_from:
            self.runner.restore(restore_from)
        self.safety = self.addr(safety)
        self.orders_name = orders
        self.last_batch: dict[str, int] = {}

    def on_start(self) -> None:
        # `run` continuing a journal: ids go on from the journal and positions are what was filled.
        # (A replay re-runs from tick 0 and re-derives both, so it starts fresh.)
        try:
            view = self.addr(self.orders_name).ask(GetRecovered(strategy_id=self.runner.sid), timeout=5.0)
        except Exception:  # noqa: BLE001 - no orders actor (unit tests): start fresh
            view = None
        if view is not None and view.journal_kind == "run":
            self.runner.state.next_id = max(self.runner.state.next_id, view.next_id)
            self.runner.state.position.update(view.positions)
            if view.open:
                # Still in flight at the crash: no new decision until it settles (it is re-sent).
                self.runner.adopt_pending(view.open[0])
        self.safety.tell(StrategyLifecycle(strategy_id=self.runner.sid, event="started"))

    @handles(IndicatorBatch)
    def on_indicators(self, batch: IndicatorBatch) -> None:
        if batch.batch_seq <= self.last_batch.get(batch.feed, -1):
            return  # duplicate after a restart: already decided on
        self.last_batch[batch.feed] = batch.batch_seq
        if _metrics is not None and batch.recv_wall_ns:
            _metrics.record_ns("feed_to_strategy", time.time_ns() - batch.recv_wall_ns)
        blocks, orders = self.runner.on_batch_columns(batch)
        self.safety.tell(OrderBatch(
            strategy_id=self.runner.sid, feed=batch.feed, batch_seq=batch.batch_seq, orders=orders, blocks=blocks,
            symbol=batch.symbol, first_tick_seq=batch.first_tick_seq, ts_ns=batch.ts_ns, price=batch.price,
            recv_wall_ns=batch.recv_wall_ns,
        ))  # fmt: skip

    @handles(OrderUpdates)
    def on_updates(self, upd: OrderUpdates) -> None:
        redecided = self.runner.on_updates(upd)
        if redecided:
            # Out of round (batch_seq -1): these replace orders of a discarded view.
            self.safety.tell(OrderBatch(strategy_id=self.runner.sid, feed="", batch_seq=-1, orders=redecided,
                                        symbol=redecided[0].symbol))

    @handles(EndOfStream)
    def on_end(self, msg: EndOfStream) -> None:
        self.safety.tell(OrderBatch(strategy_id=self.runner.sid, feed=msg.feed, batch_seq=msg.last_batch_seq + 1,
                                    orders=[], end_of_stream=True))

    @handles(PipelineCheckpoint)
    def on_checkpoint(self, cp: PipelineCheckpoint) -> None:
        state = self.runner.checkpoint()  # None while one of its orders is unconfirmed: not a settled cut
        marked = msgspec.structs.replace(cp, states={**cp.states, self.name: state or b""},
                                         valid=cp.valid and state is not None)
        self.safety.tell(marked)

    def checkpoint(self) -> bytes | None:
        return self.runner.checkpoint()
