"""``/metrics`` in Prometheus text format, built from the MonitorActor's snapshot.

Why a custom Collector in a private CollectorRegistry: the numbers already
live in the engine (``MetricsSnapshot`` from the monitor, and the process-wide
``engine.metrics`` registry when present). Re-exporting them at scrape time
keeps one source of truth, adds no cost to the trading path, and a private
registry keeps prometheus-client's global default one (and its collectors) out.

Naming: snapshot counter ``"orders.FILLED"`` becomes
``actortrader_orders_total{outcome="FILLED"}``; the label name is chosen per
family (``LABELS``) and defaults to ``kind``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine.messages import MetricsSnapshot

PREFIX = "actortrader_"
LABELS = {"orders": "outcome", "rejects": "reason", "denials": "reason", "fills": "symbol", "ticks": "feed",
          "batches": "feed", "restarts": "actor"}  # fmt: skip
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BAD = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(raw: str) -> str:
    name = _BAD.sub("_", raw).strip("_").lower() or "unnamed"
    return name if not name[0].isdigit() else "_" + name


def _split(key: str) -> tuple[str, str | None]:
    family, sep, label = key.partition(".")
    return metric_name(family), (label if sep else None)


class SnapshotCollector:
    """Collect one MetricsSnapshot (plus optional extra numbers) as metric families."""

    def __init__(self, snapshot: MetricsSnapshot | None, extra: dict[str, Any] | None = None, api: dict[str, float] | None = None):
        self.snapshot = snapshot
        self.extra = extra or {}
        self.api = api or {}

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        up = GaugeMetricFamily(PREFIX + "monitor_up", "1 when the monitor answered this scrape")
        up.add_metric([], 1.0 if snap is not None else 0.0)
        yield up
        for name, value in self.api.items():
            g = GaugeMetricFamily(PREFIX + "api_" + metric_name(name), f"API {name}")
            g.add_metric([], float(value))
            yield g
        if snap is not None:
            yield from self._process(snap)
            yield from self._counters(snap.counters)
            yield from self._rates(snap.rates)
            yield from self._latency(snap.latency_us)
            yield from self._actors(snap)
        yield from self._extra(self.extra)

    @staticmethod
    def _process(snap: MetricsSnapshot) -> Iterable[Metric]:
        for name, help_, value in (
            ("process_rss_bytes", "resident set size of the engine process", snap.rss_bytes),
            ("process_cpu_percent", "CPU use of the engine process (100 = one core)", snap.cpu_percent),
            ("process_threads", "threads in the engine process", snap.threads),
            ("process_open_fds", "open file descriptors", snap.open_fds),
        ):
            g = GaugeMetricFamily(PREFIX + name, help_)
            g.add_metric([], float(value))
            yield g

    @staticmethod
    def _counters(counters: dict[str, float]) -> Iterable[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for key in sorted(counters):
            family, label = _split(key)
            label_name = LABELS.get(family, "kind")
            fam = families.get(family)
            if fam is None:
                fam = families[family] = CounterMetricFamily(
                    PREFIX + family, f"engine counter {family}", labels=[label_name]
                )
            fam.add_metric([label if label is not None else "all"], float(counters[key]))
        yield from families.values()

    @staticmethod
    def _rates(rates: dict[str, float]) -> Iterable[Metric]:
        if rates:
            g = GaugeMetricFamily(PREFIX + "rate_per_second", "recent event rates", labels=["what"])
            for key in sorted(rates):
                g.add_metric([key], float(rates[key]))
            yield g

    @staticmethod
    def _latency(latency_us: dict[str, dict[str, float]]) -> Iterable[Metric]:
        if not latency_us:
            return
        g = GaugeMetricFamily(
            PREFIX + "latency_seconds", "latency quantiles over the recent window", labels=["path", "quantile"]
        )
        for path in sorted(latency_us):
            for stat, value in sorted(latency_us[path].items()):
                q = _quantile_label(stat)
                if q is not None:
                    g.add_metric([path, q], float(value) / 1e6)
        yield g

    @staticmethod
    def _actors(snap: MetricsSnapshot) -> Iterable[Metric]:
        if not snap.actors:
            return
        restarts = CounterMetricFamily(PREFIX + "actor_restarts", "restarts per actor", labels=["actor"])
        depth = GaugeMetricFamily(PREFIX + "actor_mailbox_depth", "messages waiting per actor", labels=["actor"])
        running = GaugeMetricFamily(PREFIX + "actor_up", "1 when the actor is running", labels=["actor"])
        processed = CounterMetricFamily(PREFIX + "actor_processed", "messages handled per actor", labels=["actor"])
        for a in snap.actors:
            restarts.add_metric([a.name], float(a.restarts))
            depth.add_metric([a.name], float(a.mailbox_depth))
            running.add_metric([a.name], 1.0 if a.status == "running" else 0.0)
            processed.add_metric([a.name], float(a.processed))
        yield from (restarts, depth, running, processed)

    @staticmethod
    def _extra(extra: dict[str, Any]) -> Iterable[Metric]:
        """Numbers from ``engine.metrics.snapshot()``: scalars become gauges, flat dicts labelled gauges."""
        for key in sorted(extra):
            value = extra[key]
            name = PREFIX + "engine_" + metric_name(key)
            if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
                continue
            if isinstance(value, dict):
                numbers = {k: v for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                if numbers:
                    g = GaugeMetricFamily(name, f"engine metric {key}", labels=["stat"])
                    for k in sorted(numbers):
                        g.add_metric([str(k)], float(numbers[k]))
                    yield g
            else:
                g = GaugeMetricFamily(name, f"engine metric {key}")
                g.add_metric([], float(value))
                yield g


def _quantile_label(stat: str) -> str | None:
    m = re.fullmatch(r"p(\d+(?:\.\d+)?)", stat)
    if m:
        return str(float(m.group(1)) / 100)
    return {"max": "1.0", "min": "0.0"}.get(stat)


def engine_metrics_source() -> Callable[[], dict[str, Any]] | None:
    """The hook for ``engine.metrics.snapshot()``, or None while that module does not exist."""
    try:
        from engine import metrics  # noqa: PLC0415 - optional, written by another part
    except ImportError:
        return None
    snap = getattr(metrics, "snapshot", None)
    return snap if callable(snap) else None


def render(snapshot: MetricsSnapshot | None, extra: dict[str, Any] | None = None, api: dict[str, float] | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, extra, api))
    return generate_latest(registry)
