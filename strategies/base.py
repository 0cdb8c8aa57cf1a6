"""The strategy base class and the runner that makes batches safe and exact.

Two ways to write a strategy, with identical results:

* per tick: override :meth:`Strategy.on_tick` and return a :class:`Decision`
  (or None) for one :class:`TickView`; simple and readable;
* per batch: override :meth:`Strategy.decide`, which scans arrays from
  ``start`` and returns the first ``(index, Decision)``; fast (numpy/numba).

Why a runner: a strategy decides over a whole batch in one call, but its
decisions depend on its own fills (flat or long?), and a fill arrives from
the venue only after the batch has gone down the pipeline. Waiting for each
fill would cost a pipeline round trip per order. Instead the runner keeps a
*shadow* of the strategy's orders using the paper venue's published fill rule
(a market order decided on tick i fills on tick i+1) and goes on deciding
optimistically. The real outcomes come back in :class:`OrderUpdates`; when one
differs from the shadow (a denial by the SafetyActor, an expiry, a rejection)
the runner rolls back to the snapshot taken just before that decision,
records the real outcome, bumps its *epoch*, and re-decides from there over
the batches it kept. Orders decided on the discarded view carry the old epoch
and are dropped by the SafetyActor (``SUPERSEDED``, never journaled).

The result is what a strategy deciding tick by tick with instant knowledge
of its fills would do, whatever the batch size: batch size 1 and 4096 give
the same orders, fills and journal (tests/test_determinism.py).

A strategy makes no new decision while one of its orders is pending (the
runner enforces it), holds no reference to the OrderActor or a venue, and can
only emit decisions; the actor shell sends them to the SafetyActor.
"""

from __future__ import annotations

import collections
import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec
import numpy as np

from engine.config import IndicatorSpec
from engine.messages import (
    IndicatorBatch, OrderBlock, OrderRequest, OrderStatus, OrderType, OrderUpdates, Side, freeze,
)  # fmt: skip

GONE = frozenset({OrderStatus.DENIED, OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.CANCELED})


class NoParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class Decision(msgspec.Struct, frozen=True):
    side: Side
    quantity: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None


class TickView:
    """One tick of an IndicatorBatch as attributes (for per-tick strategies)."""

    __slots__ = ("_batch", "i", "position")

    def __init__(self, batch: IndicatorBatch, i: int, position: float):
        self._batch = batch
        self.i = i
        self.position = position

    @property
    def symbol(self) -> str:
        return self._batch.symbol

    @property
    def seq(self) -> int:
        return self._batch.first_tick_seq + self.i

    @property
    def ts_ns(self) -> int:
        return int(self._batch.ts_ns[self.i])

    @property
    def price(self) -> float:
        return float(self._batch.price[self.i])

    @property
    def size(self) -> float:
        return float(self._batch.size[self.i])

    def value(self, key: str) -> float:
        return float(self._batch.values[key][self.i])


