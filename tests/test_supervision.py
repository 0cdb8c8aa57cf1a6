"""The pure supervision rules: strategies, restart types, intensity, backoff, heartbeats, decider, specs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.config import SupervisionSection
from engine.supervision import (
    CHILD_KINDS,
    ERROR_SUPERVISOR_POLICY,
    FAILURE_KINDS,
    Action,
    ChildSpec,
    HeartbeatTracker,
    RestartIntensity,
    RestartStrategy,
    RestartType,
    SupervisionSpecError,
    SupervisorSpec,
    backoff_delay,
    children_to_restart,
    error_supervisor_decider,
    should_restart,
)

IDS = ["feed", "ind", "strat", "safety", "orders"]


def noop_factory(ctx):  # never called by these tests
    raise AssertionError("not started in pure tests")


@pytest.mark.parametrize(
    "strategy, failed, expected",
    [
        (RestartStrategy.ONE_FOR_ONE, "strat", ["strat"]),
        (RestartStrategy.REST_FOR_ONE, "strat", ["strat", "safety", "orders"]),
        (RestartStrategy.REST_FOR_ONE, "orders", ["orders"]),
        (RestartStrategy.REST_FOR_ONE, "feed", IDS),
        (RestartStrategy.ONE_FOR_ALL, "orders", IDS),
    ],
)
def test_children_to_restart(strategy, failed, expected):
    assert children_to_restart(strategy, IDS, failed) == expected


def test_children_to_restart_unknown_child_is_an_error():
    with pytest.raises(KeyError, match="'ghost' is not a child"):
        children_to_restart(RestartStrategy.ONE_FOR_ONE, IDS, "ghost")


@pytest.mark.parametrize(
    "restart, failure, expected",
    [
        (RestartType.PERMANENT, "exception", True),
        (RestartType.PERMANENT, "stopped", True),
        (RestartType.TRANSIENT, "exception", True),
        (RestartType.TRANSIENT, "hung", True),
        (RestartType.TRANSIENT, "stopped", False),
        (RestartType.TEMPORARY, "exception", False),
        (RestartType.TEMPORARY, "stopped", False),
    ],
)
def test_restart_types(restart, failure, expected):
    assert should_restart(restart, failure) is expected


def test_intensity_allows_max_restarts_within_the_period_then_refuses():
    window = RestartIntensity(max_restarts=3, period_s=10.0)
    assert [window.record(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert window.record(3.0) is False  # the 4th within 10 s


def test_intensity_window_slides():
    window = RestartIntensity(max_restarts=2, period_s=10.0)
    assert window.record(0.0) and window.record(5.0)
    assert window.record(10.5)  # the restart at t=0 has left the window
    assert window.recent(10.5) == 2
    assert window.record(11.0) is False


def test_zero_max_restarts_escalates_on_the_first_failure():
    assert RestartIntensity(0, 5.0).record(0.0) is False


def test_backoff_doubles_and_caps():
    delays = [backoff_delay(n, 0.1, 1.0, 0.0, 0.5) for n in range(1, 7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_disabled_when_min_is_zero():
    assert backoff_delay(5, 0.0, 10.0, 0.5, 0.9) == 0.0


@given(
    attempt=st.integers(1, 200),
    min_s=st.floats(0.001, 5.0),
    extra=st.floats(0.0, 60.0),
    jitter=st.floats(0.0, 1.0),
    rand=st.floats(0.0, 0.999999),
)
def test_backoff_stays_within_the_jitter_band_and_the_cap(attempt, min_s, extra, jitter, rand):
    max_s = min_s + extra
    delay = backoff_delay(attempt, min_s, max_s, jitter, rand)
    base = min(max_s, min_s * 2 ** (attempt - 1))
    assert 0.0 <= delay <= max_s
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


def test_heartbeat_tracker_declares_hung_after_consecutive_misses_without_progress():
    hb = HeartbeatTracker(misses_allowed=3)
    assert hb.tick(answered=True, progress=5) is False
    assert [hb.tick(False, 5), hb.tick(False, 5)] == [False, False]
    assert hb.tick(False, 5) is True


def test_heartbeat_tracker_progress_or_an_answer_resets_the_count():
    hb = HeartbeatTracker(misses_allowed=2)
    hb.tick(True, 0)
    assert hb.tick(False, 0) is False
    assert hb.tick(False, 1) is False  # busy: processed moved
    assert hb.tick(False, 1) is False
    assert hb.tick(True, 1) is False  # answered
    assert hb.tick(False, 1) is False and hb.tick(False, 1) is True


def test_error_supervisor_policy_covers_every_pair():
    assert set(ERROR_SUPERVISOR_POLICY) == {(k, f) for k in CHILD_KINDS for f in FAILURE_KINDS}


@pytest.mark.parametrize("kind", ["order", "safety", "venue"])
def test_trading_critical_failures_pause_then_restart(kind):
    for failure in FAILURE_KINDS:
        decision = error_supervisor_decider(kind, failure)
        assert decision.action is Action.RESTART and decision.pause_trading


@pytest.mark.parametrize("kind", ["feed", "indicator", "strategy", "monitor", "supervisor", "other"])
def test_other_failures_restart_without_touching_trading(kind):
    for failure in FAILURE_KINDS:
        decision = error_supervisor_decider(kind, failure)
        assert decision.action is Action.RESTART and not decision.pause_trading


def test_unknown_pairs_escalate():
    assert error_supervisor_decider("martian", "exception").action is Action.ESCALATE


def test_child_spec_errors_name_the_child_and_field():
    with pytest.raises(SupervisionSpecError, match="child spec 'x': kind must be one of"):
        ChildSpec("x", noop_factory, kind="bogus")  # type: ignore[arg-type]
    with pytest.raises(SupervisionSpecError, match="child spec 'x': restart must be one of permanent"):
        ChildSpec("x", noop_factory, restart="sometimes")  # type: ignore[arg-type]
    with pytest.raises(SupervisionSpecError, match="child spec 'x': shutdown_timeout_s must be > 0"):
        ChildSpec("x", noop_factory, shutdown_timeout_s=0)
    with pytest.raises(SupervisionSpecError, match="child spec 'x': factory must be callable"):
        ChildSpec("x", "not a function")  # type: ignore[arg-type]
    with pytest.raises(SupervisionSpecError, match="id must be a non-empty string"):
        ChildSpec("", noop_factory)
    assert ChildSpec("x", noop_factory, restart="transient").restart is RestartType.TRANSIENT  # type: ignore[arg-type]


def test_supervisor_spec_errors_name_the_supervisor_and_field():
    a = ChildSpec("a", noop_factory)
    with pytest.raises(SupervisionSpecError, match="supervisor spec 'root': duplicate child id 'a'"):
        SupervisorSpec("root", (a, ChildSpec("a", noop_factory)))
    with pytest.raises(SupervisionSpecError, match="supervisor spec 'root': strategy must be one of"):
        SupervisorSpec("root", (a,), strategy="round_robin")  # type: ignore[arg-type]
    with pytest.raises(SupervisionSpecError, match="period_s must be > 0"):
        SupervisorSpec("root", (a,), period_s=0)
    with pytest.raises(SupervisionSpecError, match="backoff_max_s must be >= backoff_min_s"):
        SupervisorSpec("root", (a,), backoff_min_s=2, backoff_max_s=1)
    with pytest.raises(SupervisionSpecError, match=r"children\[0\] must be a ChildSpec"):
        SupervisorSpec("root", ("a",))  # type: ignore[arg-type]


def test_spec_from_config_takes_the_supervision_section_and_overrides():
    cfg = SupervisionSection(max_restarts=7, period_s=12.0, backoff_min_s=0.5, backoff_max_s=4.0,
                             backoff_jitter=0.2, heartbeat_interval_s=0.5, heartbeat_misses=4)
    spec = SupervisorSpec.from_config("root", [ChildSpec("a", noop_factory)], cfg, RestartStrategy.ONE_FOR_ALL, safety_name="risk")
    assert (spec.max_restarts, spec.period_s, spec.backoff_min_s, spec.backoff_max_s) == (7, 12.0, 0.5, 4.0)
    assert (spec.backoff_jitter, spec.heartbeat_interval_s, spec.heartbeat_misses) == (0.2, 0.5, 4)
    assert spec.strategy is RestartStrategy.ONE_FOR_ALL and spec.safety_name == "risk"
    assert spec.children == (spec.child("a"),)
