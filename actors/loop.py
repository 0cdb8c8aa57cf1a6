"""Shared loops: the mailboxes of several actors served by one thread.

Why: pykka gives every actor a thread. Under CPython's GIL that buys no
parallelism for Python code, and every hop between two threads costs a
futex wake-up and a GIL hand-over: ~12 µs per hop at idle, measured here
(bench/README.md), and a tick crosses five hops before its order reaches the
venue. Actors on one :class:`SharedLoop` hand a message over by appending to
a deque: about a microsecond. This is Erlang's scheduler (many processes,
one thread) and Akka's dispatcher, not a new idea.

What does not change: each actor still handles one message at a time, its
state is touched only by its own handlers, messages are the same immutable
structs, and senders on other threads (the pacer, the API, supervisors)
tell and ask exactly as before. pykka's loop body is reproduced per message
(:meth:`SharedLoop._handle`), so failures, ``on_failure``, stops and replies
behave as under :class:`pykka.ThreadingActor`.

What does change, and why it is acceptable for the pipeline: loop-mates
share a thread, so a handler that blocks blocks them too. The pipeline is
restarted as a whole anyway (one_for_all): a hang is caught by the
supervisor's heartbeats as before, the stuck thread is fenced off as a
zombie (every actor on it) and the new incarnation gets a new loop.

An ask from a loop thread (e.g. the SafetyActor's ``on_start`` asking the
OrderActor) would deadlock if the answer needs the same thread, so a
handler waiting for an answer drives the loop meanwhile: it serves the other
actors' mailboxes, never its own or that of an actor still mid-handler
(:meth:`SharedLoop.wait_for`).
"""

from __future__ import annotations

import collections
import heapq
import queue
import sys
import threading
import time
from itertools import count
from typing import Any

import pykka
from pykka import ActorRegistry
from pykka import messages as pykka_messages
from loguru import logger

from actors.inbox import Lanes

_PYKKA_MESSAGES = (pykka_messages._ActorStop, pykka_messages.ProxyCall, pykka_messages.ProxyGetAttr,  # noqa: SLF001
                   pykka_messages.ProxySetAttr)
_loop_counter = count(0)
_BY_THREAD: dict[int, "SharedLoop"] = {}  # loop thread ident -> loop (for asks made on it)
# Wall time spent in handlers, by actor class: on a shared thread that is each actor's CPU
# share, which per-thread CPU clocks can no longer tell apart. One dict per loop, each
# written by its own thread only (two loop threads adding to one dict could lose an
# update between the read and the write); kept after a loop stops, so totals never shrink.
_BUSY_BY_LOOP: list[dict[str, int]] = []


def stage_busy_ns() -> dict[str, int]:
    """Nanoseconds spent in handlers per actor class on every shared loop of the process, so far."""
    total: dict[str, int] = collections.defaultdict(int)
    for busy in list(_BUSY_BY_LOOP):
        for name, ns in dict(busy).items():  # a copy in one C call: the loop may add a class meanwhile
            total[name] += ns
    return dict(total)


def loop_of_current_thread() -> "SharedLoop | None":
    return _BY_THREAD.get(threading.get_ident()) if _BY_THREAD else None


