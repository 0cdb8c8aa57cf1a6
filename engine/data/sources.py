"""Tick sources: validated column chunks from files or a synthetic walk.

A :class:`TickSource` is an iterator of :class:`TickChunk` (one symbol per
chunk, file order kept). Accepted ticks are numbered 0, 1, 2, ... in file
order, deterministically, so a feed can resume after a checkpoint with
:meth:`TickSource.skip_to` and re-send exactly the ticks that follow.

Files: :func:`open_tick_source` picks the reader from the suffix (``.csv``,
``.csv.gz``, ``.txt``: CSV; ``.parquet``, ``.pq``: Parquet). A file is one
symbol (``symbol=`` or the only configured instrument) or carries a
``symbol`` column; with both, rows of other symbols are rejected as
``unknown_symbol`` (a filter). Every row is validated at the edge
(``validate.py``); bad rows go to the quarantine, never downstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np

from engine.data.blocks import ParsedBlock
from engine.data.cache import CacheEntry, CacheWriter, cache_key, read_cached
from engine.data.csv_reader import CsvReader
from engine.data.errors import DataError
from engine.data.quarantine import Quarantine
from engine.data.validate import CODE, NO_TS, OK, REASON_OF_CODE, price_size_codes, ts_codes

MAX_CHUNK_ROWS = 1 << 20


@dataclass(slots=True)
class TickChunk:
    """Accepted ticks of one symbol: row ``k`` is feed tick ``first_tick_seq + k``."""

    symbol: str
    first_tick_seq: int
    ts_ns: np.ndarray  # int64
    price: np.ndarray  # float64 (close for bars)
    size: np.ndarray  # float64 (volume for bars)
    side: np.ndarray | None = None  # int8
    open: np.ndarray | None = None  # bars only
    high: np.ndarray | None = None
    low: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.price.shape[0])

    def slice(self, start: int, stop: int | None = None) -> TickChunk:
        stop = len(self) if stop is None else stop

        def cut(a):
            return None if a is None else a[start:stop]

        return TickChunk(
            self.symbol, self.first_tick_seq + start, self.ts_ns[start:stop], self.price[start:stop],
            self.size[start:stop], cut(self.side), cut(self.open), cut(self.high), cut(self.low),
        )  # fmt: skip


def instruments_by_symbol(instruments: Any) -> dict[str, Any]:
    if isinstance(instruments, dict):
        return dict(instruments)
    return {inst.symbol: inst for inst in instruments}


class TickSource:
    """Iterator of :class:`TickChunk` with reject counters and ``skip_to``.

    Subclasses implement :meth:`_generate` (every accepted tick from tick 0)
    and :meth:`_reset_counters`; this class handles starting later and
    rewinding: ``skip_to(n)`` makes the next chunk start at tick ``n``.
    """

    name = "source"

    def __init__(self) -> None:
        self.rows_read = 0
        self._start = 0
        self._gen: Iterator[TickChunk] | None = None
        self._gen_next_seq = 0  # first tick seq the generator will yield next
        self.exhausted = False

    # -- counters (subclasses feed them)
    @property
    def rejected(self) -> int:
        return 0

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return {}

    @property
    def next_tick_seq(self) -> int:
        return max(self._start, self._gen_next_seq)

    def skip_to(self, tick_seq: int) -> None:
        """The next chunk starts at accepted tick ``tick_seq`` (rewinds if needed)."""
        if tick_seq < 0:
            raise ValueError(f"skip_to: expected a tick sequence number >= 0, got {tick_seq}")
        if self._gen is not None and tick_seq < self._gen_next_seq:
            self._close_gen()
        self._start = tick_seq
        self.exhausted = False

    def _close_gen(self) -> None:
        if self._gen is not None:
            self._gen.close()  # type: ignore[attr-defined]
        self._gen = None
        self._gen_next_seq = 0

    def __iter__(self) -> TickSource:
        return self

    def __next__(self) -> TickChunk:
        if self._gen is None:
            self._reset_counters()
            self._gen = self._generate()
        while True:
            try:
                chunk = next(self._gen)
            except StopIteration:
                self.exhausted = True
                raise
            self._gen_next_seq = chunk.first_tick_seq + len(chunk)
            if self._gen_next_seq <= self._start:
                continue
            if chunk.first_tick_seq < self._start:
                chunk = chunk.slice(self._start - chunk.first_tick_seq)
            return chunk

    def close(self) -> None:
        self._close_gen()

    def _generate(self) -> Iterator[TickChunk]:
        raise NotImplementedError

    def _reset_counters(self) -> None:
        self.rows_read = 0


class FileTickSource(TickSource):
    """Ticks (or bars) of a CSV / Parquet file, validated, optionally cached."""

    def __init__(
        self,
        path: str,
        *,
        symbol: str | None,
        instruments: dict[str, Any],
        kind: Literal["ticks", "bars"],
        rejects_path: Path | None,
        chunk_rows: int,
        cache_dir: Path | None,
    ):
        super().__init__()
        self.path = str(path)
        self.name = self.path
        self.kind = kind
        self.instruments = instruments
        self.known = sorted(instruments)
        self.symbol = symbol or None
        self.chunk_rows = chunk_rows
        self.quarantine = Quarantine(self.path, rejects_path)
        self._cached_meta: dict[str, Any] | None = None
        lower = self.path.lower()
        self.format = "parquet" if lower.endswith((".parquet", ".pq")) else "csv"
        if self.format == "parquet":
            from engine.data.parquet_reader import ParquetReader  # pyarrow (~30 MB RSS) only for Parquet files

            self.reader = ParquetReader(self.path, kind, chunk_rows)
        else:
            self.reader = CsvReader(self.path, kind, chunk_rows)
        self.cache: CacheEntry | None = None
        if cache_dir is not None and self.format == "csv":
            self.cache = CacheEntry(Path(cache_dir), cache_key(self.path, kind, self.symbol, self.known))
        if self.symbol is not None and self.symbol not in instruments:
            raise DataError(self.path, None, f"symbol {self.symbol!r} is not a configured instrument (known: {', '.join(self.known) or 'none'})")
        self.cache_hit = bool(self.cache and self.cache.valid())

    def _default_symbol(self) -> str:
        if self.symbol:
            return self.symbol
        if len(self.known) == 1:
            return self.known[0]
        raise DataError(
            self.path, 1,
            f"the file has no symbol column and no symbol was given; pass symbol= (one of {', '.join(self.known) or 'none'})",
        )  # fmt: skip

    # -- counters
    @property
    def rejected(self) -> int:
        return self.quarantine.total

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return dict(self.quarantine.by_reason)

    def _reset_counters(self) -> None:
        self.rows_read = 0
        self.quarantine.reset_counts()

    # -- iteration
    def _generate(self) -> Iterator[TickChunk]:
        if self.cache is not None and self.cache.valid():
            self.cache_hit = True
            yield from self._from_cache()
        else:
            self.cache_hit = False
            yield from self._from_file()

    def _from_cache(self) -> Iterator[TickChunk]:
        meta = self.cache.meta()  # type: ignore[union-attr]
        for reason, count in meta["rejected_by_reason"].items():
            self.quarantine.by_reason[reason] = count
        symbol = meta.get("symbol") or None
        seq = 0
        for cols in read_cached(self.cache, capacity=self.chunk_rows):  # type: ignore[arg-type]
            self.rows_read += len(cols["price"])
            for chunk in _split_by_symbol(cols, symbol, seq):
                seq += len(chunk)
                yield chunk
        self.rows_read = meta["rows_read"]

    def _from_file(self) -> Iterator[TickChunk]:
        has_symbol_col = "symbol" in self.reader.names if self.format == "parquet" else None
        writer = CacheWriter(self.cache) if self.cache is not None else None
        last_ts: dict[str, int] = {}
        seq = 0
        fixed_symbol: str | None = None
        try:
            for block in self.reader:
                if has_symbol_col is None:
                    has_symbol_col = "symbol" in self.reader.names
                if not has_symbol_col and fixed_symbol is None:
                    fixed_symbol = self._default_symbol()
                self.rows_read += len(block) + len(block.bad)
                cols = self._validate(block, fixed_symbol, last_ts)
                if cols is None:
                    continue
                if writer is not None:
                    writer.write(cols)
                for chunk in _split_by_symbol(cols, fixed_symbol, seq):
                    seq += len(chunk)
                    yield chunk
            if has_symbol_col is None:  # empty file body: header only
                has_symbol_col = "symbol" in self.reader.names
                if not has_symbol_col:
                    fixed_symbol = self._default_symbol()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            self.quarantine.flush()
        if writer is not None:
            writer.commit({
                "rows_read": self.rows_read,
                "rejected_by_reason": dict(self.quarantine.by_reason),
                "symbol": fixed_symbol or "",
            })  # fmt: skip

    def _validate(self, block: ParsedBlock, fixed_symbol: str | None, last_ts: dict[str, int]) -> dict[str, np.ndarray] | None:
        cols = block.cols
        n = len(block)
        rejects: list[tuple[int, str, str]] = [(line, "unparseable", raw) for line, raw in block.bad]
        if n:
            extra = [cols[c] for c in ("open", "high", "low") if c in cols]
            codes = price_size_codes(cols["price"], cols["size"], extra)
            sym = cols.get("symbol")
            if sym is None:
                codes, last_ts[fixed_symbol] = ts_codes(cols["ts_ns"], codes, last_ts.get(fixed_symbol, NO_TS))
            else:
                known = np.isin(sym, self.known if self.symbol is None else [self.symbol])
                codes[~known] = CODE["unknown_symbol"]
                for s in dict.fromkeys(sym[known].tolist()):
                    idx = np.flatnonzero(sym == s)
                    sub, last_ts[s] = ts_codes(cols["ts_ns"][idx], codes[idx], last_ts.get(s, NO_TS))
                    codes[idx] = sub
            bad_rows = np.flatnonzero(codes != OK)
            rejects.extend((int(block.lines[i]), REASON_OF_CODE[int(codes[i])], block.raw(int(i))) for i in bad_rows)
            if bad_rows.size:
                keep = codes == OK
                cols = {k: v[keep] for k, v in cols.items()}
        for line, reason, raw in sorted(rejects):
            self.quarantine.reject(line, reason, raw)
        return cols if len(cols["price"]) else None

    def close(self) -> None:
        super().close()
        self.quarantine.close()


def _split_by_symbol(cols: dict[str, np.ndarray], fixed_symbol: str | None, seq: int) -> Iterator[TickChunk]:
    """One chunk per run of equal symbols, in order."""
    n = len(cols["price"])
    sym = cols.get("symbol")
    if sym is None:
        runs = [(0, n, str(fixed_symbol))]
    else:
        change = np.flatnonzero(sym[1:] != sym[:-1]) + 1
        starts = np.concatenate([[0], change])
        stops = np.concatenate([change, [n]])
        runs = [(int(a), int(b), str(sym[a])) for a, b in zip(starts, stops)]
    for a, b, symbol in runs:
        yield TickChunk(
            symbol=symbol,
            first_tick_seq=seq + a,
            ts_ns=cols["ts_ns"][a:b],
            price=cols["price"][a:b],
            size=cols["size"][a:b],
            side=cols["side"][a:b] if "side" in cols else None,
            open=cols["open"][a:b] if "open" in cols else None,
            high=cols["high"][a:b] if "high" in cols else None,
            low=cols["low"][a:b] if "low" in cols else None,
        )


def open_tick_source(
    path: str | Path,
    *,
    symbol: str | None = None,
    instruments: Any,
    kind: Literal["ticks", "bars"] = "ticks",
    rejects_path: Path | None = None,
    chunk_rows: int = 65536,
    cache_dir: Path | None = None,
) -> FileTickSource:
    """Open a tick or bar file for streaming replay (see the module docstring).

    Raises :class:`DataError` (naming the file and line) if the file cannot
    be read as market data at all; single bad rows are quarantined instead.
    """
    if kind not in ("ticks", "bars"):
        raise ValueError(f"kind: expected 'ticks' or 'bars', got {kind!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or not 1 <= chunk_rows <= MAX_CHUNK_ROWS:
        raise ValueError(f"chunk_rows: expected an integer 1..{MAX_CHUNK_ROWS}, got {chunk_rows!r}")
    return FileTickSource(
        str(path),
        symbol=symbol,
        instruments=instruments_by_symbol(instruments),
        kind=kind,
        rejects_path=Path(rejects_path) if rejects_path else None,
        chunk_rows=chunk_rows,
        cache_dir=Path(cache_dir) if cache_dir else None,
    )
