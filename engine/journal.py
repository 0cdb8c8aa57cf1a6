"""The write-ahead journal: every order event, fill, trading-state change and
checkpoint is stored here *before* anyone is told about it.

Why SQLite in WAL mode
----------------------
One file, no server, atomic multi-row transactions, crash recovery that has
been tested for two decades, and readers that never block the writer. The
hot path writes one transaction per tick batch (tens to hundreds of records),
so the per-commit cost is amortized and the per-record cost is little more
than one msgpack encode.

Layout (schema version 1, kept in ``PRAGMA user_version``)::

    batches(first_seq INTEGER PRIMARY KEY, last_seq INTEGER, wall_ns INTEGER,
            types TEXT, frames BLOB)
    meta(key TEXT PRIMARY KEY, value TEXT)

One row per :meth:`Journal.append` (one transaction, normally one tick
batch). Records get ``seq`` numbers here, 1-based and gap-free;
``first_seq..last_seq`` are the row's records, packed back to back in
``frames`` as::

    type name (UTF-8) + b"\\x00" + len(body) as 8-byte little-endian + body

where ``body`` is :func:`engine.messages.to_msgpack` of the record and the
type name is its tag (class name). ``types`` lists the distinct type names in
the row as ``",Fill,OrderEvent,"`` so a reader looking for one type skips the
other rows in SQL. ``wall_ns`` is the wall clock at commit, for humans only.

Why a row per transaction and not per record: on this class of machine
SQLite's B-tree insert costs ~2 us per row however few columns it has, more
than the whole budget per record; one row per batch costs ~0.7 us per record
including the WAL write, and the frame layout is chosen so that the digest of
a batch is a single hash update over ``frames`` (below).

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
* ``EXTRA``: FULL plus a directory sync after a *rollback* journal is
  unlinked, which only exists in DELETE journal mode; in WAL mode it costs
  and protects the same as FULL. Accepted so the config can name it.

Choose FULL for live trading when the venue is not a reliable source of truth
for your own order history; NORMAL is the default because the venue is, and
reconciliation after a restart settles the window a power loss could cost.

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

(the same framing as the ``frames`` column) where ``payload`` is the msgpack
encoding of the record with every field whose name ends in ``_wall_ns`` set to
0, at any depth (inside nested structs, lists and dict values). For records
without such fields ``payload`` is the stored body, so a batch of them is
hashed as its ``frames`` bytes in one call. ``seq`` and the ``wall_ns`` column
are not hashed: ``seq`` is implied by the order. Two runs that journal the
same events at different wall times therefore have the same digest. The hash is kept running as records are
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

from engine.messages import ALL_MESSAGE_TYPES, OrderBlock, _enc_hook, from_msgpack, to_msgpack

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
        "CREATE TABLE batches ("
        " first_seq INTEGER PRIMARY KEY,"
        " last_seq INTEGER NOT NULL,"
        " wall_ns INTEGER NOT NULL,"
        " types TEXT NOT NULL,"
        " frames BLOB NOT NULL)"
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


# --------------------------------------------------------------------------
# Frames: how the records of one transaction are packed into one row


def _frame_header(type_name: str, body_len: int) -> bytes:
    return type_name.encode() + b"\x00" + body_len.to_bytes(8, "little")


def iter_frames(frames: bytes, first_seq: int) -> Iterator[tuple[int, str, bytes]]:
    """Split one batch row into ``(seq, type name, msgpack body)``; ValueError if malformed."""
    pos, seq, end = 0, first_seq, len(frames)
    view = memoryview(frames)
    while pos < end:
        zero = frames.index(b"\x00", pos)
        body_len = int.from_bytes(view[zero + 1 : zero + 9], "little")
        start = zero + 9
        if start + body_len > end:
            raise ValueError(f"record seq {seq} runs past the end of its batch")
        yield seq, frames[pos:zero].decode(), frames[start : start + body_len]
        pos = start + body_len
        seq += 1


# --------------------------------------------------------------------------
# The journal


FaultInjector = Callable[[], None]


class Journal:
    """One journal file. Safe to share between threads (one internal lock),
    though normally a single actor owns it."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, readonly: bool,
                 fault_injector: FaultInjector | None, synchronous: str, autocheckpoint: bool) -> None:  # fmt: skip
        self.path = path
        self.readonly = readonly
        self.fault_injector = fault_injector
        self.synchronous = synchronous
        self.autocheckpoint = autocheckpoint  # False: a WalCheckpointer copies the WAL (see open)
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
             max_pages: int | None = None, autocheckpoint: bool = True) -> Journal:  # fmt: skip
        """Open (creating if needed, unless ``readonly``) the journal at ``path``.

        ``fault_injector`` is called inside every write transaction just before
        COMMIT; whatever sqlite3 error it raises is handled exactly like a real
        one (tests use it). ``busy_timeout_ms`` is how long a write waits for
        another connection's lock before failing with kind ``locked``.
        ``max_pages`` caps the database size in pages (SQLite's
        ``max_page_count``); a write beyond it fails for real with SQLITE_FULL,
        kind ``disk_full``, like a full disk would.
        ``autocheckpoint=False`` leaves copying the WAL into the main file to a
        :class:`WalCheckpointer` on another thread (SQLite's own checkpoint runs
        inside the commit that crosses 1000 WAL pages: milliseconds on the writer).
        The writer still checkpoints once the WAL passes WAL_BACKSTOP_PAGES, which
        only a writer that commits faster than the checkpointer can finish reaches.

        Raises :class:`JournalError`: ``schema`` for a journal written by a newer
        version, ``corrupt`` for a file that is not a journal, ``io`` when the
        file cannot be opened, ``locked`` when another writer holds it too long.
        """
        path = Path(path)
        sync = str(synchronous).upper()
        if sync not in SYNCHRONOUS_MODES:
            raise ValueError(f"journal.synchronous: expected one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}")
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
                # An append-only writer touches the B-tree's right edge; recovery reads once, in order.
                # SQLite's default 2 MB page cache only filled with pages nobody reads again.
                conn.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KB}")
                if not autocheckpoint:
                    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}")
                if version < SCHEMA_VERSION:
                    _migrate(conn, version)
            elif version < SCHEMA_VERSION:
                raise JournalError("schema", f"{path}: journal schema version {version} needs migrating to "
                                             f"{SCHEMA_VERSION}; open it writable once")  # fmt: skip
            return cls(path, conn, readonly=readonly, fault_injector=fault_injector, synchronous=sync,
                       autocheckpoint=autocheckpoint and not readonly)  # fmt: skip
        except JournalError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise JournalError(classify_error(exc), f"{path}: cannot open: {exc}") from None

    def _load_tail(self) -> None:
        """Rebuild ``last_seq`` and the running digest from disk, checking that
        batches are contiguous and every frame is whole."""
        h = hashlib.sha256()
        last = 0
        for first_seq, last_seq, types, frames in self._iter_batches(0, None):
            if first_seq != last + 1:
                raise JournalError("corrupt", f"{self.path}: batch starting at seq {first_seq} follows seq {last}: records are missing")
            wall = any(_has_wall(_BY_NAME.get(n, object)) for n in types.strip(",").split(","))
            seq = first_seq - 1
            for seq, name, body in self._frames(frames, first_seq):
                if wall:
                    record = self._decode(seq, body)
                    payload = digest_payload(record, body)
                    h.update(_frame_header(name, len(payload)))
                    h.update(payload)
            if seq != last_seq:
                raise JournalError("corrupt", f"{self.path}: batch {first_seq}..{last_seq} holds records up to {seq}")
            if not wall:
                h.update(frames)
            last = last_seq
        self._last_seq, self._hash = last, h

    # ---------------------------------------------------------------- write

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def closed(self) -> bool:
        return self._closed

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
        parts: list[bytes] = []
        add = parts.append
        classes = set()
        seen = classes.add
        prefixes = _PREFIX
        for record in records:
            cls = record.__class__
            prefix = prefixes.get(cls)
            if prefix is None:
                raise TypeError(f"journal: {cls.__name__} is not a message type from engine.messages.Message")
            body = _encode(record)
            add(prefix)
            add(len(body).to_bytes(8, "little"))
            add(body)
            seen(cls)
        frames = b"".join(parts)
        if any(_has_wall(c) for c in classes):  # rare: hash these records with wall clocks zeroed
            hashed = []
            for i, record in enumerate(records):
                payload = digest_payload(record, parts[3 * i + 2])
                hashed.append(_frame_header(_KNOWN_TYPES[record.__class__], len(payload)) + payload)
        else:
            hashed = [frames]
        types = "," + ",".join(sorted(_KNOWN_TYPES[c] for c in classes)) + ","
        with self._lock:  # seq assignment, hash chaining and the commit happen as one step
            self._check_writable()
            first, last = self._last_seq + 1, self._last_seq + len(records)
            pending = self._hash.copy()
            for chunk in hashed:
                _update_holding_gil(pending, chunk)
            self._write_row((first, last, time.time_ns(), types, frames), f"appending records {first}..{last}")
            self._last_seq = last
            self._hash = pending
        return last

    def set_meta(self, key: str, value: str) -> None:
        """Store run metadata (one transaction); same failure rules as :meth:`append`."""
        self.update_meta({key: value})

    def update_meta(self, items: dict[str, str]) -> None:
        """Store several meta keys in one transaction (all or none)."""
        for key, value in items.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"journal meta {key!r}: expected a str key and a str value, got {type(value).__name__}")
        self._check_writable()
        rows = list(items.items())
        with self._lock:
            self._check_writable()
            self._run_txn(lambda c: c.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", rows),
                          f"setting meta {', '.join(repr(k) for k, _ in rows)}")  # fmt: skip

    def _write_row(self, row: tuple, what: str) -> None:
        """One batch row in one autocommit INSERT: atomic on its own, and one GIL release, not three.

        (BEGIN + INSERT + COMMIT each leave the GIL; on the busiest actor every
        release can cost a wait for another thread's switch interval.)
        """
        try:
            if self.fault_injector is not None:
                self.fault_injector()  # an injected storage failure strikes before anything is written
            self._conn.execute(_INSERT_BATCH, row)
        except (sqlite3.Error, OSError) as exc:
            self._rollback()
            err = JournalError(classify_error(exc), f"{self.path}: {what} failed: {exc}")
            self._failed, self._failed_reason = err, f"{what} failed: {exc}"
            raise err from None

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

    def records(self, after_seq: int = 0, types: tuple[type, ...] | None = None,
                expand: bool = True) -> Iterator[tuple[int, Any]]:
        """Yield ``(seq, record)`` with ``seq > after_seq`` in seq order, optionally only ``types``.

        With ``expand`` (the default) an :class:`OrderBlock` / :class:`FillBlock`
        is yielded as the per-order records it stands for, all with the
        block's seq: readers see one history whichever way it was written.
        """
        names = None if types is None else frozenset(_type_name(t) for t in types)
        wanted = names
        if expand and names is not None:
            wanted = names | {carrier for carrier, carried in _CARRIES.items() if carried & names}
        for first_seq, _last, _types, frames in self._iter_batches(after_seq, wanted):
            for seq, name, body in self._frames(frames, first_seq):
                if seq <= after_seq or (wanted is not None and name not in wanted):
                    continue
                record = self._decode(seq, body)
                if expand and name in _CARRIES:
                    for part in expand_block(record):
                        if names is None or _KNOWN_TYPES[part.__class__] in names:
                            yield seq, part
                elif names is None or name in names:
                    yield seq, record

    def last_record(self, type_: type) -> tuple[int, Any] | None:
        """The newest record of ``type_`` (e.g. the latest FeedCheckpoint), or None."""
        name = _type_name(type_)
        rows = self._query("SELECT first_seq, frames FROM batches WHERE instr(types, ?) > 0 ORDER BY first_seq DESC LIMIT 1",
                           (f",{name},",))  # fmt: skip
        if not rows:
            return None
        found = None
        for seq, frame_name, body in self._frames(rows[0][1], rows[0][0]):
            if frame_name == name:
                found = (seq, body)
        if found is None:
            raise JournalError("corrupt", f"{self.path}: batch at seq {rows[0][0]} claims a {name} it does not hold")
        return found[0], self._decode(*found)

    def count(self, types: tuple[type, ...] | None = None) -> int:
        """How many records (of ``types``, if given) the journal holds."""
        if types is None:
            return self._last_seq
        names = frozenset(_type_name(t) for t in types)
        if any(carried & names for carried in _CARRIES.values()):
            return sum(1 for _ in self.records(types=types))  # blocks count as the records they carry
        return sum(1 for _seq, name, _body in self._raw_frames(0, names) if name in names)

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

    def _raw_frames(self, after_seq: int, names: frozenset[str] | None) -> Iterator[tuple[int, str, bytes]]:
        for first_seq, _last, _types, frames in self._iter_batches(after_seq, names):
            yield from self._frames(frames, first_seq)

    def _iter_batches(self, after_seq: int, names: frozenset[str] | None) -> Iterator[tuple[int, int, str, bytes]]:
        """Batch rows that end after ``after_seq`` (and hold one of ``names``), in order, a page at a time."""
        if names is not None and not names:
            return  # no type asked for: nothing matches
        if names is None:
            sql, extra = _SELECT_BATCHES, ()
        else:
            ordered = tuple(sorted(names))
            test = " OR ".join(["instr(types, ?) > 0"] * len(ordered))
            sql = _SELECT_BATCHES.replace("WHERE last_seq > ?", f"WHERE last_seq > ? AND ({test})")
            extra = tuple(f",{n}," for n in ordered)
        cursor = after_seq
        while True:
            rows = self._query(sql, (cursor, *extra, _READ_PAGE))
            yield from rows
            if len(rows) < _READ_PAGE:
                return
            cursor = rows[-1][1]

    def _frames(self, frames: bytes, first_seq: int) -> Iterator[tuple[int, str, bytes]]:
        try:
            yield from iter_frames(frames, first_seq)
        except ValueError as exc:
            raise JournalError("corrupt", f"{self.path}: batch at seq {first_seq} is malformed: {exc}") from None

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


