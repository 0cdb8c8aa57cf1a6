"""Process-wide metrics: counters, gauges, latency histograms, leak detection.

Why no locks: every actor increments only its own keys (its name is in the
key or in a label), and a Python dict update of one key from one thread is
safe under the GIL; readers copy the dicts (one C-level copy, atomic under
the GIL) and never see a torn value. Increments run per *batch*, so a
handle lookup plus an add is cheap enough; hot code keeps a :class:`Counter`
handle and calls ``inc`` on it.

Latency uses HdrHistogram (``hdrhistogram`` package): recorded in
nanoseconds, reported in microseconds at p50/p90/p99/p99.9/max. Its
``record_value`` is pure Python (~1.3 µs), and every stage records once per
batch, so samples are appended to a list and folded into the histogram in
bulk (:func:`record_many`, numpy: the same bucket arithmetic over an array)
when the list is full or whenever someone reads.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import threading
from typing import Any, Iterable, Sequence

import numpy as np
from hdrh.histogram import HdrHistogram

PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))
_HIST_MAX_NS = 3_600 * 1_000_000_000  # one hour: anything slower is clamped, not lost
_FOLD_AT = 512  # samples a stage buffers before they are folded into its histogram


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, _HIST_MAX_NS, 3)


def record_many(hist: HdrHistogram, values: Any) -> None:
    """``hist.record_value(v)`` for every ``v`` (clamped to 1 ns .. 1 h), vectorized.

    The index arithmetic is HdrHistogram's own (``_counts_index_for``):
    the bucket is the bit length of ``v | sub_bucket_mask``, computed
    exactly with ``frexp`` (values are below 2**53); tests check the counts
    equal one ``record_value`` per sample.
    """
    v = np.clip(np.asarray(values, dtype=np.int64), 1, _HIST_MAX_NS)
    if v.size == 0:
        return
    _, bit_length = np.frexp((v | hist.sub_bucket_mask).astype(np.float64))
    bucket = bit_length.astype(np.int64) - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub_bucket = v >> (bucket + hist.unit_magnitude)
    index = ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + sub_bucket - hist.sub_bucket_half_count
    ok = (index >= 0) & (index < hist.counts_len)
    slots, counts = np.unique(index[ok], return_counts=True)
    for slot, count in zip(slots.tolist(), counts.tolist()):
        hist.counts[slot] += count
    kept = v[ok]
    if kept.size:
        hist.total_count += int(kept.size)
        hist.min_value = min(hist.min_value, int(kept.min()))
        hist.max_value = max(hist.max_value, int(kept.max()))


def metric_key(name: str, labels: dict[str, Any] | None = None) -> str:
    """``name{a="x",b="y"}`` (labels sorted): one flat, Prometheus-shaped key."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


class Counter:
    """A handle on one counter key: ``inc`` is a dict add, no lookup of the key string."""

    __slots__ = ("_store", "key")

    def __init__(self, store: dict[str, float], key: str):
        self._store = store
        self.key = key
        store.setdefault(key, 0.0)

    def inc(self, amount: float = 1.0) -> None:
        store = self._store
        store[self.key] = store.get(self.key, 0.0) + amount

    @property
    def value(self) -> float:
        return self._store.get(self.key, 0.0)


def values_at_percentiles(hist: HdrHistogram, percentiles: Sequence[float]) -> list[int]:
    """``hist.get_value_at_percentile(p)`` for each ``p``, with one numpy pass over the counts.

    Why: hdrh walks its counts array in Python from index 0 for every
    percentile, ~10^4 steps for a tail in the milliseconds; the monitor asks
    for four percentiles of seven stages every second, which held the GIL
    long enough to stall the pipeline. Same arithmetic: the first index whose
    running count reaches the target count, reported as its highest
    equivalent value.
    """
    counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len]
    running = np.cumsum(counts, dtype=np.int64)
    out = []
    for p in percentiles:
        target = hist.get_target_count_at_percentile(p)
        index = int(np.searchsorted(running, target, side="left"))
        if index >= hist.counts_len:
            out.append(0)
            continue
        value = hist.get_value_from_index(index)
        out.append(hist.get_highest_equivalent_value(value) if p else hist.get_lowest_equivalent_value(value))
    return out


