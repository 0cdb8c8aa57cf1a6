"""The order state machine and the book of orders and positions. Pure, no I/O.

Why a table: every legal transition is one line below, so a reviewer can see
the whole lifecycle at once and an illegal transition (a fill after a cancel,
a second FILLED) is refused by lookup, never by scattered ``if``s.
"""

from __future__ import annotations

import collections
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from loguru import logger

from engine.kernels import kernel
from engine.messages import (
    Fill, FillBlock, Order, OrderBlock, OrderEvent, OrderRequest, OrderStatus, OrderType, PnL, Position, Side,
)  # fmt: skip

S = OrderStatus

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.INITIALIZED: frozenset({S.DENIED, S.SUBMITTED}),
    S.SUBMITTED: frozenset({S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.ACCEPTED, S.EXPIRED}),
    S.DENIED: frozenset(),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}  # fmt: skip

TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
OPEN = frozenset({S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL})


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new in TRANSITIONS[current]


class IllegalTransition(Exception):
    pass


@dataclass(slots=True)
class OrderState:
    """Mutable state of one order; owned by exactly one OrderBook (one actor)."""

    request: OrderRequest
    status: OrderStatus = S.INITIALIZED
    filled_qty: float = 0.0
    avg_price: float = 0.0
    last_event_seq: int = -1
    venue_order_id: str = ""
    reason: str = ""
    trade_ids: set = field(default_factory=set)

    @property
    def remaining(self) -> float:
        return self.request.quantity - self.filled_qty

    def view(self) -> Order:
        r = self.request
        return Order(
            client_order_id=r.client_order_id, strategy_id=r.strategy_id, symbol=r.symbol, side=r.side,
            quantity=r.quantity, order_type=r.order_type, status=self.status, limit_price=r.limit_price,
            filled_qty=self.filled_qty, avg_price=self.avg_price, decision_seq=r.decision_seq,
            last_event_seq=self.last_event_seq, venue_order_id=self.venue_order_id, reason=self.reason,
        )  # fmt: skip


@dataclass(slots=True)
class PositionState:
    symbol: str
    quantity: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    last_price: float = 0.0

    def apply_fill(self, side: Side, qty: float, price: float, fee: float) -> float:
        """Apply a fill; return the realized PnL it produced (before fees)."""
        signed = qty if side is Side.BUY else -qty
        realized = 0.0
        q = self.quantity
        if q == 0 or (q > 0) == (signed > 0):
            new_q = q + signed
            self.avg_price = (self.avg_price * abs(q) + price * abs(signed)) / abs(new_q)
            self.quantity = new_q
        else:
            closing = min(abs(signed), abs(q))
            direction = 1.0 if q > 0 else -1.0
            realized = (price - self.avg_price) * closing * direction
            new_q = q + signed
            if new_q == 0:
                self.avg_price = 0.0
            elif (new_q > 0) != (q > 0):  # flipped through zero
                self.avg_price = price
            self.quantity = new_q
        self.realized_pnl += realized
        self.fees += fee
        self.last_price = price
        return realized

    @property
    def unrealized_pnl(self) -> float:
        if self.quantity == 0 or self.last_price == 0:
            return 0.0
        return (self.last_price - self.avg_price) * self.quantity

    def view(self) -> Position:
        return Position(
            symbol=self.symbol, quantity=self.quantity, avg_price=self.avg_price,
            realized_pnl=self.realized_pnl, unrealized_pnl=self.unrealized_pnl,
            fees=self.fees, last_price=self.last_price,
        )  # fmt: skip


