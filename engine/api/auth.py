"""Authentication (bearer access tokens) and function-level authorization (roles).

Why a middleware plus guards: the middleware authenticates *every* route
unless the route opts out with ``exclude_from_auth`` (default deny: a new
route is private until someone decides otherwise); guards then check the
role each operation needs (viewer reads, trader submits and cancels, admin
controls trading state, kill switch, config and users).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from engine.api.context import ctx_of
from engine.api.tokens import AccessClaims, TokenError
from engine.api.users import Role, role_allows

PUBLIC = {"exclude_from_auth": True}
BEARER_SCHEME = "BearerAuth"


class BearerTokenMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("missing bearer token (log in at POST /api/v1/auth/login)")
        try:
            claims = ctx_of(connection).access.verify(token.strip())
        except TokenError as exc:
            raise NotAuthorizedException(str(exc)) from None
        return AuthenticationResult(user=claims, auth=token.strip())


def require(role: Role) -> Any:
    """A guard: the authenticated user's role must be at least ``role``."""

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        claims = connection.scope.get("user")
        if not isinstance(claims, AccessClaims):
            raise NotAuthorizedException("not authenticated")
        if not role_allows(claims.role, role):
            raise PermissionDeniedException(f"this operation needs the {role.value} role")

    guard.__name__ = f"require_{role.value}"
    return guard


VIEWER = [require(Role.VIEWER)]
TRADER = [require(Role.TRADER)]
ADMIN = [require(Role.ADMIN)]


def claims_of(connection: ASGIConnection) -> AccessClaims:
    return connection.scope["user"]  # set by BearerTokenMiddleware on every non-public route


def requested_by(connection: ASGIConnection) -> str:
    return f"api:{claims_of(connection).sub}"
