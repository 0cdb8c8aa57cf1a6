"""Users and roles, persisted in one small JSON file (argon2id hashes only).

Why a JSON file: a handful of operators, read at login, written by the CLI.
Writes are atomic (temp file + rename, mode 0600) so a crash never leaves a
half-written user list. A lock makes the store safe to share between the
API's worker threads and the CLI in one process.
"""

from __future__ import annotations

import enum
import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import msgspec

from engine.api.passwords import hash_password

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD_LEN = 12
MAX_PASSWORD_LEN = 1024


class Role(str, enum.Enum):
    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"


# A role may do everything the roles below it may do.
ROLE_RANK = {Role.VIEWER: 1, Role.TRADER: 2, Role.ADMIN: 3}


def role_allows(role: Role | str, needed: Role) -> bool:
    try:
        return ROLE_RANK[Role(role)] >= ROLE_RANK[needed]
    except ValueError:
        return False


class UserError(Exception):
    """A mistake the operator can fix (bad name, weak password, unknown user)."""


class User(msgspec.Struct, frozen=True):
    name: str
    role: Role
    password_hash: str
    created_wall_ns: int = 0


class _UsersFile(msgspec.Struct):
    version: int = 1
    users: dict[str, User] = {}


def check_username(name: str) -> None:
    if not USERNAME_RE.match(name or ""):
        raise UserError(f"user name {name!r}: expected 1-64 letters, digits, '_', '.' or '-'")


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise UserError(f"password: expected at least {MIN_PASSWORD_LEN} characters, got {len(password)}")
    if len(password) > MAX_PASSWORD_LEN:
        raise UserError(f"password: expected at most {MAX_PASSWORD_LEN} characters")


class UserStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> _UsersFile:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return _UsersFile()
        try:
            return msgspec.json.decode(raw, type=_UsersFile)
        except msgspec.DecodeError as exc:
            raise UserError(f"{self.path}: unreadable users file ({exc}); fix or remove it") from None

    def _save(self, data: _UsersFile) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".users.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(msgspec.json.format(msgspec.json.encode(data)))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, name: str) -> User | None:
        with self._lock:
            return self._load().users.get(name)

    def list(self) -> list[User]:
        with self._lock:
            return sorted(self._load().users.values(), key=lambda u: u.name)

    def is_empty(self) -> bool:
        return not self.list()

    def add(self, name: str, role: Role | str, password: str, *, replace: bool = False) -> User:
        """Hash and store; raises :class:`UserError` for a bad name, role or password."""
        check_username(name)
        try:
            role = Role(role)
        except ValueError:
            raise UserError(f"role {role!r}: expected one of viewer, trader, admin") from None
        check_password(password)
        user = User(name=name, role=role, password_hash=hash_password(password), created_wall_ns=time.time_ns())
        with self._lock:
            data = self._load()
            if name in data.users and not replace:
                raise UserError(f"user {name!r} already exists (remove it first to change it)")
            data.users[name] = user
            self._save(data)
        return user

    def remove(self, name: str) -> None:
        with self._lock:
            data = self._load()
            if name not in data.users:
                raise UserError(f"user {name!r} does not exist")
            del data.users[name]
            self._save(data)


def dumps_users(users: list[User]) -> str:
    """Operator-facing listing without hashes."""
    return json.dumps([{"name": u.name, "role": u.role.value} for u in users])
