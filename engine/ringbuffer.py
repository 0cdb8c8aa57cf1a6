"""Fixed-capacity numpy ring buffers: bounded memory by construction.

Why a *mirrored* ring: every value is written twice, at ``i`` and at
``i + capacity`` of a ``2 * capacity`` array. The last ``n`` values are then
always one contiguous slice, so :meth:`RingBuffer.last` returns a read-only
*view* (no copy, no wrap-around stitching) that numba kernels and numpy
accept as-is. Appending a batch costs two slice copies; memory never grows
past ``2 * capacity`` values, whatever the stream length.

A view stays valid until ``capacity - n`` further values have been
appended; copy it if you keep it longer.
"""

from __future__ import annotations

import msgspec
import numpy as np


class _RingSnapshot(msgspec.Struct, frozen=True):
    capacity: int
    dtype: str
    total: int
    values: bytes  # the last min(total, capacity) values, oldest first


class RingBuffer:
    """The last ``capacity`` values of one series (e.g. one symbol's prices)."""

    __slots__ = ("capacity", "dtype", "_data", "_pos", "_total")

    def __init__(self, capacity: int, dtype: np.dtype | type | str = np.float64):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"ring buffer capacity: expected an integer >= 1, got {capacity!r}")
        self.capacity = int(capacity)
        self.dtype = np.dtype(dtype)
        self._data = np.zeros(2 * self.capacity, dtype=self.dtype)
        self._pos = 0  # next write index in [0, capacity)
        self._total = 0  # values ever appended

    def __len__(self) -> int:
        return min(self._total, self.capacity)

    @property
    def total(self) -> int:
        """How many values were ever appended (monotonic; survives snapshots)."""
        return self._total

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    def append(self, value: float) -> None:
        self.extend(np.asarray([value], dtype=self.dtype))

    def extend(self, values: np.ndarray) -> None:
        """Append a batch; only the last ``capacity`` of it can matter."""
        vals = np.asarray(values, dtype=self.dtype).ravel()
        n = vals.shape[0]
        if n == 0:
            return
        cap = self.capacity
        if n >= cap:
            tail = vals[n - cap :]
            self._data[:cap] = tail
            self._data[cap:] = tail
            self._pos = 0
            self._total += n
            return
        pos = self._pos
        first = min(n, cap - pos)
        self._data[pos : pos + first] = vals[:first]
        self._data[pos + cap : pos + cap + first] = vals[:first]
        rest = n - first
        if rest:
            self._data[:rest] = vals[first:]
            self._data[cap : cap + rest] = vals[first:]
        self._pos = (pos + n) % cap
        self._total += n

    def last(self, n: int | None = None) -> np.ndarray:
        """Read-only view of the last ``n`` values (all held values if None), oldest first."""
        held = len(self)
        if n is None:
            n = held
        if n < 0 or n > held:
            raise ValueError(f"ring buffer: asked for the last {n} values, holding {held} (capacity {self.capacity})")
        end = self._pos + self.capacity
        view = self._data[end - n : end]
        view.flags.writeable = False
        return view

    def latest(self) -> float:
        if self._total == 0:
            raise IndexError("ring buffer is empty")
        return self._data[self._pos + self.capacity - 1].item()

    def clear(self) -> None:
        self._pos = 0
        self._total = 0

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(
            _RingSnapshot(self.capacity, self.dtype.str, self._total, np.ascontiguousarray(self.last()).tobytes())
        )

    @classmethod
    def restore(cls, data: bytes) -> RingBuffer:
        snap = msgspec.msgpack.decode(data, type=_RingSnapshot)
        ring = cls(snap.capacity, snap.dtype)
        ring.extend(np.frombuffer(snap.values, dtype=ring.dtype))
        ring._total = snap.total
        return ring
