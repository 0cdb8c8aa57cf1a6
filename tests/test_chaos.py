"""Chaos: faults in random actors during a real replay change nothing in the journal.

Exceptions (before and after a handler's side effects), hangs caught by
missed heartbeats, SystemExit and actors stopped from outside are injected
into feed, indicators, strategy, safety, orders, venue and monitor while 200k
SPY ticks replay (bench/bench_chaos.py runs 1M). The run must finish by
itself and its journal digest, fills, position and PnL must equal the
undisturbed run's.
"""

from __future__ import annotations

import threading

import pytest

from bench.bench_chaos import SAME, chaos_config, compare, run_replay_under
from engine import faults
from tests.paths import SPY_TICKS, needs_shared

pytestmark = needs_shared
TICKS = 200_000


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    return run_replay_under(chaos_config(tmp_path_factory.mktemp("clean"), TICKS), SPY_TICKS, chaos=None)


@pytest.mark.timeout(240)
def test_many_faults_in_every_actor_leave_the_journal_as_undisturbed(undisturbed, tmp_path):
    report = run_replay_under(chaos_config(tmp_path, TICKS), SPY_TICKS,
                              chaos={"faults": 40, "seed": 12, "max_after": 10})
    assert compare(undisturbed, report) == []
    assert {k: report[k] for k in SAME} == {k: undisturbed[k] for k in SAME}
    assert report["fills"] > 100  # a run that actually trades
    # Many faults fired, of every kind, and a supervisor acted on each one.
    assert report["faults_injected"] >= 10, report
    assert report["faults_handled"] == report["faults_injected"], report
    assert set(report["faults_by_kind"]) == set(faults.KINDS), report["faults_by_kind"]
    assert len(report["faults_by_target"]) >= 5, report["faults_by_target"]
    assert report["restarts"].get("feed", 0) >= 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", ["orders", "strategy:rsi_mr"])
def test_a_hang_in_each_pipeline_actor_is_detected_and_survived(undisturbed, tmp_path, target):
    report = run_replay_under(chaos_config(tmp_path, TICKS), SPY_TICKS,
                              chaos={"faults": 1, "seed": 1, "kinds": ["hang"], "targets": [target], "max_after": 5})
    assert report["faults_by_kind"] == {"hang": 1} and report["faults_handled"] == 1
    assert report["restarts"].get(target, 0) >= 1
    assert compare(undisturbed, report) == []


def test_injector_fires_on_the_nth_data_message_only():
    fi = faults.FaultInjector(message_types=frozenset({"int"}))
    fired = fi.arm("a", "raise", after=2)
    fi.before("a", "not data")  # wrong type: not counted
    fi.before("b", 1)  # another actor
    fi.before("a", 1)
    fi.before("a", 2)
    assert not fired.is_set()
    with pytest.raises(faults.InjectedFault):
        fi.before("a", 3)
    assert fired.is_set() and [(r.name, r.kind) for r in fi.fired] == [("a", "raise")]
    fi.before("a", 4)  # disarmed once fired
    fi.arm("a", "raise_after")
    fi.before("a", 5)  # raise_after does nothing before the handler ...
    with pytest.raises(faults.InjectedFault):
        fi.after("a", 5)  # ... and raises after it
    with pytest.raises(ValueError, match="fault kind must be one of"):
        fi.arm("a", "explode")


def test_a_hang_blocks_until_released_then_raises():
    fi = faults.FaultInjector(message_types=frozenset({"int"}), hang_timeout_s=30)
    fi.arm("a", "hang")
    entered, outcome = threading.Event(), []

    def handler():
        entered.set()
        try:
            fi.before("a", 1)
        except faults.InjectedFault as exc:
            outcome.append(str(exc))

    t = threading.Thread(target=handler)
    t.start()
    assert entered.wait(5)
    t.join(0.2)
    assert t.is_alive() and not outcome  # still blocked
    fi.release_hangs()
    t.join(5)
    assert outcome and "released" in outcome[0]
