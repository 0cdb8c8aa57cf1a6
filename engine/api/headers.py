"""The outermost ASGI layer: per-client rate limit and security headers on every response.

Why outermost: it must cover everything the server answers, including 404s,
validation errors, allowed-host refusals and static files; a handler-level
hook would miss the responses Litestar produces itself.

Headers (OWASP REST and secure-headers cheat sheets): the dashboard gets
``default-src 'self'`` (no inline script, no CDN); API answers get a CSP that
forbids everything plus ``frame-ancestors 'none'`` and ``Cache-Control:
no-store``. HSTS only over TLS (browsers ignore it on plain HTTP anyway).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import msgspec

from engine.api.ratelimit import SlidingWindowLimiter

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
COMMON = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = b"max-age=63072000; includeSubDomains"


def is_api_path(path: str) -> bool:
    return path.startswith("/api/") or path == "/metrics"


def security_headers(path: str, scheme: str) -> dict[bytes, bytes]:
    headers = dict(COMMON)
    api = is_api_path(path) and not path.startswith("/api/docs")
    headers[b"content-security-policy"] = (API_CSP if api else PAGE_CSP).encode()
    headers[b"cache-control"] = b"no-store" if api else b"no-cache"
    if scheme in ("https", "wss"):
        headers[b"strict-transport-security"] = HSTS
    return headers


def client_key(scope: dict) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def host_without_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecureASGI:
    """Wrap ``app``: refuse unknown Host headers (DNS rebinding) with 400, over-limit
    clients with 429 + Retry-After, and stamp security headers on every answer.

    ``allowed_hosts`` are host names without port (Litestar's own check compares the
    port too, which cannot work with a port chosen at start); ``None`` allows any.
    """

    def __init__(self, app: ASGIApp, limiter: SlidingWindowLimiter, allowed_hosts: list[str] | None = None):
        self.app = app
        self.limiter = limiter
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    def _host_ok(self, scope: dict) -> bool:
        if self.allowed_hosts is None:
            return True
        for key, value in scope.get("headers", []):
            if key == b"host":
                return host_without_port(value.decode("latin-1")) in self.allowed_hosts
        return False

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("path", ""), scope.get("scheme", "http"))

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in extra]
                message = {**message, "headers": kept + list(extra.items())}
            await send(message)

        if not self._host_ok(scope):
            await _refuse(send_with_headers, 400, "host header not allowed (see api.allowed_hosts)")
            return
        decision = self.limiter.hit(client_key(scope))
        if not decision.allowed:
            detail = f"too many requests; retry in {decision.retry_after_s} s"
            await _refuse(send_with_headers, 429, detail, [(b"retry-after", str(decision.retry_after_s).encode())])
            return
        await self.app(scope, receive, send_with_headers)


async def _refuse(send: Callable, status: int, detail: str, headers: list | None = None) -> None:
    body = msgspec.json.encode({"status_code": status, "detail": detail})
    start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start_headers + (headers or [])})
    await send({"type": "http.response.body", "body": body})
