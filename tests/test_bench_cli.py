"""`actortrader bench`: exits 0 and writes every figure's key; a missing data file is a clear exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from engine.bench import reference_fills as bench_reference_fills
from tests.paths import REPO, SPY_TICKS, needs_shared
from tests.test_trading_pure import reference_fills


def run_cli(*args: str, timeout: float = 110) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", "bench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@needs_shared
def test_bench_writes_every_figure(tmp_path):
    out = tmp_path / "x.json"
    proc = run_cli("--ticks", "20000", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert {"baseline", "job", "live", "memory", "rsi", "ratios"} <= r.keys()
    job = r["job"]
    assert job["ticks"] == 20_000 and job["orders"] > 0
    assert {"ticks_per_s", "us_per_tick", "us_per_order", "stages_cpu_us_per_tick", "replay_latency_us"} <= job.keys()
    assert {"OrderActor", "VenueActor", "StrategyActor", "IndicatorActor"} <= job["stages_cpu_us_per_tick"].keys()
    assert job["loop_threads_cpu_us_per_tick"]  # the default layout: the pipeline on a shared loop
    assert job["quiet_ticks_per_s"] > 0 and job["us_per_order_marginal"] >= 0
    assert r["ratios"]["fills_match_baseline"] is True
    assert r["job"]["fills"] == r["baseline"]["fills"]
    live = r["live"]["latency_us"]["feed_to_venue"]
    assert live["count"] > 0 and live["p50"] <= live["p99"] <= live["p99.9"] <= live["max"]
    floor = r["live"]["wakeup_floor"]
    assert floor["samples"] > 0 and 0 <= floor["late_us"]["p50"] <= floor["late_us"]["p99"] <= floor["late_us"]["max"]
    assert r["live"]["vs_floor"]["feed_to_venue"]["p50"] > 0
    framework = r["live"]["framework_floor"]
    assert framework["stages"] == 5 and framework["samples"] > 0
    assert r["live"]["vs_framework_floor"]["feed_to_venue"]["p50"] > 0
    mem = r["memory"]
    assert mem["sizes"] == [20_000, 400_000]
    assert mem["400000"]["ticks"] == 400_000 and mem["20000"]["ticks"] == 20_000
    assert r["rsi"]["ns_per_point"] > 0
    assert "full job" in proc.stdout and "peak RSS" in proc.stdout  # the readable table


def test_missing_data_is_a_clear_error(tmp_path):
    proc = run_cli("--data", str(tmp_path / "nope.csv"), "--ticks", "5000", timeout=60)
    assert proc.returncode == 2
    assert "nope.csv" in proc.stderr and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bench_baseline_is_the_tested_plain_loop():
    rng = np.random.default_rng(3)
    prices = 100 + np.cumsum(rng.normal(0, 0.05, 5000))
    from engine.indicators import rsi

    r = rsi(prices, 14)
    expected = reference_fills(prices, r)
    fills, pos, realized = bench_reference_fills(prices, r)
    assert fills == len(expected) > 10
    assert pos == sum(q for _, q, _ in expected)
    held, cost, want = 0.0, 0.0, 0.0
    for _, q, p in expected:
        if q > 0:
            held, cost = held + q, cost + q * p
        else:
            avg = cost / held
            want += (p - avg) * -q
            held, cost = held + q, cost + q * avg
    assert realized == want


@needs_shared
def test_stage_histograms_are_recorded_once_per_batch_in_pipeline_order(tmp_path):
    from engine import metrics
    from engine.replay import run_replay
    from tests.test_replay_e2e import job_config

    metrics.REGISTRY.reset()
    rep = run_replay(job_config(tmp_path, 20_000, batch_size=512), str(SPY_TICKS), symbol="SPY", progress=False,
                     timeout_s=60)
    batches = -(-20_000 // 512)
    lat = metrics.REGISTRY.latency_us()
    stages = ("feed_to_indicators", "feed_to_strategy", "feed_to_safety")
    for stage in stages:
        assert lat[stage]["count"] == batches, stage  # once per batch, never per tick
    # The end-of-stream round also reaches the OrderActor, the venue and back.
    for stage in ("feed_to_orders", "feed_to_venue", "feed_to_report"):
        assert lat[stage]["count"] == batches + 1, stage
    assert 0 < lat["tick_to_order_at_venue"]["count"] <= min(rep["orders"], batches)
    # Every batch reaches the stages in this order, from one origin: each percentile is ordered too.
    for label in ("p50", "p90", "p99", "max"):
        values = [lat[s][label] for s in stages]
        assert values == sorted(values), (label, values)


@needs_shared
def test_unwritable_json_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("--ticks", "2000", "--json", str(blocker / "sub" / "x.json"))
    assert proc.returncode == 2
    assert "--json" in proc.stderr and "cannot write" in proc.stderr and "Traceback" not in proc.stderr
