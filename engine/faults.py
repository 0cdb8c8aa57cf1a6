"""Fault injection for chaos tests: make a named actor fail on purpose.

Why a process-wide injector consulted by every actor: the failures that
matter (an exception in a handler, a handler that never returns, an actor
that is stopped from outside) must happen *inside* the real actors of a real
pipeline, at a random message, without any test-only subclass. The hook in
``actors/base.py`` costs one attribute read per message while no injector is
installed (``injector is None``), so production pays nothing.

A fault is armed for one actor name and fires on the n-th data message that
actor handles after arming (only message types listed in ``message_types``:
asks such as queries would hand the error to the asker instead of failing
the actor). Kinds, as a table:

=============  ===============================================================
``raise``      raise :class:`InjectedFault` before the handler runs
``raise_after``  run the handler (its side effects happen), then raise
``hang``       block the actor's thread until released (the supervisor must
               detect it by missed heartbeats); on release it raises, so the
               abandoned zombie never acts on the stale message
``exit``       raise ``SystemExit`` (pykka would stop every actor: contained)
``stop``       stop the actor from outside (no failure report: the supervisor
               sees an actor that stopped by itself)
=============  ===============================================================
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

KINDS = ("raise", "raise_after", "hang", "exit", "stop")

#: The data-plane messages a fault may fire on (by type name, so this module
#: needs no actor imports).
DATA_MESSAGES = frozenset({
    "TickBatch", "IndicatorBatch", "OrderBatch", "Round", "VenueReport", "BatchDone", "OrderUpdates",
    "_Pump", "SampleNow",
})  # fmt: skip


class InjectedFault(RuntimeError):
    """The exception an injected fault raises (so logs say plainly it was on purpose)."""


@dataclass
class _Armed:
    name: str
    kind: str
    after: int
    fired: threading.Event = field(default_factory=threading.Event)
    seen: int = 0


@dataclass
class FaultRecord:
    name: str
    kind: str
    message_type: str


class FaultInjector:
    """Arms one fault at a time per actor name; thread-safe (actors call it from their threads)."""

    def __init__(self, message_types: frozenset[str] = DATA_MESSAGES, hang_timeout_s: float = 60.0):
        self.message_types = message_types
        self.hang_timeout_s = hang_timeout_s
        self._armed: dict[str, _Armed] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.fired: list[FaultRecord] = []
        self.stop_actor: Callable[[str], None] | None = None  # set by the harness for kind "stop"

    def arm(self, name: str, kind: str, after: int = 0) -> threading.Event:
        """Fire ``kind`` in actor ``name`` on its data message number ``after`` (0 = the next)."""
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(KINDS)}, got {kind!r}")
        armed = _Armed(name, kind, int(after))
        with self._lock:
            self._armed[name] = armed
        return armed.fired

    def disarm_all(self) -> None:
        with self._lock:
            self._armed.clear()

    def release_hangs(self) -> None:
        """Wake every hung handler (each then raises and its zombie thread ends)."""
        old, self._release = self._release, threading.Event()
        old.set()

    # -- called by actors (actors/base.py)
    def before(self, name: str, message: Any) -> None:
        armed = self._take(name, message, after=False)
        if armed is None:
            return
        if armed.kind == "raise":
            raise InjectedFault(f"injected exception in {name} on {type(message).__name__}")
        if armed.kind == "exit":
            raise SystemExit(f"injected SystemExit in {name}")
        if armed.kind == "hang":
            self._release.wait(self.hang_timeout_s)  # this hang's event: later hangs get a fresh one
            raise InjectedFault(f"injected hang in {name} released")
        if armed.kind == "stop" and self.stop_actor is not None:
            self.stop_actor(name)

    def after(self, name: str, message: Any) -> None:
        if self._armed.get(name) is not None and self._take(name, message, after=True) is not None:
            raise InjectedFault(f"injected exception in {name} after handling {type(message).__name__}")

    def _take(self, name: str, message: Any, after: bool) -> _Armed | None:
        armed = self._armed.get(name)
        if armed is None or (armed.kind == "raise_after") != after:
            return None
        if type(message).__name__ not in self.message_types:
            return None
        with self._lock:
            if self._armed.get(name) is not armed:
                return None
            armed.seen += 1
            if armed.seen <= armed.after:
                return None
            del self._armed[name]
            self.fired.append(FaultRecord(name, armed.kind, type(message).__name__))
        armed.fired.set()
        return armed


#: The installed injector, or None (production). Read by every actor per message.
injector: FaultInjector | None = None


def install(fi: FaultInjector | None) -> None:
    """Install (or, with None, remove) the process-wide injector."""
    global injector
    injector = fi
