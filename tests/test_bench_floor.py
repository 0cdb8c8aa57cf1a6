"""The live figures' floors (engine/bench_floor.py): the pipeline's shape with empty handlers, an idle thread's wake-ups."""

from __future__ import annotations

import pytest

from engine.bench_floor import LIVE_STAGES, measure_framework_floor, measure_wakeup_floor

pytestmark = pytest.mark.timeout(60)


def _monotone(p: dict[str, float]) -> bool:
    return 0 <= p["p50"] <= p["p90"] <= p["p99"] <= p["p99.9"] <= p["max"]


@pytest.mark.parametrize("stages", [1, LIVE_STAGES])
def test_framework_floor_has_the_live_pipelines_shape(stages):
    r = measure_framework_floor(seconds=0.4, rate=2000.0, stages=stages, warmup_s=0.1)
    assert r["stages"] == stages and r["batches"] > 100
    assert r["ticks"] >= r["batches"]  # ticks due while the credit was out rode together
    assert 0 < r["samples"] <= r["batches"]  # one latency per batch that reached the last actor after the warm-up
    # A quiet live tick's calls: the pacer's timer, each stage, the credit back (one fewer when the
    # credit finds a tick already due and sends at once); the start and the final asks are noise.
    assert stages + 1 <= r["handler_calls_per_batch"] <= stages + 2.05
    assert _monotone(r["late_us"])


def test_framework_floor_rejects_a_meaningless_shape():
    with pytest.raises(ValueError, match="stages >= 1"):
        measure_framework_floor(seconds=0.1, stages=0)


def test_wakeup_floor_records_every_tick_of_the_schedule():
    r = measure_wakeup_floor(seconds=0.3, rate=1000.0)
    assert 0 < r["samples"] <= 300  # a late wake-up skips what it missed, never bursts
    assert _monotone(r["late_us"])
