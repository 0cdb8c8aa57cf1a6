"""The base of every engine actor: typed dispatch, counters, failure reporting.

Why a base class: pykka gives each actor a thread and a mailbox but no
supervision and some sharp edges, each handled here:

* an exception during ``tell`` stops the actor and pykka's teardown silently
  drops its queued tells: we report the failure to the supervisor as a
  :class:`ChildFailed`, count the failing message as a dead letter (a poison
  message must not loop) and move the queued messages, in order, into the
  directory's buffer so the restarted actor gets them;
* an exception in ``on_start`` stops the actor without ``on_failure``: we
  report it as ``start_failure`` the same way;
* ``BaseException`` (``SystemExit``...) in a handler makes pykka stop *every*
  actor in the process: we contain it as an ordinary failure of this actor;
* a hung handler is caught by the supervisor's heartbeats (answered here),
  after which the directory quarantines this thread as a zombie.

An exception while answering an ``ask`` goes to the asker (pykka) and the
actor keeps running: the asker owns that error.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pykka
from loguru import logger
from pykka import messages as pykka_messages

from actors.directory import Address, Directory
from actors.inbox import DEFAULT_PRIORITY_TYPES, PriorityInbox
from actors.loop import LoopMailbox, SharedLoop
from engine import faults as _faults
from engine.messages import ChildFailed, ChildRecovered, Heartbeat, HeartbeatAck


def handles(*message_types: type) -> Callable:
    """Mark a method as the handler of ``message_types``."""

    def mark(fn: Callable) -> Callable:
        fn._handles = message_types  # type: ignore[attr-defined]
        return fn

    return mark


_starting = threading.local()  # the loop an actor being started goes on (EngineActor.start)

_PYKKA_PRIVATE = frozenset(n for n in dir(pykka.ThreadingActor) if n.startswith("_") and not n.startswith("__"))
_OVERRIDDEN_HERE = frozenset({"_actor_loop_setup", "_actor_loop_teardown", "_create_actor_inbox", "_start_actor_loop",
                              "_abc_impl"})


class EngineActor(pykka.ThreadingActor):
    """Subclass, decorate handlers with :func:`handles`, and send only through addresses.

    ``name`` is the stable address; ``directory`` resolves other names;
    ``supervisor`` (a name) receives :class:`ChildFailed` reports.
    Subclasses that override ``on_failure`` must call ``super().on_failure(...)``.
    """

    # A hung handler cannot be killed; a daemon thread at least cannot keep a
    # halted process alive. Orderly shutdown stops every actor before exit.
    use_daemon_thread = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass method named like one of pykka's private ones (say
        # ``_handle_failure``) silently replaces pykka's machinery: refuse it.
        clashes = sorted(n for n in vars(cls) if n in _PYKKA_PRIVATE and n not in _OVERRIDDEN_HERE)
        if clashes:
            raise TypeError(f"{cls.__name__} defines {', '.join(clashes)}: that name is pykka's own; rename it")
        table: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, fn in vars(klass).items():
                for mt in getattr(fn, "_handles", ()):
                    table[mt] = attr
        cls._dispatch_table = table

    _dispatch_table: dict[type, str] = {}
    # Message types that may be dropped silently after a stop (timer ticks and the like).
    _housekeeping: tuple[type, ...] = ()
    # Control messages (kill switch, trading state, heartbeats, queries) take the
    # mailbox's fast lane and overtake a data backlog; FIFO within each lane;
    # pykka's stop stays in the normal lane (see actors/inbox.py).
    priority_types: tuple[type, ...] = DEFAULT_PRIORITY_TYPES

    @classmethod
    def _create_actor_inbox(cls) -> PriorityInbox:  # type: ignore[override]
        return PriorityInbox(cls.priority_types)

    @classmethod
    def start(cls, *args: Any, loop: SharedLoop | None = None, **kwargs: Any) -> pykka.ActorRef:
        """pykka's ``start``; with ``loop`` the actor runs on that shared thread (actors/loop.py)."""
        _starting.loop = loop
        try:
            return super().start(*args, **kwargs)
        finally:
            _starting.loop = None

    def _start_actor_loop(self) -> None:
        if self._loop is None:
            super()._start_actor_loop()
        else:
            self._loop.add(self)

    def __init__(self, name: str, directory: Directory, supervisor: str | None = None):
        super().__init__()
        self._loop: SharedLoop | None = getattr(_starting, "loop", None)
        self._loop_scheduled = False
        self._loop_setup_pending = False
        self._loop_busy = False  # mid-handler on its loop: a nested drive of the loop skips it
        self._addresses: dict[str, Address] = {}
        if self._loop is not None:  # not registered yet: nobody can have sent anything
            self.actor_inbox = LoopMailbox(self.priority_types, self._loop, self)  # type: ignore[assignment]
            self._actor_ref.actor_inbox = self.actor_inbox
        self.name = name
        self.directory = directory
        self.supervisor = supervisor
        self.processed = 0
        self.failed = False
        self._thread_ident: int | None = None
        self._current: Any = None
        self._pending_failure: tuple[str, BaseException] | None = None
        self._failure_handled = False

    @property
    def progress(self) -> int:
        """What the supervisor's hang detection watches: messages handled so far.

        On a shared loop it is the loop's count: an actor waiting for its turn
        behind a loop-mate's long handler is not hung; if the loop stops moving,
        every actor on it is.
        """
        return self.processed if self._loop is None else self._loop.handled

    def tell_self_at(self, deadline: float, message: Any) -> None:
        """Be told ``message`` once ``time.monotonic()`` reaches ``deadline``: a timer of the actor's loop.

        Only for actors on a shared loop (a thread per actor keeps its own timer threads).
        """
        assert self._loop is not None, f"{self.name}: tell_self_at needs a shared loop"
        ref = self.actor_ref

        def due() -> None:  # runs on the loop thread outside any handler: it only sends
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass  # stopped meanwhile

        self._loop.call_at(deadline, due)

    def addr(self, name: str) -> Address:
        # One Address per name: it is stable across the named actor's restarts, and
        # handlers send through it on every batch.
        found = self._addresses.get(name)
        if found is None:
            found = self._addresses[name] = self.directory.address(name)
        return found

    def mailbox_depth(self) -> int:
        return self.actor_inbox.qsize()  # type: ignore[attr-defined]

    def report_recovered(self, ok: bool, detail: str = "") -> None:
        """Tell the supervisor whether state recovered after a restart (call from on_start).

        Trading that was paused for this actor's failure resumes only on ``ok=True``.
        """
        if self.supervisor is not None:
            self.directory.tell(self.supervisor, ChildRecovered(name=self.name, ok=ok, detail=detail))

    # -- pykka hooks
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Heartbeat):
            return HeartbeatAck(name=self.name, nonce=message.nonce)
        method = self._dispatch_table.get(type(message))
        if method is None:
            return self.on_unhandled(message)
        self.processed += 1
        self._current = message
        try:
            injector = _faults.injector  # read once: a test may uninstall it meanwhile
            if injector is None:
                return getattr(self, method)(message)
            injector.before(self.name, message)  # chaos tests only (engine/faults.py)
            result = getattr(self, method)(message)
            injector.after(self.name, message)
            return result
        except Exception as exc:
            self._pending_failure = ("exception", exc)
            raise
        except BaseException as exc:  # noqa: BLE001 - contain SystemExit & co.
            self._pending_failure = ("base_exception", exc)
            raise RuntimeError(f"{type(exc).__name__} contained in {self.name}: {exc}") from exc

    def on_unhandled(self, message: Any) -> Any:
        logger.warning("{} ignored unexpected message {}", self.name, type(message).__name__)
        return None

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """pykka calls this only when a *tell* handler raised; the actor is already stopped."""
        kind, exc = self._pending_failure or ("exception", exception_value)
        self.directory.dead_letter(self.name, self._current, f"its handler raised {type(exc).__name__}")
        self._fail(kind, exc)

    # -- lifecycle internals (pykka's loop stages, extended)
    def _actor_loop_setup(self) -> None:
        self._thread_ident = threading.get_ident()
        try:
            self.on_start()
        except BaseException as exc:  # noqa: BLE001 - pykka would skip on_failure / kill everyone
            self._pending_failure = ("start_failure", exc)
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            self._fail("start_failure", exc)
            logger.opt(exception=exc).error("{} failed to start: {!r}", self.name, exc)

    def release_resources(self) -> None:
        """Free what the actor holds outside Python objects (files, threads): override where needed.

        Runs once at every end of the actor, after ``on_stop`` if there was
        one: a graceful stop, a crashed handler and a failed ``on_start``
        alike (pykka runs ``on_stop`` only for the first). Not for a hung
        actor, whose thread never comes back. Make it idempotent: ``on_stop``
        may call it too, to be done before ``stop()`` returns.
        """

    def _actor_loop_teardown(self) -> None:
        try:
            self.release_resources()
        except Exception:  # noqa: BLE001 - the mailbox must still be handed back
            logger.exception("{} failed to release its resources", self.name)
        try:
            if self._failure_handled:
                self.directory.salvage(self.name, self.actor_ref)  # late arrivals, if any
            else:
                self._drop_after_stop()
        finally:
            # A shared loop's thread lives on while its other actors do.
            if self._thread_ident is not None and (self._loop is None or not self._loop.has_members()):
                self.directory.forget_zombie(self._thread_ident)

    def _fail(self, kind: str, exc: BaseException) -> None:
        """Hand the mailbox back to the directory (in order), then tell the supervisor."""
        self.failed = True
        if self.supervisor is None:
            # Nobody will restart us: our queue has no future owner. Asks fail
            # now, tells are counted dead letters, the name is released.
            logger.error("{} failed ({}) with no supervisor: {!r}", self.name, kind, exc)
            if self.directory.ref(self.name) is self.actor_ref:
                self.directory.unregister(self.name)
            self._drop_after_stop()
            return
        self._failure_handled = True
        self.directory.salvage(self.name, self.actor_ref)
        self.directory.tell(
            self.supervisor,
            ChildFailed(
                name=self.name,
                kind=kind,  # type: ignore[arg-type]
                error=repr(exc)[:500],
                error_type=type(exc).__name__,
                incarnation=self.actor_urn,
            ),
        )

    def _drop_after_stop(self) -> None:
        """Orderly stop: tells queued behind the stop are dead letters (counted, not silent)."""
        dropped = 0
        while True:
            try:
                envelope = self.actor_inbox.get_nowait()  # type: ignore[attr-defined]
            except Exception:  # queue.Empty
                break
            if envelope.reply_to is not None:
                if isinstance(envelope.message, pykka_messages._ActorStop):  # noqa: SLF001
                    envelope.reply_to.set(None)
                else:
                    envelope.reply_to.set_exception(
                        exc_info=(pykka.ActorDeadError, pykka.ActorDeadError(f"{self.name} stopped"), None)
                    )
            elif not isinstance(envelope.message, self._housekeeping):
                dropped += 1
                self.directory.dead_letter(self.name, envelope.message, "queued behind a stop")
        if dropped:
            (logger.debug if self.directory.closing else logger.warning)(
                "{} stopped with {} queued messages (dead letters)", self.name, dropped)

    def now_wall_ns(self) -> int:
        return time.time_ns()
