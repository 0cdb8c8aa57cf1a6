"""Login, token refresh, logout, whoami.

Why these rules: a failed login says only "invalid username or password"
and costs one argon2 verification either way (no user enumeration by message
or timing); attempts are limited per username *and* per client address, so
neither a single attacker nor a spread-out one can grind a password; the
limit is checked before hashing so a flood cannot burn the CPU.
"""

from __future__ import annotations

import anyio
from litestar import Request, Response, get, post
from litestar.params import JSONBody
from litestar.exceptions import NotAuthorizedException
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT, HTTP_429_TOO_MANY_REQUESTS

from engine.api.auth import PUBLIC, VIEWER, claims_of
from engine.api.context import ctx_of
from engine.api.headers import client_key
from engine.api.passwords import verify_password
from engine.api.schemas import LoginRequest, LogoutRequest, Me, Problem, RefreshRequest, TokenPair
from engine.api.tokens import TokenError
from engine.api.users import Role

BAD_LOGIN = "invalid username or password"


def _too_many(retry_after: int) -> Response:
    return Response(
        Problem(status_code=429, detail=f"too many login attempts; retry in {retry_after} s"),
        status_code=HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(retry_after)},
    )


@post("/auth/login", opt=PUBLIC, status_code=HTTP_200_OK, summary="Log in; returns access and refresh tokens",
      responses=None)  # fmt: skip
async def login(request: Request, data: JSONBody[LoginRequest]) -> Response[TokenPair]:
    ctx = ctx_of(request)
    user_key, client = data.username.lower(), client_key(request.scope)
    by_user, by_client = ctx.login_by_user.check(user_key), ctx.login_by_client.check(client)
    if not (by_user.allowed and by_client.allowed):
        return _too_many(max(by_user.retry_after_s, by_client.retry_after_s))
    ctx.login_by_user.record(user_key)
    ctx.login_by_client.record(client)

    def check() -> tuple[bool, str]:
        user = ctx.users.get(data.username)
        ok = verify_password(user.password_hash if user else None, data.password)
        return ok, (user.role.value if ok and user else "")

    ok, role = await anyio.to_thread.run_sync(check)
    if not ok:
        raise NotAuthorizedException(BAD_LOGIN)
    return Response(await _issue(request, data.username, role))


async def _issue(request: Request, username: str, role: str, refresh_token: str | None = None) -> TokenPair:
    ctx = ctx_of(request)
    access, _ = ctx.access.mint(username, role)
    if refresh_token is None:
        refresh_token = await anyio.to_thread.run_sync(ctx.refresh.issue, username)
    return TokenPair(
        access_token=access, refresh_token=refresh_token, token_type="bearer",
        expires_in=ctx.access.ttl_s, username=username, role=Role(role),
    )  # fmt: skip


@post("/auth/refresh", opt=PUBLIC, status_code=HTTP_200_OK, summary="Trade a refresh token for a new pair (single use)")
async def refresh(request: Request, data: JSONBody[RefreshRequest]) -> TokenPair:
    ctx = ctx_of(request)
    try:
        username, nxt = await anyio.to_thread.run_sync(ctx.refresh.rotate, data.refresh_token)
    except TokenError as exc:
        raise NotAuthorizedException(str(exc)) from None
    user = await anyio.to_thread.run_sync(ctx.users.get, username)
    if user is None:  # removed since login: its sessions end here
        await anyio.to_thread.run_sync(ctx.refresh.revoke_user, username)
        raise NotAuthorizedException("user no longer exists")
    return await _issue(request, username, user.role.value, nxt)


@post("/auth/logout", guards=VIEWER, status_code=HTTP_204_NO_CONTENT, summary="Revoke this access token and its refresh family")
async def logout(request: Request, data: JSONBody[LogoutRequest | None] = None) -> None:
    ctx = ctx_of(request)
    ctx.access.revoke(claims_of(request))
    if data is not None and data.refresh_token:
        await anyio.to_thread.run_sync(ctx.refresh.revoke, data.refresh_token, claims_of(request).sub)


@get("/auth/me", guards=VIEWER, summary="Who the bearer token belongs to")
async def me(request: Request) -> Me:
    claims = claims_of(request)
    return Me(username=claims.sub, role=Role(claims.role), expires_at=claims.exp)


ROUTES = [login, refresh, logout, me]
