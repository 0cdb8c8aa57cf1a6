"""Stable actor addresses: senders name an actor, never hold its ref.

Why: a supervisor restart replaces the pykka actor (fresh state, new ref).
If senders held refs they would all need re-wiring, and messages sent to the
dead ref would be lost. An :class:`Address` resolves the name at every send;
while the actor is down, messages wait in a bounded buffer and are delivered
in order after the restart, or are counted as dead letters and logged.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import pykka
from loguru import logger


class DeadLetter(Exception):
    """Raised by :meth:`Address.ask` when the named actor is not running."""


class Directory:
    """name -> live ActorRef, plus per-name buffers for actors being restarted.

    Shared by every actor thread; the tiny lock guards the dicts only (it is
    infrastructure, not actor state).
    """

    def __init__(self, buffer_while_down: int = 1024):
        self._refs: dict[str, pykka.ActorRef] = {}
        self._buffers: dict[str, collections.deque] = {}
        self._down: set[str] = set()
        self._dead_letters: collections.Counter[str] = collections.Counter()
        self._buffer_limit = buffer_while_down
        self._lock = threading.Lock()

    # -- registration (supervisor side)
    def register(self, name: str, ref: pykka.ActorRef) -> None:
        """Publish ``ref`` under ``name`` and flush what was buffered meanwhile, in order."""
        with self._lock:
            self._refs[name] = ref
            self._down.discard(name)
            pending = self._buffers.pop(name, None)
            if pending:
                for msg in pending:
                    ref.tell(msg)

    def mark_down(self, name: str) -> None:
        """The actor is being restarted: buffer its messages instead of dropping them."""
        with self._lock:
            self._refs.pop(name, None)
            self._down.add(name)
            self._buffers.setdefault(name, collections.deque())

    def unregister(self, name: str) -> None:
        """The actor is gone for good: later messages are dead letters."""
        with self._lock:
            self._refs.pop(name, None)
            self._down.discard(name)
            dropped = self._buffers.pop(name, None)
            if dropped:
                self._dead_letters[name] += len(dropped)
                logger.warning("dead letters: {} messages for stopped actor {}", len(dropped), name)

    # -- sending
    def tell(self, name: str, msg: Any) -> bool:
        """Deliver or buffer ``msg``; False (and a dead letter) if neither is possible."""
        with self._lock:
            ref = self._refs.get(name)
            if ref is None:
                return self._hold(name, msg)
        try:
            ref.tell(msg)
            return True
        except pykka.ActorDeadError:
            with self._lock:
                if self._refs.get(name) is ref:
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
        logger.warning("dead letter for {}: {}", name, type(msg).__name__)
        return False

    def ask(self, name: str, msg: Any, timeout: float = 5.0) -> Any:
        with self._lock:
            ref = self._refs.get(name)
        if ref is None:
            raise DeadLetter(f"actor {name!r} is not running")
        try:
            return ref.ask(msg, timeout=timeout)
        except pykka.ActorDeadError:
            raise DeadLetter(f"actor {name!r} stopped before answering") from None

    def ask_future(self, name: str, msg: Any) -> pykka.Future:
        with self._lock:
            ref = self._refs.get(name)
        if ref is None:
            raise DeadLetter(f"actor {name!r} is not running")
        return ref.ask(msg, block=False)

    # -- introspection
    def ref(self, name: str) -> pykka.ActorRef | None:
        with self._lock:
            return self._refs.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(set(self._refs) | self._down)

    def dead_letters(self, name: str | None = None) -> int:
        with self._lock:
            return self._dead_letters[name] if name else sum(self._dead_letters.values())

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
