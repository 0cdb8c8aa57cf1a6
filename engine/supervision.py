"""Supervision semantics (Erlang/OTP), as pure data and functions.

Why pure: the rules that decide *what* to restart, *when* to give up and
*how long* to wait are the part of a supervisor that must be right, and they
are easiest to get right when they can be tested without threads. The pykka
actor in ``actors/supervisor.py`` only carries these decisions out.

What lives here
---------------
* :class:`ChildSpec` / :class:`SupervisorSpec`: what to start, in which order,
  how to restart it and when to give up.
* :func:`children_to_restart`: the three OTP strategies over the ordered
  child list (start in order, stop in reverse).
* :func:`should_restart`: the three OTP restart types.
* :class:`RestartIntensity`: "more than ``max_restarts`` in ``period_s``".
* :func:`backoff_delay`: exponential backoff with jitter (Akka's
  ``BackoffSupervisor``) so a failing dependency does not hot-loop.
* :class:`HeartbeatTracker`: when missed heartbeats mean "hung".
* :data:`ERROR_SUPERVISOR_POLICY` / :func:`error_supervisor_decider`: the
  decider table mapping (child kind, failure kind) to an action.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from typing import TYPE_CHECKING, Any, Callable, Literal, get_args

if TYPE_CHECKING:  # engine never imports actors at runtime
    import pykka

    from actors.directory import Directory
    from engine.config import SupervisionSection


class SupervisionSpecError(ValueError):
    """A child or supervisor spec is wrong; the message names the spec and field."""


class RestartType(str, enum.Enum):
    """OTP restart types: when is a terminated child started again?"""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after an abnormal exit
    TEMPORARY = "temporary"  # never


class RestartStrategy(str, enum.Enum):
    """OTP strategies: which children are restarted when one fails?"""

    ONE_FOR_ONE = "one_for_one"  # only the failed child
    REST_FOR_ONE = "rest_for_one"  # the failed child and every child started after it
    ONE_FOR_ALL = "one_for_all"  # every child


class Action(str, enum.Enum):
    """What a supervisor does about one failure (Akka's directives)."""

    RESUME = "resume"  # keep the current incarnation (only possible if it still runs)
    RESTART = "restart"  # fresh state from the factory (subject to the restart type)
    STOP = "stop"  # stop the child for good; later messages are dead letters
    ESCALATE = "escalate"  # stop every child and hand the failure to the parent


ChildKind = Literal["feed", "indicator", "strategy", "safety", "order", "venue", "monitor", "supervisor", "other"]
FailureKind = Literal["exception", "start_failure", "hung", "base_exception", "stopped", "escalated"]
CHILD_KINDS: tuple[str, ...] = get_args(ChildKind)
FAILURE_KINDS: tuple[str, ...] = get_args(FailureKind)

#: Kinds whose failure can leave orders or positions in doubt: trading pauses
#: until the restarted actor has recovered and says its state checks out.
TRADING_CRITICAL_KINDS = frozenset({"order", "safety", "venue"})


@dataclasses.dataclass(frozen=True)
class ChildContext:
    """Handed to a child factory: start the actor as ``MyActor.start(ctx.name, ctx.directory, ctx.supervisor, ...)``."""

    name: str
    directory: Directory
    supervisor: str


@dataclasses.dataclass(frozen=True)
class ChildSpec:
    """One child of a supervisor.

    ``factory`` must build a *fresh* actor every call (a restart means fresh
    state) and return its ref; the supervisor publishes it under ``id``.
    ``shutdown_timeout_s`` bounds how long an orderly stop may take before the
    child is abandoned as a zombie (Python threads cannot be killed).
    """

    id: str
    factory: Callable[[ChildContext], "pykka.ActorRef"]
    restart: RestartType = RestartType.PERMANENT
    shutdown_timeout_s: float = 5.0
    kind: ChildKind = "other"

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise SupervisionSpecError(f"child spec: id must be a non-empty string, got {self.id!r}")
        where = f"child spec {self.id!r}"
        if not callable(self.factory):
            raise SupervisionSpecError(f"{where}: factory must be callable, got {type(self.factory).__name__}")
        try:
            object.__setattr__(self, "restart", RestartType(self.restart))
        except ValueError:
            allowed = ", ".join(r.value for r in RestartType)
            raise SupervisionSpecError(f"{where}: restart must be one of {allowed}, got {self.restart!r}") from None
        if not (isinstance(self.shutdown_timeout_s, (int, float)) and self.shutdown_timeout_s > 0):
            raise SupervisionSpecError(f"{where}: shutdown_timeout_s must be > 0, got {self.shutdown_timeout_s!r}")
        if self.kind not in CHILD_KINDS:
            raise SupervisionSpecError(f"{where}: kind must be one of {', '.join(CHILD_KINDS)}, got {self.kind!r}")


@dataclasses.dataclass(frozen=True)
class Decision:
    """The decider's answer: an action, and whether trading pauses first."""

    action: Action
    pause_trading: bool = False


Decider = Callable[[str, str], Decision]


def _build_error_supervisor_policy() -> dict[tuple[str, str], Decision]:
    """The ErrorSupervisor policy as an explicit table.

    * Market-data, indicator, strategy, monitor and other children: restart
      that actor (a strategy bug must not stop the engine).
    * Order, safety and venue children: pause trading first, then restart;
      the restarted actor recovers from the journal and trading resumes only
      when it reports that its state checks out (``ChildRecovered(ok=True)``).
    * A child supervisor that escalated is restarted like any child (OTP).
    """
    table: dict[tuple[str, str], Decision] = {}
    for kind in CHILD_KINDS:
        for failure in FAILURE_KINDS:
            table[(kind, failure)] = Decision(Action.RESTART, pause_trading=kind in TRADING_CRITICAL_KINDS)
    return table


ERROR_SUPERVISOR_POLICY: dict[tuple[str, str], Decision] = _build_error_supervisor_policy()


def error_supervisor_decider(child_kind: str, failure_kind: str) -> Decision:
    """Look up :data:`ERROR_SUPERVISOR_POLICY`; unknown pairs escalate (never guess)."""
    return ERROR_SUPERVISOR_POLICY.get((child_kind, failure_kind), Decision(Action.ESCALATE))


@dataclasses.dataclass(frozen=True)
class SupervisorSpec:
    """A supervisor: its ordered children, strategy, intensity, backoff and heartbeat.

    ``safety_name`` is the address told ``SetTradingState`` when a
    trading-critical child fails (a parameter so other trees and tests can
    route it elsewhere).
    """

    id: str
    children: tuple[ChildSpec, ...]
    strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE
    max_restarts: int = 5
    period_s: float = 30.0
    backoff_min_s: float = 0.0
    backoff_max_s: float = 5.0
    backoff_jitter: float = 0.1
    heartbeat_interval_s: float = 1.0
    heartbeat_misses: int = 3
    decider: Decider = error_supervisor_decider
    safety_name: str = "safety"
    pause_query_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise SupervisionSpecError(f"supervisor spec: id must be a non-empty string, got {self.id!r}")
        where = f"supervisor spec {self.id!r}"
        children = tuple(self.children)
        for idx, child in enumerate(children):
            if not isinstance(child, ChildSpec):
                raise SupervisionSpecError(f"{where}: children[{idx}] must be a ChildSpec, got {type(child).__name__}")
        object.__setattr__(self, "children", children)
        seen: set[str] = set()
        for child in children:
            if child.id in seen or child.id == self.id:
                raise SupervisionSpecError(f"{where}: duplicate child id {child.id!r}")
            seen.add(child.id)
        try:
            object.__setattr__(self, "strategy", RestartStrategy(self.strategy))
        except ValueError:
            allowed = ", ".join(s.value for s in RestartStrategy)
            raise SupervisionSpecError(f"{where}: strategy must be one of {allowed}, got {self.strategy!r}") from None
        checks = [
            ("max_restarts", isinstance(self.max_restarts, int) and self.max_restarts >= 0, ">= 0 (an integer)"),
            ("period_s", self.period_s > 0, "> 0"),
            ("backoff_min_s", self.backoff_min_s >= 0, ">= 0"),
            ("backoff_max_s", self.backoff_max_s >= self.backoff_min_s, f">= backoff_min_s ({self.backoff_min_s})"),
            ("backoff_jitter", 0 <= self.backoff_jitter <= 1, "between 0 and 1"),
            ("heartbeat_interval_s", self.heartbeat_interval_s > 0, "> 0"),
            ("heartbeat_misses", isinstance(self.heartbeat_misses, int) and self.heartbeat_misses >= 1, ">= 1"),
            ("pause_query_timeout_s", self.pause_query_timeout_s > 0, "> 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise SupervisionSpecError(f"{where}: {name} must be {expected}, got {getattr(self, name)!r}")
        if not callable(self.decider):
            raise SupervisionSpecError(f"{where}: decider must be callable")

    @classmethod
    def from_config(
        cls,
        id: str,
        children: list[ChildSpec] | tuple[ChildSpec, ...],
        cfg: SupervisionSection,
        strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE,
        **overrides: Any,
    ) -> SupervisorSpec:
        """Build a spec from the ``[supervision]`` config section (``overrides`` win)."""
        values: dict[str, Any] = dict(
            max_restarts=cfg.max_restarts,
            period_s=cfg.period_s,
            backoff_min_s=cfg.backoff_min_s,
            backoff_max_s=cfg.backoff_max_s,
            backoff_jitter=cfg.backoff_jitter,
            heartbeat_interval_s=cfg.heartbeat_interval_s,
            heartbeat_misses=cfg.heartbeat_misses,
        )
        values.update(overrides)
        return cls(id=id, children=tuple(children), strategy=strategy, **values)

    def child(self, child_id: str) -> ChildSpec:
        for c in self.children:
            if c.id == child_id:
                return c
        raise KeyError(child_id)


# --------------------------------------------------------------------------
# The rules


def children_to_restart(strategy: RestartStrategy, ordered_ids: list[str] | tuple[str, ...], failed_id: str) -> list[str]:
    """Which children restart when ``failed_id`` fails, in start order."""
    ids = list(ordered_ids)
    if failed_id not in ids:
        raise KeyError(f"{failed_id!r} is not a child (children: {ids})")
    if strategy is RestartStrategy.ONE_FOR_ONE:
        return [failed_id]
    if strategy is RestartStrategy.REST_FOR_ONE:
        return ids[ids.index(failed_id) :]
    if strategy is RestartStrategy.ONE_FOR_ALL:
        return ids
    raise ValueError(f"unknown restart strategy {strategy!r}")


def should_restart(restart: RestartType, failure_kind: str) -> bool:
    """OTP restart types; ``"stopped"`` is the one normal exit (the actor stopped itself)."""
    if restart is RestartType.PERMANENT:
        return True
    if restart is RestartType.TRANSIENT:
        return failure_kind != "stopped"
    return False


class RestartIntensity:
    """Sliding window of restart times: more than ``max_restarts`` within ``period_s`` is too many.

    Time is passed in (monotonic seconds) so tests need no clock.
    """

    def __init__(self, max_restarts: int, period_s: float):
        self.max_restarts = max_restarts
        self.period_s = period_s
        self._times: collections.deque[float] = collections.deque()

    def record(self, now: float) -> bool:
        """Count a restart at ``now``; False when that exceeds the intensity (escalate)."""
        self._times.append(now)
        self._expire(now)
        return len(self._times) <= self.max_restarts

    def recent(self, now: float) -> int:
        self._expire(now)
        return len(self._times)

    def _expire(self, now: float) -> None:
        while self._times and now - self._times[0] > self.period_s:
            self._times.popleft()


def backoff_delay(attempt: int, min_s: float, max_s: float, jitter: float, rand: float) -> float:
    """Delay before restart number ``attempt`` (1-based) of the same child.

    ``min_s * 2**(attempt-1)`` capped at ``max_s``, then spread by
    ``+-jitter`` (a fraction) using ``rand`` in [0, 1) so simultaneous
    failures do not restart in lock-step. ``min_s == 0`` disables backoff.
    """
    if min_s <= 0 or attempt <= 0:
        return 0.0
    base = min(max_s, min_s * (2.0 ** min(attempt - 1, 60)))
    spread = 1.0 + jitter * (2.0 * rand - 1.0)
    return max(0.0, min(max_s, base * spread))


class HeartbeatTracker:
    """Decides when a child counts as hung.

    A probe is *missed* when the previous one is still unanswered at the next
    tick. A child that keeps processing messages is busy, not hung (a
    heartbeat waits behind its backlog in pykka's FIFO mailbox), so progress
    resets the count. ``misses_allowed`` consecutive misses without progress
    = hung.
    """

    def __init__(self, misses_allowed: int):
        self.misses_allowed = misses_allowed
        self.misses = 0
        self._last_progress: int | None = None

    def tick(self, answered: bool, progress: int | None) -> bool:
        """Record one tick; True when the child must be treated as hung."""
        moved = progress is not None and progress != self._last_progress
        self._last_progress = progress
        if answered or moved:
            self.misses = 0
            return False
        self.misses += 1
        return self.misses >= self.misses_allowed

    def reset(self) -> None:
        self.misses = 0
        self._last_progress = None