class Strategy:
    """Subclass and override ``on_tick`` *or* ``decide``; declare ``Params`` and ``indicators``."""

    Params: ClassVar[type[msgspec.Struct]] = NoParams

    def __init__(self, strategy_id: str, params: msgspec.Struct, symbols: list[str]):
        self.strategy_id = strategy_id
        self.params = params
        self.symbols = symbols

    def indicators(self) -> list[IndicatorSpec]:
        """Indicators this strategy reads; the IndicatorActor computes them."""
        return []

    def warm(self, batch: IndicatorBatch, i: int) -> bool:
        """True when every indicator it reads is defined (not NaN) at tick ``i``."""
        keys = self.__dict__.get("_warm_keys")
        if keys is None:
            keys = self.__dict__["_warm_keys"] = tuple(self.value_keys())
        values = batch.values
        for k in keys:
            v = values[k][i]
            if v != v:
                return False
        return True

    def value_keys(self) -> list[str]:
        from engine.indicators import key_for

        return [k for spec in self.indicators() for k in key_for(spec)]

    def on_tick(self, tick: TickView) -> Decision | None:
        raise NotImplementedError("override on_tick or decide")

    def decide(self, batch: IndicatorBatch, start: int, position: float) -> tuple[int, Decision] | None:
        """First decision at index >= start, given the position before it; default: ask on_tick."""
        view = TickView(batch, start, position)
        for i in range(start, len(batch)):
            view.i = i
            decision = self.on_tick(view)
            if decision is not None:
                return i, decision
        return None

    def scan(self, batch: IndicatorBatch, start: int, position: float, pending: float):
        """Optional fast path: every decision in ``batch[start:]`` at once.

        Assumes market orders that fill on the next tick (the paper venue's
        rule) and ``pending`` = signed quantity of a market order decided on
        the tick before ``start``. Return ``(indices, signed_quantities)`` or
        NotImplemented; the runner then falls back to :meth:`decide`.
        """
        return NotImplemented

    # User state that must roll back with decisions (override for stateful strategies).
    def get_state(self) -> Any:
        return None

    def set_state(self, state: Any) -> None:
        return None


@dataclass
class _Pending:
    cid: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType
    limit_price: float | None
    decision_seq: int


@dataclass
class _RunnerState:
    """Everything a rollback restores."""

    position: dict[str, float] = field(default_factory=dict)
    pending: _Pending | None = None
    next_id: int = 1
    user: Any = None


@dataclass
class _BlockShadow:
    """The runner's memory of one unconfirmed OrderBlock: enough to rebuild each order's _Snapshot.

    Why not a _Snapshot per order: building and then discarding one dict and
    one state per order was a large share of the strategy's time, and almost
    every block is confirmed whole by its FillBlock. Only a block one of whose
    orders met a surprise (a denial, a different fill) is turned into
    per-order snapshots (:meth:`StrategyRunner._materialize`).
    """

    block: OrderBlock
    batch_seq: int
    indices: list[int]  # decision index of each order within that batch
    signed: list[float]  # each order's signed quantity
    position: float  # the strategy's position in the symbol just before the first order
    base: dict[str, float]  # its positions in the other symbols
    user: Any
    fill_seqs: np.ndarray  # the tick each order fills on in the shadow (decision + 1)


@dataclass
class _Snapshot:
    cid: str
    batch_seq: int
    index: int  # decision index within that batch
    state: _RunnerState


