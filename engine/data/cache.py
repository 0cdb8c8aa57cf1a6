"""Columnar cache of validated CSV ticks: raw little-endian columns, chunk by chunk.

Why: parsing a gzipped CSV costs ~0.5 s per 1.9M rows every replay; reading
the same ticks back as raw numpy columns is close to free. The first (CSV)
pass decides the rejects and writes only the accepted rows plus the reject
counts, so a cached replay yields exactly the same ticks and ends with the
same counters, without re-writing the rejects.

Why not Arrow IPC (the format before v2): reading it needs pyarrow, ~30 MB of
RSS imported for nothing on a replay that only reads the cache, and its
memory map left every page read so far resident (up to the re-map interval,
64 MiB). The file is a sequence of records, one per chunk written: the row
count (int64), then each column's values in the order and dtypes the
``.json`` sidecar lists. The reader copies one record at a time into fresh
arrays, so a replay holds only the chunks still in flight, however long the
file. A ``symbol`` column is stored as uint32 codes into the sidecar's
``symbols`` list.

The key covers everything that changes what is accepted: the file's absolute
path, size, mtime and a hash of its first 64 KiB, the kind, the forced
symbol and the set of known instruments. A cache entry is valid only when
its ``.json`` sidecar exists and the data file has the size it records; both
files are written under temporary names and renamed when the CSV pass has
completed, so an interrupted pass leaves no half entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from engine.data.errors import DataError

CACHE_VERSION = 2  # 2: raw columns (.cols); 1 was Arrow IPC (.arrow), ignored since
_ROWS = np.dtype("<i8")
_CODES = np.dtype("<u4")


def cache_key(path: str, kind: str, symbol: str | None, known: list[str]) -> str:
    p = Path(path).resolve()
    st = p.stat()
    with open(p, "rb") as fh:
        head = hashlib.sha256(fh.read(1 << 16)).hexdigest()
    text = f"v{CACHE_VERSION}|{p}|{st.st_size}|{st.st_mtime_ns}|{head}|{kind}|{symbol or ''}|{','.join(sorted(known))}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class CacheEntry:
    def __init__(self, cache_dir: Path, key: str):
        self.dir = Path(cache_dir)
        self.data = self.dir / f"{key}.cols"
        self.meta_path = self.dir / f"{key}.json"

    def valid(self) -> bool:
        try:
            meta = self.meta()
            return meta.get("version") == CACHE_VERSION and self.data.stat().st_size == meta["bytes"]
        except (OSError, ValueError, KeyError, TypeError):
            return False  # missing, half-written by someone else or truncated: rebuild from the CSV

    def meta(self) -> dict[str, Any]:
        return json.loads(self.meta_path.read_text())


class CacheWriter:
    """Accepted chunks in, one ``.cols`` file out (committed by :meth:`commit`)."""

    def __init__(self, entry: CacheEntry):
        self.entry = entry
        self._tmp = entry.data.with_suffix(f".cols.tmp{os.getpid()}")
        self._fh: BinaryIO | None = None
        self._columns: list[tuple[str, str]] | None = None  # (name, dtype) of every record
        self._symbols: dict[str, int] = {}
        self._bytes = 0
        self.failed = False

    def _layout(self, cols: dict[str, np.ndarray]) -> list[tuple[str, str]]:
        return [(k, _CODES.str if k == "symbol" else np.asarray(v).dtype.newbyteorder("<").str) for k, v in cols.items()]

    def write(self, cols: dict[str, np.ndarray]) -> None:
        if self.failed:
            return
        try:
            layout = self._layout(cols)
            if self._fh is None:
                self.entry.dir.mkdir(parents=True, exist_ok=True)
                self._fh = open(self._tmp, "wb")
                self._columns = layout
            elif layout != self._columns:  # never happens for one file; never cache what we could not read back
                self.abort()
                return
            n = len(cols["price"])
            parts = [np.array([n], dtype=_ROWS)]
            for (name, dtype), v in zip(layout, cols.values()):
                if name == "symbol":
                    codes = [self._symbols.setdefault(s, len(self._symbols)) for s in v.tolist()]
                    parts.append(np.asarray(codes, dtype=_CODES))
                else:
                    parts.append(np.ascontiguousarray(v, dtype=dtype))
            for part in parts:
                self._fh.write(part)  # the array's own buffer: no bytes copy
                self._bytes += part.nbytes
        except OSError:
            self.abort()  # a cache is an optimisation: never fail the replay over it

    def commit(self, meta: dict[str, Any]) -> None:
        if self.failed:
            return
        try:
            if self._fh is None:  # no accepted rows at all: still cache the counts
                self.entry.dir.mkdir(parents=True, exist_ok=True)
                self._fh = open(self._tmp, "wb")
            self._fh.close()
            self._fh = None
            os.replace(self._tmp, self.entry.data)
            tmp_meta = self.entry.meta_path.with_suffix(f".json.tmp{os.getpid()}")
            tmp_meta.write_text(json.dumps({
                "version": CACHE_VERSION, **meta, "bytes": self._bytes,
                "columns": self._columns or [], "symbols": list(self._symbols),
            }))  # fmt: skip
            os.replace(tmp_meta, self.entry.meta_path)
        except OSError:
            self.abort()

    def abort(self) -> None:
        self.failed = True
        try:
            if self._fh is not None:
                self._fh.close()
        except OSError:
            pass
        self._fh = None
        self._tmp.unlink(missing_ok=True)


def read_cached(entry: CacheEntry, capacity: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Yield the cached chunks, one record at a time, as fresh read-only numpy columns.

    Fresh arrays rather than views of a memory map: a chunk's memory goes back
    as soon as the pipeline is done with its batches, and the pages of the
    file read so far do not stay resident.

    Each column is allocated for at least ``capacity`` rows (the source's
    chunk size) and cut to the record's length. Why: records come in several
    lengths (a file's chunks end where the CSV pass's blocks did), and malloc
    reuses the hole a finished chunk leaves only for one that fits; chunks of
    one size fit each other's holes, so the heap stops growing. Measured over
    a 20M-tick replay: a peak RSS 1.3-1.4 MB lower (bench/README.md, Memory).
    Pages past the record's length are never touched, so never resident.
    """
    meta = entry.meta()
    columns = [(name, np.dtype(dtype)) for name, dtype in meta["columns"]]
    symbols = np.array(meta.get("symbols", []), dtype=object)
    with open(entry.data, "rb", buffering=0) as fh:
        while True:
            head = np.empty(1, dtype=_ROWS)
            got = _read_into(fh, head)
            if got == 0:
                return
            n = int(head[0]) if got == head.nbytes else -1
            cols: dict[str, np.ndarray] = {}
            for name, dtype in columns:
                values = np.empty(max(n, capacity, 0), dtype=dtype)[: max(n, 0)]
                if n < 0 or _read_into(fh, values) != values.nbytes:
                    raise DataError(str(entry.data), None, "cache file is truncated: delete it and replay again")
                if name == "symbol":
                    values = symbols[values]
                values.flags.writeable = False  # every batch cut from the chunk shares this buffer
                cols[name] = values
            if n and "price" in cols:
                yield cols


def _read_into(fh: BinaryIO, arr: np.ndarray) -> int:
    """Fill ``arr`` from ``fh``; the bytes read (fewer only at the end of the file)."""
    view = memoryview(arr).cast("B")
    done = 0
    while done < len(view):
        got = fh.readinto(view[done:])
        if not got:
            break
        done += got
    return done