# Holds the GIL: a few µs, and releasing it costs a hand-off.
@kernel("f8", "f8", "f8", "f8", "f8", "i1[]", "f8[]", "f8[]", "f8[]", nogil=False)
def _apply_fills(q: float, avg: float, realized_total: float, fees_total: float, held: float, side: np.ndarray,
                 qty: np.ndarray, price: np.ndarray, fee: np.ndarray) -> tuple[float, float, float, float, float]:
    """PositionState.apply_fill over a run of fills, with the same float operations in the same order.

    Returns (quantity, avg_price, realized_pnl, fees, held) where ``held`` is
    the strategy's own position (a sum in fill order). Numba without fastmath
    keeps IEEE semantics, so the result is bit-identical to fill by fill.
    """
    for k in range(qty.shape[0]):
        signed = qty[k] if side[k] > 0 else -qty[k]
        px = price[k]
        realized = 0.0
        if q == 0 or (q > 0) == (signed > 0):
            new_q = q + signed
            avg = (avg * abs(q) + px * abs(signed)) / abs(new_q)
            q = new_q
        else:
            closing = min(abs(signed), abs(q))
            direction = 1.0 if q > 0 else -1.0
            realized = (px - avg) * closing * direction
            new_q = q + signed
            if new_q == 0:
                avg = 0.0
            elif (new_q > 0) != (q > 0):
                avg = px
            q = new_q
        realized_total += realized
        fees_total += fee[k]
        held += signed
    return q, avg, realized_total, fees_total, held


_STATUS_LIST = list(OrderStatus)
_STATUS_CODE = {st: k for k, st in enumerate(_STATUS_LIST)}
_TYPE_LIST = list(OrderType)
_TYPE_CODE = {t: k for k, t in enumerate(_TYPE_LIST)}
_NAN = float("nan")


class _ColumnCodec:
    """A chunk of fixed-size rows compressed field by field: about a quarter of zlib on the rows as they lie.

    Why: row after row, zlib sees ten interleaved fields. Split into columns,
    most fields of filled market orders are runs of one value, the decision
    seq rises by small steps (stored as differences, bytes grouped by
    significance), and the last event seq is the decision seq plus one
    (stored as that offset). Measured on the bench job's rows: 37 KB per
    4096 orders as rows, 12 KB as columns (most of it the fill prices), at
    zlib level 1 both. Lossless byte for byte (NaN limits included): every
    step is on integers or raw bytes.
    """

    def __init__(self, dtype: np.dtype, rows: int, rising: str, follows: str) -> None:
        names = list(dtype.names)
        if names.index(follows) < names.index(rising):
            raise ValueError(f"column codec: {follows!r} is stored relative to {rising!r}, so must come after it")
        self.dtype, self.rows, self.rising, self.follows = dtype, rows, rising, follows

    def compress(self, chunk: bytearray) -> bytes:
        rows = np.frombuffer(chunk, dtype=self.dtype)
        parts = []
        for name in self.dtype.names:
            col = np.ascontiguousarray(rows[name])
            if name == self.rising:
                col = np.diff(col, prepend=col.dtype.type(0))
                col = col.view(np.uint8).reshape(len(col), -1).T  # bytes by significance
            elif name == self.follows:
                col = col - rows[self.rising]
            parts.append(np.ascontiguousarray(col).tobytes())
        return zlib.compress(b"".join(parts), 1)

    def decompress(self, blob: bytes) -> bytearray:
        data = zlib.decompress(blob)
        rows = np.zeros(self.rows, dtype=self.dtype)
        at = 0
        for name in self.dtype.names:
            ft = self.dtype.fields[name][0]
            size = ft.itemsize * self.rows
            if name == self.rising:
                col = np.frombuffer(data, dtype=np.uint8, count=size, offset=at).reshape(ft.itemsize, self.rows)
                col = np.cumsum(np.ascontiguousarray(col.T).view(ft).ravel())
            else:
                col = np.frombuffer(data, dtype=ft, count=self.rows, offset=at)
                if name == self.follows:
                    col = col + rows[self.rising]
            rows[name] = col
            at += size
        return bytearray(rows.tobytes())