class SharedLoop:
    """One daemon thread serving the mailboxes of the actors added to it, in turn.

    Fairness: an actor with mail is served one message, then goes to the back
    of the ready queue, so a batch moves down the pipeline stage by stage
    instead of one stage draining its whole backlog first.

    Time spent in each actor's handlers is counted for :func:`stage_busy_ns`.
    """

    def __init__(self, name: str = "pipeline"):
        self.name = f"{name}-loop-{next(_loop_counter)}"
        self._ready: collections.deque[Any] = collections.deque()
        self._cv = threading.Condition(threading.Lock())
        self._sleeping = False
        self._members: set[Any] = set()
        self._thread: threading.Thread | None = None
        self.ident: int | None = None
        self.handled = 0
        self.busy_ns: dict[str, int] = collections.defaultdict(int)
        _BUSY_BY_LOOP.append(self.busy_ns)
        self._timers: list[tuple[float, int, Any]] = []  # heap of (monotonic deadline, seq, fn)
        self._timer_seq = count()

    # -- membership (called by EngineActor)
    def add(self, actor: Any) -> None:
        """Start serving ``actor``: its ``_actor_loop_setup`` runs first, on the loop thread."""
        actor._loop_setup_pending = True
        with self._cv:
            self._members.add(actor)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self.schedule(actor)

    def has_members(self) -> bool:
        return bool(self._members)

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread while it has members (None once it ended)."""
        return self._thread

    # -- scheduling (called by LoopMailbox.put from any thread)
    def schedule(self, actor: Any) -> None:
        if actor._loop_scheduled:
            return
        actor._loop_scheduled = True
        self._ready.append(actor)
        if self._sleeping:
            with self._cv:
                self._cv.notify()

    def call_at(self, deadline: float, fn: Any) -> None:
        """Run ``fn()`` on the loop thread once ``time.monotonic()`` reaches ``deadline``.

        ``fn`` should only tell an actor a message (it runs outside any
        handler). Why not a timer thread: a thread that wakes every 100 µs
        must win the GIL from the loop each time, which can take a whole
        switch interval (5 ms); the loop instead sleeps until the earliest
        deadline and fires it itself. Safe to call from any thread.
        """
        with self._cv:
            heapq.heappush(self._timers, (deadline, next(self._timer_seq), fn))
            if self._sleeping:
                self._cv.notify()

    def _fire_due_timers(self) -> None:
        timers = self._timers
        while True:
            with self._cv:
                if not timers or timers[0][0] > time.monotonic():
                    return
                fn = heapq.heappop(timers)[2]
            try:
                fn()
            except Exception:  # noqa: BLE001 - a timer callback must not end the loop
                logger.exception("{}: timer callback failed", self.name)

    # -- the loop
    def _run(self) -> None:
        from actors.ticker import tighten_timer_slack

        self.ident = threading.get_ident()
        _BY_THREAD[self.ident] = self
        tighten_timer_slack()  # its timed waits are tick deadlines
        ready, timers = self._ready, self._timers
        try:
            while True:
                # A peek without the lock: only this thread pops, and a push (heapq, in C) is atomic
                # under the GIL. Locking on every turn cost ~0.5 µs per message in real time.
                if timers and timers[0][0] <= time.monotonic():
                    self._fire_due_timers()
                if not ready:
                    with self._cv:
                        self._sleeping = True
                        while not ready and self._members:
                            timeout = None
                            if timers:
                                timeout = timers[0][0] - time.monotonic()
                                if timeout <= 0:
                                    break
                            self._cv.wait(timeout)
                        self._sleeping = False
                        if not self._members and not ready:
                            self._thread = None  # decided under the lock: a later add() starts a new thread
                            return
                    continue
                self._serve(ready.popleft())
        finally:
            _BY_THREAD.pop(self.ident, None)

    def _serve(self, actor: Any) -> None:
        actor._loop_scheduled = False  # before draining: a put from now on schedules it again
        if actor._loop_setup_pending:
            actor._loop_setup_pending = False
            actor._loop_busy = True
            try:
                actor._actor_loop_setup()
            finally:
                actor._loop_busy = False
                self.handled += 1
        # The mailbox's lanes directly, not through queue.Queue's surface: this runs once
        # per message, and the method calls cost ~0.3 µs of a ~2.7 µs hop.
        lanes = actor.actor_inbox._lanes
        stopped = actor.actor_stopped
        envelope = None
        if not stopped.is_set():
            try:
                envelope = lanes.pop()
            except IndexError:  # nothing left (e.g. salvaged meanwhile by the directory)
                pass
        if envelope is not None:
            actor._loop_busy = True
            t0 = time.perf_counter_ns()
            try:
                self._handle(actor, envelope)
            finally:
                self.busy_ns[actor.__class__.__name__] += time.perf_counter_ns() - t0
                actor._loop_busy = False
                self.handled += 1
        if stopped.is_set():
            self._finish(actor)
        elif lanes.fast or lanes.normal:
            self.schedule(actor)

    def _finish(self, actor: Any) -> None:
        """pykka's teardown for one actor; the thread ends with its last member."""
        if actor not in self._members:
            return
        with self._cv:
            self._members.discard(actor)
        try:
            actor._actor_loop_teardown()
        except Exception:  # noqa: BLE001 - one actor's teardown must not end its loop-mates
            logger.exception("{}: teardown of {} failed", self.name, actor)

    @staticmethod
    def _handle(actor: Any, envelope: Any) -> None:
        """One turn of pykka's ``_actor_loop_running``, unchanged in meaning."""
        try:
            message = envelope.message
            if isinstance(message, _PYKKA_MESSAGES):
                response = actor._handle_receive(message)
            else:  # what _handle_receive would do after four isinstance checks
                response = actor.on_receive(message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                logger.opt(exception=True).info("Exception returned from {} to caller:", actor)
                envelope.reply_to.set_exception()
            else:
                actor._handle_failure(*sys.exc_info())
                try:
                    actor.on_failure(*sys.exc_info())
                except Exception:  # noqa: BLE001
                    actor._handle_failure(*sys.exc_info())
        except BaseException:  # noqa: BLE001 - pykka's rule: stop everything
            logger.debug("{!r} in {}. Stopping all actors.", sys.exc_info()[1], actor)
            actor._stop()
            ActorRegistry.stop_all()

    # -- asks made on the loop thread
    def wait_for(self, future: pykka.Future, timeout: float | None) -> Any:
        """``future.get(timeout)``, serving the other actors meanwhile (see module doc)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ready = self._ready
        while True:
            try:
                return future.get(timeout=0)
            except pykka.Timeout:
                pass
            if deadline is not None and time.monotonic() >= deadline:
                raise pykka.Timeout(f"{timeout} seconds")
            skipped = []
            served = False
            while ready:
                actor = ready.popleft()
                if actor._loop_busy:  # mid-handler (this drive runs inside one of its handlers)
                    skipped.append(actor)
                    continue
                self._serve(actor)
                served = True
                break
            for actor in skipped:
                actor._loop_scheduled = False
                self.schedule(actor)
            if not served:
                # The answer comes from another thread: wait on it a little, then look again.
                try:
                    return future.get(timeout=0.0005)
                except pykka.Timeout:
                    pass


class LoopMailbox:
    """The two-lane mailbox (actors/inbox.py) of an actor on a :class:`SharedLoop`, without a mutex.

    Why no mutex: only one thread at a time takes messages out (the loop, or
    the directory salvaging a stopped actor), ``deque.append`` and
    ``popleft`` are atomic, and nobody ever blocks on it: the loop is woken
    by ``schedule``. That saves a lock and a condition notify per message
    (about 1.5 µs of the hop) while keeping ``queue.Queue``'s surface that
    pykka, the directory and the monitor use.
    """

    def __init__(self, priority_types: tuple[type, ...], loop: SharedLoop, owner: Any):
        self._lanes = Lanes(priority_types)
        self.priority_types = self._lanes.priority_types
        self._loop = loop
        self._owner = owner

    def put(self, envelope: Any, block: bool = True, timeout: float | None = None) -> None:
        self._lanes.push(envelope)
        self._loop.schedule(self._owner)

    def get_nowait(self) -> Any:
        try:
            return self._lanes.pop()
        except IndexError:
            raise queue.Empty from None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self.get_nowait()  # never waited on: the loop only takes what is there

    def empty(self) -> bool:
        return not self._lanes

    def qsize(self) -> int:
        return len(self._lanes)

    def lane_sizes(self) -> tuple[int, int]:
        return self._lanes.sizes()
