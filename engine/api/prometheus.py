"""``/metrics`` in Prometheus text format, built from the MonitorActor's snapshot.

Why a custom Collector in a private CollectorRegistry: the numbers already
live in the engine (``MetricsSnapshot`` from the monitor, and the process-wide
``engine.metrics`` registry when present). Re-exporting them at scrape time
keeps one source of truth, adds no cost to the trading path, and a private
registry keeps prometheus-client's global default one (and its collectors) out.

Naming: the engine registry's keys are already Prometheus-shaped
(``feed_ticks_total{feed="feed"}`` becomes ``actortrader_feed_ticks_total{feed="feed"}``);
the older dotted form ``"orders.FILLED"`` becomes
``actortrader_orders_total{outcome="FILLED"}`` with the label name chosen per
family (``LABELS``, default ``kind``).
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


_KEYED = re.compile(r"^([^{]+)\{(.*)\}$")
_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """``name{a="x"}`` or ``family.label`` -> (metric family without ``_total``, labels)."""
    m = _KEYED.match(key)
    if m:
        family = metric_name(m.group(1))
        labels = {k: v for k, v in _PAIR.findall(m.group(2))}
    else:
        raw, sep, label = key.partition(".")
        family = metric_name(raw)
        labels = {LABELS.get(family, "kind"): label if sep else "all"}
    if family.endswith("_total"):
        family = family[: -len("_total")]  # CounterMetricFamily adds it back
    return family, labels


def _families(values: dict[str, float]) -> dict[str, list[tuple[dict[str, str], float]]]:
    grouped: dict[str, list[tuple[dict[str, str], float]]] = {}
    for key in sorted(values):
        family, labels = parse_key(key)
        grouped.setdefault(family, []).append((labels, float(values[key])))
    return grouped


def _label_names(samples: list[tuple[dict[str, str], float]]) -> list[str]:
    names: list[str] = []
    for labels, _ in samples:
        names.extend(k for k in labels if k not in names)
    return names


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
        extra = dict(self.extra)
        if isinstance(extra.get("counters"), dict) and isinstance(extra.get("gauges"), dict):
            # engine.metrics.snapshot(): the monitor already carries its counters and latencies;
            # they are shown from here only when the monitor did not answer.
            counters, gauges = extra.pop("counters"), extra.pop("gauges")
            extra.pop("latency_us", None)
            if snap is None:
                yield from self._counters(counters)
            yield from self._counters(gauges, GaugeMetricFamily, "engine gauge")
        yield from self._extra(extra)

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
    def _counters(counters: dict[str, float], kind: type = CounterMetricFamily, what: str = "engine counter") -> Iterable[Metric]:
        for family, samples in _families(counters).items():
            names = _label_names(samples)
            fam = kind(PREFIX + family, f"{what} {family}", labels=names)
            for labels, value in samples:
                fam.add_metric([labels.get(n, "") for n in names], value)
            yield fam

    @staticmethod
    def _rates(rates: dict[str, float]) -> Iterable[Metric]:
        if not rates:
            return
        samples = [({"what": family, **labels}, float(rates[key])) for key in sorted(rates)
                   for family, labels in (parse_key(key),)]  # fmt: skip
        names = _label_names(samples)
        g = GaugeMetricFamily(PREFIX + "rate_per_second", "recent event rates", labels=names)
        for labels, value in samples:
            g.add_metric([labels.get(n, "") for n in names], value)
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
        return repr(round(float(m.group(1)) / 100, 6))
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
