"""Floors for the live latency figures: what the machine and the actor framework cost with no engine work.

Why two floors: the live "tick -> venue" percentiles mix three things, the
host's wake-ups, the framework's hops and the engine's own work, and on a
shared VM the first two move by a factor of several from hour to hour. A
figure divided by a floor measured in the same run compares across
machines and phases; the gap between the floors and the engine says what
the engine's work costs on top.

* :func:`measure_wakeup_floor`: a thread that does nothing wakes for each
  tick of the same schedule and records how late it woke (the host's
  scheduler and timers only, no GIL, no actors).
* :func:`measure_framework_floor`: the live pipeline's shape with empty
  handlers: a pacer on one :class:`~actors.loop.SharedLoop`, armed by the
  loop's own timers, a window of one batch (ticks due while it is out ride
  together with the next), and ``stages`` actors that only pass the batch
  on, the last recording the latency and returning the credit. As many
  handler calls per batch as a quiet live tick (feed, indicators,
  strategy, safety, orders, venue, the credit back at the feed), and the
  same directory, mailboxes and dispatch.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec

from engine.metrics import new_histogram, record_many, summary_us

# indicators, strategy, safety, orders, venue: the actors a quiet live tick crosses after the feed
LIVE_STAGES = 5


def _summary(late_ns: list[int]) -> dict[str, float]:
    hist = new_histogram()
    record_many(hist, late_ns)
    return summary_us(hist)


def measure_wakeup_floor(seconds: float = 3.0, rate: float = 10_000.0) -> dict[str, Any]:
    """How late a thread that does nothing wakes for each tick of a ``rate`` ticks/s schedule.

    A thread with the engine's timer slack waits for the same schedule the
    live feed releases ticks on (one every ``1/rate`` s). No engine, no GIL
    contention: what the machine's scheduler alone costs (on a shared VM its
    preemptions put milliseconds into the tail).
    """
    from engine.assembly import tighten_timer_slack

    out: list[int] = []

    def run() -> None:
        tighten_timer_slack()
        gate = threading.Event()  # never set: a timed wait, like the loop's
        start = time.monotonic_ns()
        interval = int(1e9 / rate)
        end = start + int(seconds * 1e9)
        k = 1
        while True:
            due = start + k * interval
            if due > end:
                return
            now = time.monotonic_ns()
            if due > now:
                gate.wait((due - now) / 1e9)
            out.append(time.monotonic_ns() - due)
            k = max(k + 1, (time.monotonic_ns() - start) // interval + 1)  # a late wake-up skips, never bursts

    thread = threading.Thread(target=run, name="bench-wakeup-floor", daemon=True)
    thread.start()
    thread.join(seconds + 30)
    return {"rate": rate, "seconds": seconds, "samples": len(out), "late_us": _summary(out)}


class _Start(msgspec.Struct, frozen=True):
    pass


class _Due(msgspec.Struct, frozen=True):
    pass


class _Batch(msgspec.Struct, frozen=True):
    seq: int
    ticks: int
    due_ns: int  # monotonic: when its first tick fell due


class _Credit(msgspec.Struct, frozen=True):
    seq: int


def _actor_classes() -> tuple[type, type]:
    """The pacer and the pass-on stage, built on first use: importing the bench must not import actors."""
    from actors.base import EngineActor, handles

    class Pacer(EngineActor):
        """The feed's pacing with nothing to read: release what fell due, one batch out at a time."""

        _housekeeping = (_Due,)  # a timer that fires after the stop is not a lost message

        def __init__(self, name, directory, supervisor=None, *, rate: float, first: str):
            super().__init__(name, directory, supervisor)
            self.rate, self.first = rate, first
            self.sent = self.batches = self.max_out = 0
            self.out = self.armed = False
            self.t0 = 0.0
            self.t0_ns = 0

        @handles(_Start)
        def on_begin(self, _msg: _Start) -> None:
            self.t0, self.t0_ns = time.monotonic(), time.monotonic_ns()
            self._pump()

        @handles(_Due)
        def on_due(self, _msg: _Due) -> None:
            self.armed = False
            self._pump()

        @handles(_Credit)
        def on_credit(self, _msg: _Credit) -> None:
            self.out = False
            self._pump()

        def counts(self) -> tuple[int, int]:
            """Ticks and batches released so far, read together (asked through a proxy)."""
            return self.sent, self.batches

        def _pump(self) -> None:
            if self.out:
                return  # the credit coming back pumps, as the feed's does
            due = int((time.monotonic() - self.t0) * self.rate) - self.sent
            if due <= 0:
                if not self.armed:
                    self.armed = True
                    self.tell_self_at(self.t0 + (self.sent + 1) / self.rate, _Due())
                return
            due_ns = self.t0_ns + int((self.sent + 1) * 1e9 / self.rate)
            self.sent += due
            self.batches += 1
            self.out = True
            self.addr(self.first).tell(_Batch(seq=self.batches, ticks=due, due_ns=due_ns))

    class Stage(EngineActor):
        """Passes the batch on; the last one records how long after its due time it arrived."""

        def __init__(self, name, directory, supervisor=None, *, then: str | None, pacer: str, record: list[int],
                     record_from_ns: int):  # fmt: skip
            super().__init__(name, directory, supervisor)
            self.then, self.pacer, self.record, self.record_from_ns = then, pacer, record, record_from_ns

        @handles(_Batch)
        def on_batch(self, batch: _Batch) -> None:
            if self.then is not None:
                self.addr(self.then).tell(batch)
                return
            if batch.due_ns >= self.record_from_ns:
                self.record.append(time.monotonic_ns() - batch.due_ns)
            self.addr(self.pacer).tell(_Credit(seq=batch.seq))

    return Pacer, Stage


