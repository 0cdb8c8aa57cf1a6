"""Everything a request handler needs, in one object stored on the app.

Why one object: handlers stay small functions of (request, ctx); the server
builds the context once from config, and tests build it with fakes and an
injected clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from litestar.connection import ASGIConnection

from actors.directory import Directory
from engine.api.ratelimit import SlidingWindowLimiter
from engine.api.tokens import AccessTokens, RefreshTokenStore
from engine.api.users import UserStore
from engine.config import Config

CTX_KEY = "actortrader"


@dataclass
class ApiContext:
    cfg: Config
    directory: Directory
    users: UserStore
    access: AccessTokens
    refresh: RefreshTokenStore
    login_by_user: SlidingWindowLimiter
    login_by_client: SlidingWindowLimiter
    clock: Callable[[], float] = time.monotonic
    ask_timeout_s: float = 2.0
    sse_capacity: int = 1024  # > the EventHub's replay ring (500), so a new dashboard starts without a gap
    sse_poll_s: float = 1.0  # how often the stream adds PnL and trading state samples
    sse_min_interval_s: float = 0.1  # events are sent in batches at most this often (GIL cost flat in the event rate)
    sse_max_bulk_events: int = 200  # newest order/fill events per batch; older ones counted in a 'skipped' event
    started: float = field(default_factory=time.monotonic)
    sse_clients: int = 0
    closing: bool = False
    channels: set = field(default_factory=set)
    metrics_source: Callable[[], Any] | None = None

    def uptime_s(self) -> float:
        return max(0.0, self.clock() - self.started)


def ctx_of(connection: ASGIConnection) -> ApiContext:
    return connection.app.state[CTX_KEY]