_READ_PAGE = 256  # batch rows fetched per lock acquisition when iterating
# Why a backstop: a passive checkpoint copies the frames it saw at its start, and the
# WAL restarts only at a commit after one that copied them all. A replay commits
# every ~0.5 ms, so none ever did: 72 MB of WAL at 20M ticks, growing with the run
# (and its -shm index with it). Past this many pages the writer's own commit
# finishes the checkpoint (little is left to copy) and the next one restarts the
# WAL: 17 MB at most, at no measurable cost to the replay. A live writer never
# gets here: its checkpointer keeps up.
WAL_BACKSTOP_PAGES = 4096
_WRITER_CACHE_KB = 256  # page cache of a writable journal connection (and of its checkpointer)
_INSERT_BATCH = "INSERT INTO batches(first_seq, last_seq, wall_ns, types, frames) VALUES (?, ?, ?, ?, ?)"
_SELECT_BATCHES = "SELECT first_seq, last_seq, types, frames FROM batches WHERE last_seq > ? ORDER BY first_seq LIMIT ?"
_KNOWN_TYPES: dict[type, str] = {cls: _type_name(cls) for cls in ALL_MESSAGE_TYPES}
# Column records and the per-order record types they expand to (see Journal.records).
_CARRIES: dict[str, frozenset[str]] = {"OrderBlock": frozenset({"OrderRequest"}),
                                       "FillBlock": frozenset({"Fill", "OrderEvent"})}


