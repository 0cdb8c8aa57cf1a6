"""The two-lane mailbox: control messages overtake a data backlog, FIFO within each lane,
pykka's stop stays behind earlier messages."""

from __future__ import annotations

import queue
import threading

import pykka
import pytest
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from actors.base import EngineActor, handles
from actors.directory import Directory
from actors.inbox import DEFAULT_PRIORITY_TYPES, PriorityInbox
from engine.messages import (
    BatchDone,
    CancelAll,
    EndOfStream,
    GetTradingState,
    Heartbeat,
    HeartbeatAck,
    KillSwitch,
    SetTradingState,
    TradingState,
)

WAIT = 5.0


def data(i: int) -> BatchDone:
    return BatchDone(feed="f", batch_seq=i, consumer="c")


def drain(inbox: queue.Queue) -> list:
    out = []
    while True:
        try:
            out.append(inbox.get_nowait().message)
        except queue.Empty:
            return out


# ---------------------------------------------------------------- the inbox alone


def test_fast_lane_first_and_fifo_within_each_lane():
    inbox = PriorityInbox((KillSwitch, SetTradingState))
    sent = [data(0), data(1), KillSwitch(reason="a"), data(2), SetTradingState(state=TradingState.HALTED), KillSwitch(reason="b")]
    for msg in sent:
        inbox.put(Envelope(msg))
    assert inbox.qsize() == 6
    assert inbox.lane_sizes() == (3, 3)
    got = drain(inbox)
    assert got == [sent[2], sent[4], sent[5], sent[0], sent[1], sent[3]]
    assert inbox.empty()


def test_pykka_stop_stays_in_the_normal_lane():
    inbox = PriorityInbox(DEFAULT_PRIORITY_TYPES)
    inbox.put(Envelope(data(0)))
    inbox.put(Envelope(_ActorStop()))
    inbox.put(Envelope(data(1)))
    assert inbox.lane_sizes() == (0, 3)
    got = drain(inbox)
    assert isinstance(got[1], _ActorStop) and got[0] == data(0) and got[2] == data(1)


def test_subclasses_of_a_priority_type_take_the_fast_lane():
    class Urgent(EndOfStream, frozen=True):
        pass

    inbox = PriorityInbox((EndOfStream,))
    inbox.put(Envelope(data(0)))
    inbox.put(Envelope(Urgent(feed="f", last_batch_seq=0, last_tick_seq=0)))
    assert isinstance(inbox.get().message, Urgent)


def test_no_priority_types_is_plain_fifo():
    inbox = PriorityInbox(())
    msgs = [KillSwitch(), data(0), Heartbeat(nonce=1), data(1)]
    for m in msgs:
        inbox.put(Envelope(m))
    assert drain(inbox) == msgs


def test_queue_api_compatibility():
    inbox = PriorityInbox(DEFAULT_PRIORITY_TYPES)
    assert isinstance(inbox, queue.Queue)
    with pytest.raises(queue.Empty):
        inbox.get_nowait()
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.01)
    with pytest.raises(TypeError, match="priority_types must be classes"):
        PriorityInbox(("KillSwitch",))  # type: ignore[arg-type]


def test_blocked_get_wakes_on_put_from_another_thread():
    inbox = PriorityInbox(DEFAULT_PRIORITY_TYPES)
    got: list = []
    done = threading.Event()

    def consumer() -> None:
        got.append(inbox.get().message)
        done.set()

    t = threading.Thread(target=consumer, daemon=True)
    t.start()
    inbox.put(Envelope(KillSwitch(reason="wake")))
    assert done.wait(WAIT)
    assert got == [KillSwitch(reason="wake")]


def test_default_priority_types_are_the_control_messages():
    names = {t.__name__ for t in DEFAULT_PRIORITY_TYPES}
    assert names == {
        "Heartbeat", "KillSwitch", "SetTradingState", "Flatten", "CancelAll", "GetTradingState",
        "GetOrders", "GetOrder", "GetPositions", "GetPnL", "GetActorTree", "GetMetrics",
    }  # fmt: skip
    assert EngineActor.priority_types == DEFAULT_PRIORITY_TYPES


# ---------------------------------------------------------------- inside a running EngineActor


