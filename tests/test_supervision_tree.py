"""The supervision tree over real pykka actors: every OTP semantic, every pykka trap.

Synchronisation is on observed behaviour (Journal.wait_for on a condition,
futures with timeouts), never on sleeping. Heartbeats run every 50 ms.
"""

from __future__ import annotations

import threading
import time

import pykka
import pytest

from actors.directory import Directory
from actors.supervisor import SupervisorActor, TreeStartError, start_tree, supervisor_child
from engine.messages import ActorStatus, GetActorTree, GetTradingState, TradingState
from engine.supervision import Action, ChildSpec, Decision, RestartStrategy, RestartType
from tests.test_supervision_support import (
    TIMEOUT,
    Item,
    Journal,
    Worker,
    fast_spec,
    items_of,
    safety_spec,
    starts,
    worker_spec,
)


@pytest.fixture
def env():
    """A directory, a journal, and teardown that stops every tree a test started."""
    trees = []
    releases: list[threading.Event] = []

    class Env:
        directory = Directory()
        journal = Journal()

        def start(self, spec, **kwargs):
            tree = start_tree(spec, self.directory, **kwargs)
            trees.append(tree)
            return tree

        def release(self) -> threading.Event:
            ev = threading.Event()
            releases.append(ev)
            return ev

    yield Env()
    for ev in releases:
        ev.set()
    for tree in reversed(trees):
        tree.stop(timeout=10)


def wait(journal: Journal, predicate, what: str, timeout: float = TIMEOUT) -> None:
    """Wait for a predicate over journal events (woken by each new event)."""
    assert journal.wait_for(predicate, timeout), f"timed out waiting for {what}; events: {journal.events[-15:]}"


