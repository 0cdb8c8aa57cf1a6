"""Every message the actors exchange, in one place.

Why one module: the same structs are the mailbox messages, the journal rows,
the API schema and (later) the wire format. Keeping them together makes the
schema reviewable in one read and lets a single test round-trip every type.

Conventions
-----------
* Every message is a ``msgspec.Struct`` with ``frozen=True`` and a ``tag`` so a
  union of messages decodes without ambiguity.
* Columns inside batch messages are numpy arrays made read-only by
  :func:`freeze`; receivers may keep views without copying and nobody can
  mutate what another actor is reading.
* ``*_seq`` fields are event-time sequence numbers, never wall-clock.
  ``tick_seq`` counts ticks of one feed from 0; ``batch_seq`` counts batches.
  Determinism and exactly-once both hang off them.
* Wall-clock fields end in ``_wall_ns``; they are excluded from the journal
  digest (see ``engine/journal.py``).
"""

from __future__ import annotations

import base64
import enum
from typing import Any, Literal, Union

import msgspec
import numpy as np

# --------------------------------------------------------------------------
# Arrays inside messages


def freeze(array: np.ndarray) -> np.ndarray:
    """Return ``array`` marked read-only (a view; no copy)."""
    view = array.view()
    view.flags.writeable = False
    return view


_NDARRAY_EXT = 1


_HEADERS: dict[tuple, bytes] = {}  # (dtype, shape) -> ext header: blocks encode a dozen arrays per round


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        key = (obj.dtype.str, obj.shape)
        head = _HEADERS.get(key)
        if head is None:
            header = f"{key[0]}|{','.join(map(str, obj.shape))}".encode()
            head = len(header).to_bytes(2, "little") + header
            if len(_HEADERS) < 4096:
                _HEADERS[key] = head
        return msgspec.msgpack.Ext(_NDARRAY_EXT, head + obj.tobytes())  # tobytes is C order whatever the layout
    if isinstance(obj, np.generic):
        return obj.item()
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _ext_hook(code: int, data: memoryview) -> Any:
    if code != _NDARRAY_EXT:
        raise NotImplementedError(f"unknown msgpack extension {code}")
    hlen = int.from_bytes(data[:2], "little")
    dtype, shape = bytes(data[2 : 2 + hlen]).decode().rsplit("|", 1)  # "|b1", "|i1": the dtype may hold a "|"
    dims = tuple(int(d) for d in shape.split(",") if d)
    arr = np.frombuffer(bytes(data[2 + hlen :]), dtype=np.dtype(dtype)).reshape(dims)
    return freeze(arr)


def _json_enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {"dtype": arr.dtype.str, "shape": list(arr.shape), "b64": base64.b64encode(arr.tobytes()).decode()}
    if isinstance(obj, np.generic):
        return obj.item()
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is np.ndarray:
        if isinstance(obj, np.ndarray):  # msgpack ext already decoded it
            return obj
        if isinstance(obj, dict) and {"dtype", "shape", "b64"} <= obj.keys():
            arr = np.frombuffer(base64.b64decode(obj["b64"]), dtype=np.dtype(obj["dtype"]))
            return freeze(arr.reshape(tuple(obj["shape"])))
        if isinstance(obj, list):
            return freeze(np.asarray(obj, dtype=np.float64))
    raise NotImplementedError(f"cannot decode {typ!r}")


