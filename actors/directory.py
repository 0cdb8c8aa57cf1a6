"""Stable actor addresses: senders name an actor, never hold its ref.

Why: a supervisor restart replaces the pykka actor (fresh state, new ref).
If senders held refs they would all need re-wiring, and messages sent to the
dead ref would be lost. An :class:`Address` resolves the name at every send;
while the actor is down, messages wait in a bounded buffer and are delivered
in order after the restart, or are counted as dead letters and logged.

Ordering guarantee: a send resolves the name *and* enqueues under one lock,
and :meth:`Directory.retire` / :meth:`Directory.salvage` unpublish a ref and
empty its mailbox under the same lock. So once an incarnation is retired no
message can slip into its mailbox, and the messages it still held go to the
*front* of the buffer, ahead of everything sent after it went down.

Zombies: a hung handler cannot be killed in Python. When the supervisor gives
up on one it retires it as a zombie: whatever that thread sends afterwards is
dropped (and counted), so a late wake-up cannot act on stale state.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Iterable

import pykka
from loguru import logger
from pykka import messages as pykka_messages
from pykka._envelope import Envelope

from actors.loop import loop_of_current_thread


class DeadLetter(Exception):
    """Raised by :meth:`Address.ask` when the named actor is not running."""


class _PendingAsk:
    """An ask held for an actor being restarted: delivered with its reply future intact."""

    __slots__ = ("future", "message")

    def __init__(self, message: Any, future: pykka.Future):
        self.message = message
        self.future = future


def _deliver(ref: pykka.ActorRef, item: Any) -> None:
    """tell, or re-post a held ask with its original future (raises ActorDeadError like tell)."""
    if isinstance(item, _PendingAsk):
        if not ref.is_alive():
            raise pykka.ActorDeadError(f"{ref} not found")
        ref.actor_inbox.put(Envelope(item.message, reply_to=item.future))  # type: ignore[attr-defined]
    else:
        ref.tell(item)


def _fail_pending(items: Iterable[Any], why: str) -> None:
    for item in items:
        if isinstance(item, _PendingAsk):
            item.future.set_exception(exc_info=(DeadLetter, DeadLetter(why), None))


def actor_of(ref: pykka.ActorRef) -> Any:
    """The actor object behind ``ref`` (or None once collected).

    Read-only use by the supervisor and monitor (counters, thread id); pykka
    keeps a weakref on the ref for exactly this kind of introspection.
    """
    return ref._actor_weakref()  # noqa: SLF001


class Directory:
    """name -> live ActorRef, plus per-name buffers for actors being restarted.

    Shared by every actor thread; the tiny lock guards the dicts and the
    enqueue (it is infrastructure, not actor state).
    """

    def __init__(self, buffer_while_down: int = 1024):
        self._refs: dict[str, pykka.ActorRef] = {}
        self._buffers: dict[str, collections.deque] = {}
        self._down: set[str] = set()
        self._dead_letters: collections.Counter[str] = collections.Counter()
        self._zombie_threads: set[int] = set()
        self._zombie_drops = 0
        self.closing = False  # set by an orderly shutdown of the whole tree
        self._buffer_limit = buffer_while_down
        self._lock = threading.Lock()

    # -- registration (supervisor side)
    def register(self, name: str, ref: pykka.ActorRef) -> None:
        """Publish ``ref`` under ``name`` and flush what was buffered meanwhile, in order."""
        with self._lock:
            self._refs[name] = ref
            self._down.discard(name)
            pending = self._buffers.pop(name, None)
            while pending:
                try:
                    _deliver(ref, pending[0])
                except pykka.ActorDeadError:
                    # Died before it could take its backlog (e.g. on_start failed):
                    # keep the rest for the next incarnation.
                    self._refs.pop(name, None)
                    self._down.add(name)
                    self._buffers[name] = pending
                    return
                pending.popleft()

    def mark_down(self, name: str) -> None:
        """The actor is being restarted: buffer its messages instead of dropping them."""
        with self._lock:
            self._refs.pop(name, None)
            self._down.add(name)
            self._buffers.setdefault(name, collections.deque())

    def _log_dead(self, text: str, *args: Any) -> None:
        # While the whole tree shuts down, in-flight messages dying is expected: count, don't alarm.
        (logger.debug if self.closing else logger.warning)(text, *args)

    def unregister(self, name: str) -> None:
        """The actor is gone for good: later messages are dead letters."""
        with self._lock:
            self._refs.pop(name, None)
            self._down.discard(name)
            dropped = self._buffers.pop(name, None)
            if dropped:
                self._dead_letters[name] += len(dropped)
        if dropped:
            _fail_pending(dropped, f"actor {name!r} stopped before answering")
            self._log_dead("dead letters: {} messages for stopped actor {}", len(dropped), name)

    def retire(self, name: str, ref: pykka.ActorRef, zombie: bool = False) -> int:
        """Unpublish this incarnation of ``name`` and move its queued tells to the buffer front.

        Queued asks move too, with their reply futures (their callers keep
        waiting, within their own timeouts); a queued stop request is answered. With ``zombie=True`` the
        actor's thread is quarantined: whatever it sends later is dropped.
        Returns how many messages were moved.
        """
        if zombie:
            self.quarantine_thread_of(ref)
        return self.salvage(name, ref)

    def salvage(self, name: str, ref: pykka.ActorRef, already_taken: Iterable[Any] = ()) -> int:
        """Like :meth:`retire` without quarantine; ``already_taken`` are messages the
        actor had taken out of its mailbox but not handled (they go first)."""
        with self._lock:
            if self._refs.get(name) is ref:
                self._refs.pop(name, None)
            if name not in self._refs:
                self._down.add(name)
                buf = self._buffers.setdefault(name, collections.deque())
            else:  # a newer incarnation is already published: hand them straight over
                buf = None
            moved = list(already_taken)
            stops = []
            inbox = ref.actor_inbox
            while True:
                try:
                    envelope = inbox.get_nowait()  # type: ignore[attr-defined]
                except Exception:  # queue.Empty
                    break
                if isinstance(envelope.message, pykka_messages._ActorStop):  # noqa: SLF001
                    stops.append(envelope)
                elif envelope.reply_to is not None:
                    moved.append(_PendingAsk(envelope.message, envelope.reply_to))
                else:
                    moved.append(envelope.message)
            if buf is not None:
                room = max(0, self._buffer_limit - len(buf))
                keep, overflow = moved[:room], moved[room:]
                buf.extendleft(reversed(keep))
            else:
                keep, overflow = moved, []
                live = self._refs[name]
                for item in keep:
                    _deliver(live, item)
            if overflow:
                self._dead_letters[name] += len(overflow)
        for envelope in stops:
            if envelope.reply_to is not None:
                envelope.reply_to.set(None)
        if overflow:
            _fail_pending(overflow, f"restart buffer of {name!r} is full")
            logger.warning("dead letters: {} messages for {} (restart buffer full)", len(overflow), name)
        return len(keep)

    def forget_zombie(self, thread_ident: int) -> None:
        """The zombie's thread is exiting: its id may be reused by a healthy thread."""
        with self._lock:
            self._zombie_threads.discard(thread_ident)

    def quarantine_thread_of(self, ref: pykka.ActorRef) -> None:
        """Fence off the thread ``ref``'s actor runs on (its later sends are dropped)."""
        ident = getattr(actor_of(ref), "_thread_ident", None)
        if ident is not None:
            with self._lock:
                self._zombie_threads.add(ident)

    def on_zombie_thread(self, ref: pykka.ActorRef) -> bool:
        """True if ``ref``'s actor runs on a quarantined thread (e.g. a shared loop with a hung actor)."""
        ident = getattr(actor_of(ref), "_thread_ident", None)
        return ident is not None and ident in self._zombie_threads

    def is_zombie_thread(self) -> bool:
        return bool(self._zombie_threads) and threading.get_ident() in self._zombie_threads

    def dead_letter(self, name: str, msg: Any, why: str) -> None:
        """Count and log a message that will never be delivered (e.g. a poison message)."""
        with self._lock:
            self._dead_letters[name] += 1
        self._log_dead("dead letter for {}: {} ({})", name, type(msg).__name__, why)

    # -- sending
    def tell(self, name: str, msg: Any) -> bool:
        """Deliver or buffer ``msg``; False (and a dead letter) if neither is possible."""
        if self._zombie_threads and threading.get_ident() in self._zombie_threads:
            self._zombie_drops += 1
            return False
        with self._lock:
            ref = self._refs.get(name)
            if ref is None:
                return self._hold(name, msg)
            # pykka's ActorRef.tell, inlined (its is_alive() and tell() frames are ~0.3 µs of every hop).
            if not ref.actor_stopped.is_set():
                ref.actor_inbox.put(Envelope(msg))
                return True
            # Dead (pykka would raise ActorDeadError): buffer for its successor.
            self._refs.pop(name, None)
            self._down.add(name)
            self._buffers.setdefault(name, collections.deque())
            return self._hold(name, msg)

    def _hold(self, name: str, msg: Any) -> bool:
        buf = self._buffers.get(name) if name in self._down else None
        if buf is not None and len(buf) < self._buffer_limit:
            buf.append(msg)
            return True
        self._dead_letters[name] += 1
        count = self._dead_letters[name]
        if count <= 10 or count % 1000 == 0:  # a flood must not flood the log too
            self._log_dead("dead letter for {}: {} (total {})", name, type(msg).__name__, count)
        return False

    def ask(self, name: str, msg: Any, timeout: float = 5.0) -> Any:
        """Ask and wait; an actor being restarted answers after its restart (within ``timeout``)."""
        future = self.ask_future(name, msg)
        loop = loop_of_current_thread()
        try:
            if loop is not None:  # asked from a shared loop: serve its other actors while waiting
                return loop.wait_for(future, timeout)
            return future.get(timeout=timeout)
        except pykka.ActorDeadError:
            raise DeadLetter(f"actor {name!r} stopped before answering") from None

    def ask_future(self, name: str, msg: Any) -> pykka.Future:
        if self._zombie_threads and threading.get_ident() in self._zombie_threads:
            raise DeadLetter(f"a retired actor may not ask {name!r}")
        with self._lock:
            ref = self._refs.get(name)
            if ref is not None and not ref.is_alive():  # died; its supervisor has not caught up yet
                self._refs.pop(name, None)
                self._down.add(name)
                self._buffers.setdefault(name, collections.deque())
                ref = None
            if ref is None:
                buf = self._buffers.get(name) if name in self._down else None
                if buf is None:
                    raise DeadLetter(f"actor {name!r} is not running")
                if len(buf) >= self._buffer_limit:
                    self._dead_letters[name] += 1
                    raise DeadLetter(f"actor {name!r} is being restarted and its buffer is full")
                future = pykka.ThreadingFuture()
                buf.append(_PendingAsk(msg, future))
                return future
            # Enqueued under the lock, like tell. Not via ref.ask: if the actor dies
            # between our check and pykka's, pykka would fail the ask at once, while
            # an envelope already in the mailbox is salvaged for the next incarnation.
            future = pykka.ThreadingFuture()
            ref.actor_inbox.put(Envelope(msg, reply_to=future))  # type: ignore[attr-defined]
            return future

    # -- introspection
    def ref(self, name: str) -> pykka.ActorRef | None:
        with self._lock:
            return self._refs.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(set(self._refs) | self._down)

    def is_down(self, name: str) -> bool:
        with self._lock:
            return name in self._down

    def dead_letters(self, name: str | None = None) -> int:
        with self._lock:
            return self._dead_letters[name] if name else sum(self._dead_letters.values())

    def zombie_drops(self) -> int:
        return self._zombie_drops

    def buffered(self, name: str) -> int:
        with self._lock:
            return len(self._buffers.get(name, ()))

    def address(self, name: str) -> Address:
        return Address(self, name)


class Address:
    """A stable handle on a named actor (survives its restarts)."""

    __slots__ = ("_directory", "name")

    def __init__(self, directory: Directory, name: str):
        self._directory = directory
        self.name = name

    def tell(self, msg: Any) -> bool:
        return self._directory.tell(self.name, msg)

    def ask(self, msg: Any, timeout: float = 5.0) -> Any:
        return self._directory.ask(self.name, msg, timeout=timeout)

    def ask_future(self, msg: Any) -> pykka.Future:
        return self._directory.ask_future(self.name, msg)

    def __repr__(self) -> str:
        return f"Address({self.name!r})"
