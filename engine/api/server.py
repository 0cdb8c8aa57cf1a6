"""Run the API on its own thread and event loop inside the engine process.

Why a pre-bound socket: binding in ``start()`` makes port 0 resolve to a real
port before uvicorn runs and turns "address in use" into an immediate,
clear error; connections that arrive before the loop is up wait in the
kernel backlog. ``start()`` returns once the app's startup hook has run.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import uvicorn

from actors.directory import Directory
from engine.api.app import build_app
from engine.api.context import ApiContext
from engine.api.prometheus import engine_metrics_source
from engine.api.ratelimit import SlidingWindowLimiter
from engine.api.security import ApiConfigError, is_loopback, resolve_secret
from engine.api.tokens import AccessTokens, RefreshTokenStore
from engine.api.users import UserStore
from engine.config import Config

FIRST_ADMIN = "admin"


def build_context(cfg: Config, directory: Directory, secret: str, *, clock: Callable[[], float] = time.monotonic,
                  users_path: Path | None = None, wall_clock: Callable[[], float] = time.time) -> ApiContext:  # fmt: skip
    api = cfg.api
    return ApiContext(
        cfg=cfg,
        directory=directory,
        users=UserStore(Path(users_path) if users_path else Path(api.users_file)),
        access=AccessTokens(secret, api.issuer, api.audience, api.access_ttl_s, wall_clock),
        refresh=RefreshTokenStore(Path(cfg.engine.data_dir) / "api_sessions.json", api.refresh_ttl_s, wall_clock),
        login_by_user=SlidingWindowLimiter(api.login_attempts, api.login_window_s, clock),
        login_by_client=SlidingWindowLimiter(api.login_attempts, api.login_window_s, clock),
        clock=clock,
        started=clock(),
        metrics_source=engine_metrics_source(),
    )


def ensure_first_admin(users: UserStore, out=None) -> str | None:
    """If nobody can log in, create ``admin`` with a random password and print it once.

    Printed to the console only (never to the log): like Jenkins and Grafana on first start.
    """
    if not users.is_empty():
        return None
    password = secrets.token_urlsafe(18)
    users.add(FIRST_ADMIN, "admin", password)
    out = out or sys.stdout
    print(
        "\n" + "=" * 72
        + f"\nactortrader: no API users existed, so user '{FIRST_ADMIN}' was created.\n"
        + f"  password: {password}\n"
        + f"  (shown once; stored only as an argon2id hash in {users.path})\n"
        + "  add others with: actortrader users add NAME --role viewer|trader|admin\n"
        + "=" * 72,
        file=out,
        flush=True,
    )  # fmt: skip
    return password


class ApiServer:
    def __init__(self, cfg: Config, directory: Directory, *, clock: Callable[[], float] = time.monotonic,
                 users_path: Path | None = None, secret: str | None = None):  # fmt: skip
        self.cfg = cfg
        self.secret, self.secret_generated = resolve_secret(cfg, secret)  # raises ApiConfigError
        self.ctx = build_context(cfg, directory, self.secret, clock=clock, users_path=users_path)
        self.app = build_app(self.ctx)
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self.port: int = 0

    @property
    def scheme(self) -> str:
        return "https" if self.cfg.api.tls_certfile else "http"

    @property
    def url(self) -> str:
        host = self.cfg.api.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        return f"{self.scheme}://{shown}:{self.port}"

    def start(self, timeout: float = 10) -> None:
        ensure_first_admin(self.ctx.users)
        host, port = self.cfg.api.host, self.cfg.api.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            sock.close()
            raise ApiConfigError(
                f"api: cannot listen on {host}:{port}: {exc.strerror}; choose another with --api-port PORT "
                "or api.port in config.toml"
            ) from None
        sock.listen(128)
        self._sock = sock
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            ssl_certfile=self.cfg.api.tls_certfile or None,
            ssl_keyfile=self.cfg.api.tls_keyfile or None,
            proxy_headers=False,
            server_header=False,
            date_header=True,
        )
        self._server = server = uvicorn.Server(config)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def serve() -> None:
                task = asyncio.ensure_future(server.serve(sockets=[sock]))
                while not server.started and not task.done():
                    await asyncio.sleep(0.01)  # uvicorn exposes no startup event; polling its flag on its own loop
                ready.set()
                await task

            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
            finally:
                ready.set()
                loop.close()

        self._thread = threading.Thread(target=run, name="api-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure or not server.started:
            self.stop()
            detail = f": {failure[0]!r}" if failure else ""
            raise ApiConfigError(f"api: server did not start within {timeout} s{detail}")
        where = "loopback only" if is_loopback(self.cfg.api.host) else "ALL given interfaces"
        from loguru import logger

        logger.info("API listening on {} ({}); dashboard at {}/", self.url, where, self.url)

    def stop(self, timeout: float = 5) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            def close_streams() -> None:
                self.ctx.closing = True
                for channel in list(self.ctx.channels):
                    channel.close()

            try:
                loop.call_soon_threadsafe(close_streams)
            except RuntimeError:
                pass
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "ApiServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
