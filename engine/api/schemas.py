"""What the API accepts and answers, as msgspec structs (they are the OpenAPI schema).

Why structs with constraints: msgspec validates before a handler runs, and a
400 names the offending field. Unknown fields are forbidden so a typo
(``"quantiy"``) is an error, not a silently ignored order parameter. Numbers
have upper bounds, which also keeps them finite (JSON ``1e999`` is inf).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from engine.api.users import Role
from engine.messages import OrderType, Side, TradingState

Symbol = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,31}$", description="instrument symbol")]
ClientOrderId = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", description="idempotency key; minted if omitted")
]
Quantity = Annotated[float, Meta(gt=0, lt=1e12, description="finite, > 0")]
Price = Annotated[float, Meta(gt=0, lt=1e12, description="finite, > 0")]
Reason = Annotated[str, Meta(max_length=200, description="free text, stored and returned inert")]
Username = Annotated[str, Meta(min_length=1, max_length=64)]
Password = Annotated[str, Meta(min_length=1, max_length=1024)]
OpaqueToken = Annotated[str, Meta(min_length=1, max_length=256)]


class _In(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class LoginRequest(_In, frozen=True):
    username: Username
    password: Password


class RefreshRequest(_In, frozen=True):
    refresh_token: OpaqueToken


class LogoutRequest(_In, frozen=True):
    refresh_token: OpaqueToken | None = None


class SubmitOrderBody(_In, frozen=True):
    symbol: Symbol
    side: Side
    quantity: Quantity
    order_type: OrderType = OrderType.MARKET
    limit_price: Price | None = None
    client_order_id: ClientOrderId | None = None
    reduce_only: bool = False


class SetStateBody(_In, frozen=True):
    state: TradingState
    reason: Reason = ""


class KillSwitchBody(_In, frozen=True):
    reason: Reason = "kill switch"
    flatten: bool = False


class FlattenBody(_In, frozen=True):
    symbol: Symbol | None = None


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    username: str
    role: Role


class Me(msgspec.Struct, frozen=True):
    username: str
    role: Role
    expires_at: int


class Health(msgspec.Struct, frozen=True):
    status: str  # "ok" | "degraded"
    mode: str
    trading_state: str  # ACTIVE / REDUCING / HALTED, or "UNKNOWN" when safety does not answer
    uptime_s: float
    version: str


class UserInfo(msgspec.Struct, frozen=True):
    name: str
    role: Role


class Problem(msgspec.Struct, frozen=True):
    status_code: int
    detail: str
