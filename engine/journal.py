"""The write-ahead journal: every order event, fill, trading-state change and
checkpoint is stored here *before* anyone is told about it.

Why SQLite in WAL mode
----------------------
One file, no server, atomic multi-row transactions, crash recovery that has
been tested for two decades, and readers that never block the writer. The
hot path writes one transaction per tick batch (tens to hundreds of records),
so the per-commit cost is amortized and the per-record cost is one msgpack
encode plus one row of a prepared ``executemany``.

Layout (schema version 1, kept in ``PRAGMA user_version``)::

    records(seq INTEGER PRIMARY KEY, type TEXT, wall_ns INTEGER, body BLOB)
    meta(key TEXT PRIMARY KEY, value TEXT)

``seq`` is assigned here, 1-based and gap-free; ``type`` is the struct's tag
(its class name); ``body`` is :func:`engine.messages.to_msgpack` of the record;
``wall_ns`` is the wall clock at append time, for humans only.

Durability: what each ``synchronous`` setting risks (WAL mode)
-----------------------------------------------------------------
* ``OFF``: SQLite never fsyncs. A process crash (``kill -9``) loses nothing
  that was committed (the data is in the OS page cache), but an OS crash or
  power loss may lose recent transactions *and may corrupt the database*.
  Only for throwaway benchmarks.
* ``NORMAL`` (default): fsync only at checkpoints, not per commit. A process
  crash loses nothing committed; a power loss may roll back the last
  transactions (they were never fsynced) but never corrupts the file. The
  engine then recovers to an earlier consistent point and reconciles with
  the venue, which is the source of truth for anything newer.
* ``FULL``: the WAL is fsynced on every commit: a committed transaction
  survives a power loss. Costs one fsync per tick batch (~0.1-10 ms,
  depending on the disk).
* ``EXTRA``: like FULL, and also fsyncs the directory after the WAL is
  created/deleted, which only matters on filesystems that lose directory
  entries on power loss. Choose it for live trading on such storage.

Failure model
-------------
Every SQLite failure on write becomes :class:`JournalError` with a ``kind``
(``disk_full``, ``read_only``, ``locked``, ``io``, ``corrupt``, ``schema``).
The failed transaction is rolled back, so nothing half-written remains, and
the journal is marked *failed*: every later write raises at once without
touching the file. A journal that cannot write must stop trading (write-ahead:
nothing may reach the venue unjournaled); callers turn the error into a halt.
What was committed before stays readable, through this object and any new one.

The digest
----------
:meth:`Journal.digest` is SHA-256 over the records in ``seq`` order. For each
record it hashes::

    type name (UTF-8) + b"\\x00" + len(payload) as 8-byte little-endian + payload

where ``payload`` is the msgpack encoding of the record with every field whose
name ends in ``_wall_ns`` set to 0, at any depth (inside nested structs, lists
and dict values). ``seq`` and the ``wall_ns`` column are not hashed: ``seq`` is
implied by the order. Two runs that journal the same events at different wall
times therefore have the same digest. The hash is kept running as records are
committed, so :meth:`digest` is O(1); :func:`recompute_digest` re-reads the
file and must agree (tests check it).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from engine.messages import ALL_MESSAGE_TYPES, from_msgpack, to_msgpack

SCHEMA_VERSION = 1
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
ERROR_KINDS = frozenset({"disk_full", "read_only", "locked", "io", "corrupt", "schema"})

# Meta keys used by run bookkeeping (engine/journal_runs.py) and the replay report.
META_STATUS = "status"  # "running" | "finished"
META_CREATED_WALL_NS = "created_wall_ns"
META_DATA_PATH = "data_path"
META_DATA_FINGERPRINT = "data_fingerprint"
META_CONFIG_HASH = "config_hash"
META_KIND = "kind"  # "replay" | "run"

_READ_PAGE = 2000  # rows fetched per lock acquisition when iterating


class JournalError(Exception):
    """A journal operation failed; ``kind`` is machine-readable, ``detail`` says why and where."""

    def __init__(self, kind: str, detail: str):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown JournalError kind {kind!r}")
        super().__init__(f"journal {kind}: {detail}")
        self.kind = kind
        self.detail = detail


# --------------------------------------------------------------------------
# Schema migrations: MIGRATIONS[v] takes a database at version v to v + 1.


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE records ("
        " seq INTEGER PRIMARY KEY,"
        " type TEXT NOT NULL,"
        " wall_ns INTEGER NOT NULL,"
        " body BLOB NOT NULL)"
    )
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_0_to_1,)
assert len(MIGRATIONS) == SCHEMA_VERSION


# --------------------------------------------------------------------------
# Error classification


_CODE_KINDS = {
    5: "locked",  # SQLITE_BUSY
    6: "locked",  # SQLITE_LOCKED
    8: "read_only",  # SQLITE_READONLY
    10: "io",  # SQLITE_IOERR
    11: "corrupt",  # SQLITE_CORRUPT
    13: "disk_full",  # SQLITE_FULL
    14: "io",  # SQLITE_CANTOPEN
    26: "corrupt",  # SQLITE_NOTADB
}

_MESSAGE_KINDS = (
    ("disk is full", "disk_full"),
    ("readonly", "read_only"),
    ("read-only", "read_only"),
    ("is locked", "locked"),
    ("malformed", "corrupt"),
    ("not a database", "corrupt"),
    ("i/o error", "io"),
    ("unable to open", "io"),
)


def classify_error(exc: BaseException) -> str:
    """Map an sqlite3/OS exception to a JournalError kind (``io`` if unknown)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _CODE_KINDS:
        return _CODE_KINDS[code & 0xFF]
    text = str(exc).lower()
    for needle, kind in _MESSAGE_KINDS:
        if needle in text:
            return kind
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:  # ENOSPC
        return "disk_full"
    return "io"