class _Base(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Base for every message: frozen, tagged by class name."""


# --------------------------------------------------------------------------
# Enumerations (string values so JSON and the journal stay readable)


class Side(str, enum.Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, enum.Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class OrderStatus(str, enum.Enum):
    INITIALIZED = "INITIALIZED"
    DENIED = "DENIED"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class TradingState(str, enum.Enum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class DenyReason(str, enum.Enum):
    """Machine-readable pre-trade denial codes (stable: clients match on them)."""

    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    MAX_ORDER_QTY = "MAX_ORDER_QTY"
    MAX_NOTIONAL = "MAX_NOTIONAL"
    MAX_POSITION = "MAX_POSITION"
    PRICE_COLLAR = "PRICE_COLLAR"
    RATE_LIMIT = "RATE_LIMIT"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    STALE_MARKET_DATA = "STALE_MARKET_DATA"
    NO_MARKET_DATA = "NO_MARKET_DATA"
    INDICATOR_NOT_WARM = "INDICATOR_NOT_WARM"
    TRADING_HALTED = "TRADING_HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"
    KILL_SWITCH = "KILL_SWITCH"
    SUPERSEDED = "SUPERSEDED"
    INVALID_PRICE = "INVALID_PRICE"
    JOURNAL_UNAVAILABLE = "JOURNAL_UNAVAILABLE"


# --------------------------------------------------------------------------
# Market data path


class TickBatch(_Base, frozen=True):
    """A run of ticks of one symbol, as columns.

    ``first_tick_seq`` is the feed-wide sequence number of row 0; row ``k`` is
    tick ``first_tick_seq + k``. ``batch_seq`` numbers batches of one feed
    from 0 and lets receivers drop duplicates after a restart.
    """

    feed: str
    batch_seq: int
    symbol: str
    first_tick_seq: int
    ts_ns: np.ndarray  # int64
    price: np.ndarray  # float64
    size: np.ndarray  # float64
    side: np.ndarray | None = None  # int8: 1 buyer aggressor, -1 seller, 0 unknown
    recv_wall_ns: int = 0
    high: np.ndarray | None = None  # bars only (price is the close): lets ATR use the true range
    low: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.price.shape[0])


class IndicatorBatch(_Base, frozen=True):
    """A TickBatch plus one aligned float64 column per configured indicator.

    ``values`` maps an indicator key (e.g. ``"rsi_14"``) to its column; NaN
    marks warm-up. Downstream actors never recompute an indicator.
    """

    feed: str
    batch_seq: int
    symbol: str
    first_tick_seq: int
    ts_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray
    values: dict[str, np.ndarray]
    recv_wall_ns: int = 0

    def __len__(self) -> int:
        return int(self.price.shape[0])


class BatchDone(_Base, frozen=True):
    """Credit returned to the feed: ``consumer`` finished ``batch_seq``."""

    feed: str
    batch_seq: int
    consumer: str


class EndOfStream(_Base, frozen=True):
    """The feed has no more data; ``last_tick_seq`` is the last tick sent (-1 if none)."""

    feed: str
    last_batch_seq: int
    last_tick_seq: int


class StartFeed(_Base, frozen=True):
    """Start (or resume) a MarketFeed: its first batch carries tick
    ``after_tick_seq + 1`` and is numbered ``after_batch_seq + 1``, so a
    feed resumed from a :class:`FeedCheckpoint` re-sends exactly what follows
    and receivers' duplicate checks on ``batch_seq`` keep working."""

    after_tick_seq: int = -1
    after_batch_seq: int = -1


class GetFeedStats(_Base, frozen=True):
    """MarketFeed -> FeedStats."""


class FeedStats(_Base, frozen=True):
    feed: str
    ticks: int
    batches: int
    rejected: int
    rejected_by_reason: dict[str, int]
    in_flight: int
    credits: int
    backpressure_waits: int
    finished: bool
    error: str = ""  # why the source stopped early (e.g. a file corrupt half-way), "" if it did not


# --------------------------------------------------------------------------
# Orders


class OrderRequest(_Base, frozen=True):
    """A strategy's intent. ``decision_seq`` is the tick it was decided on;
    a market order fills no earlier than tick ``decision_seq + 1``.
    ``epoch`` lets safety and the venue drop orders a strategy decided on a
    view it has since rolled back (see strategies/base.py)."""

    client_order_id: str
    strategy_id: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    decision_seq: int = -1
    decision_ts_ns: int = 0
    epoch: int = 0
    reduce_only: bool = False
    decision_price: float = 0.0  # last trade price the decision saw (collar / notional)
    warm: bool = True  # the strategy's indicators were warm when it decided


class OrderBatch(_Base, frozen=True):
    """All orders one strategy decided within one indicator batch, in tick order.

    Sent for every batch, even with no orders: the SafetyActor gathers one per
    routed strategy before it passes the round on, which is what keeps the
    journal's order independent of thread timing. The tick columns ride along
    (views, no copy) so the paper venue matches against exactly these ticks.
    """

    strategy_id: str
    feed: str
    batch_seq: int
    orders: list[OrderRequest]
    cancels: list[str] = []
    blocks: list["OrderBlock"] = []  # decided before ``orders`` (earlier ticks); see OrderBlock
    symbol: str = ""
    first_tick_seq: int = 0
    ts_ns: np.ndarray | None = None
    price: np.ndarray | None = None
    end_of_stream: bool = False
    recv_wall_ns: int = 0  # wall time the feed made the tick batch (latency histograms)


class Round(_Base, frozen=True):
    """Safety -> OrderActor -> venue: one feed batch's checked orders and ticks."""

    feed: str
    batch_seq: int
    symbol: str
    first_tick_seq: int
    ts_ns: np.ndarray | None
    price: np.ndarray | None
    approved: list[OrderRequest] = []
    blocks: list["OrderBlock"] = []  # approved blocks (decided before ``approved``)
    denials: list["OrderDenied"] = []
    cancels: list[str] = []
    end_of_stream: bool = False
    strategies: list[str] = []
    recv_wall_ns: int = 0
    # OrderActor -> venue: False lets the venue leave out a report that would be empty
    # (the OrderActor returned the batch's credit already; see OrderActor._quiet).
    wants_report: bool = True


class VenueReport(_Base, frozen=True):
    """Venue -> OrderActor: what happened at the venue during one round."""

    feed: str
    batch_seq: int
    symbol: str
    events: list["OrderEvent"] = []
    fills: list["Fill"] = []
    fill_blocks: list["FillBlock"] = []  # fills (and completions) of the round's OrderBlocks
    watermark: int = -1  # last tick seq the venue has matched
    end_of_stream: bool = False
    strategies: list[str] = []
    recv_wall_ns: int = 0


class OrderBlock(_Base, frozen=True):
    """Market orders one strategy decided within one tick batch, as columns.

    Why: per-order Python (a struct per order at every stage) was most of the
    hot path's cost. A block travels strategy -> safety -> orders -> venue as
    one object and is journaled as one record; :meth:`requests` expands it to
    exactly the :class:`OrderRequest` s it stands for, which is what recovery,
    the digest and every reader see, so a run journals the same history
    whether its orders went as blocks or one by one.

    Order ``k`` is ``<strategy_id>-<first_number + k>``, decided on tick
    ``decision_seq[k]``. Every order of a block fills on the tick after its
    decision inside the same batch (the runner only puts such orders in a
    block); anything else travels as OrderRequest.
    """

    strategy_id: str
    symbol: str
    first_number: int
    epoch: int
    side: np.ndarray  # int8: 1 buy, -1 sell
    quantity: np.ndarray  # float64, > 0
    decision_seq: np.ndarray  # int64
    decision_ts_ns: np.ndarray  # int64
    decision_price: np.ndarray  # float64
    warm: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.quantity.shape[0])

    @property
    def last_number(self) -> int:
        return self.first_number + len(self) - 1

    def client_order_id(self, k: int) -> str:
        return f"{self.strategy_id}-{self.first_number + k}"

    def requests(self) -> list["OrderRequest"]:
        sid, sym, epoch, first = self.strategy_id, self.symbol, self.epoch, self.first_number
        return [
            OrderRequest(client_order_id=f"{sid}-{first + k}", strategy_id=sid, symbol=sym,
                         side=Side.BUY if s > 0 else Side.SELL, quantity=q, decision_seq=d, decision_ts_ns=t,
                         epoch=epoch, decision_price=p, warm=w)
            for k, (s, q, d, t, p, w) in enumerate(zip(
                self.side.tolist(), self.quantity.tolist(), self.decision_seq.tolist(),
                self.decision_ts_ns.tolist(), self.decision_price.tolist(), self.warm.tolist()))
        ]  # fmt: skip


