"""Streaming reader for the normalized CSV format (plain or ``.gz``).

Why pyarrow's streaming CSV reader, one *line* per row: ``open_csv`` reads
(and gunzips) block by block, so memory is bounded by the block size, never
the file. We read each line as a single binary field (a delimiter that never
occurs, quoting off) and split fields ourselves with vectorized
``split_pattern``. That costs ~2x pyarrow's typed parse but gives what the
edge needs: an exact source line for every row (pyarrow's own
``invalid_row_handler`` does not report row numbers when streaming), rows
with the wrong number of fields or undecodable bytes kept as quarantinable
rows instead of killing the stream, and no silent skipping of lines. The
columnar cache (``cache.py``) makes every later read of the file fast.

Numbers are converted with vectorized casts per block; only a block that has
a malformed value falls back to parsing that block row by row in Python.

pyarrow is imported by the methods that parse, not at module top: a replay
that reads the columnar cache never parses and so never pays pyarrow's
~30 MB of RSS.

Format notes: the normalized files have no quoting, so quoted fields are not
supported; blank lines are skipped (they still count as lines); fields are
matched to columns by the header, extra columns are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from engine.data.blocks import (
    INT_COLUMNS,
    ParsedBlock,
    columns_from_rows,
    expected_header,
    optional_columns,
    parse_row_values,
    required_columns,
    to_tick_columns,
)
from engine.data.errors import DataError, require_file

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.csv as pcsv

_NEVER = "\x1f"  # ASCII unit separator: not in any CSV we read


class CsvReader:
    """Yield :class:`ParsedBlock` s of at most ``chunk_rows`` rows, in file order."""

    def __init__(self, path: str | Path, kind: str = "ticks", chunk_rows: int = 65536):
        self.path = str(path)
        self.kind = kind
        self.chunk_rows = max(1, int(chunk_rows))
        require_file(self.path, "a CSV file")
        self.names: list[str] = []
        self._positions: list[int] = []
        self._ncols = 0
        self._line = 0  # last physical line consumed
        self._odd_rows = 0

    def _open(self) -> pcsv.CSVStreamingReader:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        block = max(1 << 16, min(self.chunk_rows * 48, 1 << 24))
        try:
            return pcsv.open_csv(
                self.path,
                read_options=pcsv.ReadOptions(column_names=["line"], block_size=block, use_threads=False),
                parse_options=pcsv.ParseOptions(
                    delimiter=_NEVER,
                    quote_char=False,
                    escape_char=False,
                    newlines_in_values=False,
                    ignore_empty_lines=False,
                    invalid_row_handler=self._odd_row,
                ),
                convert_options=pcsv.ConvertOptions(column_types={"line": pa.binary()}),
            )
        except (pa.ArrowInvalid, OSError) as exc:
            if "Empty CSV file" in str(exc):
                self._header(None)
            raise DataError(self.path, 1, f"cannot read as CSV: {exc}") from None

    def _odd_row(self, row) -> str:  # a line containing the separator character
        self._odd_rows += 1
        return "skip"

    def _header(self, first: bytes | None) -> None:
        if first is None:
            raise DataError(self.path, 1, f"empty file: expected a header line {expected_header(self.kind)}")
        try:
            text = first.decode("utf-8").strip().lstrip("\ufeff")
        except UnicodeDecodeError:
            raise DataError(self.path, 1, f"not a text CSV file: expected a header line {expected_header(self.kind)}") from None
        names = [n.strip() for n in text.split(",")]
        missing = [c for c in required_columns(self.kind) if c not in names]
        if missing:
            raise DataError(
                self.path, 1,
                f"missing column(s) {', '.join(missing)}: header is {text[:120]!r}, expected {expected_header(self.kind)}",
            )  # fmt: skip
        wanted = list(required_columns(self.kind)) + [c for c in optional_columns(self.kind) if c in names]
        self.names = wanted
        self._positions = [names.index(c) for c in wanted]
        self._ncols = len(names)

    def __iter__(self) -> Iterator[ParsedBlock]:
        import pyarrow as pa

        reader = self._open()
        self._line = 0
        first_block = True
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError, EOFError) as exc:
                raise DataError(self.path, self._line + 1, f"cannot read further: {exc}") from None
            lines = batch.column(0)
            if first_block:
                first_block = False
                self._header(lines[0].as_py() if len(lines) else None)
                self._line = 1
                lines = lines.slice(1)
            for start in range(0, len(lines), self.chunk_rows):
                part = lines.slice(start, self.chunk_rows)
                first_line = self._line + 1
                self._line += len(part)
                yield self._parse(part, first_line)
        if first_block:
            self._header(None)

    # -- parsing one block
    def _parse(self, lines: pa.Array, first_line: int) -> ParsedBlock:
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(lines)
        numbers = np.arange(first_line, first_line + n, dtype=np.int64)
        lengths = pc.binary_length(lines).to_numpy(zero_copy_only=False)
        nonempty = lengths > 0
        fields = pc.split_pattern(lines, ",")
        nfields = pc.list_value_length(fields).to_numpy(zero_copy_only=False)
        shape_ok = (nfields == self._ncols) & nonempty

        def raw(i: int, _lines=lines) -> str:
            value = _lines[i].as_py() or b""
            return value.decode("utf-8", "replace")

        bad_idx = np.flatnonzero(nonempty & ~shape_ok)
        good_idx = np.flatnonzero(shape_ok)
        good_fields = fields.take(pa.array(good_idx)) if good_idx.size != n else fields
        named = self._fast_columns(good_fields)
        if named is None:
            named, failed = self._slow_columns(good_fields)
            if failed.size:
                bad_idx = np.sort(np.concatenate([bad_idx, good_idx[failed]]))
                good_idx = np.delete(good_idx, failed)
        bad = [(int(numbers[i]), raw(int(i))) for i in bad_idx]
        cols = to_tick_columns(self.kind, named)

        def raw_good(j: int, _idx=good_idx) -> str:
            return raw(int(_idx[j]))

        return ParsedBlock(lines=numbers[good_idx], cols=cols, raw=raw_good, bad=bad)

    def _fast_columns(self, fields: pa.Array) -> dict[str, np.ndarray] | None:
        import pyarrow as pa
        import pyarrow.compute as pc

        arrow_types = {"ts_ns": pa.int64(), "side": pa.int8(), "symbol": pa.string()}
        out: dict[str, np.ndarray] = {}
        try:
            for name, pos in zip(self.names, self._positions):
                text = pc.cast(pc.list_element(fields, pos), pa.string())
                if name == "symbol":
                    text = pc.utf8_trim_whitespace(text)
                    if len(text) and pc.any(pc.equal(pc.binary_length(text), 0)).as_py():
                        return None
                    out[name] = text.to_numpy(zero_copy_only=False).astype(object)
                    continue
                arrow_type = arrow_types.get(name, pa.float64())
                values = pc.cast(text, arrow_type)
                if name == "side" and len(values) and (
                    pc.max(values).as_py() > 1 or pc.min(values).as_py() < -1
                ):
                    return None
                out[name] = values.to_numpy(zero_copy_only=False).astype(INT_COLUMNS.get(name, np.float64), copy=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None
        return out

    def _slow_columns(self, fields: pa.Array) -> tuple[dict[str, np.ndarray], np.ndarray]:
        rows, failed = [], []
        for i, parts in enumerate(fields.to_pylist()):
            try:
                values = [parts[p].decode("ascii") for p in self._positions]
                rows.append(parse_row_values(values, self.names))
            except (ValueError, UnicodeDecodeError, OverflowError):
                failed.append(i)
        return columns_from_rows(rows, self.names), np.asarray(failed, dtype=np.int64)