def summary_us(hist: HdrHistogram) -> dict[str, float]:
    """A histogram of nanoseconds as the report's dict: each of PERCENTILES, ``max`` and ``count``, in µs."""
    values = values_at_percentiles(hist, [p for _, p in PERCENTILES])
    out = {label: v / 1000.0 for (label, _), v in zip(PERCENTILES, values, strict=True)}
    out["max"] = hist.get_max_value() / 1000.0
    out["count"] = float(hist.get_total_count())
    return out


class Registry:
    """Counters, gauges and latency histograms by key."""

    def __init__(self) -> None:
        self._counters: dict[str, float] = {}
        self._gauges: dict[str, float] = {}
        self._histograms: dict[str, HdrHistogram] = {}
        self._samples: dict[str, list[int]] = {}  # recorded, not yet folded into _histograms
        self._fold_lock = threading.Lock()  # stages record from their own threads, readers fold

    # -- writing
    def counter(self, name: str, **labels: Any) -> Counter:
        return Counter(self._counters, metric_key(name, labels))

    def inc(self, name: str, amount: float = 1.0, **labels: Any) -> None:
        key = metric_key(name, labels)
        self._counters[key] = self._counters.get(key, 0.0) + amount

    def set_gauge(self, name: str, value: float, **labels: Any) -> None:
        self._gauges[metric_key(name, labels)] = float(value)

    def record_ns(self, stage: str, ns: int) -> None:
        """Record one latency sample of ``stage`` in nanoseconds (below 1 -> 1, huge -> clamped).

        The lock is taken only to create a stage and to fold: a stage records
        up to seven times per tick batch, and an append to a list is atomic
        under the GIL. A fold takes a prefix of the buffer (see _fold), so a
        sample appended by another thread meanwhile is never lost.
        """
        buf = self._samples.get(stage)
        if buf is None:
            with self._fold_lock:
                buf = self._samples.get(stage)
                if buf is None:
                    self._histograms.setdefault(stage, new_histogram())
                    buf = self._samples[stage] = []
        buf.append(ns)
        if len(buf) >= _FOLD_AT:
            with self._fold_lock:
                self._fold(stage)

    def _fold(self, stage: str) -> None:
        """(lock held) Move ``stage``'s buffered samples into its histogram.

        The list stays the stage's buffer: the first ``n`` samples are folded and
        deleted, while a writer that already holds the list may append after them.
        """
        buf = self._samples.get(stage)
        if buf:
            n = len(buf)
            record_many(self._histograms[stage], buf[:n])
            del buf[:n]

    def _fold_all(self) -> None:
        with self._fold_lock:
            for stage in list(self._samples):
                self._fold(stage)

    # -- reading
    def counters(self) -> dict[str, float]:
        return dict(self._counters)

    def gauges(self) -> dict[str, float]:
        return dict(self._gauges)

    def percentiles_us(self, stage: str) -> dict[str, float]:
        self._fold_all()
        hist = self._histograms.get(stage)
        if hist is None or hist.get_total_count() == 0:
            return {}
        return summary_us(hist)

    def latency_us(self) -> dict[str, dict[str, float]]:
        return {stage: self.percentiles_us(stage) for stage in list(self._histograms)}

    def snapshot(self) -> dict[str, Any]:
        return {"counters": self.counters(), "gauges": self.gauges(), "latency_us": self.latency_us()}

    def reset(self) -> None:
        """Forget everything (tests, and `bench` between runs)."""
        self._counters.clear()
        self._gauges.clear()
        with self._fold_lock:
            self._histograms.clear()
            self._samples.clear()


