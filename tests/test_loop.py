"""Shared loops (actors/loop.py): several actors on one thread keep actor semantics.

One message at a time per actor, FIFO per sender, control messages first,
pykka's failure rules per message, asks from outside and between loop-mates,
timers on the loop thread, and the thread ends with its last actor.
"""

from __future__ import annotations

import threading

import pykka
import pytest
from pykka._envelope import Envelope

from actors.base import EngineActor, handles
from actors.directory import Directory
from actors.loop import LoopMailbox, SharedLoop
from engine.messages import BatchDone, EndOfStream, GetTradingState, Heartbeat, HeartbeatAck, KillSwitch

WAIT = 5.0


def data(i: int) -> BatchDone:
    return BatchDone(feed="f", batch_seq=i, consumer="c")


class Recorder(EngineActor):
    """Records what it handles and on which thread; forwards data to ``forward_to``."""

    def __init__(self, name, directory, supervisor=None, *, forward_to: str | None = None, expect: int = 0):
        super().__init__(name, directory, supervisor)
        self.forward_to = forward_to
        self.seen: list = []
        self.threads: set[int] = set()
        self.inside = 0
        self.overlapped = False
        self.expect = expect
        self.done = threading.Event()

    @handles(BatchDone)
    def on_data(self, msg: BatchDone) -> None:
        self.inside += 1
        self.overlapped |= self.inside > 1
        self.threads.add(threading.get_ident())
        self.seen.append(msg.batch_seq)
        if self.forward_to:
            self.addr(self.forward_to).tell(msg)
        self.inside -= 1
        if self.expect and len(self.seen) >= self.expect:
            self.done.set()

    @handles(GetTradingState)
    def on_query(self, _msg) -> list:
        return list(self.seen)

    @handles(KillSwitch)
    def on_kill(self, msg: KillSwitch) -> str:
        self.seen.append(f"kill:{msg.reason}")
        return msg.reason

    @handles(EndOfStream)
    def on_boom(self, msg: EndOfStream) -> None:
        raise RuntimeError(f"boom on {msg.feed}")


class Asker(EngineActor):
    """Asks a loop-mate from on_start: must not deadlock on the shared thread."""

    def __init__(self, name, directory, supervisor=None, *, target: str):
        super().__init__(name, directory, supervisor)
        self.target = target
        self.answer = None
        self.started = threading.Event()

    def on_start(self) -> None:
        self.answer = self.addr(self.target).ask(GetTradingState(), timeout=WAIT)
        self.started.set()


@pytest.fixture
def env():
    directory = Directory()
    loop = SharedLoop("test")
    refs: list[pykka.ActorRef] = []

    def start(cls, name, **kwargs):
        ref = cls.start(name, directory, None, loop=loop, **kwargs)
        directory.register(name, ref)
        refs.append(ref)
        return ref

    yield directory, loop, start
    for ref in reversed(refs):
        if ref.is_alive():
            ref.stop(timeout=WAIT)


def test_actors_on_a_loop_share_one_thread_and_keep_order(env):
    directory, loop, start = env
    sink = start(Recorder, "sink", expect=500)
    start(Recorder, "middle", forward_to="sink")
    for i in range(500):
        directory.tell("middle", data(i))
    sink_actor = sink._actor_weakref()
    assert sink_actor.done.wait(WAIT)
    middle_actor = directory.ref("middle")._actor_weakref()
    assert sink_actor.seen == list(range(500)) == middle_actor.seen  # FIFO through the hop
    assert sink_actor.threads == middle_actor.threads == {loop.ident}  # one thread, the loop's
    assert not sink_actor.overlapped and not middle_actor.overlapped  # one message at a time
    assert directory.ask("sink", GetTradingState(), timeout=WAIT) == list(range(500))  # asks from outside


def test_control_messages_overtake_a_backlog_on_a_loop():
    loop = SharedLoop("lanes")
    box = LoopMailbox((KillSwitch, Heartbeat), loop, owner=type("Owner", (), {"_loop_scheduled": True})())
    for i in range(3):
        box.put(Envelope(data(i)))
    box.put(Envelope(KillSwitch(reason="now")))
    assert box.qsize() == 4 and box.lane_sizes() == (1, 3)
    got = [box.get_nowait().message for _ in range(4)]
    assert got[0] == KillSwitch(reason="now") and [m.batch_seq for m in got[1:]] == [0, 1, 2]
    assert box.empty()


def test_an_ask_between_loop_mates_from_on_start_is_answered(env):
    directory, loop, start = env
    start(Recorder, "target")
    directory.tell("target", data(7))
    asker = start(Asker, "asker", target="target")._actor_weakref()
    assert asker.started.wait(WAIT)
    assert asker.answer == [7]