class WalCheckpointer:
    """Copies a journal's WAL into its main file from a connection of its own (a PASSIVE checkpoint).

    Why: SQLite checkpoints inside the commit that crosses 1000 WAL pages, on
    the writer's thread. Measured here: about 4 ms (copy plus fsync) once every
    ~900 one-order commits, and in a live run that was the p99.9 of "tick ->
    order at venue". A passive checkpoint neither waits for the writer nor
    blocks it (sqlite3 also releases the GIL meanwhile); the writer restarts
    the WAL at its first commit after a complete checkpoint. The WAL is the
    durable copy either way: this changes when bytes move, never what is kept.
    Use one instance from one thread.
    """

    def __init__(self, path: Path | str, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous  # the fsyncs a checkpoint does follow its own connection's setting
        self._conn: sqlite3.Connection | None = None

    def run(self) -> tuple[int, int, int]:
        """One checkpoint: (1 if it could not finish, WAL frames, frames now in the main file).

        Raises :class:`JournalError` when the file cannot be opened or written.
        """
        try:
            if self._conn is None:
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None,
                                       check_same_thread=False)  # fmt: skip
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
                conn.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KB}")
                self._conn = conn
            busy, frames, done = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(classify_error(exc), f"{self.path}: checkpointing the WAL failed: {exc}") from None
        return int(busy), int(frames), int(done)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None


