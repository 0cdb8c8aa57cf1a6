"""Asking actors from asyncio without blocking the event loop.

Why: a pykka future blocks the thread that waits on it (jodal/pykka#99), and
pykka 4.5 futures have no done-callback. So the wait (``future.get(timeout)``)
runs on a small dedicated thread pool, never on the loop and never on the
pool that hashes passwords; every ask has a deadline, so a pool thread is
held for at most ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pykka

from actors.directory import DeadLetter, Directory


_waiters = ThreadPoolExecutor(max_workers=16, thread_name_prefix="api-ask")


class ActorUnavailable(Exception):
    """The named actor is not running (HTTP 503)."""


class ActorTimeout(Exception):
    """The actor did not answer in time (HTTP 504)."""


class ActorFailed(Exception):
    """The actor raised while handling the request (HTTP 503)."""


async def ask_actor(directory: Directory, name: str, message: Any, timeout: float) -> Any:
    """Ask the actor registered as ``name``; raises ActorUnavailable / ActorTimeout / ActorFailed."""
    try:
        future = directory.ask_future(name, message)
    except DeadLetter:
        raise ActorUnavailable(f"the {name!r} actor is not running; try again shortly") from None
    except pykka.ActorDeadError:
        raise ActorUnavailable(f"the {name!r} actor stopped; try again shortly") from None
    return await await_future(future, name, timeout)


async def await_future(future: pykka.Future, name: str, timeout: float) -> Any:
    """Await a pykka future on the running loop, with a deadline, without blocking it."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(_waiters, functools.partial(future.get, timeout=timeout))
    except pykka.Timeout:
        raise ActorTimeout(f"the {name!r} actor did not answer within {timeout:g} s") from None
    except pykka.ActorDeadError:
        raise ActorUnavailable(f"the {name!r} actor stopped before answering; try again shortly") from None
    except Exception as exc:  # noqa: BLE001 - the actor's own error, reported without internals
        raise ActorFailed(f"the {name!r} actor failed: {type(exc).__name__}") from exc