class FillBlock(_Base, frozen=True):
    """The paper venue's fills of one :class:`OrderBlock`, as columns.

    Each order filled in full, once, so each row stands for one :class:`Fill`
    (trade id ``T<event_seq>-<client id>``) and the ``FILLED``
    :class:`OrderEvent` that completes the order (venue order id
    ``P-<client id>``): :meth:`fills` and :meth:`events` expand to exactly the
    records the venue would have sent one by one.
    """

    strategy_id: str
    symbol: str
    first_number: int
    side: np.ndarray  # int8: 1 buy, -1 sell
    quantity: np.ndarray  # float64
    price: np.ndarray  # float64
    fee: np.ndarray  # float64
    event_seq: np.ndarray  # int64
    ts_ns: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.quantity.shape[0])

    @property
    def last_number(self) -> int:
        return self.first_number + len(self) - 1

    def _rows(self):
        return enumerate(zip(self.side.tolist(), self.quantity.tolist(), self.price.tolist(), self.fee.tolist(),
                             self.event_seq.tolist(), self.ts_ns.tolist()))

    def fills(self) -> list["Fill"]:
        sid, sym, first = self.strategy_id, self.symbol, self.first_number
        return [
            Fill(client_order_id=f"{sid}-{first + k}", strategy_id=sid, trade_id=f"T{seq}-{sid}-{first + k}",
                 symbol=sym, side=Side.BUY if s > 0 else Side.SELL, quantity=q, price=px, fee=fee, event_seq=seq,
                 ts_ns=ts)
            for k, (s, q, px, fee, seq, ts) in self._rows()
        ]  # fmt: skip

    def events(self) -> list["OrderEvent"]:
        sid, sym, first = self.strategy_id, self.symbol, self.first_number
        return [
            OrderEvent(client_order_id=f"{sid}-{first + k}", strategy_id=sid, symbol=sym, status=OrderStatus.FILLED,
                       event_seq=seq, ts_ns=ts, filled_qty=q, avg_price=px, venue_order_id=f"P-{sid}-{first + k}")
            for k, (_s, q, px, _fee, seq, ts) in self._rows()
        ]  # fmt: skip


