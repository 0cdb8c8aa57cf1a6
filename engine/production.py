"""Refusals that keep a live engine from starting unsafely. Pure: (config, env) -> problems.

Live mode needs an explicit double confirmation (``live.confirm = true`` in the
file *and* ``ACTORTRADER_LIVE_CONFIRM=yes`` in the environment), a live venue
(never the paper one), credentials, and a strong API secret. Each problem is a
sentence saying what to change.
"""

from __future__ import annotations

from engine.config import Config

WEAK_SECRETS = frozenset({"", "secret", "changeme", "change-me", "password", "admin", "default", "jwt-secret"})
MIN_SECRET_BYTES = 32


def secret_problem(secret: str) -> str | None:
    if secret.strip().lower() in WEAK_SECRETS:
        return "the JWT secret is empty or a well-known default"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"the JWT secret is shorter than {MIN_SECRET_BYTES} bytes (256 bits)"
    if len(set(secret)) < 8:
        return "the JWT secret has too little variety to be random"
    return None


def live_problems(cfg: Config, env: dict[str, str]) -> list[str]:
    if cfg.mode != "live":
        return []
    out = []
    if not cfg.live.confirm:
        out.append("live.confirm: set `confirm = true` under [live] to trade real money")
    if env.get("ACTORTRADER_LIVE_CONFIRM", "").lower() != "yes":
        out.append("ACTORTRADER_LIVE_CONFIRM: set this environment variable to 'yes' to trade real money")
    if cfg.venue.kind != "live":
        out.append("venue.kind: live mode needs kind = 'live'; it never falls back to the paper venue")
    if not cfg.venue.api_key or not cfg.venue.api_secret:
        out.append("venue.api_key / venue.api_secret: live trading needs venue credentials "
                   "(set ACTORTRADER_VENUE__API_KEY and ACTORTRADER_VENUE__API_SECRET)")
    if cfg.api.enabled:
        secret = cfg.api.jwt_secret
        if cfg.api.jwt_secret_file:
            try:
                with open(cfg.api.jwt_secret_file, encoding="utf-8") as fh:
                    secret = fh.read().strip()
            except OSError as exc:
                out.append(f"api.jwt_secret_file: cannot read {cfg.api.jwt_secret_file}: {exc}")
        problem = secret_problem(secret)
        if problem:
            out.append(f"api.jwt_secret: {problem}; set ACTORTRADER_JWT_SECRET to at least 32 random bytes, "
                       "e.g. `export ACTORTRADER_JWT_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')`")
    return out