REGISTRY = Registry()


def counter(name: str, **labels: Any) -> Counter:
    return REGISTRY.counter(name, **labels)


def inc(name: str, amount: float = 1.0, **labels: Any) -> None:
    REGISTRY.inc(name, amount, **labels)


def set_gauge(name: str, value: float, **labels: Any) -> None:
    REGISTRY.set_gauge(name, value, **labels)


def record_ns(stage: str, ns: int) -> None:
    REGISTRY.record_ns(stage, ns)


def snapshot() -> dict[str, Any]:
    return REGISTRY.snapshot()


# --------------------------------------------------------------------------
# Pure helpers for the monitor


def rates(prev: dict[str, float], prev_t: float, now: dict[str, float], now_t: float) -> dict[str, float]:
    """Per-second rate of every counter present in both samples (empty if no time passed)."""
    dt = now_t - prev_t
    if dt <= 0:
        return {}
    return {k: (v - prev[k]) / dt for k, v in now.items() if k in prev}


@dataclasses.dataclass(frozen=True)
class GrowthReport:
    """Whether a series keeps growing (a leak suspect), and by how much."""

    flagged: bool
    samples: int
    growth: float  # last - first
    relative_growth: float  # growth / max(|first|, 1)
    rising_fraction: float  # share of steps that did not go down (information)
    slope_per_sample: float
    segment_medians: tuple[float, ...]
    reason: str


def detect_growth(
    samples: Sequence[float],
    min_samples: int = 10,
    min_relative_growth: float = 0.05,
    segments: int = 4,
) -> GrowthReport:
    """Flag a series that keeps growing: the soak test's leak detector.

    The series is cut into ``segments`` consecutive parts; it is flagged when
    the median of every part is higher than the one before (growth sustained
    over the whole window, robust to GC-style noise), the least-squares slope
    is positive, and it grew by at least ``min_relative_growth`` of its first
    value. Noise around a level, a one-off step followed by a plateau, and
    tiny drifts are not flagged.
    """
    values = [float(v) for v in samples if v is not None and math.isfinite(float(v))]
    n = len(values)
    need = max(min_samples, 2 * segments, 2)
    if n < need:
        return GrowthReport(False, n, 0.0, 0.0, 0.0, 0.0, (), f"too few samples ({n} < {need})")
    steps = [b - a for a, b in zip(values, values[1:])]
    rising = sum(1 for s in steps if s >= 0) / len(steps)
    mean_x = (n - 1) / 2.0
    mean_y = sum(values) / n
    var_x = sum((i - mean_x) ** 2 for i in range(n))
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(values)) / var_x
    bounds = [round(k * n / segments) for k in range(segments + 1)]
    medians = tuple(statistics.median(values[bounds[k] : bounds[k + 1]]) for k in range(segments))
    sustained = all(b > a for a, b in zip(medians, medians[1:]))
    # growth measured between the first and last segment (robust to one noisy end point)
    growth = values[-1] - values[0]
    relative = (medians[-1] - medians[0]) / max(abs(medians[0]), 1.0)
    flagged = slope > 0 and sustained and relative >= min_relative_growth
    if flagged:
        reason = f"grew {relative:.1%} over {n} samples; every {n // segments}-sample segment higher than the last"
    elif slope <= 0:
        reason = "not growing"
    elif not sustained:
        reason = "growth not sustained (noise, or a step then flat)"
    else:
        reason = f"growth {relative:.1%} below threshold {min_relative_growth:.1%}"
    return GrowthReport(flagged, n, growth, relative, rising, slope, medians, reason)


def detect_leaks(history: Iterable[dict[str, float]], keys: Iterable[str], **kwargs: Any) -> dict[str, GrowthReport]:
    """:func:`detect_growth` for each of ``keys`` across a history of flat samples."""
    rows = list(history)
    return {key: detect_growth([row[key] for row in rows if key in row], **kwargs) for key in keys}
