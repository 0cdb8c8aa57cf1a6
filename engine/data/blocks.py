"""What a file reader hands to a source: parsed columns plus the rows it could not parse.

Why a separate step: parsing (text -> numbers) is format-specific; validation,
quarantine, tick numbering and caching are not. Readers produce
:class:`ParsedBlock` s in file order and know nothing about instruments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

TICK_COLUMNS = ("ts_ns", "price", "size")
TICK_OPTIONAL = ("side", "symbol")
BAR_COLUMNS = ("ts_ns", "open", "high", "low", "close", "volume")
BAR_OPTIONAL = ("symbol",)

INT_COLUMNS = {"ts_ns": np.int64, "side": np.int8}


def required_columns(kind: str) -> tuple[str, ...]:
    return TICK_COLUMNS if kind == "ticks" else BAR_COLUMNS


def optional_columns(kind: str) -> tuple[str, ...]:
    return TICK_OPTIONAL if kind == "ticks" else BAR_OPTIONAL


def expected_header(kind: str) -> str:
    req = ",".join(required_columns(kind))
    opt = "".join(f"[,{c}]" for c in optional_columns(kind))
    return req + opt


@dataclass
class ParsedBlock:
    """Rows of one block that parsed, and the ones that did not.

    ``cols`` holds ``ts_ns`` (int64), ``price``/``size`` (float64; for bars
    the close and the volume), optional ``side`` (int8), ``open``/``high``/
    ``low`` (bars) and ``symbol`` (object array) when the file has it.
    ``lines`` are the 1-based source lines of the parsed rows; ``bad`` lists
    ``(line, raw)`` of rows that could not be parsed at all.
    """

    lines: np.ndarray
    cols: dict[str, np.ndarray]
    raw: Callable[[int], str]
    bad: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.lines.shape[0])


def parse_row_values(values: list[str], names: list[str]) -> dict[str, object]:
    """Slow path for one row: Python parsing, raising ValueError on anything odd."""
    out: dict[str, object] = {}
    for name, text in zip(names, values):
        text = text.strip()
        if name == "symbol":
            if not text:
                raise ValueError("empty symbol")
            out[name] = text
        elif name == "side":
            v = int(text)
            if v not in (-1, 0, 1):
                raise ValueError(f"side {v}")
            out[name] = v
        elif name == "ts_ns":
            out[name] = int(text)
        else:
            out[name] = float(text)
    return out


def to_tick_columns(kind: str, named: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename bar columns to the tick view (price = close, size = volume)."""
    if kind == "ticks":
        return named
    cols = {
        "ts_ns": named["ts_ns"],
        "price": named["close"],
        "size": named["volume"],
        "open": named["open"],
        "high": named["high"],
        "low": named["low"],
    }
    if "symbol" in named:
        cols["symbol"] = named["symbol"]
    return cols


def columns_from_rows(rows: list[dict[str, object]], names: list[str]) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for name in names:
        values = [r[name] for r in rows]
        if name == "symbol":
            cols[name] = np.array(values, dtype=object)
        else:
            cols[name] = np.array(values, dtype=INT_COLUMNS.get(name, np.float64))
    return cols