class CancelOrder(_Base, frozen=True):
    client_order_id: str
    requested_by: str = "api"


class CancelAll(_Base, frozen=True):
    symbol: str | None = None
    requested_by: str = "api"


class OrderDenied(_Base, frozen=True):
    client_order_id: str
    strategy_id: str
    reason: DenyReason
    detail: str = ""
    epoch: int = 0
    decision_seq: int = -1


class OrderEvent(_Base, frozen=True):
    """One state transition of one order, as journaled."""

    client_order_id: str
    strategy_id: str
    symbol: str
    status: OrderStatus
    event_seq: int  # tick seq at which it happened (event time)
    ts_ns: int
    filled_qty: float = 0.0
    avg_price: float = 0.0
    venue_order_id: str = ""
    reason: str = ""


class Fill(_Base, frozen=True):
    client_order_id: str
    strategy_id: str
    trade_id: str  # venue trade id: fills are deduplicated on it
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    event_seq: int
    ts_ns: int


class Order(_Base, frozen=True):
    """The OrderActor's view of one order (what the API returns)."""

    client_order_id: str
    strategy_id: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType
    status: OrderStatus
    limit_price: float | None = None
    filled_qty: float = 0.0
    avg_price: float = 0.0
    decision_seq: int = -1
    last_event_seq: int = -1
    venue_order_id: str = ""
    reason: str = ""


class OrderUpdates(_Base, frozen=True):
    """What the OrderActor tells a strategy after journaling: events, fills,
    denials, and how far the venue has matched (``venue_watermark``: every
    event with ``event_seq <= venue_watermark`` for orders it had received is
    included here or in an earlier message)."""

    strategy_id: str
    events: list[OrderEvent] = []
    fills: list[Fill] = []
    denials: list[OrderDenied] = []
    fill_blocks: list["FillBlock"] = []  # fills + FILLED events as columns (see FillBlock)
    venue_watermark: int = -1
    realized_pnl: float = 0.0  # book-wide realized PnL net of fees, after these updates