class _ChunkedRows:
    """Fixed-size rows numbered from 1, in chunks of ``ROWS``; all but the ``HOT`` newest chunks compressed.

    Why: finished orders are written once, near the newest number, and read
    back rarely (an API query, a re-send after a restart); a run of 20M ticks
    kept 14 MB of rows that nobody read. Compressed, a chunk of filled market
    orders is a fraction of that, and memory stays flat over a long run.
    """

    ROWS = 4096
    HOT = 2

    def __init__(self, codec: _ColumnCodec) -> None:
        self.size = codec.dtype.itemsize  # the codec's rows are this chunk's rows: ROWS of them
        self._compress, self._decompress = codec.compress, codec.decompress
        self.chunks: dict[int, bytearray | bytes] = {}
        self.hot: list[int] = []  # raw chunks, by index
        self._last_read: tuple[int, bytes] | None = None  # one decompressed cold chunk
        # The raw buffer of the chunk that went cold last, the next new chunk's (zeroed): one
        # buffer recycled per 4096 orders instead of a fresh 217 KB one, which malloc placed
        # wherever a hole was and a 20M-tick replay's heap grew around (bench/README.md, Memory).
        self._spare: bytearray | None = None

    def writable(self, c: int) -> bytearray:
        chunk = self.chunks.get(c)
        if isinstance(chunk, bytearray):
            return chunk
        if chunk is not None:
            chunk = self._decompress(chunk)
        elif self._spare is not None:
            chunk, self._spare = self._spare, None
            np.frombuffer(chunk, dtype=np.uint8).fill(0)  # an all-zero row is an empty one
        else:
            chunk = bytearray(self.ROWS * self.size)
        self.chunks[c] = chunk
        self.hot.append(c)
        self.hot.sort()
        while len(self.hot) > self.HOT:
            cold = self.hot.pop(0)
            self._spare = self.chunks[cold]  # hot chunks are whole raw chunks
            self.chunks[cold] = self._compress(self._spare)
            if self._last_read is not None and self._last_read[0] == cold:
                self._last_read = None
        return chunk

    def readable(self, c: int) -> bytearray | bytes | None:
        chunk = self.chunks.get(c)
        if chunk is None or isinstance(chunk, bytearray):
            return chunk
        if self._last_read is None or self._last_read[0] != c:
            self._last_read = (c, bytes(self._decompress(chunk)))
        return self._last_read[1]

    def row_for_write(self, n: int) -> tuple[bytearray, int]:
        c, r = divmod(n - 1, self.ROWS)
        return self.writable(c), r * self.size

    def row_for_read(self, n: int) -> tuple[bytearray | bytes, int] | None:
        if n < 1:
            return None
        c, r = divmod(n - 1, self.ROWS)
        chunk = self.readable(c)
        return None if chunk is None else (chunk, r * self.size)

    def segments(self, first: int, last: int):
        """``(chunk, row_from, row_to, k_from, k_to)`` covering rows first..last (k: index within the run)."""
        n = first
        while n <= last:
            c, r = divmod(n - 1, self.ROWS)
            take = min(self.ROWS - r, last - n + 1)
            yield self.writable(c), r, r + take, n - first, n - first + take
            n += take