class StrategyRunner:
    """Drives one Strategy over indicator batches with the optimistic shadow (pure)."""

    def __init__(self, strategy: Strategy, *, assume_fills: bool = True, max_batches_kept: int = 1024):
        self.strategy = strategy
        self.sid = strategy.strategy_id
        self.assume_fills = assume_fills
        self.state = _RunnerState(user=strategy.get_state())
        self.epoch = 0
        self._snapshots: dict[str, _Snapshot] = {}  # unconfirmed orders, by cid
        self._outcomes: dict[str, tuple[str, int]] = {}  # cid -> ("gone", seq) | ("fill", seq)
        self._kept: collections.OrderedDict[int, IndicatorBatch] = collections.OrderedDict()
        self._shadow_fill: dict[str, int] = {}  # cid -> tick seq the shadow filled it on
        self._blocks: dict[int, _BlockShadow] = {}  # unconfirmed blocks, by first client number
        self._warm_default = type(strategy).warm is Strategy.warm
        self._max_kept = max_batches_kept
        self.rollbacks = 0

    # ------------------------------------------------------------------ batches
    def on_batch(self, batch: IndicatorBatch) -> list[OrderRequest]:
        """The batch's orders one by one (blocks expanded; see :meth:`on_batch_columns`)."""
        blocks, orders = self.on_batch_columns(batch)
        return [r for b in blocks for r in b.requests()] + orders

    def on_batch_columns(self, batch: IndicatorBatch) -> tuple[list[OrderBlock], list[OrderRequest]]:
        """The batch's decisions: market orders filling inside it as OrderBlocks, the rest one by one.

        The blocks' orders were decided before the single orders (earlier ticks).
        """
        if self._snapshots or self._blocks or self._kept:
            self._keep(batch)
        out: list[OrderRequest] = []
        blocks: list[OrderBlock] = []
        self._run(batch, 0, out, blocks)
        if (self._snapshots or self._blocks) and batch.batch_seq not in self._kept:
            self._keep(batch)
        return blocks, out

    def _keep(self, batch: IndicatorBatch) -> None:
        self._kept[batch.batch_seq] = batch
        while len(self._kept) > self._max_kept:
            self._kept.popitem(last=False)

    def _run(self, batch: IndicatorBatch, start: int, out: list[OrderRequest],
             blocks: list[OrderBlock] | None = None) -> None:
        if self.assume_fills and not self._outcomes and self._scan(batch, start, out, blocks):
            return
        st = self.state
        n = len(batch)
        i = start
        first = batch.first_tick_seq
        symbol = batch.symbol
        while i < n:
            p = st.pending
            if p is not None:
                j = self._settle_index(p, batch, i)
                if j is None:
                    return  # still pending through this batch: no decisions
                i = j
                continue
            found = self.strategy.decide(batch, i, st.position.get(symbol, 0.0))
            if found is None:
                return
            idx, decision = found
            if idx < i:
                raise ValueError(f"{self.sid}: decide() returned index {idx} before start {i}")
            cid = f"{self.sid}-{st.next_id}"
            user = self.strategy.get_state()
            self._snapshots.setdefault(
                cid, _Snapshot(cid, batch.batch_seq, idx, _RunnerState(
                    dict(st.position), None, st.next_id, None if user is None else copy.deepcopy(user))))
            st.next_id += 1
            seq = first + idx
            st.pending = _Pending(cid, symbol, decision.side, decision.quantity, decision.order_type,
                                  decision.limit_price, seq)
            known = self._outcomes.get(cid)
            if known is None:
                out.append(self._request(cid, batch, idx, decision.side, float(decision.quantity),
                                         decision.order_type, decision.limit_price))
            i = idx + 1
            if known is not None and known[0] == "gone":
                st.pending = None

    def _request(self, cid: str, batch: IndicatorBatch, idx: int, side: Side, qty: float,
                 order_type: OrderType, limit_price: float | None) -> OrderRequest:
        """The order a decision on tick ``idx`` of ``batch`` becomes (current epoch)."""
        return OrderRequest(
            client_order_id=cid, strategy_id=self.sid, symbol=batch.symbol, side=side, quantity=qty,
            order_type=order_type, limit_price=limit_price, decision_seq=batch.first_tick_seq + idx,
            decision_ts_ns=int(batch.ts_ns[idx]), epoch=self.epoch, decision_price=float(batch.price[idx]),
            warm=self.strategy.warm(batch, idx),
        )  # fmt: skip

    def _scan(self, batch: IndicatorBatch, start: int, out: list[OrderRequest],
              blocks: list[OrderBlock] | None = None) -> bool:
        """All of a batch's decisions in one strategy call (see Strategy.scan).

        With ``blocks`` the orders that fill inside this batch leave as one
        OrderBlock; only one decided on the batch's last tick goes one by one.
        """
        st = self.state
        first, symbol, n = batch.first_tick_seq, batch.symbol, len(batch)
        p = st.pending
        pending = 0.0
        if p is not None:
            if p.order_type is not OrderType.MARKET or p.symbol != symbol or p.decision_seq + 1 != first + start:
                return False
            pending = p.quantity if p.side is Side.BUY else -p.quantity
        position = st.position.get(symbol, 0.0)
        res = self.strategy.scan(batch, start, position, pending)
        if res is NotImplemented:
            return False
        indices, quantities = res
        if p is not None and start < n:
            self._apply_fill(p, first + start)
            position += pending
        user = self.strategy.get_state()
        idx_list, q_list = indices.tolist(), quantities.tolist()
        if blocks is not None and idx_list:
            inside = len(idx_list) if idx_list[-1] + 1 < n else len(idx_list) - 1
            if inside:
                position = self._block(batch, idx_list[:inside], q_list[:inside], position, user, blocks)
                idx_list, q_list = idx_list[inside:], q_list[inside:]
        for idx, q in zip(idx_list, q_list):
            cid = f"{self.sid}-{st.next_id}"
            self._snapshots[cid] = _Snapshot(cid, batch.batch_seq, idx, _RunnerState({**st.position, symbol: position},
                                                                                     None, st.next_id, user))
            st.next_id += 1
            side = Side.BUY if q > 0 else Side.SELL
            qty = abs(q)
            out.append(self._request(cid, batch, idx, side, qty, OrderType.MARKET, None))
            pend = _Pending(cid, symbol, side, qty, OrderType.MARKET, None, first + idx)
            if idx + 1 < n:
                self._shadow_fill[cid] = first + idx + 1
                position += q
                st.pending = None
            else:
                st.pending = pend
        if not len(indices) and p is not None and start >= n:
            return True
        st.position[symbol] = position
        if len(indices) and indices[-1] + 1 < n:
            st.pending = None
        elif not len(indices) and p is not None:
            st.pending = None
        return True

    def _block(self, batch: IndicatorBatch, idx_list: list[int], q_list: list[float], position: float,
               user: Any, blocks: list[OrderBlock]) -> float:
        """Emit market orders that fill inside ``batch`` as one OrderBlock; return the position after them."""
        st = self.state
        before = position
        for q in q_list:  # one by one, so the float sums equal the per-order path's
            position += q
        idx = np.asarray(idx_list, dtype=np.int64)
        qty = np.asarray(q_list, dtype=np.float64)
        block = OrderBlock(
            strategy_id=self.sid, symbol=batch.symbol, first_number=st.next_id, epoch=self.epoch,
            side=freeze(np.where(qty > 0, 1, -1).astype(np.int8)), quantity=freeze(np.abs(qty)),
            decision_seq=freeze(idx + batch.first_tick_seq), decision_ts_ns=freeze(np.asarray(batch.ts_ns)[idx]),
            decision_price=freeze(np.asarray(batch.price, dtype=np.float64)[idx]),
            warm=freeze(self._warm(batch, idx)),
        )  # fmt: skip
        self._blocks[st.next_id] = _BlockShadow(block, batch.batch_seq, idx_list, q_list, before, dict(st.position), user,
                                                freeze(idx + (batch.first_tick_seq + 1)))
        st.next_id += len(idx_list)
        blocks.append(block)
        return position

    def _warm(self, batch: IndicatorBatch, idx: np.ndarray) -> np.ndarray:
        if not self._warm_default:  # the strategy defines warm itself: ask it per order
            return np.array([self.strategy.warm(batch, i) for i in idx.tolist()], dtype=bool)
        warm = np.ones(len(idx), dtype=bool)
        values = batch.values
        for key in self.strategy.__dict__.get("_warm_keys") or tuple(self.strategy.value_keys()):
            warm &= ~np.isnan(values[key][idx])
        return warm

    def _materialize(self, bs: _BlockShadow) -> None:
        """Turn an unconfirmed block back into per-order snapshots (something about it surprised us)."""
        del self._blocks[bs.block.first_number]
        symbol, first, pos = bs.block.symbol, bs.block.first_number, bs.position
        for k, (idx, q, seq) in enumerate(zip(bs.indices, bs.signed, bs.fill_seqs.tolist())):
            cid = f"{self.sid}-{first + k}"
            self._snapshots[cid] = _Snapshot(cid, bs.batch_seq, idx,
                                             _RunnerState({**bs.base, symbol: pos}, None, first + k, bs.user))
            self._shadow_fill[cid] = seq
            pos += q

    def _block_of(self, cid: str) -> _BlockShadow | None:
        sid, sep, n = cid.rpartition("-")
        if not sep or sid != self.sid or not n.isdigit():
            return None
        num = int(n)
        for first, bs in self._blocks.items():
            if first <= num <= bs.block.last_number:
                return bs
        return None

    def _settle_index(self, p: _Pending, batch: IndicatorBatch, i: int) -> int | None:
        """Apply the pending order's fill if it happens in this batch at/after ``i``.

        Returns the tick index at which deciding may resume, or None.
        """
        st = self.state
        first = batch.first_tick_seq
        n = len(batch)
        known = self._outcomes.get(p.cid)
        if known is not None:
            kind, seq = known
            j = seq - first
            if j >= n:
                return None
            if kind == "gone":
                st.pending = None
                return max(i, j + 1 if seq == p.decision_seq else j)
            self._apply_fill(p, seq)
            self._confirm(p.cid)  # the shadow applied a known, real fill
            return max(i, j)
        if not self.assume_fills:
            return None  # live: wait for the real outcome
        j = max(i, p.decision_seq + 1 - first)
        if j >= n:
            return None
        if p.order_type is OrderType.LIMIT:
            seg = batch.price[j:]
            hits = np.flatnonzero(seg <= p.limit_price) if p.side is Side.BUY else np.flatnonzero(seg >= p.limit_price)
            if not len(hits):
                return None
            j += int(hits[0])
        self._apply_fill(p, first + j)
        return j

    def _apply_fill(self, p: _Pending, seq: int) -> None:
        st = self.state
        self._shadow_fill[p.cid] = seq
        delta = p.quantity if p.side is Side.BUY else -p.quantity
        st.position[p.symbol] = st.position.get(p.symbol, 0.0) + delta
        st.pending = None

    # ------------------------------------------------------------------ outcomes
    def on_updates(self, upd: OrderUpdates) -> list[OrderRequest]:
        """Confirm or correct the shadow; return orders re-decided after a rollback."""
        fills, events = upd.fills, upd.events
        if upd.fill_blocks or self._blocks:
            fills, events = list(fills), list(events)
            for fb in upd.fill_blocks:
                bs = self._blocks.get(fb.first_number)
                if (bs is not None and fb.strategy_id == self.sid and len(fb) == len(bs.block)
                        and np.array_equal(fb.event_seq, bs.fill_seqs)):
                    del self._blocks[fb.first_number]  # every order filled where the shadow said
                    continue
                fills.extend(fb.fills())
                events.extend(fb.events())
            if self._blocks:
                for item in (*upd.denials, *fills, *events):
                    bs = self._block_of(item.client_order_id)
                    if bs is not None:
                        self._materialize(bs)
        rollback_to: _Snapshot | None = None
        for d in upd.denials:
            if d.epoch != self.epoch or d.client_order_id not in self._snapshots:
                continue
            self._outcomes[d.client_order_id] = ("gone", d.decision_seq)
            rollback_to = self._earliest(rollback_to, self._snapshots[d.client_order_id])
        for f in fills:
            snap = self._snapshots.get(f.client_order_id)
            if snap is None:
                continue
            self._outcomes[f.client_order_id] = ("fill", f.event_seq)
        for ev in events:
            snap = self._snapshots.get(ev.client_order_id)
            if snap is None:
                continue
            if ev.status in GONE:
                self._outcomes[ev.client_order_id] = ("gone", ev.event_seq)
                rollback_to = self._earliest(rollback_to, snap)
            elif ev.status is OrderStatus.FILLED:
                shadow = self._shadow_fill.get(ev.client_order_id)
                if shadow is None:
                    # Known before the shadow reached that tick (a replayed fact after a
                    # restart): the shadow will apply it when it gets there.
                    self._outcomes[ev.client_order_id] = ("fill", ev.event_seq)
                elif shadow != ev.event_seq:
                    rollback_to = self._earliest(rollback_to, snap)
                else:
                    self._confirm(ev.client_order_id)
        if rollback_to is None:
            self._trim()
            return []
        return self._rollback(rollback_to)

    @staticmethod
    def _earliest(a: _Snapshot | None, b: _Snapshot) -> _Snapshot:
        if a is None:
            return b
        return b if (b.batch_seq, b.index) < (a.batch_seq, a.index) else a

    def _confirm(self, cid: str) -> None:
        self._snapshots.pop(cid, None)
        self._outcomes.pop(cid, None)
        self._shadow_fill.pop(cid, None)

    def _trim(self) -> None:
        if not self._snapshots and not self._blocks:
            self._kept.clear()
            self._outcomes.clear()
            self._shadow_fill.clear()
            return
        oldest = min([s.batch_seq for s in self._snapshots.values()] + [b.batch_seq for b in self._blocks.values()])
        for seq in list(self._kept):
            if seq < oldest:
                del self._kept[seq]
            else:
                break

    def _rollback(self, snap: _Snapshot) -> list[OrderRequest]:
        if snap.batch_seq not in self._kept:
            raise RuntimeError(f"{self.sid}: cannot roll back to batch {snap.batch_seq}: no longer kept")
        self.rollbacks += 1
        self.epoch += 1
        restored = _RunnerState(dict(snap.state.position), None, snap.state.next_id, copy.deepcopy(snap.state.user))
        self.state = restored
        self.strategy.set_state(copy.deepcopy(restored.user))
        # Snapshots after the rollback point describe a discarded view.
        for cid, s in list(self._snapshots.items()):
            if (s.batch_seq, s.index) >= (snap.batch_seq, snap.index):
                del self._snapshots[cid]
        for first, b in list(self._blocks.items()):  # a block lies wholly before or after the point
            if (b.batch_seq, b.indices[0]) >= (snap.batch_seq, snap.index):
                del self._blocks[first]
        # Outcomes stay: they are facts about orders that really exist.
        out: list[OrderRequest] = []
        for seq, batch in list(self._kept.items()):
            if seq < snap.batch_seq:
                continue
            self._run(batch, snap.index if seq == snap.batch_seq else 0, out)
        # Orders whose fate is known were re-run consistent with it: settled.
        for cid in [c for c in self._snapshots if c in self._outcomes]:
            del self._snapshots[cid]
        self._trim()
        return out

    def adopt_pending(self, order) -> None:
        """Take over an order of this strategy that was open when the engine stopped (``run``)."""
        self.state.pending = _Pending(order.client_order_id, order.symbol, order.side,
                                      order.quantity - order.filled_qty, order.order_type, order.limit_price,
                                      order.decision_seq)

    # ------------------------------------------------------------------ checkpoint
    def checkpoint(self) -> bytes | None:
        """Runner state at a batch boundary, or None while decisions are unconfirmed."""
        if self._snapshots or self._blocks:
            return None
        st = self.state
        pend = None if st.pending is None else dict(st.pending.__dict__)
        return msgspec.msgpack.encode({"position": st.position, "pending": pend, "next_id": st.next_id,
                                       "epoch": self.epoch, "user": st.user})

    def restore(self, data: bytes) -> None:
        raw = msgspec.msgpack.decode(data)
        p = raw["pending"]
        self.state = _RunnerState(
            position=dict(raw["position"]),
            pending=None if p is None else _Pending(**{**p, "side": Side(p["side"]), "order_type": OrderType(p["order_type"])}),
            next_id=raw["next_id"], user=raw["user"],
        )  # fmt: skip
        self.epoch = raw["epoch"]
        self.strategy.set_state(raw["user"])

    @property
    def unconfirmed(self) -> int:
        return len(self._snapshots) + sum(len(b.block) for b in self._blocks.values())
