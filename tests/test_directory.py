"""Stable addresses: buffering while down, dead letters, mailbox salvage, zombies, held asks."""

from __future__ import annotations

import threading

import pykka
import pytest

from actors.base import EngineActor, handles
from actors.directory import DeadLetter, Directory
from tests.test_supervision_support import TIMEOUT, Item


class Recorder(EngineActor):
    def __init__(self, name, directory, supervisor=None, gate: threading.Event | None = None,
                 entered: threading.Event | None = None):
        super().__init__(name, directory, supervisor)
        self.got: list[int] = []
        self.gate = gate
        self.entered = entered

    @handles(Item)
    def on_item(self, msg: Item) -> list[int]:
        if self.gate is not None and msg.action == "block":
            self.entered.set()
            self.gate.wait(TIMEOUT)
        self.got.append(msg.n)
        return list(self.got)


@pytest.fixture
def refs():
    started: list[pykka.ActorRef] = []
    yield started
    for ref in started:
        if ref.is_alive():
            ref.stop(timeout=TIMEOUT)


def test_tell_to_unknown_name_is_a_counted_dead_letter():
    d = Directory()
    assert d.tell("nobody", Item(1)) is False
    assert d.dead_letters("nobody") == 1 and d.dead_letters() == 1
    with pytest.raises(DeadLetter, match="'nobody' is not running"):
        d.ask("nobody", Item(1))


def test_messages_while_down_are_buffered_and_flushed_in_order(refs):
    d = Directory()
    d.mark_down("r")
    for n in range(5):
        assert d.tell("r", Item(n))
    assert d.buffered("r") == 5
    ref = Recorder.start("r", d)
    refs.append(ref)
    d.register("r", ref)
    assert d.ask("r", Item(5)) == [0, 1, 2, 3, 4, 5]
    assert d.buffered("r") == 0


def test_buffer_is_bounded_and_overflow_counts_dead_letters():
    d = Directory(buffer_while_down=3)
    d.mark_down("r")
    results = [d.tell("r", Item(n)) for n in range(5)]
    assert results == [True, True, True, False, False]
    assert d.dead_letters("r") == 2


def test_unregister_turns_the_buffer_into_dead_letters_and_fails_held_asks():
    d = Directory()
    d.mark_down("r")
    d.tell("r", Item(1))
    future = d.ask_future("r", Item(2))  # held while r is down
    d.unregister("r")
    assert d.dead_letters("r") == 2
    with pytest.raises(DeadLetter, match="stopped before answering"):
        future.get(timeout=TIMEOUT)


def test_ask_while_restarting_is_answered_by_the_new_incarnation(refs):
    d = Directory()
    d.mark_down("r")
    future = d.ask_future("r", Item(7))
    ref = Recorder.start("r", d)
    refs.append(ref)
    d.register("r", ref)
    assert future.get(timeout=TIMEOUT) == [7]


def test_retire_moves_queued_tells_and_asks_ahead_of_later_messages(refs):
    d = Directory()
    gate, entered = threading.Event(), threading.Event()
    old = Recorder.start("r", d, gate=gate, entered=entered)
    refs.append(old)
    d.register("r", old)
    d.tell("r", Item(0, "block"))  # occupies the old incarnation
    assert entered.wait(TIMEOUT)
    d.tell("r", Item(1))
    pending = d.ask_future("r", Item(2))
    d.tell("r", Item(3))
    moved = d.retire("r", old, zombie=True)
    assert moved == 3 and d.is_down("r")
    d.tell("r", Item(4))  # sent after the retirement: behind the moved ones
    new = Recorder.start("r", d)
    refs.append(new)
    d.register("r", new)
    assert pending.get(timeout=TIMEOUT) == [1, 2]
    assert d.ask("r", Item(5)) == [1, 2, 3, 4, 5]
    gate.set()


def test_a_zombie_thread_cannot_send(refs):
    d = Directory()
    sink = Recorder.start("sink", d)
    refs.append(sink)
    d.register("sink", sink)
    sent, entered = threading.Event(), threading.Event()
    outcome: list[object] = []

    class Sender(EngineActor):
        @handles(Item)
        def on_item(self, msg: Item) -> None:
            entered.set()
            sent.wait(TIMEOUT)  # "hung" until the test has retired us
            outcome.append(self.directory.tell("sink", Item(-1)))
            try:
                self.directory.ask("sink", Item(-2), timeout=1)
            except DeadLetter as exc:
                outcome.append(str(exc))

    ref = Sender.start("s", d)
    refs.append(ref)
    d.register("s", ref)
    d.tell("s", Item(1))
    assert entered.wait(TIMEOUT)
    d.retire("s", ref, zombie=True)
    ref.stop(block=False)
    sent.set()
    assert ref.actor_stopped.wait(TIMEOUT)
    assert outcome == [False, "a retired actor may not ask 'sink'"]
    assert d.zombie_drops() == 1
    assert d.ask("sink", Item(9)) == [9]


def test_address_is_a_stable_handle(refs):
    d = Directory()
    addr = d.address("r")
    first = Recorder.start("r", d)
    refs.append(first)
    d.register("r", first)
    assert addr.ask(Item(1)) == [1]
    d.retire("r", first)
    first.stop(timeout=TIMEOUT)
    addr.tell(Item(2))
    second = Recorder.start("r", d)
    refs.append(second)
    d.register("r", second)
    assert addr.ask(Item(3)) == [2, 3]
    assert repr(addr) == "Address('r')" and d.names() == ["r"]


def test_register_flush_into_a_dead_ref_keeps_the_rest_buffered(refs):
    d = Directory()
    dead = Recorder.start("r", d)
    dead.stop(timeout=TIMEOUT)
    d.mark_down("r")
    d.tell("r", Item(1))
    d.tell("r", Item(2))
    d.register("r", dead)
    assert d.is_down("r") and d.buffered("r") == 2
    live = Recorder.start("r", d)
    refs.append(live)
    d.register("r", live)
    assert d.ask("r", Item(3)) == [1, 2, 3]


def test_a_subclass_cannot_shadow_pykka_internals_by_accident():
    with pytest.raises(TypeError, match="_handle_failure: that name is pykka's own"):
        class Clumsy(EngineActor):  # noqa: F841
            def _handle_failure(self, child, kind, error):
                pass
