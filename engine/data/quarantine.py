"""Rejected rows go to a CSV file with their source line and a reason code.

Why: a bad tick must never reach an indicator or a strategy, but dropping it
silently hides data problems. Every rejected row is appended to the rejects
file (``source,line,reason,raw``; ``line`` is 1-based and counts the header)
and counted per reason, and the replay goes on.

Reasons are stable snake_case codes (tools and tests match on them).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

REASONS = (
    "unparseable",
    "unknown_symbol",
    "price_not_finite",
    "price_not_positive",
    "size_not_finite",
    "size_negative",
    "ts_decreasing",
)
REJECTS_HEADER = ("source", "line", "reason", "raw")


class Quarantine:
    """Counts rejects by reason and appends them to ``rejects_path`` (if given).

    ``write_after_line`` lets a source that re-reads a file (resume from an
    earlier tick) avoid writing the same rejects twice.
    """

    def __init__(self, source: str, rejects_path: Path | None):
        self.source = source
        self.path = Path(rejects_path) if rejects_path else None
        self.by_reason: Counter[str] = Counter()
        self.written_through_line = 0
        self._file = None
        self._writer = None

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def reset_counts(self) -> None:
        self.by_reason.clear()

    def reject(self, line: int, reason: str, raw: str) -> None:
        self.by_reason[reason] += 1
        if self.path is None or line <= self.written_through_line:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._file = open(self.path, "a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            if new:
                self._writer.writerow(REJECTS_HEADER)
        self._writer.writerow((self.source, line, reason, raw))
        self.written_through_line = line

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None


def read_rejects(path: Path) -> list[dict[str, str]]:
    """(for tests and tools) the rejects file as a list of row dicts."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