def expand_block(record: Any) -> list:
    """The per-order records an OrderBlock / FillBlock stands for (fills before completions)."""
    if isinstance(record, OrderBlock):
        return record.requests()
    return [*record.fills(), *record.events()]
_BY_NAME: dict[str, type] = {name: cls for cls, name in _KNOWN_TYPES.items()}
_PREFIX: dict[type, bytes] = {cls: name.encode() + b"\x00" for cls, name in _KNOWN_TYPES.items()}
# The same encoder as engine.messages.to_msgpack (same hook, same bytes), called
# without the wrapper's extra frame: the append loop is the hot path.
_encode = msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode


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


_GIL_FREE_HASH = 2048  # hashlib releases the GIL for updates of this many bytes or more


def _update_holding_gil(h: Any, data: bytes) -> None:
    """``h.update(data)`` in pieces too small for hashlib to release the GIL (a few µs of hashing
    is cheaper than handing the interpreter to another thread and waiting to get it back)."""
    if len(data) < _GIL_FREE_HASH:
        h.update(data)
        return
    view = memoryview(data)
    for at in range(0, len(view), _GIL_FREE_HASH - 1):
        h.update(view[at : at + _GIL_FREE_HASH - 1])


def recompute_digest(path: Path | str) -> str:
    """Digest of the journal at ``path`` computed from scratch by re-reading every record (read-only)."""
    with Journal.open(path, readonly=True) as journal:
        return journal.digest()  # _load_tail() has just rebuilt it from the file