class Position(_Base, frozen=True):
    symbol: str
    quantity: float
    avg_price: float
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    last_price: float


class PnL(_Base, frozen=True):
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    total: float
    by_symbol: dict[str, Position] = {}


# --------------------------------------------------------------------------
# Trading state and control


class TradingStateChanged(_Base, frozen=True):
    state: TradingState
    previous: TradingState
    reason: str
    ts_wall_ns: int = 0
    event_seq: int = -1  # last tick seq the SafetyActor had seen (orders the change in the digest)


class SetTradingState(_Base, frozen=True):
    state: TradingState
    reason: str = ""
    requested_by: str = "api"


class KillSwitch(_Base, frozen=True):
    """Halt at once, cancel every open order, optionally flatten."""

    reason: str = "kill switch"
    flatten: bool = False
    requested_by: str = "api"


class Flatten(_Base, frozen=True):
    symbol: str | None = None
    requested_by: str = "api"


# --------------------------------------------------------------------------
# Supervision and monitoring


class Heartbeat(_Base, frozen=True):
    """Supervisor -> child probe; the child answers with HeartbeatAck."""

    nonce: int


class HeartbeatAck(_Base, frozen=True):
    name: str
    nonce: int


class ChildFailed(_Base, frozen=True):
    name: str
    kind: Literal["exception", "start_failure", "hung", "base_exception", "stopped", "escalated"]
    error: str
    error_type: str = ""
    incarnation: str = ""  # actor_urn of the failed incarnation: stale reports are ignored


class ChildRecovered(_Base, frozen=True):
    """A restarted child -> its supervisor, after recovering state in on_start.

    ``ok=False`` keeps trading HALTED (the reason is ``detail``)."""

    name: str
    ok: bool
    detail: str = ""


class SupervisorDecision(_Base, frozen=True):
    supervisor: str
    child: str
    action: Literal["resume", "restart", "stop", "escalate", "pause_trading", "resume_trading"]
    reason: str
    restarts: int = 0
    ts_wall_ns: int = 0


class ActorStatus(_Base, frozen=True):
    name: str
    supervisor: str
    status: Literal["starting", "running", "restarting", "stopped", "failed"]
    restarts: int = 0
    last_error: str = ""
    last_error_wall_ns: int = 0
    mailbox_depth: int = 0
    processed: int = 0
    dead_letters: int = 0


class MetricsSnapshot(_Base, frozen=True):
    ts_wall_ns: int
    rss_bytes: int
    cpu_percent: float
    threads: int
    open_fds: int
    actors: list[ActorStatus] = []
    rates: dict[str, float] = {}
    counters: dict[str, float] = {}
    latency_us: dict[str, dict[str, float]] = {}


# --------------------------------------------------------------------------
# Queries (asked with a timeout by the API and the CLI; answered by the owner)


class GetOrders(_Base, frozen=True):
    """OrderActor -> list[Order]; ``open_only`` filters terminal orders out."""

    open_only: bool = False
    limit: int = 1000


class GetOrder(_Base, frozen=True):
    """OrderActor -> Order | None."""

    client_order_id: str


class GetPositions(_Base, frozen=True):
    """OrderActor -> list[Position]."""


class GetPnL(_Base, frozen=True):
    """OrderActor -> PnL."""


class GetTradingState(_Base, frozen=True):
    """SafetyActor -> TradingStateInfo."""


class TradingStateInfo(_Base, frozen=True):
    state: TradingState
    reason: str
    kill_switch: bool
    since_wall_ns: int = 0


class GetActorTree(_Base, frozen=True):
    """Root supervisor -> list[ActorStatus] (whole tree, depth-first)."""


class GetMetrics(_Base, frozen=True):
    """MonitorActor -> MetricsSnapshot (latest sample)."""


class GetRecovered(_Base, frozen=True):
    """OrderActor -> RecoveredView: what the journal says, for actors (re)starting."""

    strategy_id: str = ""


