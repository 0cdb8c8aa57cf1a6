"""The one exception a data source raises for a user's mistake.

Why a dedicated type: the CLI catches :class:`DataError` and prints its text
(file and line, what was wrong) instead of a traceback; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class DataError(Exception):
    """A file cannot be read as market data; ``str()`` names the file and line."""

    def __init__(self, path: str, line: int | None, problem: str):
        where = f"{path}: line {line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


def require_file(path: str, expected: str) -> None:
    """Raise :class:`DataError` unless ``path`` is an existing file (``expected`` names the format)."""
    from pathlib import Path

    if not Path(path).exists():
        raise DataError(path, None, "file not found")
    if Path(path).is_dir():
        raise DataError(path, None, f"is a directory, expected {expected}")