# --------------------------------------------------------------------------
# Inspection from a shell: records are framed inside batch rows, so plain
# ``sqlite3`` shows blobs; this prints them as JSON lines instead.


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m engine.journal PATH [--after SEQ] [--type NAME ...] [--verify]``"""
    import argparse
    import json
    import sys

    from engine.messages import to_json

    parser = argparse.ArgumentParser(prog="python -m engine.journal", description="Print a journal as JSON lines.")
    parser.add_argument("path", type=Path)
    parser.add_argument("--after", type=int, default=0, metavar="SEQ", help="only records with seq > SEQ")
    parser.add_argument("--type", action="append", default=[], metavar="NAME", help="only this record type (repeatable)")
    parser.add_argument("--verify", action="store_true", help="print integrity, record count, digest and meta only")
    args = parser.parse_args(argv)
    unknown = [n for n in args.type if n not in _BY_NAME]
    if unknown:
        parser.error(f"--type: unknown record type {unknown[0]!r} (known: {', '.join(sorted(_BY_NAME))})")
    try:
        with Journal.open(args.path, readonly=True) as journal:
            if args.verify:
                print(json.dumps({"path": str(args.path), "integrity": journal.integrity_check(),
                                  "records": journal.last_seq, "digest": journal.digest(), "meta": journal.meta()}))  # fmt: skip
                return 0
            types = tuple(_BY_NAME[n] for n in args.type) or None
            out = sys.stdout
            for seq, record in journal.records(after_seq=args.after, types=types):
                out.write(f'{{"seq":{seq},"type":"{_KNOWN_TYPES[type(record)]}","record":{to_json(record).decode()}}}\n')
    except JournalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
