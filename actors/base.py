"""The base of every engine actor: typed dispatch, counters, failure reporting.

Why a base class: pykka gives each actor a thread and a mailbox but no
supervision and some sharp edges (an exception during ``tell`` stops the
actor and silently drops its queued messages; ``BaseException`` stops every
actor in the process). :class:`EngineActor` catches every failure in its own
handlers, reports it to its supervisor as a :class:`ChildFailed` message and
lets the supervisor decide; it never lets pykka take the process down.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pykka
from loguru import logger

from actors.directory import Address, Directory
from engine.messages import ChildFailed, Heartbeat, HeartbeatAck


def handles(*message_types: type) -> Callable:
    """Mark a method as the handler of ``message_types``."""

    def mark(fn: Callable) -> Callable:
        fn._handles = message_types  # type: ignore[attr-defined]
        return fn

    return mark


class EngineActor(pykka.ThreadingActor):
    """Subclass, decorate handlers with :func:`handles`, and send only through addresses.

    ``name`` is the stable address; ``directory`` resolves other names;
    ``supervisor`` (a name) receives :class:`ChildFailed` reports.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, fn in vars(klass).items():
                for mt in getattr(fn, "_handles", ()):
                    table[mt] = attr
        cls._dispatch_table = table

    _dispatch_table: dict[type, str] = {}

    def __init__(self, name: str, directory: Directory, supervisor: str | None = None):
        super().__init__()
        self.name = name
        self.directory = directory
        self.supervisor = supervisor
        self.processed = 0
        self.failed = False

    def addr(self, name: str) -> Address:
        return self.directory.address(name)

    def mailbox_depth(self) -> int:
        return self.actor_inbox.qsize()  # type: ignore[attr-defined]

    # -- pykka hooks
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Heartbeat):
            return HeartbeatAck(name=self.name, nonce=message.nonce)
        if self.failed:
            # After a reported failure the supervisor replaces us; anything
            # still queued is handed back so the replacement gets it.
            self._return_to_directory(message)
            return None
        method = self._dispatch_table.get(type(message))
        if method is None:
            return self.on_unhandled(message)
        self.processed += 1
        try:
            return getattr(self, method)(message)
        except Exception as exc:
            self._report("exception", exc)
            raise
        except BaseException as exc:  # noqa: BLE001 - contain SystemExit & co.
            self._report("base_exception", exc)
            raise RuntimeError(f"{type(exc).__name__} contained in {self.name}") from exc

    def on_unhandled(self, message: Any) -> Any:
        logger.warning("{} ignored unexpected message {}", self.name, type(message).__name__)
        return None

    def _report(self, kind: str, exc: BaseException) -> None:
        logger.opt(exception=exc).error("{} failed: {!r}", self.name, exc)
        if self.supervisor is None:
            return
        self.failed = True
        self.directory.tell(
            self.supervisor,
            ChildFailed(name=self.name, kind=kind, error=repr(exc)[:500], error_type=type(exc).__name__),
        )

    def _return_to_directory(self, message: Any) -> None:
        self.directory.tell(self.name, message)

    def now_wall_ns(self) -> int:
        return time.time_ns()
