"""Access tokens (JWT) and refresh tokens (opaque, rotating, single-use).

Why this shape (RFC 8725, the JWT best current practice):

* Access tokens are HS256 JWTs. The algorithm is pinned on decode (the
  header's ``alg`` is never trusted, so ``alg: none`` and HS512/RS256 swaps
  fail), and ``iss``, ``aud``, ``sub``, ``jti``, ``exp`` are required. Explicit
  typing: header ``typ: at+jwt`` *and* claim ``token_type: access``, so no
  other token can pass as an access token. 15 minutes by default.
* Refresh tokens are random opaque strings, stored only as SHA-256 digests
  (they have 256 bits of entropy, so a fast hash is enough). Each use spends
  the token and issues the next one of the same *family*; presenting a spent
  token means it was stolen or replayed, so the whole family is revoked.
  Logout revokes the family too.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import jwt
import msgspec

ALGORITHM = "HS256"
ACCESS_TYP = "at+jwt"
ACCESS_TOKEN_TYPE = "access"
MIN_SECRET_BYTES = 32


class TokenError(Exception):
    """The presented token is not acceptable; ``str()`` is safe to show a client."""


class AccessClaims(msgspec.Struct, frozen=True):
    sub: str
    role: str
    jti: str
    exp: int


class AccessTokens:
    def __init__(self, secret: str, issuer: str, audience: str, ttl_s: int, clock: Callable[[], float] = time.time):
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"JWT secret must be at least {MIN_SECRET_BYTES} bytes (256 bits)")
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        self._clock = clock
        self._revoked: dict[str, float] = {}  # jti -> exp; pruned as they expire
        self._lock = threading.Lock()

    def mint(self, subject: str, role: str) -> tuple[str, AccessClaims]:
        now = int(self._clock())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "role": role,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s,
            "token_type": ACCESS_TOKEN_TYPE,
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM, headers={"typ": ACCESS_TYP})
        return token, AccessClaims(sub=subject, role=role, jti=claims["jti"], exp=claims["exp"])

    def verify(self, token: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # pinned: the header's alg is not consulted
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"], "verify_signature": True},
            )
            header = jwt.get_unverified_header(token)  # signature already verified above
        except jwt.ExpiredSignatureError:
            raise TokenError("access token expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("access token has the wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("access token has the wrong issuer") from None
        except jwt.InvalidTokenError:
            raise TokenError("invalid access token") from None
        if header.get("typ") != ACCESS_TYP or payload.get("token_type") != ACCESS_TOKEN_TYPE:
            raise TokenError("not an access token")
        if not isinstance(payload.get("role"), str) or not isinstance(payload.get("sub"), str):
            raise TokenError("invalid access token")
        with self._lock:
            if payload["jti"] in self._revoked:
                raise TokenError("access token revoked")
        return AccessClaims(sub=payload["sub"], role=payload["role"], jti=payload["jti"], exp=int(payload["exp"]))

    def revoke(self, claims: AccessClaims) -> None:
        """Deny this token until it would have expired anyway (logout)."""
        now = self._clock()
        with self._lock:
            self._revoked = {j: e for j, e in self._revoked.items() if e > now}
            self._revoked[claims.jti] = claims.exp


# --------------------------------------------------------------------------
# Refresh tokens


class _Refresh(msgspec.Struct):
    family: str
    user: str
    exp: float
    spent: bool = False


class _Family(msgspec.Struct):
    user: str
    revoked: bool = False
    exp: float = 0.0  # the latest expiry of any token in it (for pruning)


class _RefreshFile(msgspec.Struct):
    version: int = 1
    tokens: dict[str, _Refresh] = {}
    families: dict[str, _Family] = {}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshTokenStore:
    """Persisted rotating refresh tokens; every method is thread-safe."""

    def __init__(self, path: Path, ttl_s: int, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._data = self._load()

    def _load(self) -> _RefreshFile:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=_RefreshFile)
        except FileNotFoundError:
            return _RefreshFile()
        except msgspec.DecodeError:
            # Unreadable session file: start clean (every user logs in again), never crash the API.
            return _RefreshFile()

    def _save(self) -> None:
        now = self._clock()
        data = self._data
        data.tokens = {h: t for h, t in data.tokens.items() if t.exp > now}
        data.families = {f: fam for f, fam in data.families.items() if fam.exp > now}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sessions.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(msgspec.json.encode(data))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _new_token(self, family: str, user: str) -> str:
        token = secrets.token_urlsafe(32)
        exp = self._clock() + self.ttl_s
        self._data.tokens[_digest(token)] = _Refresh(family=family, user=user, exp=exp)
        self._data.families[family].exp = exp
        return token

    def issue(self, user: str) -> str:
        """Start a new family (a login) and return its first token."""
        with self._lock:
            family = uuid.uuid4().hex
            self._data.families[family] = _Family(user=user)
            token = self._new_token(family, user)
            self._save()
            return token

    def rotate(self, token: str) -> tuple[str, str]:
        """Spend ``token`` and return ``(user, next_token)``.

        A spent token presented again revokes its family (theft detection).
        """
        with self._lock:
            entry = self._data.tokens.get(_digest(token))
            if entry is None:
                raise TokenError("unknown refresh token")
            family = self._data.families.get(entry.family)
            if family is None or family.revoked:
                raise TokenError("refresh token revoked")
            if entry.spent:
                family.revoked = True
                self._save()
                raise TokenError("refresh token already used; every session of this login is now revoked")
            if entry.exp <= self._clock():
                raise TokenError("refresh token expired")
            entry.spent = True
            nxt = self._new_token(entry.family, entry.user)
            self._save()
            return entry.user, nxt

    def revoke(self, token: str, user: str | None = None) -> bool:
        """Revoke the family of ``token`` (logout). False if the token is unknown
        (or, when ``user`` is given, belongs to someone else)."""
        with self._lock:
            entry = self._data.tokens.get(_digest(token))
            if entry is None or entry.family not in self._data.families:
                return False
            if user is not None and entry.user != user:
                return False
            self._data.families[entry.family].revoked = True
            self._save()
            return True

    def revoke_user(self, user: str) -> int:
        with self._lock:
            n = 0
            for fam in self._data.families.values():
                if fam.user == user and not fam.revoked:
                    fam.revoked = True
                    n += 1
            if n:
                self._save()
            return n