def test_a_failing_handler_stops_only_its_actor(env):
    directory, loop, start = env
    bad = start(Recorder, "bad")
    good = start(Recorder, "good", expect=2)
    directory.tell("good", data(1))
    directory.tell("bad", EndOfStream(feed="x", last_batch_seq=0, last_tick_seq=0))
    bad.actor_stopped.wait(WAIT)
    assert bad.actor_stopped.is_set()  # pykka's rule for a failing tell: the actor stops
    directory.tell("good", data(2))
    assert good._actor_weakref().done.wait(WAIT)
    assert good.is_alive() and good._actor_weakref().seen == [1, 2]


def test_an_exception_in_an_ask_goes_to_the_asker_and_the_actor_lives(env):
    directory, loop, start = env
    ref = start(Recorder, "r")
    with pytest.raises(RuntimeError, match="boom on q"):
        ref.ask(EndOfStream(feed="q", last_batch_seq=0, last_tick_seq=0), timeout=WAIT)
    assert ref.is_alive()
    assert ref.ask(Heartbeat(nonce=3), timeout=WAIT) == HeartbeatAck(name="r", nonce=3)


def test_timers_fire_on_the_loop_thread_in_deadline_order(env):
    import time

    directory, loop, start = env
    start(Recorder, "r")
    directory.ask("r", GetTradingState(), timeout=WAIT)  # the loop is running (and now asleep)
    fired: list[tuple[str, int]] = []
    both = threading.Event()
    now = time.monotonic()
    loop.call_at(now + 0.02, lambda: (fired.append(("late", threading.get_ident())), both.set()))
    loop.call_at(now + 0.01, lambda: fired.append(("early", threading.get_ident())))
    assert both.wait(WAIT)  # a sleeping loop wakes for its earliest deadline
    assert [name for name, _ in fired] == ["early", "late"]
    assert {ident for _, ident in fired} == {loop.ident}
    assert time.monotonic() - now >= 0.02


def test_the_loop_thread_ends_with_its_last_actor():
    directory = Directory()
    loop = SharedLoop("ending")
    a = Recorder.start("a", directory, None, loop=loop)
    b = Recorder.start("b", directory, None, loop=loop)
    a.ask(GetTradingState(), timeout=WAIT)
    thread = loop.thread
    assert thread is not None and thread.is_alive()
    a.stop(timeout=WAIT)
    assert thread.is_alive() and b.is_alive()
    b.stop(timeout=WAIT)
    thread.join(WAIT)
    assert not thread.is_alive() and not loop.has_members()


def test_per_actor_threads_are_still_the_default_without_a_loop():
    directory = Directory()
    ref = Recorder.start("solo", directory, None, expect=1)
    try:
        ref.tell(data(1))
        actor = ref._actor_weakref()
        assert actor.done.wait(WAIT) and actor.seen == [1]
        assert actor._loop is None and actor.threads and threading.get_ident() not in actor.threads
    finally:
        ref.stop(timeout=WAIT)


def test_an_actor_added_after_the_loop_ended_gets_a_new_thread():
    directory = Directory()
    loop = SharedLoop("again")
    first = Recorder.start("first", directory, None, loop=loop)
    first.ask(GetTradingState(), timeout=WAIT)
    old = loop.thread
    first.stop(timeout=WAIT)
    old.join(WAIT)
    assert not old.is_alive() and loop.thread is None
    second = Recorder.start("second", directory, None, loop=loop)
    try:
        assert second.ask(GetTradingState(), timeout=WAIT) == []
        assert loop.thread is not None and loop.thread is not old and loop.thread.is_alive()
    finally:
        second.stop(timeout=WAIT)


def test_handler_time_is_counted_per_loop_and_summed_over_all_of_them():
    # Each loop counts in a dict only its own thread writes, so two loops serving actors of
    # one class add up instead of racing on one counter.
    from actors.loop import stage_busy_ns

    class Timed(Recorder):
        pass

    d = Directory()
    loops = [SharedLoop("busy-a"), SharedLoop("busy-b")]
    before = stage_busy_ns().get("Timed", 0)
    refs = []
    for i, loop in enumerate(loops):
        ref = Timed.start(f"t{i}", d, loop=loop, expect=2000)
        d.register(f"t{i}", ref)
        refs.append(ref)
    try:
        for n in range(2000):
            for i in range(2):
                d.tell(f"t{i}", data(n))
        for ref in refs:
            assert ref._actor_weakref().done.wait(WAIT)  # noqa: SLF001
    finally:
        for ref in refs:
            ref.stop()
    per_loop = [loop.busy_ns["Timed"] for loop in loops]
    assert all(ns > 0 for ns in per_loop)
    assert stage_busy_ns()["Timed"] - before == sum(per_loop)