class RecoveredView(_Base, frozen=True):
    journal_kind: str = ""  # "run" continues ids and positions; "replay" re-runs from tick 0
    trading_state: TradingState | None = None
    trading_reason: str = ""
    next_id: int = 1  # next client order number of ``strategy_id``
    positions: dict[str, float] = {}  # that strategy's filled position per symbol
    exposure: dict[str, float] = {}  # book-wide filled position + open order quantity per symbol
    open_orders: list[str] = []  # that strategy's open client order ids
    open: list["Order"] = []  # the same orders in full (a restarted strategy waits on them)


class SubmitResult(_Base, frozen=True):
    """SafetyActor's answer to an OrderRequest that was *asked* (API, CLI)."""

    client_order_id: str
    accepted: bool
    reason: str = ""
    detail: str = ""


# --------------------------------------------------------------------------
# Journal-only records


class StrategyLifecycle(_Base, frozen=True):
    strategy_id: str
    event: Literal["started", "stopped", "restarted", "failed"]
    detail: str = ""


class FeedCheckpoint(_Base, frozen=True):
    """How far the feed is known to be fully processed (for --resume)."""

    feed: str
    batch_seq: int
    last_tick_seq: int


class PipelineCheckpoint(_Base, frozen=True):
    """A consistent cut of the pipeline after batch ``batch_seq`` (journaled by the OrderActor).

    The feed sends it when every credit is back (all rounds up to
    ``batch_seq`` journaled and told); it follows the batches through
    indicators, strategies and safety, each adding its state to ``states``
    (msgspec bytes by actor name). ``valid`` is False when an actor could not
    give a settled state (a strategy with an order still unconfirmed); such a
    checkpoint is not journaled. A restart restores the last valid one and the
    feed re-sends only the batches after it.
    """

    feed: str
    batch_seq: int
    last_tick_seq: int
    states: dict[str, bytes] = {}
    valid: bool = True


class ActorCheckpoint(_Base, frozen=True):
    """An actor's state at a batch boundary, msgspec-encoded in ``state``."""

    name: str
    batch_seq: int
    state: bytes


Message = Union[
    TickBatch, IndicatorBatch, BatchDone, EndOfStream, FeedStats, StartFeed, GetFeedStats,
    OrderRequest, OrderBlock, FillBlock, OrderBatch, Round, VenueReport, CancelOrder, CancelAll, OrderDenied, OrderEvent,
    Fill, Order, OrderUpdates, Position, PnL,
    TradingStateChanged, SetTradingState, KillSwitch, Flatten,
    Heartbeat, HeartbeatAck, ChildFailed, ChildRecovered, SupervisorDecision, ActorStatus,
    MetricsSnapshot, GetOrders, GetOrder, GetPositions, GetPnL, GetTradingState,
    TradingStateInfo, GetActorTree, GetMetrics, SubmitResult, GetRecovered, RecoveredView,
    StrategyLifecycle, FeedCheckpoint, ActorCheckpoint, PipelineCheckpoint,
]  # fmt: skip

ALL_MESSAGE_TYPES: tuple[type, ...] = Message.__args__  # type: ignore[attr-defined]

_msgpack_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_msgpack_decoder = msgspec.msgpack.Decoder(Message, dec_hook=_dec_hook, ext_hook=_ext_hook)
_json_encoder = msgspec.json.Encoder(enc_hook=_json_enc_hook)
_json_decoder = msgspec.json.Decoder(Message, dec_hook=_dec_hook)


def to_msgpack(msg: Any) -> bytes:
    return _msgpack_encoder.encode(msg)


def from_msgpack(data: bytes, type: Any = None) -> Any:
    if type is None:
        return _msgpack_decoder.decode(data)
    return msgspec.msgpack.decode(data, type=type, dec_hook=_dec_hook, ext_hook=_ext_hook)


def to_json(msg: Any) -> bytes:
    return _json_encoder.encode(msg)


def from_json(data: bytes | str, type: Any = None) -> Any:
    if type is None:
        return _json_decoder.decode(data)
    return msgspec.json.decode(data, type=type, dec_hook=_dec_hook)
