"""Process-wide metrics: counters, gauges, latency histograms, leak detection.

Why no locks: every actor increments only its own keys (its name is in the
key or in a label), and a Python dict update of one key from one thread is
safe under the GIL; readers copy the dicts (one C-level copy, atomic under
the GIL) and never see a torn value. Increments run per *batch*, so a
handle lookup plus an add is cheap enough; hot code keeps a :class:`Counter`
handle and calls ``inc`` on it.

Latency uses HdrHistogram (``hdrhistogram`` package): recorded in
nanoseconds, reported in microseconds at p50/p90/p99/p99.9/max.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Iterable, Sequence

from hdrh.histogram import HdrHistogram

PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))
_HIST_MAX_NS = 3_600 * 1_000_000_000  # one hour: anything slower is clamped, not lost


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


class Registry:
    """Counters, gauges and latency histograms by key."""

    def __init__(self) -> None:
        self._counters: dict[str, float] = {}
        self._gauges: dict[str, float] = {}
        self._histograms: dict[str, HdrHistogram] = {}

    # -- writing
    def counter(self, name: str, **labels: Any) -> Counter:
        return Counter(self._counters, metric_key(name, labels))

    def inc(self, name: str, amount: float = 1.0, **labels: Any) -> None:
        key = metric_key(name, labels)
        self._counters[key] = self._counters.get(key, 0.0) + amount

    def set_gauge(self, name: str, value: float, **labels: Any) -> None:
        self._gauges[metric_key(name, labels)] = float(value)

    def record_ns(self, stage: str, ns: int) -> None:
        """Record one latency sample of ``stage`` in nanoseconds (negative -> 0, huge -> clamped)."""
        hist = self._histograms.get(stage)
        if hist is None:
            hist = self._histograms[stage] = HdrHistogram(1, _HIST_MAX_NS, 3)
        hist.record_value(min(max(int(ns), 1), _HIST_MAX_NS))

    # -- reading
    def counters(self) -> dict[str, float]:
        return dict(self._counters)

    def gauges(self) -> dict[str, float]:
        return dict(self._gauges)

    def percentiles_us(self, stage: str) -> dict[str, float]:
        hist = self._histograms.get(stage)
        if hist is None or hist.get_total_count() == 0:
            return {}
        out = {label: hist.get_value_at_percentile(p) / 1000.0 for label, p in PERCENTILES}
        out["max"] = hist.get_max_value() / 1000.0
        out["count"] = float(hist.get_total_count())
        return out

    def latency_us(self) -> dict[str, dict[str, float]]:
        return {stage: self.percentiles_us(stage) for stage in list(self._histograms)}

    def snapshot(self) -> dict[str, Any]:
        return {"counters": self.counters(), "gauges": self.gauges(), "latency_us": self.latency_us()}

    def reset(self) -> None:
        """Forget everything (tests, and `bench` between runs)."""
        self._counters.clear()
        self._gauges.clear()
        self._histograms.clear()


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
