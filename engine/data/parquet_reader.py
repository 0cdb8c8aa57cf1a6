"""Streaming reader for Parquet files with the normalized column names.

Why Parquet needs no cache: it is already columnar and compressed per
column; ``ParquetFile.iter_batches`` reads one row group slice at a time, so
memory stays bounded. ``line`` in rejects is the 1-based row number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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


class ParquetReader:
    def __init__(self, path: str | Path, kind: str = "ticks", chunk_rows: int = 65536):
        self.path = str(path)
        self.kind = kind
        self.chunk_rows = max(1, int(chunk_rows))
        require_file(self.path, "a Parquet file")
        try:
            self._file = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(self.path, None, f"not a readable Parquet file: {exc}") from None
        present = self._file.schema_arrow.names
        missing = [c for c in required_columns(self.kind) if c not in present]
        if missing:
            raise DataError(
                self.path, None,
                f"missing column(s) {', '.join(missing)}: columns are {present}, expected {expected_header(self.kind)}",
            )  # fmt: skip
        self.names = list(required_columns(self.kind)) + [c for c in optional_columns(self.kind) if c in present]

    def __iter__(self) -> Iterator[ParsedBlock]:
        row = 0
        try:
            batches = self._file.iter_batches(batch_size=self.chunk_rows, columns=self.names)
            for batch in batches:
                n = batch.num_rows
                numbers = np.arange(row + 1, row + 1 + n, dtype=np.int64)
                row += n
                yield self._parse(batch, numbers)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(self.path, row + 1, f"cannot read further: {exc}") from None

    def _parse(self, batch: pa.RecordBatch, numbers: np.ndarray) -> ParsedBlock:
        n = batch.num_rows
        valid = np.ones(n, dtype=bool)
        named: dict[str, np.ndarray] | None = {}
        for name in self.names:
            col = batch.column(name)
            if col.null_count:
                valid &= ~col.is_null().to_numpy(zero_copy_only=False)
        keep = np.flatnonzero(valid)
        sub = batch.take(pa.array(keep)) if keep.size != n else batch
        try:
            for name in self.names:
                col = sub.column(name)
                if name == "symbol":
                    named[name] = pc.cast(col, pa.string()).to_numpy(zero_copy_only=False).astype(object)
                    continue
                target = {"ts_ns": pa.int64(), "side": pa.int8()}.get(name, pa.float64())
                named[name] = pc.cast(col, target).to_numpy(zero_copy_only=False).astype(
                    INT_COLUMNS.get(name, np.float64), copy=False
                )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            named = None
        failed = np.empty(0, dtype=np.int64)
        if named is None:
            rows, bad = [], []
            for i, rec in enumerate(sub.to_pylist()):
                try:
                    rows.append(parse_row_values([str(rec[c]) for c in self.names], self.names))
                except (ValueError, OverflowError):
                    bad.append(i)
            named = columns_from_rows(rows, self.names)
            failed = np.asarray(bad, dtype=np.int64)
        bad_idx = np.sort(np.concatenate([np.flatnonzero(~valid), keep[failed]])) if failed.size or keep.size != n else np.empty(0, np.int64)
        good_idx = np.delete(keep, failed)

        def raw(i: int, _b=batch) -> str:
            return ",".join("" if v is None else str(v) for v in (_b.column(c)[i].as_py() for c in self.names))

        def raw_good(j: int, _idx=good_idx) -> str:
            return raw(int(_idx[j]))

        return ParsedBlock(
            lines=numbers[good_idx],
            cols=to_tick_columns(self.kind, named),
            raw=raw_good,
            bad=[(int(numbers[i]), raw(int(i))) for i in bad_idx],
        )
