"""Health, actor tree, config, users, Prometheus metrics, and the live event stream."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import anyio
import msgspec
from litestar import Request, Response, get
from litestar.response import Stream

from engine.api.auth import ADMIN, PUBLIC, VIEWER
from engine.api.bridge import ActorFailed, ActorTimeout, ActorUnavailable, ask_actor, await_future
from engine.api.context import ApiContext, ctx_of
from engine.api.prometheus import CONTENT_TYPE, render
from engine.api.schemas import Health, UserInfo
from engine.api.sse import EventChannel, encode_event, sse_frame, thin
from engine.config import redacted
from engine.messages import ActorStatus, GetActorTree, GetMetrics, GetPnL, GetTradingState

VERSION = "0.1.0"
ActorErrors = (ActorUnavailable, ActorTimeout, ActorFailed)


@get("/health", opt=PUBLIC, summary="Liveness: mode, trading state, uptime (public)")
async def health(request: Request) -> Health:
    ctx = ctx_of(request)
    try:
        info = await ask_actor(ctx.directory, "safety", GetTradingState(), min(1.0, ctx.ask_timeout_s))
        state, status = info.state.value, "ok"
    except ActorErrors:
        state, status = "UNKNOWN", "degraded"
    return Health(status=status, mode=ctx.cfg.mode, trading_state=state, uptime_s=round(ctx.uptime_s(), 3), version=VERSION)


@get("/actors", guards=VIEWER, summary="The supervision tree: status, restarts, last error, mailbox depth")
async def actors(request: Request) -> list[ActorStatus]:
    ctx = ctx_of(request)
    return await ask_actor(ctx.directory, "root", GetActorTree(), ctx.ask_timeout_s)


@get("/config", guards=ADMIN, summary="The running configuration, secrets redacted (admin)")
async def config(request: Request) -> dict[str, Any]:
    return redacted(ctx_of(request).cfg)


@get("/users", guards=ADMIN, summary="Users and roles (admin; no hashes)")
async def users(request: Request) -> list[UserInfo]:
    found = await anyio.to_thread.run_sync(ctx_of(request).users.list)
    return [UserInfo(name=u.name, role=u.role) for u in found]


@get("/metrics", opt=PUBLIC, include_in_schema=True, summary="Prometheus text exposition", media_type=CONTENT_TYPE)
async def metrics(request: Request) -> Response[bytes]:
    ctx = ctx_of(request)
    try:
        snap = await ask_actor(ctx.directory, "monitor", GetMetrics(), ctx.ask_timeout_s)
    except ActorErrors:
        snap = None  # monitor_up 0 tells the scraper why the rest is missing
    extra: dict[str, Any] = {}
    if ctx.metrics_source is not None:
        try:
            raw = ctx.metrics_source()
            extra = msgspec.to_builtins(raw) if not isinstance(raw, dict) else raw
        except Exception:  # noqa: BLE001 - a broken metrics hook must not break scraping
            extra = {}
    body = render(snap, extra if isinstance(extra, dict) else {}, {"sse_clients": ctx.sse_clients})
    return Response(body, media_type=CONTENT_TYPE)


@get("/events", guards=VIEWER, summary="Server-sent events: order, fill, denied, state, supervisor, metrics, pnl, gap, skipped",
     media_type="text/event-stream")  # fmt: skip
async def events(request: Request) -> Stream:
    return Stream(_frames(ctx_of(request)), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


async def _frames(ctx: ApiContext) -> AsyncIterator[bytes]:
    """One chunk per wake-up of the stream, however many events it carries.

    Why not Litestar's ServerSentEvent: it makes one socket write per event;
    during a fast replay (thousands of fills a second) those writes cost the
    engine's threads GIL time. Batching per wake-up, with wake-ups at most
    every ``sse_min_interval_s``, keeps the API's cost flat in the event rate.
    """
    async for batch in _stream(ctx):
        if batch:
            yield sse_frame(batch)


async def _subscribe(ctx: ApiContext, channel: EventChannel) -> tuple[Any, Any]:
    """Subscribe ``channel`` to the EventHub (replaying its recent ring); (ref, unsubscribe) or (None, None)."""
    ref = ctx.directory.ref("events")
    if ref is None:
        return None, None
    try:
        unsubscribe = await await_future(ref.proxy().subscribe(channel.offer, True, channel.offer_many), "events", ctx.ask_timeout_s)
    except (ActorErrors + (Exception,)):  # noqa: BLE001 - the stream still serves polled samples
        return None, None
    return ref, unsubscribe


def _notice(event: str, **data: Any) -> dict[str, str]:
    return {"event": event, "data": msgspec.json.encode(data).decode()}


async def _stream(ctx: ApiContext) -> AsyncIterator[list[dict[str, str]]]:
    """Batches of SSE messages: polled samples every ``sse_poll_s``, hub events as they come."""
    loop = asyncio.get_running_loop()
    channel = EventChannel(loop, ctx.sse_capacity)
    ctx.channels.add(channel)
    ctx.sse_clients += 1
    ref, unsubscribe = await _subscribe(ctx, channel)
    try:
        yield [_notice("hello", mode=ctx.cfg.mode, hub=ref is not None)]
        next_poll = 0.0
        while not channel.closed and not ctx.closing:
            batch: list[dict[str, str]] = []
            if loop.time() >= next_poll:
                next_poll = loop.time() + ctx.sse_poll_s
                for name, msg in (("safety", GetTradingState()), ("orders", GetPnL()), ("monitor", GetMetrics())):
                    # The monitor's latest sample is asked for, not pushed: it never has to know the API exists.
                    try:
                        batch.append(encode_event(await ask_actor(ctx.directory, name, msg, ctx.ask_timeout_s)))
                    except ActorErrors as exc:
                        batch.append(_notice("notice", detail=str(exc)))
                current = ctx.directory.ref("events")
                if current is not ref:  # the hub restarted (or appeared): subscribe again
                    if unsubscribe is not None:
                        unsubscribe()
                    ref, unsubscribe = await _subscribe(ctx, channel)
                    batch.append(_notice("gap", dropped=-1, reason="event hub restarted"))
            items, dropped = await channel.take(max(0.0, next_poll - loop.time()))
            items, skipped = thin(items, ctx.sse_max_bulk_events)
            batch.extend(encode_event(event) for event in items)
            if skipped:
                batch.append(_notice("skipped", **skipped))
            if dropped:
                batch.append(_notice("gap", dropped=dropped, reason="client too slow"))
            yield batch
            if items and ctx.sse_min_interval_s > 0:
                await asyncio.sleep(ctx.sse_min_interval_s)  # let events gather: one write per interval at most
    finally:
        channel.closed = True
        if unsubscribe is not None:
            unsubscribe()
        ctx.sse_clients -= 1
        ctx.channels.discard(channel)


ROUTES = [health, actors, config, users, events]
