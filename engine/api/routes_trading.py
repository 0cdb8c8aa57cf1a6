"""Orders, positions, PnL and trading state: each a message to the owning actor.

Why through SafetyActor for writes: the API is just another client of the
engine; an order from the API passes the same pre-trade checks as a
strategy's (strategy id ``"api"``), and only the SafetyActor changes state.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from litestar import Request, Response, delete, get, post, put
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import JSONBody, Parameter, QueryParameter

from engine.api.auth import ADMIN, TRADER, VIEWER, requested_by
from engine.api.bridge import ask_actor
from engine.api.context import ctx_of
from engine.api.schemas import ClientOrderId, FlattenBody, KillSwitchBody, SetStateBody, SubmitOrderBody
from engine.messages import (
    CancelOrder,
    Flatten,
    GetOrder,
    GetOrders,
    GetPnL,
    GetPositions,
    GetTradingState,
    KillSwitch,
    Order,
    OrderRequest,
    OrderType,
    PnL,
    Position,
    SetTradingState,
    SubmitResult,
    TradingStateInfo,
)

API_STRATEGY_ID = "api"
_last_epoch = [0]


def next_epoch() -> int:
    """A fresh, strictly increasing epoch for every API order.

    Why: the SafetyActor drops (as "superseded") any order whose epoch is below
    the one after its strategy's last denial; that is right for a strategy that
    rolls back its view, but every API order is an independent decision. With
    a constant epoch, one denied API order made safety silently drop every
    later one while answering "accepted". Monotonic nanoseconds stay increasing
    across API restarts inside one engine process.
    """
    epoch = max(time.monotonic_ns(), _last_epoch[0] + 1)
    _last_epoch[0] = epoch
    return epoch


async def _ask(request: Request, name: str, message: object) -> object:
    ctx = ctx_of(request)
    return await ask_actor(ctx.directory, name, message, ctx.ask_timeout_s)


@get("/orders", guards=VIEWER, summary="Orders, newest last")
async def list_orders(
    request: Request,
    open_only: Annotated[bool, QueryParameter(name="open_only", description="only orders not yet finished")] = False,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 200,
) -> list[Order]:
    return await _ask(request, "orders", GetOrders(open_only=open_only, limit=limit))  # type: ignore[return-value]


@get("/orders/{client_order_id:str}", guards=VIEWER, summary="One order by client order id")
async def get_order(request: Request, client_order_id: ClientOrderId) -> Order:
    order = await _ask(request, "orders", GetOrder(client_order_id=client_order_id))
    if order is None:
        raise NotFoundException(f"no order with client_order_id {client_order_id!r}")
    return order  # type: ignore[return-value]


@post("/orders", guards=TRADER, summary="Submit an order (through the pre-trade checks)",
      description="201 when accepted; 422 with the machine-readable reason when denied.")  # fmt: skip
async def submit_order(request: Request, data: JSONBody[SubmitOrderBody]) -> Response[SubmitResult]:
    if data.order_type == OrderType.LIMIT and data.limit_price is None:
        raise ValidationException("limit_price: required for a LIMIT order", extra=[{"key": "limit_price", "message": "required for a LIMIT order"}])
    if data.order_type == OrderType.MARKET and data.limit_price is not None:
        raise ValidationException("limit_price: not allowed on a MARKET order", extra=[{"key": "limit_price", "message": "not allowed on a MARKET order"}])
    order = OrderRequest(
        client_order_id=data.client_order_id or f"api-{uuid.uuid4().hex[:24]}",
        strategy_id=API_STRATEGY_ID,
        symbol=data.symbol,
        side=data.side,
        quantity=data.quantity,
        order_type=data.order_type,
        limit_price=data.limit_price,
        reduce_only=data.reduce_only,
        epoch=next_epoch(),
    )
    result: SubmitResult = await _ask(request, "safety", order)  # type: ignore[assignment]
    return Response(result, status_code=201 if result.accepted else 422)


@delete("/orders/{client_order_id:str}", guards=TRADER, status_code=200, summary="Cancel an order")
async def cancel_order(request: Request, client_order_id: ClientOrderId) -> Response[SubmitResult]:
    result: SubmitResult = await _ask(
        request, "safety", CancelOrder(client_order_id=client_order_id, requested_by=requested_by(request))
    )  # type: ignore[assignment]
    return Response(result, status_code=200 if result.accepted else 422)


@get("/positions", guards=VIEWER, summary="Open positions")
async def positions(request: Request) -> list[Position]:
    return await _ask(request, "orders", GetPositions())  # type: ignore[return-value]


@get("/pnl", guards=VIEWER, summary="Realized and unrealized PnL")
async def pnl(request: Request) -> PnL:
    return await _ask(request, "orders", GetPnL())  # type: ignore[return-value]


@get("/trading-state", guards=VIEWER, summary="ACTIVE / REDUCING / HALTED")
async def get_state(request: Request) -> TradingStateInfo:
    return await _ask(request, "safety", GetTradingState())  # type: ignore[return-value]


@put("/trading-state", guards=ADMIN, summary="Set ACTIVE / REDUCING / HALTED (admin)")
async def set_state(request: Request, data: JSONBody[SetStateBody]) -> TradingStateInfo:
    msg = SetTradingState(state=data.state, reason=data.reason, requested_by=requested_by(request))
    return await _ask(request, "safety", msg)  # type: ignore[return-value]


@post("/trading-state/kill-switch", guards=ADMIN, status_code=200, summary="Halt, cancel all open orders, optionally flatten (admin)")
async def kill_switch(request: Request, data: JSONBody[KillSwitchBody]) -> TradingStateInfo:
    msg = KillSwitch(reason=data.reason, flatten=data.flatten, requested_by=requested_by(request))
    return await _ask(request, "safety", msg)  # type: ignore[return-value]


@post("/trading-state/flatten", guards=ADMIN, status_code=200, summary="Close positions (one symbol or all) (admin)")
async def flatten(request: Request, data: JSONBody[FlattenBody]) -> TradingStateInfo:
    return await _ask(request, "safety", Flatten(symbol=data.symbol, requested_by=requested_by(request)))  # type: ignore[return-value]


ROUTES = [list_orders, get_order, submit_order, cancel_order, positions, pnl, get_state, set_state, kill_switch, flatten]
