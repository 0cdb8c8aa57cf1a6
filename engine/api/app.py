"""Assemble the ASGI application: routes, auth, errors, OpenAPI, dashboard, outer security layer.

Why here and not in server.py: building the app is pure (no sockets), so
tests drive it in-process; server.py only runs it on its own thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException, ValidationException
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.response import File
from litestar.static_files import create_static_files_router

from engine.api import routes_auth, routes_system, routes_trading
from engine.api.auth import BEARER_SCHEME, PUBLIC, BearerTokenMiddleware
from engine.api.bridge import ActorFailed, ActorTimeout, ActorUnavailable
from engine.api.context import CTX_KEY, ApiContext
from engine.api.headers import SecureASGI
from engine.api.ratelimit import SlidingWindowLimiter

STATIC_DIR = Path(__file__).parent / "static"
API_PREFIX = "/api/v1"


class OfflineDocsPlugin(OpenAPIRenderPlugin):
    """An interactive docs page with no CDN: our own HTML + JS read the JSON schema."""

    def __init__(self) -> None:
        super().__init__(path="/docs")

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return (STATIC_DIR / "docs.html").read_bytes()


def _validation_error(request: Request, exc: ValidationException) -> Response:
    """400 whose ``detail`` names each bad field (``symbol: expected ...``)."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in extra:
        if isinstance(item, dict):
            key, message = item.get("key"), str(item.get("message", "invalid value"))
            message = message.split(" - at `")[0]
            parts.append(f"{key}: {message}" if key else message)
    detail = "; ".join(parts) or exc.detail
    return Response({"status_code": 400, "detail": detail, "errors": extra}, status_code=400)


def _actor_error(status: int):
    def handler(request: Request, exc: Exception) -> Response:
        return Response({"status_code": status, "detail": str(exc)}, status_code=status)

    return handler


def _http_error(request: Request, exc: HTTPException) -> Response:
    body: dict[str, Any] = {"status_code": exc.status_code, "detail": exc.detail}
    return Response(body, status_code=exc.status_code, headers=exc.headers)


@get("/", opt=PUBLIC, include_in_schema=False)
async def index() -> File:
    return File(STATIC_DIR / "index.html", content_disposition_type="inline", media_type="text/html; charset=utf-8")


def build_litestar(ctx: ApiContext) -> Litestar:
    api_cfg = ctx.cfg.api
    api = Router(
        path=API_PREFIX,
        route_handlers=[*routes_auth.ROUTES, *routes_trading.ROUTES, *routes_system.ROUTES],
        security=[{BEARER_SCHEME: []}],
    )
    static = create_static_files_router(path="/static", directories=[STATIC_DIR], opt=PUBLIC, include_in_schema=False)
    openapi = OpenAPIConfig(
        title="actortrader control plane",
        version=routes_system.VERSION,
        path="/api",
        render_plugins=[JsonRenderPlugin(path="/schema/openapi.json"), OfflineDocsPlugin()],
        components=Components(
            security_schemes={BEARER_SCHEME: SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
    )
    app = Litestar(
        route_handlers=[api, static, index, routes_system.metrics],
        middleware=[DefineMiddleware(BearerTokenMiddleware, exclude=["^/static/", "^/api/docs", "^/api/schema"])],
        exception_handlers={
            ValidationException: _validation_error,
            ActorUnavailable: _actor_error(503),
            ActorFailed: _actor_error(503),
            ActorTimeout: _actor_error(504),
            HTTPException: _http_error,
        },
        openapi_config=openapi,
        cors_config=CORSConfig(allow_origins=list(api_cfg.cors_origins), allow_credentials=False)
        if api_cfg.cors_origins
        else None,
        request_max_body_size=api_cfg.max_body_bytes,
        state=None,
        debug=False,
    )
    app.state[CTX_KEY] = ctx
    return app


def build_app(ctx: ApiContext) -> SecureASGI:
    """The full ASGI app: Litestar behind the per-client limit and security headers."""
    api_cfg = ctx.cfg.api
    limiter = SlidingWindowLimiter(api_cfg.requests_per_minute, 60.0, ctx.clock)
    hosts = list(api_cfg.allowed_hosts)
    if api_cfg.host not in ("0.0.0.0", "::", "") and api_cfg.host not in hosts:
        hosts.append(api_cfg.host if ":" not in api_cfg.host else f"[{api_cfg.host.strip('[]')}]")
    return SecureASGI(build_litestar(ctx), limiter, None if "*" in hosts else hosts)
