"""argon2id password hashing with OWASP's parameters.

Why these numbers: OWASP's password storage cheat sheet recommends argon2id
with m=19456 KiB, t=2, p=1 as the minimum. Hashing takes tens of
milliseconds on purpose, so the API always calls it off its event loop.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

OWASP_MEMORY_KIB = 19456
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1

_hasher = PasswordHasher(
    time_cost=OWASP_TIME_COST, memory_cost=OWASP_MEMORY_KIB, parallelism=OWASP_PARALLELISM, type=Type.ID
)
# Verified against when the user does not exist, so both paths cost one argon2 run
# and a failed login does not reveal (by timing) whether the name is known.
_DUMMY_HASH = _hasher.hash("not a real password; equalizes timing")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing user still costs one verification."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
