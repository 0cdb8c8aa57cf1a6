"""Small test actors and helpers shared by the supervision tests (no tests here).

Each test actor records what it sees in a :class:`Journal` (thread-safe, with
an Event-based ``wait_for``) so tests synchronise on observed behaviour, never
on sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import msgspec

from actors.base import EngineActor, handles
from actors.directory import Directory
from engine.messages import GetTradingState, KillSwitch, SetTradingState, TradingState, TradingStateInfo
from engine.supervision import ChildContext, ChildSpec, RestartStrategy, SupervisorSpec

TIMEOUT = 5.0


class Item(msgspec.Struct, frozen=True):
    """A numbered message; ``action`` makes the receiver misbehave on purpose."""

    n: int
    action: str = ""  # "", "raise", "exit", "hang", "quit", "slow"


class Journal:
    """What the test actors saw, across incarnations."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.RLock())
        self.events: list[tuple[str, Any]] = []

    def add(self, kind: str, value: Any) -> None:
        with self._changed:
            self.events.append((kind, value))
            self._changed.notify_all()

    def of(self, kind: str) -> list[Any]:
        with self._changed:
            return [v for k, v in self.events if k == kind]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
        """Wait (on a condition, no polling sleep) until ``predicate()`` holds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True


class Worker(EngineActor):
    """Records starts/stops/items; misbehaves on command."""

    def __init__(self, name: str, directory: Directory, supervisor: str | None, journal: Journal,
                 release: threading.Event | None = None, fail_start: Callable[[], bool] | None = None,
                 recover: Callable[[], tuple[bool, str]] | None = None):
        super().__init__(name, directory, supervisor)
        self.journal = journal
        self.release = release or threading.Event()
        self.fail_start = fail_start
        self.recover = recover
        self.seen: list[int] = []  # per incarnation: fresh state on restart

    def on_start(self) -> None:
        self.journal.add("start", self.name)
        if self.fail_start is not None and self.fail_start():
            raise RuntimeError(f"{self.name} cannot start")
        if self.recover is not None:
            ok, detail = self.recover()
            self.report_recovered(ok, detail)

    def on_stop(self) -> None:
        self.journal.add("stop", self.name)

    @handles(Item)
    def on_item(self, msg: Item) -> int:
        if msg.action == "raise":
            raise ValueError(f"poison {msg.n}")
        if msg.action == "exit":
            raise SystemExit(3)
        if msg.action == "hang":
            self.journal.add("hanging", (self.name, msg.n))
            self.release.wait(TIMEOUT * 4)
            # a zombie's sends must be dropped: send first, then say we woke
            self.directory.tell("sink", Item(n=-msg.n))
            self.journal.add("woke", (self.name, msg.n))
            return -1
        if msg.action == "slow":
            threading.Event().wait(0.025)  # simulated work, not synchronisation
        if msg.action == "quit":
            self.stop()  # a normal exit, like OTP's exit(normal)
            return 0
        self.seen.append(msg.n)
        self.journal.add("item", (self.name, msg.n, len(self.seen)))
        return len(self.seen)


class FakeSafety(EngineActor):
    """Stands in for the SafetyActor: holds a trading state, records every change."""

    def __init__(self, name: str, directory: Directory, supervisor: str | None, journal: Journal,
                 initial: TradingState = TradingState.ACTIVE):
        super().__init__(name, directory, supervisor)
        self.journal = journal
        self.state = initial

    @handles(SetTradingState)
    def on_set(self, msg: SetTradingState) -> None:
        self.state = msg.state
        self.journal.add("trading", (msg.state, msg.reason, msg.requested_by))

    @handles(KillSwitch)
    def on_kill(self, msg: KillSwitch) -> None:
        # Like the SafetyActor: a kill switch halts (and would cancel open orders).
        self.state = TradingState.HALTED
        self.journal.add("trading", (TradingState.HALTED, msg.reason, msg.requested_by))
        self.journal.add("kill", msg.reason)

    @handles(GetTradingState)
    def on_get(self, _msg: GetTradingState) -> TradingStateInfo:
        return TradingStateInfo(state=self.state, reason="", kill_switch=False)


def worker_spec(child_id: str, journal: Journal, **kwargs: Any) -> ChildSpec:
    actor_kwargs = {k: kwargs.pop(k) for k in ("release", "fail_start", "recover") if k in kwargs}

    def factory(ctx: ChildContext):
        return Worker.start(ctx.name, ctx.directory, ctx.supervisor, journal, **actor_kwargs)

    return ChildSpec(id=child_id, factory=factory, **kwargs)


def safety_spec(journal: Journal, initial: TradingState = TradingState.ACTIVE, child_id: str = "safety") -> ChildSpec:
    return ChildSpec(
        id=child_id,
        factory=lambda ctx: FakeSafety.start(ctx.name, ctx.directory, ctx.supervisor, journal, initial),
        kind="safety",
    )


def fast_spec(sup_id: str, children: list[ChildSpec], strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE,
              **kwargs: Any) -> SupervisorSpec:
    values: dict[str, Any] = dict(max_restarts=10, period_s=10.0, heartbeat_interval_s=0.05, heartbeat_misses=3)
    values.update(kwargs)
    return SupervisorSpec(id=sup_id, children=tuple(children), strategy=strategy, **values)


def starts(journal: Journal, name: str) -> int:
    return sum(1 for n in journal.of("start") if n == name)


def items_of(journal: Journal, name: str) -> list[int]:
    return [n for (who, n, _) in journal.of("item") if who == name]