class Recorder(EngineActor):
    """Blocks in its first data handler until ``gate`` opens, so a backlog builds up."""

    def __init__(self, name, directory, supervisor=None, *, gate: threading.Event, entered: threading.Event, seen: list):
        super().__init__(name, directory, supervisor)
        self.gate = gate
        self.entered = entered
        self.seen = seen
        self.gate_for_seq_1: threading.Event | None = None

    @handles(BatchDone)
    def on_data(self, msg: BatchDone) -> None:
        if msg.batch_seq == 0:
            self.entered.set()
            assert self.gate.wait(WAIT)
        if msg.batch_seq == 1 and self.gate_for_seq_1 is not None:
            assert self.gate_for_seq_1.wait(WAIT)
        self.seen.append(("data", msg.batch_seq))

    @handles(KillSwitch, CancelAll)
    def on_control(self, msg) -> None:
        self.seen.append((type(msg).__name__, getattr(msg, "reason", "")))

    @handles(GetTradingState)
    def on_query(self, _msg) -> list:
        return list(self.seen)

    @handles(SetTradingState)
    def on_second_gate(self, msg: SetTradingState) -> None:
        self.gate_for_seq_1 = threading.Event() if msg.reason == "hold data 1" else None
        if self.gate_for_seq_1 is not None:
            HOLD.append(self.gate_for_seq_1)


HOLD: list[threading.Event] = []


class FifoRecorder(Recorder):
    priority_types = ()


@pytest.fixture
def started():
    refs: list[pykka.ActorRef] = []
    yield refs
    for ref in refs:
        if ref.is_alive():
            ref.stop(block=True, timeout=WAIT)


def _start_backlogged(cls, started, seen: list | None = None):
    gate, entered = threading.Event(), threading.Event()
    directory = Directory()
    ref = cls.start("rec", directory, None, gate=gate, entered=entered, seen=[] if seen is None else seen)
    started.append(ref)
    directory.register("rec", ref)
    ref.tell(data(0))
    assert entered.wait(WAIT)  # the actor is inside data(0): everything below queues up
    return ref, gate, directory


def test_control_messages_overtake_a_data_backlog(started):
    ref, gate, directory = _start_backlogged(Recorder, started)
    for i in range(1, 4):
        directory.tell("rec", data(i))
    directory.tell("rec", KillSwitch(reason="k1"))
    directory.tell("rec", data(4))
    directory.tell("rec", CancelAll())
    assert ref.actor_inbox.qsize() == 6  # the monitor's depth counts both lanes
    answer = ref.ask(GetTradingState(), block=False)  # a query also jumps the backlog
    gate.set()
    seen = answer.get(timeout=WAIT)
    # data(0) was already running; then both control messages in their order, then the query
    assert seen == [("data", 0), ("KillSwitch", "k1"), ("CancelAll", "")]
    final = ref.ask(GetTradingState(), timeout=WAIT)
    assert final[3:] == [("data", 1), ("data", 2), ("data", 3), ("data", 4)]


def test_heartbeat_is_answered_ahead_of_the_backlog(started):
    seen: list = []
    HOLD.clear()
    ref, gate, _ = _start_backlogged(Recorder, started, seen)
    ref.tell(SetTradingState(state=TradingState.HALTED, reason="hold data 1"))  # fast lane: runs next
    for i in range(1, 50):
        ref.tell(data(i))
    ack = ref.ask(Heartbeat(nonce=7), block=False)
    with pytest.raises(pykka.Timeout):
        ack.get(timeout=0.05)  # the handler is still blocked: no answer yet
    gate.set()
    # data(1) now blocks until HOLD[0] opens: the ack can only arrive if it overtook the backlog
    assert ack.get(timeout=WAIT) == HeartbeatAck(name="rec", nonce=7)
    assert [s for s in seen if s[0] == "data"] == [("data", 0)]
    HOLD[0].set()
    assert ref.stop(block=True, timeout=WAIT) is True  # the stop queued behind all 50 data messages
    assert [s for s in seen if s[0] == "data"] == [("data", i) for i in range(50)]


def test_stop_still_runs_after_earlier_messages(started):
    seen: list = []
    ref, gate, _ = _start_backlogged(Recorder, started, seen)
    for i in range(1, 6):
        ref.tell(data(i))
    stopped = ref.stop(block=False)
    gate.set()
    assert stopped.get(timeout=WAIT) is True
    assert seen == [("data", i) for i in range(6)]


def test_a_subclass_can_opt_out_to_plain_fifo(started):
    ref, gate, _ = _start_backlogged(FifoRecorder, started)
    ref.tell(data(1))
    ref.tell(KillSwitch(reason="late"))
    answer = ref.ask(GetTradingState(), block=False)
    gate.set()
    assert answer.get(timeout=WAIT) == [("data", 0), ("data", 1), ("KillSwitch", "late")]