# --------------------------------------------------------------------------
# Digest helpers


def _type_name(cls: type) -> str:
    tag = getattr(getattr(cls, "__struct_config__", None), "tag", None)
    return tag if isinstance(tag, str) else cls.__name__


def _info_has_wall(info: Any, seen: set[type]) -> bool:
    """True if a msgspec.inspect type can contain a ``*_wall_ns`` field anywhere."""
    mi = msgspec.inspect
    if isinstance(info, mi.StructType):
        if info.cls in seen:
            return False
        seen.add(info.cls)
        return any(f.name.endswith("_wall_ns") or _info_has_wall(f.type, seen) for f in info.fields)
    if isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return _info_has_wall(info.item_type, seen)
    if isinstance(info, mi.TupleType):
        return any(_info_has_wall(t, seen) for t in info.item_types)
    if isinstance(info, mi.DictType):
        return _info_has_wall(info.value_type, seen)
    if isinstance(info, mi.UnionType):
        return any(_info_has_wall(t, seen) for t in info.types)
    return False


_HAS_WALL: dict[type, bool] = {}


def _has_wall(cls: type) -> bool:
    found = _HAS_WALL.get(cls)
    if found is None:
        found = _HAS_WALL[cls] = _info_has_wall(msgspec.inspect.type_info(cls), set())
    return found


