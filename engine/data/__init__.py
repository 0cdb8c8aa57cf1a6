"""Market data in: file replay (CSV / Parquet, ticks or bars) and a synthetic walk.

Public API: :func:`open_tick_source`, :class:`TickSource`, :class:`TickChunk`,
:class:`SyntheticSource`, :class:`DataError`.
"""

from engine.data.errors import DataError
from engine.data.sources import TickChunk, TickSource, open_tick_source
from engine.data.synthetic import SyntheticSource

__all__ = ["DataError", "SyntheticSource", "TickChunk", "TickSource", "open_tick_source"]
