"""Startup rules for the API's secret and bind address, as pure functions.

Why pure: "refuse to start live with a weak secret" is a safety rule worth a
test per case; keeping it free of I/O lets tests feed it configs directly.

Rules: live mode, or a bind address other than loopback, needs a JWT secret
that is set, not a well-known default, and at least 256 bits (32 bytes).
Paper mode on loopback with nothing configured gets a random secret per
process (tokens die with the process; that is the point of a local default).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Mapping

from engine.api.tokens import MIN_SECRET_BYTES
from engine.config import Config

SECRET_ENV = "ACTORTRADER_JWT_SECRET"
HOW_TO_SET = (
    f"set one with: export {SECRET_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(48))') "
    "(or put it in a file named by api.jwt_secret_file)"
)
KNOWN_DEFAULTS = frozenset(
    s.lower()
    for s in (
        "secret", "changeme", "change-me", "change_me", "changethis", "default", "password", "jwt_secret",
        "jwt-secret", "your-secret", "your-secret-key", "your-256-bit-secret", "supersecret", "secretkey",
        "secret-key", "actortrader", "test", "dev", "development", "admin", "letmein",
    )
)  # fmt: skip


class ApiConfigError(Exception):
    """The API refuses to start; the message says what is wrong and how to fix it."""


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _looks_default(secret: str) -> bool:
    s = secret.strip().lower()
    return s in KNOWN_DEFAULTS or len(set(s)) <= 2 or any(s.startswith(d) and len(s) < 40 for d in ("changeme", "secret"))


def check_api_security(cfg: Config, secret: str | None) -> list[str]:
    """Problems that forbid starting the API with ``secret`` under ``cfg`` (empty list = fine)."""
    strict = cfg.mode == "live" or not is_loopback(cfg.api.host)
    problems: list[str] = []
    why = "live mode" if cfg.mode == "live" else f"api.host = {cfg.api.host!r} is not loopback"
    if strict:
        if not secret:
            problems.append(f"API JWT secret is empty ({why} needs one); {HOW_TO_SET}")
        elif _looks_default(secret):
            problems.append(f"API JWT secret is a well-known default value ({why}); {HOW_TO_SET}")
        elif len(secret.encode()) < MIN_SECRET_BYTES:
            problems.append(
                f"API JWT secret is {len(secret.encode())} bytes; {why} needs at least {MIN_SECRET_BYTES} "
                f"(256 bits); {HOW_TO_SET}"
            )
    elif secret and len(secret.encode()) < MIN_SECRET_BYTES:
        problems.append(
            f"API JWT secret is {len(secret.encode())} bytes; at least {MIN_SECRET_BYTES} (256 bits) are needed, "
            f"or leave it unset in paper mode on loopback for a random one; {HOW_TO_SET}"
        )
    if cfg.api.tls_certfile and not cfg.api.tls_keyfile or cfg.api.tls_keyfile and not cfg.api.tls_certfile:
        problems.append("api.tls_certfile and api.tls_keyfile: set both or neither")
    return problems


def configured_secret(cfg: Config, env: Mapping[str, str] | None = None) -> str:
    """The secret from the environment, the config, or the secret file, in that order ("" if none)."""
    env = os.environ if env is None else env
    if env.get(SECRET_ENV):
        return env[SECRET_ENV]
    if cfg.api.jwt_secret:
        return cfg.api.jwt_secret
    if cfg.api.jwt_secret_file:
        path = Path(cfg.api.jwt_secret_file)
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ApiConfigError(f"api.jwt_secret_file: cannot read {str(path)!r}: {exc.strerror}; {HOW_TO_SET}") from None
    return ""


def resolve_secret(cfg: Config, explicit: str | None = None, env: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """``(secret, generated)``: the configured secret after the rules, or a random one
    when none is configured and the rules allow it. Raises :class:`ApiConfigError`."""
    secret = explicit if explicit is not None else configured_secret(cfg, env)
    problems = check_api_security(cfg, secret)
    if problems:
        raise ApiConfigError("API refuses to start:\n  " + "\n  ".join(problems))
    if not secret:
        return secrets.token_urlsafe(48), True
    return secret, False