class OrderArchive:
    """Every order that reached a terminal state, in 53 bytes each.

    Why: a trading engine runs for days; keeping each finished order as
    Python objects grew memory with every fill. Finished orders are in the
    journal already; what the engine still needs of them is "does this client
    id exist, and how did it end" (idempotency, and telling a re-running
    strategy what happened). Client ids minted by strategies are
    ``<strategy>-<n>``, so their facts are fixed-size rows packed into one
    bytearray per strategy, row ``n - 1``; other ids (API, flatten) keep
    their full view in a dict.
    """

    # status+1 (0 = no row) side type symbol qty filled avg limit decided last
    _ROW = struct.Struct("<BBBHddddqq")
    # The same row as a numpy dtype: a block's rows are written in one vectorized step.
    _ROW_DTYPE = np.dtype({
        "names": ["status", "side", "type", "sym", "qty", "filled", "avg", "limit", "decided", "last"],
        "formats": ["u1", "u1", "u1", "<u2", "<f8", "<f8", "<f8", "<f8", "<i8", "<i8"],
        "offsets": [0, 1, 2, 3, 5, 13, 21, 29, 37, 45], "itemsize": 53,
    })  # fmt: skip

    _CODEC = _ColumnCodec(_ROW_DTYPE, _ChunkedRows.ROWS, rising="decided", follows="last")

    def __init__(self) -> None:
        self._by_sid: dict[str, _ChunkedRows] = {}
        self._other: dict[str, Order] = {}
        self._symbols: list[str] = []
        self._symbol_index: dict[str, int] = {}
        self.count = 0

    @staticmethod
    def _split(cid: str) -> tuple[str, int] | None:
        sid, sep, n = cid.rpartition("-")
        if sep and n.isdigit() and n[0] != "0":
            return sid, int(n)
        return None

    def put(self, st: "OrderState") -> None:
        r = st.request
        key = self._split(r.client_order_id)
        if key is None or key[0] != r.strategy_id:
            if r.client_order_id not in self._other:
                self.count += 1
            self._other[r.client_order_id] = st.view()
            return
        chunks = self._by_sid.get(key[0])
        if chunks is None:
            chunks = self._by_sid[key[0]] = _ChunkedRows(self._CODEC)
        rows, at = chunks.row_for_write(key[1])
        if rows[at] == 0:
            self.count += 1
        sym = self._symbol_index.get(r.symbol)
        if sym is None:
            sym = self._symbol_index[r.symbol] = len(self._symbols)
            self._symbols.append(r.symbol)
        self._ROW.pack_into(
            rows, at, _STATUS_CODE[st.status] + 1, 0 if r.side is Side.BUY else 1, _TYPE_CODE[r.order_type], sym,
            r.quantity, st.filled_qty, st.avg_price, _NAN if r.limit_price is None else r.limit_price,
            r.decision_seq, st.last_event_seq,
        )  # fmt: skip

    def put_filled_block(self, blk: OrderBlock, fb: FillBlock) -> None:
        """Rows for every order of a block, each FILLED in full at its fill price."""
        chunks = self._by_sid.get(blk.strategy_id)
        if chunks is None:
            chunks = self._by_sid[blk.strategy_id] = _ChunkedRows(self._CODEC)
        sym = self._symbol_index.get(blk.symbol)
        if sym is None:
            sym = self._symbol_index[blk.symbol] = len(self._symbols)
            self._symbols.append(blk.symbol)
        for rows, r0, r1, k0, k1 in chunks.segments(blk.first_number, blk.last_number):
            view = np.frombuffer(rows, dtype=self._ROW_DTYPE)[r0:r1]
            self.count += int(np.count_nonzero(view["status"] == 0))
            view["status"] = _STATUS_CODE[S.FILLED] + 1
            view["side"] = np.where(blk.side[k0:k1] > 0, 0, 1)
            view["type"] = _TYPE_CODE[OrderType.MARKET]
            view["sym"] = sym
            view["qty"] = blk.quantity[k0:k1]
            view["filled"] = fb.quantity[k0:k1]
            view["avg"] = fb.price[k0:k1]
            view["limit"] = _NAN
            view["decided"] = blk.decision_seq[k0:k1]
            view["last"] = fb.event_seq[k0:k1]
            del view  # a live view would keep ``rows`` from being compressed

    def put_denied(self, cid: str, strategy_id: str, decision_seq: int) -> None:
        st = OrderState(request=OrderRequest(client_order_id=cid, strategy_id=strategy_id, symbol="", side=Side.BUY,
                                             quantity=0.0, decision_seq=decision_seq),
                        status=OrderStatus.DENIED, last_event_seq=decision_seq)
        self.put(st)

    def get(self, cid: str) -> Order | None:
        other = self._other.get(cid)
        if other is not None:
            return other
        key = self._split(cid)
        if key is None:
            return None
        chunks = self._by_sid.get(key[0])
        found = None if chunks is None else chunks.row_for_read(key[1])
        if found is None or found[0][found[1]] == 0:
            return None
        rows, at = found
        status, side, otype, sym, qty, filled, avg, limit, decided, last = self._ROW.unpack_from(rows, at)
        status -= 1
        return Order(
            client_order_id=cid, strategy_id=key[0], symbol=self._symbols[sym],
            side=Side.BUY if side == 0 else Side.SELL, quantity=qty, order_type=_TYPE_LIST[otype],
            status=_STATUS_LIST[status], limit_price=None if limit != limit else limit, filled_qty=filled,
            avg_price=avg, decision_seq=decided, last_event_seq=last,
        )  # fmt: skip

    def __contains__(self, cid: str) -> bool:
        if cid in self._other:
            return True
        key = self._split(cid)
        if key is None:
            return False
        chunks = self._by_sid.get(key[0])
        found = None if chunks is None else chunks.row_for_read(key[1])
        return found is not None and found[0][found[1]] != 0