def scrub_wall_clock(value: Any) -> Any:
    """``value`` with every ``*_wall_ns`` field set to 0, at any depth."""
    if isinstance(value, msgspec.Struct):
        changes = {}
        for name in value.__struct_fields__:
            field = getattr(value, name)
            if name.endswith("_wall_ns"):
                if field != 0:
                    changes[name] = 0
            elif isinstance(field, (msgspec.Struct, list, tuple, dict)):
                scrubbed = scrub_wall_clock(field)
                if scrubbed is not field:
                    changes[name] = scrubbed
        return msgspec.structs.replace(value, **changes) if changes else value
    if isinstance(value, (list, tuple)):
        items = [scrub_wall_clock(v) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return type(value)(items)
    if isinstance(value, dict):
        items = {k: scrub_wall_clock(v) for k, v in value.items()}
        if all(items[k] is value[k] for k in value):
            return value
        return items
    return value


def digest_payload(record: Any, encoded: bytes | None = None) -> bytes:
    """The bytes the digest hashes for ``record`` (``encoded`` = its msgpack, if at hand)."""
    if _has_wall(type(record)):
        return to_msgpack(scrub_wall_clock(record))
    return encoded if encoded is not None else to_msgpack(record)


def _digest_update(h: Any, type_name: str, payload: bytes) -> None:
    h.update(type_name.encode())
    h.update(b"\x00")
    h.update(len(payload).to_bytes(8, "little"))
    h.update(payload)


# --------------------------------------------------------------------------
# The journal


FaultInjector = Callable[[], None]


class Journal:
    """One journal file. Safe to share between threads (one internal lock),
    though normally a single actor owns it."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, readonly: bool,
                 fault_injector: FaultInjector | None) -> None:  # fmt: skip
        self.path = path
        self.readonly = readonly
        self.fault_injector = fault_injector
        self._conn = conn
        self._lock = threading.Lock()
        self._failed: JournalError | None = None
        self._failed_reason = ""
        self._closed = False
        self._last_seq = 0
        self._hash = hashlib.sha256()
        self._load_tail()

    # ---------------------------------------------------------------- open

    @classmethod
    def open(cls, path: Path | str, *, synchronous: str = "NORMAL", readonly: bool = False,
             fault_injector: FaultInjector | None = None, busy_timeout_ms: int = 2000,
             max_pages: int | None = None) -> Journal:  # fmt: skip
        """Open (creating if needed, unless ``readonly``) the journal at ``path``.

        ``fault_injector`` is called inside every write transaction just before
        COMMIT; whatever sqlite3 error it raises is handled exactly like a real
        one (tests use it). ``busy_timeout_ms`` is how long a write waits for
        another connection's lock before failing with kind ``locked``.
        ``max_pages`` caps the database size in pages (SQLite's
        ``max_page_count``); a write beyond it fails for real with SQLITE_FULL,
        kind ``disk_full``, like a full disk would.

        Raises :class:`JournalError`: ``schema`` for a journal written by a newer
        version, ``corrupt`` for a file that is not a journal, ``io`` when the
        file cannot be opened, ``locked`` when another writer holds it too long.
        """
        path = Path(path)
        sync = str(synchronous).upper()
        if sync not in SYNCHRONOUS_MODES:
            raise JournalError("schema", f"journal.synchronous: expected one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}")
        if readonly and not path.is_file():
            raise JournalError("io", f"{path}: no journal file to open read-only")
        if not readonly and not path.parent.is_dir():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise JournalError(classify_error(exc), f"{path.parent}: cannot create the journal directory: {exc}") from None
        try:
            if readonly:
                conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                       isolation_level=None, check_same_thread=False)  # fmt: skip
            else:
                conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(classify_error(exc), f"{path}: cannot open: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if max_pages is not None:
                conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError("schema", f"{path}: journal schema version {version} is newer than this engine "
                                             f"understands ({SCHEMA_VERSION}); use a newer actortrader to read it")  # fmt: skip
            if not readonly:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise JournalError("io", f"{path}: the filesystem does not support SQLite WAL mode (got {mode!r})")
                conn.execute(f"PRAGMA synchronous = {sync}")
                if version < SCHEMA_VERSION:
                    _migrate(conn, version)
            elif version < SCHEMA_VERSION:
                raise JournalError("schema", f"{path}: journal schema version {version} needs migrating to "
                                             f"{SCHEMA_VERSION}; open it writable once")  # fmt: skip
            return cls(path, conn, readonly=readonly, fault_injector=fault_injector)
        except JournalError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise JournalError(classify_error(exc), f"{path}: cannot open: {exc}") from None

    def _load_tail(self) -> None:
        """Rebuild ``last_seq`` and the running digest from what is on disk."""
        h = hashlib.sha256()
        last = 0
        for seq, type_name, body in self._iter_rows(0, None):
            if seq != last + 1:
                raise JournalError("corrupt", f"{self.path}: seq {seq} follows {last}: records are missing")
            record = self._decode(seq, body)
            _digest_update(h, type_name, digest_payload(record, body))
            last = seq
        self._last_seq, self._hash = last, h

    # ---------------------------------------------------------------- write

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def failed(self) -> JournalError | None:
        """The error that stopped this journal, or None while it is healthy."""
        return self._failed

    def append(self, records: Sequence[msgspec.Struct]) -> int:
        """Journal ``records`` in one transaction; return the seq of the last one.

        Raises :class:`JournalError` (and marks the journal failed) when the
        write fails; raises ``TypeError`` for a record that is not a message
        type, before touching the file.
        """
        self._check_writable()
        if not records:
            return self._last_seq
        rows = []
        pending = self._hash.copy()
        seq = self._last_seq
        wall_ns = time.time_ns()
        known = _KNOWN_TYPES
        for record in records:
            cls = type(record)
            name = known.get(cls)
            if name is None:
                raise TypeError(f"journal: {cls.__name__} is not a message type from engine.messages.Message")
            body = to_msgpack(record)
            seq += 1
            rows.append((seq, name, wall_ns, body))
            _digest_update(pending, name, digest_payload(record, body) if _has_wall(cls) else body)
        with self._lock:
            self._check_writable()
            self._write(rows, f"appending records {self._last_seq + 1}..{seq}")
            self._last_seq = seq
            self._hash = pending
        return seq

    def set_meta(self, key: str, value: str) -> None:
        """Store run metadata (one transaction); same failure rules as :meth:`append`."""
        if not isinstance(value, str):
            raise TypeError(f"journal meta {key!r}: expected a str value, got {type(value).__name__}")
        self._check_writable()
        with self._lock:
            self._check_writable()
            self._run_txn(lambda c: c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value)),
                          f"setting meta {key!r}")  # fmt: skip

    def _write(self, rows: list[tuple], what: str) -> None:
        self._run_txn(lambda c: c.executemany("INSERT INTO records(seq, type, wall_ns, body) VALUES (?, ?, ?, ?)", rows), what)

    def _run_txn(self, body: Callable[[sqlite3.Connection], Any], what: str) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            body(conn)
            if self.fault_injector is not None:
                self.fault_injector()
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self._rollback()
            err = JournalError(classify_error(exc), f"{self.path}: {what} failed: {exc}")
            self._failed, self._failed_reason = err, f"{what} failed: {exc}"
            raise err from None

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolls back itself on some errors; the transaction is gone either way

    def _check_writable(self) -> None:
        if self._closed:
            raise JournalError("io", f"{self.path}: journal is closed")
        if self._failed is not None:
            raise JournalError(self._failed.kind, f"{self.path}: journal stopped after an earlier failure, {self._failed_reason}")

    # ---------------------------------------------------------------- read

    def records(self, after_seq: int = 0, types: tuple[type, ...] | None = None) -> Iterator[tuple[int, Any]]:
        """Yield ``(seq, record)`` with ``seq > after_seq`` in seq order, optionally only ``types``."""
        names = None if types is None else tuple(_type_name(t) for t in types)
        for seq, _name, body in self._iter_rows(after_seq, names):
            yield seq, self._decode(seq, body)

    def last_record(self, type_: type) -> tuple[int, Any] | None:
        """The newest record of ``type_`` (e.g. the latest FeedCheckpoint), or None."""
        rows = self._query("SELECT seq, body FROM records WHERE type = ? ORDER BY seq DESC LIMIT 1", (_type_name(type_),))
        if not rows:
            return None
        seq, body = rows[0]
        return seq, self._decode(seq, body)

    def count(self, types: tuple[type, ...] | None = None) -> int:
        if types is None:
            return self._query("SELECT count(*) FROM records", ())[0][0]
        names = tuple(_type_name(t) for t in types)
        marks = ",".join("?" * len(names))
        return self._query(f"SELECT count(*) FROM records WHERE type IN ({marks})", names)[0][0]

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def meta(self) -> dict[str, str]:
        return dict(self._query("SELECT key, value FROM meta ORDER BY key", ()))

    def digest(self) -> str:
        """SHA-256 hex over the committed records (see the module docstring)."""
        return self._hash.hexdigest()

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file: ``"ok"`` or the first problems found."""
        rows = self._query("PRAGMA integrity_check", ())
        return "; ".join(str(r[0]) for r in rows)

    def _iter_rows(self, after_seq: int, names: tuple[str, ...] | None) -> Iterator[tuple[int, str, bytes]]:
        if names is None:
            sql, extra = "SELECT seq, type, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?", ()
        else:
            marks = ",".join("?" * len(names))
            sql, extra = f"SELECT seq, type, body FROM records WHERE seq > ? AND type IN ({marks}) ORDER BY seq LIMIT ?", names
        cursor = after_seq
        while True:
            rows = self._query(sql, (cursor, *extra, _READ_PAGE))
            yield from rows
            if len(rows) < _READ_PAGE:
                return
            cursor = rows[-1][0]

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            if self._closed:
                raise JournalError("io", f"{self.path}: journal is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(classify_error(exc), f"{self.path}: reading failed: {exc}") from None

    def _decode(self, seq: int, body: bytes) -> Any:
        try:
            return from_msgpack(body)
        except (msgspec.DecodeError, msgspec.ValidationError, NotImplementedError, ValueError) as exc:
            raise JournalError("corrupt", f"{self.path}: record seq {seq} cannot be decoded: {exc}") from None

    # ---------------------------------------------------------------- close

    def close(self) -> None:
        """Close the file (idempotent). A clean close checkpoints the WAL into the main file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._conn.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "failed" if self._failed else ("closed" if self._closed else "open")
        return f"Journal({str(self.path)!r}, last_seq={self._last_seq}, {state})"


_KNOWN_TYPES: dict[type, str] = {cls: _type_name(cls) for cls in ALL_MESSAGE_TYPES}


def _migrate(conn: sqlite3.Connection, from_version: int) -> None:
    """Run every migration from ``from_version`` up, each in its own transaction."""
    for version in range(from_version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def recompute_digest(path: Path | str) -> str:
    """Digest of the journal at ``path`` computed from scratch by re-reading every record (read-only)."""
    with Journal.open(path, readonly=True) as journal:
        return journal.digest()  # _load_tail() has just rebuilt it from the file