def eventually(predicate, what: str, timeout: float = TIMEOUT) -> None:
    """Deadline-bounded poll of state that emits no event (a supervisor's decision)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.01)


def status_of(tree, name: str) -> ActorStatus:
    return {s.name: s for s in tree.statuses()}[name]


def abc(env, strategy, **kwargs):
    j = env.journal
    return env.start(fast_spec("root", [worker_spec(n, j) for n in "abc"], strategy, **kwargs))


# ---------------------------------------------------------------------- strategies


def test_one_for_one_restarts_only_the_failed_child(env):
    tree = abc(env, RestartStrategy.ONE_FOR_ONE)
    j = env.journal
    env.directory.tell("b", Item(1, "raise"))
    wait(j, lambda: starts(j, "b") == 2, "b restarted")
    assert env.directory.ask("b", Item(2)) == 1  # fresh state, reachable by name
    assert (starts(j, "a"), starts(j, "c")) == (1, 1)
    assert status_of(tree, "b").restarts == 1 and "poison 1" in status_of(tree, "b").last_error


def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it(env):
    abc(env, RestartStrategy.REST_FOR_ONE)
    j = env.journal
    for n in "abc":
        env.directory.ask(n, Item(0))  # give each some state
    env.directory.tell("b", Item(1, "raise"))
    wait(j, lambda: starts(j, "b") == 2 and starts(j, "c") == 2, "b and c restarted")
    assert starts(j, "a") == 1
    assert env.directory.ask("a", Item(2)) == 2  # a kept its state
    assert env.directory.ask("c", Item(2)) == 1  # c was restarted fresh
    # c is stopped before b is restarted; b starts before c
    seq = [(k, v) for k, v in j.events if k in ("start", "stop")]
    assert seq[seq.index(("stop", "c")) :] == [("stop", "c"), ("start", "b"), ("start", "c")]


def test_one_for_all_stops_in_reverse_and_restarts_in_order(env):
    abc(env, RestartStrategy.ONE_FOR_ALL)
    j = env.journal
    env.directory.tell("a", Item(1, "raise"))
    wait(j, lambda: all(starts(j, n) == 2 for n in "abc"), "all restarted")
    seq = [(k, v) for k, v in j.events if k in ("start", "stop")][3:]
    # a died of its exception (no on_stop); c then b are stopped in reverse order
    assert seq == [("stop", "c"), ("stop", "b"), ("start", "a"), ("start", "b"), ("start", "c")]


# ---------------------------------------------------------------------- intensity and escalation


def test_restart_intensity_exceeded_escalates_at_the_root(env):
    reasons: list[str] = []
    j = env.journal
    spec = fast_spec("root", [safety_spec(j), worker_spec("a", j)], max_restarts=2, period_s=60)
    tree = env.start(spec, on_escalate=reasons.append)
    for i in range(3):
        wait(j, lambda i=i: starts(j, "a") == i + 1, f"incarnation {i + 1}")
        env.directory.tell("a", Item(i, "raise"))
    assert tree.escalated.wait(TIMEOUT)
    assert "more than 2 restarts" in tree.escalation_reason and "poison 2" in tree.escalation_reason
    assert reasons == [tree.escalation_reason]
    assert tree.exit_code == 1
    # trading halted before the children were stopped, in reverse order
    halts = j.of("trading")
    assert halts and halts[0][0] is TradingState.HALTED and "escalation" in halts[0][1]
    assert j.of("kill"), "past the root: a kill switch, so open orders are cancelled too"
    assert env.directory.ref("a") is None and env.directory.ref("safety") is None
    assert status_of(tree, "root").status == "failed"


def test_within_intensity_no_escalation_and_window_slides(env):
    clock = [0.0]
    j = env.journal
    spec = fast_spec("root", [worker_spec("a", j)], max_restarts=1, period_s=10)
    ref = SupervisorActor.start("root", env.directory, None, spec=spec, clock=lambda: clock[0])
    env.directory.register("root", ref)
    try:
        env.directory.ask("root", GetActorTree())  # answered after on_start started the children
        env.directory.tell("a", Item(1, "raise"))
        wait(j, lambda: starts(j, "a") == 2, "first restart")
        clock[0] = 11.0  # the first restart has left the window
        env.directory.tell("a", Item(2, "raise"))
        wait(j, lambda: starts(j, "a") == 3, "second restart, 11 s later")
        statuses = env.directory.ask("root", GetActorTree())
        assert statuses[0].status == "running"
    finally:
        ref.stop(timeout=5)


def test_nested_supervisor_escalates_to_its_parent_which_restarts_it(env):
    j = env.journal
    inner = fast_spec("inner", [worker_spec("w", j)], max_restarts=0)
    outer = fast_spec("root", [worker_spec("x", j), supervisor_child(inner)], max_restarts=5)
    tree = env.start(outer)
    env.directory.tell("w", Item(1, "raise"))  # inner allows no restart: it escalates
    wait(j, lambda: starts(j, "w") == 2, "w restarted through the parent")
    assert starts(j, "x") == 1
    assert not tree.escalated.is_set()
    assert env.directory.ask("w", Item(2)) == 1
    decisions = tree.decisions()
    assert any(d.child == "inner" and d.action == "restart" for d in decisions)


def test_escalation_reaches_the_root_when_the_parent_also_gives_up(env):
    j = env.journal
    inner = fast_spec("inner", [worker_spec("w", j)], max_restarts=0)
    outer = fast_spec("root", [supervisor_child(inner)], max_restarts=0)
    tree = env.start(outer)
    env.directory.tell("w", Item(1, "raise"))
    assert tree.escalated.wait(TIMEOUT)
    assert "inner escalated" in tree.escalation_reason


def test_tree_reports_nested_statuses_depth_first(env):
    j = env.journal
    inner = fast_spec("inner", [worker_spec("w", j)])
    tree = env.start(fast_spec("root", [worker_spec("x", j), supervisor_child(inner), worker_spec("y", j)]))
    # The inner supervisor publishes to its parent at the end of its on_start; asking
    # it first orders that publication before our question to the root (FIFO).
    env.directory.ask("inner", GetActorTree())
    names = [s.name for s in env.directory.ask("root", GetActorTree())]
    assert names == ["root", "x", "inner", "w", "y"]
    by_name = {s.name: s for s in tree.statuses()}
    assert by_name["w"].supervisor == "inner" and by_name["inner"].supervisor == "root"


# ---------------------------------------------------------------------- restart types


def test_temporary_child_is_not_restarted_and_later_messages_are_dead_letters(env):
    j = env.journal
    tree = env.start(fast_spec("root", [worker_spec("t", j, restart=RestartType.TEMPORARY)]))
    env.directory.tell("t", Item(1, "raise"))
    eventually(lambda: status_of(tree, "t").status == "stopped", "t stopped")
    before = env.directory.dead_letters("t")
    assert env.directory.tell("t", Item(2)) is False
    assert env.directory.dead_letters("t") == before + 1
    assert starts(j, "t") == 1


def test_transient_child_restarts_after_a_crash_but_not_after_a_normal_exit(env):
    j = env.journal
    tree = env.start(fast_spec("root", [worker_spec("t", j, restart=RestartType.TRANSIENT)]))
    env.directory.tell("t", Item(1, "raise"))
    wait(j, lambda: starts(j, "t") == 2, "restart after crash")
    env.directory.tell("t", Item(2, "quit"))
    eventually(lambda: status_of(tree, "t").status == "stopped", "normal exit noticed")
    assert starts(j, "t") == 2


def test_permanent_child_restarts_even_after_a_normal_exit(env):
    j = env.journal
    env.start(fast_spec("root", [worker_spec("p", j)]))
    env.directory.tell("p", Item(1, "quit"))
    wait(j, lambda: starts(j, "p") == 2, "permanent child back")


# ---------------------------------------------------------------------- pykka traps


def test_failure_in_on_start_is_detected_and_restarted(env):
    j = env.journal
    attempts = [0]

    def fail_first() -> bool:
        attempts[0] += 1
        return attempts[0] == 1

    tree = env.start(fast_spec("root", [worker_spec("s", j, fail_start=fail_first)]))
    wait(j, lambda: starts(j, "s") == 2, "restart after on_start failure")
    assert env.directory.ask("s", Item(1)) == 1
    st = status_of(tree, "s")
    assert st.restarts == 1 and "start_failure" in st.last_error and "cannot start" in st.last_error


def test_child_that_never_starts_exhausts_intensity(env):
    j = env.journal
    tree = env.start(fast_spec("root", [worker_spec("s", j, fail_start=lambda: True)], max_restarts=3))
    assert tree.escalated.wait(TIMEOUT)
    assert starts(j, "s") == 4 and "start_failure" in tree.escalation_reason


def test_failure_during_tell_loses_no_message_but_the_poison(env):
    j = env.journal
    env.start(fast_spec("root", [worker_spec("a", j)]))
    addr = env.directory.address("a")
    for n in range(200):
        addr.tell(Item(n, "raise" if n == 50 else ""))
    wait(j, lambda: len(items_of(j, "a")) == 199, "199 items handled")
    assert items_of(j, "a") == [n for n in range(200) if n != 50]  # in order, across the restart
    assert env.directory.dead_letters("a") == 1  # the poison message, counted
    assert starts(j, "a") == 2


def test_base_exception_is_contained_to_one_actor(env):
    j = env.journal
    env.start(fast_spec("root", [worker_spec("a", j), worker_spec("b", j)]))
    b_ref = env.directory.ref("b")
    env.directory.tell("a", Item(1, "exit"))  # SystemExit: pykka would stop every actor
    wait(j, lambda: starts(j, "a") == 2, "a restarted")
    assert b_ref.is_alive() and env.directory.ref("b") is b_ref
    assert env.directory.ask("b", Item(2)) == 1
    assert env.directory.ask("a", Item(3)) == 1


def test_exception_in_an_ask_goes_to_the_caller_and_does_not_restart(env):
    j = env.journal
    env.start(fast_spec("root", [worker_spec("a", j)]))
    env.directory.ask("a", Item(1))
    with pytest.raises(ValueError, match="poison 2"):
        env.directory.ask("a", Item(2, "raise"))
    assert env.directory.ask("a", Item(3)) == 2  # same incarnation, state kept
    assert starts(j, "a") == 1


def test_hung_actor_is_replaced_and_its_late_sends_are_dropped(env):
    j = env.journal
    release = env.release()
    tree = env.start(fast_spec("root", [worker_spec("h", j, release=release), worker_spec("sink", j)]))
    addr = env.directory.address("h")
    addr.tell(Item(1, "hang"))
    wait(j, lambda: j.of("hanging"), "handler hung")
    for n in range(2, 6):
        addr.tell(Item(n))  # queued behind the hung handler
    wait(j, lambda: starts(j, "h") == 2, "hung actor replaced", timeout=TIMEOUT)
    wait(j, lambda: items_of(j, "h") == [2, 3, 4, 5], "queued messages delivered to the new incarnation")
    st = status_of(tree, "h")
    assert "hung" in st.last_error and st.restarts == 1
    release.set()  # the zombie wakes up and tries to send
    wait(j, lambda: j.of("woke"), "zombie woke")
    assert env.directory.ask("sink", Item(999)) == 1  # FIFO: anything the zombie sent would be ahead
    assert items_of(j, "sink") == [999]
    assert env.directory.zombie_drops() >= 1
    assert env.directory.ask("h", Item(6)) == 5  # the new incarnation is untouched


def test_busy_actor_with_a_backlog_is_not_declared_hung(env):
    j = env.journal
    env.start(fast_spec("root", [worker_spec("a", j)], heartbeat_misses=4))
    # 40 slow messages (~25 ms of work each): heartbeats wait ~1 s behind them
    # (5x the 200 ms hung threshold), but the actor visibly makes progress.
    for n in range(40):
        env.directory.tell("a", Item(n, "slow"))
    wait(j, lambda: len(items_of(j, "a")) == 40, "backlog drained")
    assert starts(j, "a") == 1


# ---------------------------------------------------------------------- stable addresses


def test_address_taken_before_a_restart_works_after_it(env):
    j = env.journal
    env.start(fast_spec("root", [worker_spec("a", j)]))
    addr = env.directory.address("a")
    assert addr.ask(Item(1)) == 1
    old = env.directory.ref("a")
    addr.tell(Item(2, "raise"))
    wait(j, lambda: starts(j, "a") == 2, "restart")
    assert addr.ask(Item(3)) == 1
    assert env.directory.ref("a") is not old


def test_messages_sent_while_restarting_with_backoff_are_buffered_in_order(env):
    j = env.journal
    spec = fast_spec("root", [worker_spec("a", j)], backoff_min_s=0.3, backoff_max_s=1.0, backoff_jitter=0.0)
    env.start(spec)
    t0 = time.monotonic()
    env.directory.tell("a", Item(0, "raise"))
    for n in range(1, 11):  # queued behind the poison, or buffered while a is down
        assert env.directory.tell("a", Item(n))
    wait(j, lambda: items_of(j, "a") == list(range(1, 11)), "messages delivered after the backoff")
    assert time.monotonic() - t0 >= 0.3
    assert env.directory.dead_letters("a") == 1


# ---------------------------------------------------------------------- deciders and trading pause


def test_order_failure_pauses_trading_and_resumes_prior_state_after_recovery(env):
    j = env.journal
    recovered = [(True, "journal reconciled")]
    spec = fast_spec("root", [
        safety_spec(j, initial=TradingState.REDUCING),
        worker_spec("orders", j, kind="order", recover=lambda: recovered[0]),
    ])
    env.start(spec)
    env.directory.tell("orders", Item(1, "raise"))
    wait(j, lambda: len(j.of("trading")) == 2, "halt then resume")
    (s1, r1, by1), (s2, r2, by2) = j.of("trading")
    assert (s1, by1) == (TradingState.HALTED, "supervisor") and "orders" in r1
    assert (s2, r2, by2) == (TradingState.REDUCING, "recovered", "supervisor")


def test_failed_recovery_keeps_trading_halted(env):
    j = env.journal
    results = iter([(True, "first start"), (False, "positions do not reconcile")])
    spec = fast_spec("root", [safety_spec(j), worker_spec("venue", j, kind="venue", recover=lambda: next(results))])
    tree = env.start(spec)
    env.directory.tell("venue", Item(1, "raise"))
    wait(j, lambda: len(j.of("trading")) == 2, "halt, then halt again with the reason")
    states = [s for s, _, _ in j.of("trading")]
    assert states == [TradingState.HALTED, TradingState.HALTED]
    assert "positions do not reconcile" in j.of("trading")[1][1]
    assert "recovery failed" in status_of(tree, "venue").last_error
    assert env.directory.ask("safety", GetTradingState()).state is TradingState.HALTED


def test_strategy_failure_does_not_touch_trading(env):
    j = env.journal
    env.start(fast_spec("root", [safety_spec(j), worker_spec("strat", j, kind="strategy")]))
    env.directory.tell("strat", Item(1, "raise"))
    wait(j, lambda: starts(j, "strat") == 2, "strategy restarted")
    env.directory.ask("safety", GetTradingState())
    assert j.of("trading") == []


def test_custom_decider_resume_keeps_a_slow_actor(env):
    j = env.journal
    release = env.release()
    decider = lambda kind, failure: Decision(Action.RESUME) if failure == "hung" else Decision(Action.RESTART)  # noqa: E731
    tree = env.start(fast_spec("root", [worker_spec("h", j, release=release)], decider=decider))
    env.directory.ask("h", Item(1))
    env.directory.tell("h", Item(2, "hang"))
    eventually(lambda: any(d.action == "resume" for d in tree.decisions()), "resume decided")
    release.set()
    assert env.directory.ask("h", Item(3)) == 2  # same incarnation, state kept
    assert starts(j, "h") == 1


def test_custom_decider_stop_removes_the_child(env):
    j = env.journal
    tree = env.start(fast_spec("root", [worker_spec("a", j)], decider=lambda k, f: Decision(Action.STOP)))
    env.directory.tell("a", Item(1, "raise"))
    eventually(lambda: status_of(tree, "a").status == "stopped", "stopped")
    assert env.directory.tell("a", Item(2)) is False


def test_custom_decider_escalate(env):
    j = env.journal
    tree = env.start(fast_spec("root", [worker_spec("a", j)], decider=lambda k, f: Decision(Action.ESCALATE)))
    env.directory.tell("a", Item(1, "raise"))
    assert tree.escalated.wait(TIMEOUT) and "poison 1" in tree.escalation_reason


# ---------------------------------------------------------------------- start and stop


def test_start_tree_names_the_child_that_cannot_start(env):
    j = env.journal

    def broken(ctx):
        raise OSError("venue credentials file missing")

    spec = fast_spec("root", [worker_spec("a", j), ChildSpec("venue", broken, kind="venue")])
    with pytest.raises(TreeStartError, match="'venue' failed to start: OSError: venue credentials file missing"):
        start_tree(spec, env.directory)
    wait(j, lambda: j.of("stop") == ["a"], "a stopped again")
    assert env.directory.ref("a") is None


def test_stop_runs_in_reverse_order_and_bounds_a_stuck_on_stop(env):
    j = env.journal
    stuck = env.release()

    class Stuck(Worker):
        def on_stop(self):
            super().on_stop()
            stuck.wait(TIMEOUT * 4)

    spec = fast_spec("root", [
        worker_spec("a", j),
        ChildSpec("stuck", lambda ctx: Stuck.start(ctx.name, ctx.directory, ctx.supervisor, j), shutdown_timeout_s=0.2),
        worker_spec("c", j),
    ])
    tree = start_tree(spec, env.directory)
    t0 = time.monotonic()
    tree.stop(timeout=10)
    assert time.monotonic() - t0 < 3.0
    assert j.of("stop") == ["c", "stuck", "a"]
    assert all(env.directory.ref(n) is None for n in ("a", "stuck", "c", "root"))
    assert not pykka.ActorRegistry.get_by_class(SupervisorActor)


def test_asks_racing_a_crash_are_answered_by_the_next_incarnation(env):
    j = env.journal
    env.start(fast_spec("root", [worker_spec("a", j)], max_restarts=100))
    for k in range(25):
        env.directory.tell("a", Item(k, "raise"))
        # queued behind the poison, sent while it dies, or held while it restarts: always answered
        assert env.directory.ask("a", Item(1000 + k)) == 1
    assert starts(j, "a") == 26


def test_a_crash_of_the_root_supervisor_itself_escalates_to_the_engine(env, monkeypatch):
    j = env.journal
    reasons: list[str] = []
    tree = env.start(fast_spec("root", [safety_spec(j), worker_spec("a", j)]), on_escalate=reasons.append)

    def broken(self, msg):
        raise RuntimeError("supervisor bug")

    monkeypatch.setattr(SupervisorActor, "on_child_recovered", broken)
    env.directory.tell("root", __import__("engine.messages", fromlist=["ChildRecovered"]).ChildRecovered(name="a", ok=True))
    assert tree.escalated.wait(TIMEOUT)
    assert "root supervisor root crashed" in tree.escalation_reason and "supervisor bug" in reasons[0]
    assert j.of("trading")[0][0] is TradingState.HALTED
    assert env.directory.ref("a") is None and env.directory.ref("safety") is None