@dataclass
class OrderBook:
    """Live orders, a short memory of finished ones, the compact archive of all, and positions.

    The OrderActor owns one; recovery rebuilds one. Memory is bounded by the
    number of *open* orders plus ``keep_recent`` (plus ~60 bytes per finished
    order in the archive), not by how long the engine has run.
    """

    live: dict[str, OrderState] = field(default_factory=dict)
    recent: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    archive: OrderArchive = field(default_factory=OrderArchive)
    keep_recent: int = 2000
    positions: dict[str, PositionState] = field(default_factory=dict)
    fills_count: int = 0
    illegal_transitions: int = 0
    # Filled position per (strategy id, symbol): what each strategy holds, for its restart.
    strategy_positions: dict[tuple[str, str], float] = field(default_factory=dict)
    # Highest n of any id "<prefix>-<n>" entered, per prefix: a block above it is wholly new.
    high_number: dict[str, int] = field(default_factory=dict)
    # The latest filled blocks (for latest()); bounded like ``recent``.
    recent_blocks: collections.deque = field(default_factory=lambda: collections.deque(maxlen=256))

    def _note(self, cid: str) -> None:
        key = OrderArchive._split(cid)
        if key is not None and key[1] > self.high_number.get(key[0], 0):
            self.high_number[key[0]] = key[1]

    def is_new_block(self, blk: OrderBlock) -> bool:
        """True if no order of ``blk`` was entered before (idempotency for the whole block)."""
        return blk.first_number > self.high_number.get(blk.strategy_id, 0)

    def submit_block(self, blk: OrderBlock) -> None:
        """A journaled block is on its way to the venue: its ids now exist."""
        if blk.last_number > self.high_number.get(blk.strategy_id, 0):
            self.high_number[blk.strategy_id] = blk.last_number

    def apply_fill_block(self, blk: OrderBlock, fb: FillBlock) -> None:
        """Every order of ``blk`` filled in full (``fb``): positions, per-strategy positions, archive."""
        pos = self.positions.get(fb.symbol)
        if pos is None:
            pos = self.positions[fb.symbol] = PositionState(fb.symbol)
        key = (fb.strategy_id, fb.symbol)
        pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees, self.strategy_positions[key] = _apply_fills(
            pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees, self.strategy_positions.get(key, 0.0),
            fb.side, fb.quantity, fb.price, fb.fee)
        if len(fb):
            pos.last_price = float(fb.price[-1])
        self.fills_count += len(fb)
        self.archive.put_filled_block(blk, fb)
        self.recent_blocks.append((blk, fb))

    def submit(self, request: OrderRequest) -> OrderState:
        """Enter a journaled order as SUBMITTED."""
        st = OrderState(request=request, status=S.SUBMITTED, last_event_seq=request.decision_seq)
        self.live[request.client_order_id] = st
        self._note(request.client_order_id)
        return st

    def deny(self, request: OrderRequest | None, cid: str, strategy_id: str, decision_seq: int) -> None:
        """Remember a denied client id (it exists, as DENIED) without keeping the order."""
        self._note(cid)
        if request is not None:
            self._finish(OrderState(request=request, status=S.DENIED, last_event_seq=decision_seq))
        else:
            self.archive.put_denied(cid, strategy_id, decision_seq)

    def get(self, cid: str) -> OrderState | None:
        """A live or recently finished order (full detail)."""
        st = self.live.get(cid)
        return st if st is not None else self.recent.get(cid)

    def known(self, cid: str) -> bool:
        return cid in self.live or cid in self.recent or cid in self.archive

    def view(self, cid: str) -> Order | None:
        st = self.get(cid)
        return st.view() if st is not None else self.archive.get(cid)

    def _finish(self, st: OrderState) -> None:
        cid = st.request.client_order_id
        self.live.pop(cid, None)
        self.archive.put(st)
        self.recent[cid] = st
        if len(self.recent) > self.keep_recent:
            self.recent.popitem(last=False)

    def apply_event(self, ev: OrderEvent) -> bool:
        """Apply a status change; refuse (log, count, return False) if illegal."""
        st = self.live.get(ev.client_order_id)
        if st is None:
            done = self.view(ev.client_order_id)
            if done is not None and done.status is ev.status:
                return False  # duplicate delivery of the final event
            logger.warning("event {} for order {} that is {} refused", ev.status.value, ev.client_order_id,
                           done.status.value if done else "unknown")
            self.illegal_transitions += 1
            return False
        if ev.status is st.status and ev.status is not S.PARTIALLY_FILLED:
            return False  # duplicate delivery: already applied
        if not can_transition(st.status, ev.status):
            logger.warning("illegal transition {} -> {} for {} refused", st.status.value, ev.status.value, ev.client_order_id)
            self.illegal_transitions += 1
            return False
        st.status = ev.status
        st.last_event_seq = ev.event_seq
        if ev.venue_order_id:
            st.venue_order_id = ev.venue_order_id
        if ev.reason:
            st.reason = ev.reason
        if ev.status in TERMINAL:
            self._finish(st)
        return True

    def apply_fill(self, fill: Fill) -> bool:
        """Apply a fill once (deduplicated by venue trade id) to a live order.

        Fills are applied before the event that completes the order; a fill
        for an order that already finished is a duplicate or an error: refused.
        """
        st = self.live.get(fill.client_order_id)
        if st is None:
            if not self.known(fill.client_order_id):
                logger.warning("fill {} for unknown order {}", fill.trade_id, fill.client_order_id)
            return False
        if fill.trade_id in st.trade_ids:
            return False
        st.trade_ids.add(fill.trade_id)
        total = st.filled_qty + fill.quantity
        st.avg_price = (st.avg_price * st.filled_qty + fill.price * fill.quantity) / total if total else 0.0
        st.filled_qty = total
        pos = self.positions.get(fill.symbol)
        if pos is None:
            pos = self.positions[fill.symbol] = PositionState(fill.symbol)
        pos.apply_fill(fill.side, fill.quantity, fill.price, fill.fee)
        key = (fill.strategy_id, fill.symbol)
        self.strategy_positions[key] = self.strategy_positions.get(key, 0.0) + (
            fill.quantity if fill.side is Side.BUY else -fill.quantity)
        self.fills_count += 1
        return True

    def mark(self, symbol: str, price: float) -> None:
        pos = self.positions.get(symbol)
        if pos is not None and price > 0:
            pos.last_price = price

    def realized_total(self) -> float:
        return sum(p.realized_pnl for p in self.positions.values())

    def fees_total(self) -> float:
        return sum(p.fees for p in self.positions.values())

    def pnl(self) -> PnL:
        realized = self.realized_total()
        unrealized = sum(p.unrealized_pnl for p in self.positions.values())
        fees = self.fees_total()
        return PnL(
            realized_pnl=realized, unrealized_pnl=unrealized, fees=fees, total=realized + unrealized - fees,
            by_symbol={s: p.view() for s, p in self.positions.items()},
        )

    def open_orders(self) -> list[OrderState]:
        return [self.live[c] for c in sorted(self.live)]

    def latest(self, limit: int) -> list[OrderState]:
        """Open orders and the most recently finished ones, oldest first."""
        finished = list(self.recent.values())
        if self.recent_blocks:
            for blk, fb in self.recent_blocks:
                finished.extend(_filled_states(blk, fb))
            finished.sort(key=lambda st: st.last_event_seq)  # stable: singles and blocks in event order
            finished = finished[-self.keep_recent :]
        items = finished + list(self.live.values())
        return items[-limit:] if limit else items

    def position_qty(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.quantity if pos else 0.0


def _filled_states(blk: OrderBlock, fb: FillBlock) -> list[OrderState]:
    return [
        OrderState(request=req, status=S.FILLED, filled_qty=ev.filled_qty, avg_price=ev.avg_price,
                   last_event_seq=ev.event_seq, venue_order_id=ev.venue_order_id)
        for req, ev in zip(blk.requests(), fb.events())
    ]  # fmt: skip


def is_market(request: OrderRequest) -> bool:
    return request.order_type is OrderType.MARKET
