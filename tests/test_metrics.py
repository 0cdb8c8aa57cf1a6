"""Metrics registry, HDR latency percentiles, rates, and the leak detector."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from engine import metrics
from engine.metrics import Registry, detect_growth, detect_leaks, metric_key, rates


def test_counters_and_gauges_by_name_and_labels():
    reg = Registry()
    reg.inc("ticks_total", 100, feed="spy")
    reg.inc("ticks_total", 50, feed="spy")
    reg.inc("ticks_total", 1, feed="qqq")
    handle = reg.counter("batches_total", actor="ind")
    handle.inc()
    handle.inc(2)
    reg.set_gauge("in_flight", 3, feed="spy")
    snap = reg.snapshot()
    assert snap["counters"] == {'ticks_total{feed="spy"}': 150.0, 'ticks_total{feed="qqq"}': 1.0, 'batches_total{actor="ind"}': 3.0}
    assert snap["gauges"] == {'in_flight{feed="spy"}': 3.0}
    assert handle.value == 3.0
    reg.reset()
    handle.inc()  # a handle survives a reset
    assert reg.counters() == {'batches_total{actor="ind"}': 1.0}


def test_metric_key_sorts_labels():
    assert metric_key("x", {"b": 1, "a": "z"}) == 'x{a="z",b="1"}' and metric_key("x") == "x"


def test_latency_percentiles_match_numpy_within_hdr_precision():
    reg = Registry()
    rng = np.random.default_rng(3)
    samples = rng.lognormal(mean=10, sigma=1.0, size=20_000).astype(np.int64)  # ~22 µs median
    for ns in samples:
        reg.record_ns("hop", int(ns))
    p = reg.percentiles_us("hop")
    for label, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)):
        expected = np.percentile(samples, q) / 1000.0
        assert p[label] == pytest.approx(expected, rel=0.01), label
    assert p["max"] == pytest.approx(samples.max() / 1000.0, rel=0.001)
    assert p["count"] == 20_000
    assert reg.latency_us()["hop"] == p
    assert reg.percentiles_us("never") == {}


def test_bulk_recording_equals_hdrh_sample_by_sample():
    """record_many / values_at_percentiles are hdrh's own arithmetic, vectorized: identical counts and values."""
    rng = np.random.default_rng(11)
    for sigma in (0.5, 2.0, 4.0):
        samples = np.concatenate([rng.lognormal(11, sigma, 5_000).astype(np.int64), [0, -3, 1, 2**41, 10**15]])
        one, bulk = metrics.new_histogram(), metrics.new_histogram()
        for ns in samples:
            one.record_value(min(max(int(ns), 1), 3_600 * 10**9))
        metrics.record_many(bulk, samples)
        assert list(one.counts) == list(bulk.counts)
        assert (one.total_count, one.min_value, one.max_value) == (bulk.total_count, bulk.min_value, bulk.max_value)
        qs = [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
        assert metrics.values_at_percentiles(bulk, qs) == [one.get_value_at_percentile(q) for q in qs]


def test_samples_recorded_from_many_threads_are_all_counted():
    reg = Registry()

    def work(k: int) -> None:
        for i in range(3_000):  # more than one fold each, so folds and appends interleave
            reg.record_ns("shared", 1_000 + i + k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reg.percentiles_us("shared")["count"] == 12_000


def test_a_reader_folding_while_threads_record_loses_no_sample():
    reg = Registry()
    reg.record_ns("shared", 1_000)  # the stage exists before the race starts
    go = threading.Barrier(4)
    writing = threading.Event()

    def work(k: int) -> None:
        go.wait()
        for i in range(20_000):
            reg.record_ns("shared", 1_000 + i + k)

    def read() -> None:
        go.wait()
        while not writing.is_set():  # a metrics scrape folds whatever is buffered, mid-append
            reg.percentiles_us("shared")

    writers = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    reader = threading.Thread(target=read)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads between almost any two bytecodes: the race, often
    try:
        for t in (*writers, reader):
            t.start()
        for t in writers:
            t.join()
        writing.set()
        reader.join()
    finally:
        sys.setswitchinterval(interval)
    assert reg.percentiles_us("shared")["count"] == 1 + 60_000


def test_latency_clamps_nonsense_instead_of_failing():
    reg = Registry()
    reg.record_ns("x", -5)
    reg.record_ns("x", 10**18)
    assert reg.percentiles_us("x")["count"] == 2


def test_each_thread_owning_its_keys_needs_no_lock():
    reg = Registry()

    def work(name: str) -> None:
        c = reg.counter("processed_total", actor=name)
        for _ in range(20_000):
            c.inc()

    threads = [threading.Thread(target=work, args=(f"a{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(v == 20_000 for v in reg.counters().values()) and len(reg.counters()) == 4


def test_module_level_registry_functions():
    metrics.REGISTRY.reset()
    metrics.inc("m_total", 2)
    metrics.set_gauge("g", 1.5)
    metrics.record_ns("stage", 1000)
    snap = metrics.snapshot()
    assert snap["counters"]["m_total"] == 2 and snap["gauges"]["g"] == 1.5 and snap["latency_us"]["stage"]["max"] == 1.0
    metrics.REGISTRY.reset()


def test_rates_per_second():
    assert rates({"a": 10, "b": 0}, 1.0, {"a": 30, "b": 5, "new": 9}, 3.0) == {"a": 10.0, "b": 2.5}
    assert rates({"a": 1}, 2.0, {"a": 5}, 2.0) == {}


def test_detect_growth_flags_a_steady_leak():
    series = [100_000_000 + 1_000_000 * i for i in range(30)]
    report = detect_growth(series)
    assert report.flagged and report.growth == 29_000_000 and report.rising_fraction == 1.0


def test_detect_growth_flags_a_noisy_but_monotonic_leak():
    rng = np.random.default_rng(1)
    steps = rng.integers(-3, 6, size=80)  # a third of the steps go down
    series = np.cumsum(steps) + 500  # ~+14% over the window
    report = detect_growth(series.tolist())
    assert report.rising_fraction < 0.8 and report.flagged


@pytest.mark.parametrize(
    "series, why",
    [
        ([100.0] * 30, "not growing"),
        ([100.0 + (5 if i % 2 else -5) for i in range(30)], "not sustained"),
        ([100.0] * 10 + [200.0] * 20, "not sustained"),
        ([1_000_000.0 + i for i in range(30)], "below threshold"),
        ([1.0, 2.0, 3.0], "too few samples"),
        ([100.0 - i for i in range(30)], "not growing"),
    ],
)
def test_detect_growth_does_not_flag_healthy_series(series, why):
    report = detect_growth(series)
    assert not report.flagged and why in report.reason


def test_detect_leaks_over_a_history():
    history = [{"rss": 100 + 10 * i, "fds": 12} for i in range(20)]
    reports = detect_leaks(history, ["rss", "fds", "missing"])
    assert reports["rss"].flagged and not reports["fds"].flagged and not reports["missing"].flagged