def measure_framework_floor(seconds: float = 3.0, rate: float = 10_000.0, stages: int = LIVE_STAGES,
                            warmup_s: float = 0.5) -> dict[str, Any]:
    """Latency of empty handlers in the live pipeline's shape: due -> last of ``stages`` actors.

    See the module docstring. Batches whose first tick fell due in the
    first ``warmup_s`` are not recorded.
    """
    from actors.directory import Directory
    from actors.loop import SharedLoop

    if stages < 1 or rate <= 0 or seconds <= 0:
        raise ValueError(f"framework floor: stages >= 1, rate > 0 and seconds > 0 expected, got {stages}, {rate}, {seconds}")
    pacer_cls, stage_cls = _actor_classes()
    directory, loop = Directory(), SharedLoop("bench-floor")
    late: list[int] = []
    record_from_ns = time.monotonic_ns() + int(warmup_s * 1e9)
    names = [f"floor-stage-{i}" for i in range(stages)]
    refs = []
    try:
        for i, name in enumerate(names):
            then = names[i + 1] if i + 1 < stages else None
            refs.append(stage_cls.start(name, directory, then=then, pacer="floor-pacer", record=late, record_from_ns=record_from_ns,
                                        loop=loop))  # fmt: skip
            directory.register(name, refs[-1])
        pacer = pacer_cls.start("floor-pacer", directory, rate=rate, first=names[0], loop=loop)
        directory.register("floor-pacer", pacer)
        refs.append(pacer)
        handled0 = loop.handled
        directory.tell("floor-pacer", _Start())
        threading.Event().wait(warmup_s + seconds)  # a plain timed wait for the run's duration
        handled = loop.handled - handled0
        sent, batches = pacer.proxy().counts().get(timeout=10)
    finally:
        for ref in reversed(refs):
            ref.stop(timeout=10)
    recorded = list(late)
    return {"rate": rate, "seconds": seconds, "stages": stages, "ticks": sent, "batches": batches,
            "mean_batch": round(sent / max(batches, 1), 2), "samples": len(recorded),
            "handler_calls_per_batch": round(handled / max(batches, 1), 2), "late_us": _summary(recorded)}  # fmt: skip
