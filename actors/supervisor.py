"""The Supervisor actor: carries out the OTP rules of ``engine/supervision.py``.

Why an actor: every supervision decision (restart, stop, escalate, pause
trading) is serialized through one mailbox, so there is no race between a
failure report, a heartbeat verdict and a recovery report. Decisions
themselves come from pure functions; this module only starts and stops
actors, moves mailboxes and sends messages.

Timing never comes from sleeping: a :class:`~actors.ticker.Ticker` tells the
supervisor ``_Tick`` every heartbeat interval and restart backoff uses
:func:`~actors.ticker.call_later`.
"""

from __future__ import annotations

import collections
import dataclasses
import random
import threading
import time
from typing import Any, Callable

import msgspec
import pykka
from loguru import logger

from actors.base import EngineActor, handles
from actors.directory import DeadLetter, Directory, actor_of
from actors.ticker import Ticker, call_later
from engine import metrics
from engine.messages import (
    ActorStatus,
    ChildFailed,
    ChildRecovered,
    GetActorTree,
    GetTradingState,
    Heartbeat,
    KillSwitch,
    SetTradingState,
    SupervisorDecision,
    TradingState,
)
from engine.supervision import (
    Action,
    ChildContext,
    ChildSpec,
    HeartbeatTracker,
    RestartIntensity,
    RestartType,
    SupervisionSpecError,
    SupervisorSpec,
    backoff_delay,
    children_to_restart,
    should_restart,
)


class TreeStartError(Exception):
    """The tree could not start; the message names the child and its error."""


# -- messages internal to supervision (never journaled, never on the wire)
class _Tick(msgspec.Struct, frozen=True, tag=True):
    pass


class _RestartDue(msgspec.Struct, frozen=True, tag=True):
    ids: tuple[str, ...]
    token: int


class _SubtreeStatus(msgspec.Struct, frozen=True, tag=True):
    supervisor: str
    statuses: list[ActorStatus]


class _Ready(msgspec.Struct, frozen=True, tag=True):
    pass


class GetDecisions(msgspec.Struct, frozen=True, tag=True):
    """Ask a supervisor for its recent :class:`SupervisorDecision` list (oldest first)."""


@dataclasses.dataclass
class _Child:
    """The supervisor's bookkeeping for one child (touched only by the supervisor thread)."""

    spec: ChildSpec
    heartbeat: HeartbeatTracker
    recent: RestartIntensity  # this child's own restarts: drives the backoff attempt number
    ref: pykka.ActorRef | None = None
    status: str = "starting"
    restarts: int = 0
    last_error: str = ""
    last_error_wall_ns: int = 0
    probe: pykka.Future | None = None
    nonce: int = 0
    dead_ticks: int = 0
    awaiting_recovery: bool = False
    removed: bool = False

    @property
    def id(self) -> str:
        return self.spec.id


class SupervisorActor(EngineActor):
    """Starts its children in order, watches them, restarts them by strategy, escalates."""

    _housekeeping = (_Tick, _SubtreeStatus, _RestartDue)

    def __init__(
        self,
        name: str,
        directory: Directory,
        supervisor: str | None = None,
        *,
        spec: SupervisorSpec,
        tree: Tree | None = None,
        on_escalate: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ):
        super().__init__(name, directory, supervisor)
        self.spec = spec
        self._tree = tree
        self._on_escalate = on_escalate
        self._clock = clock
        self._rand = rand
        self._children = [
            _Child(spec=c, heartbeat=HeartbeatTracker(spec.heartbeat_misses), recent=RestartIntensity(10**9, spec.period_s))
            for c in spec.children
        ]
        self._intensity = RestartIntensity(spec.max_restarts, spec.period_s)
        self._ticker: Ticker | None = None
        self._timers: list[threading.Timer] = []
        self._restart_token = 0
        self._escalated = False
        self._escalation_reason = ""
        self._subtrees: dict[str, list[ActorStatus]] = {}
        self._decisions: collections.deque[SupervisorDecision] = collections.deque(maxlen=256)
        # pause/resume trading
        self._paused_for: set[str] = set()
        self._state_before_pause: TradingState | None = None
        self._recovery_failed = ""

    # ------------------------------------------------------------------ lifecycle
    def on_start(self) -> None:
        started: list[_Child] = []
        for child in self._children:
            try:
                self._start_child(child)
            except Exception as exc:  # noqa: BLE001 - a factory is user code
                reason = f"{self.name}: child {child.id!r} failed to start: {type(exc).__name__}: {exc}"
                child.status, child.last_error = "failed", reason
                self.directory.unregister(child.id)
                for done in reversed(started):
                    self._stop_child(done, graceful=False)
                    self.directory.unregister(done.id)
                if self._tree is not None:
                    self._tree.start_error = reason
                raise TreeStartError(reason) from exc
            started.append(child)
        self._ticker = Ticker(self.spec.heartbeat_interval_s, lambda: self._tell_self(_Tick()), name=f"{self.name}-heartbeat")
        self._ticker.start()
        logger.info("supervisor {} started {} children ({})", self.name, len(started), self.spec.strategy.value)
        self._publish()

    def on_stop(self) -> None:
        self._stop_timers()
        self._stop_all(graceful=True)
        self._publish(to_parent=False)  # the parent is busy stopping us
        logger.info("supervisor {} stopped", self.name)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        # Our own bug: take the children down with us (OTP links) so a restarted
        # supervisor does not find orphans holding the names.
        self._stop_timers()
        is_root = self.supervisor is None
        if is_root:  # nobody above us: this is an escalation to the engine
            self.directory.tell(
                self.spec.safety_name,
                KillSwitch(reason="root supervisor crashed", requested_by="supervisor"),
            )
        # The root has no next incarnation to hand queued messages to: stop its children
        # gracefully, as _escalate does, so the safety actor handles the kill switch first
        # (a non-graceful stop moved it out of the mailbox, unhandled, whenever it had not
        # run yet: seen once in a test run).
        self._stop_all(graceful=is_root)
        super().on_failure(exception_type, exception_value, traceback)
        if is_root:
            self._notify_engine(f"root supervisor {self.name} crashed: {exception_value!r}"[:500])

    def _stop_timers(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _tell_self(self, msg: Any) -> bool:
        try:
            self.actor_ref.tell(msg)
            return True
        except pykka.ActorDeadError:
            return False

    # ------------------------------------------------------------------ starting / stopping children
    def _start_child(self, child: _Child) -> None:
        ctx = ChildContext(name=child.id, directory=self.directory, supervisor=self.name)
        # Until it is published, messages to the name (e.g. from its own children
        # while its on_start runs) wait in the buffer instead of becoming dead letters.
        self.directory.mark_down(child.id)
        ref = child.spec.factory(ctx)
        if not isinstance(ref, pykka.ActorRef):
            raise SupervisionSpecError(
                f"child spec {child.id!r}: factory must return a pykka ActorRef, got {type(ref).__name__}"
            )
        child.ref = ref
        child.status = "running"
        child.probe = None
        child.dead_ticks = 0
        child.heartbeat.reset()
        self.directory.register(child.id, ref)
        if child.spec.kind == "supervisor":
            # OTP starts a child supervisor synchronously: when we are up, the whole
            # subtree is up (so its names resolve as soon as start_tree returns).
            _await_started(ref, timeout=child.spec.shutdown_timeout_s + 30.0)

    def _stop_child(self, child: _Child, graceful: bool, zombie: bool = False) -> None:
        """Take one incarnation out of service.

        ``graceful``: it finishes what is queued, then stops (shutdown). Otherwise
        its queued messages move to the directory buffer for the next incarnation
        (restart). A child that does not stop within its shutdown timeout, or is
        hung, is quarantined as a zombie.
        """
        ref, child.ref, child.probe = child.ref, None, None
        if ref is None:
            return
        if not graceful or zombie:
            self.directory.retire(child.id, ref, zombie=zombie)
        if zombie:
            ref.stop(block=False)  # if it ever wakes up it stops; until then it is quarantined
            logger.warning("{}: {} is hung; abandoned as a zombie", self.name, child.id)
            return
        if self.directory.on_zombie_thread(ref):
            # It shares a thread (actors/loop.py) with a hung actor: it cannot stop, so do not wait.
            ref.stop(block=False)
            logger.warning("{}: {} runs on a hung thread; abandoned with it", self.name, child.id)
            return
        if not ref.is_alive():
            return
        try:
            ref.stop(block=True, timeout=child.spec.shutdown_timeout_s)
        except pykka.Timeout:
            logger.error("{}: {} did not stop within {}s; abandoned as a zombie", self.name, child.id, child.spec.shutdown_timeout_s)
            self.directory.retire(child.id, ref, zombie=True)

    def _stop_all(self, graceful: bool, keep_buffering: bool = False) -> None:
        """Stop children in reverse start order.

        Later messages to them are dead letters, unless ``keep_buffering``: a
        nested supervisor that escalates is usually restarted by its parent, so
        its children's names keep buffering meanwhile.
        """
        for child in reversed(self._children):
            if child.ref is None and child.status == "stopped":
                continue
            self._stop_child(child, graceful=graceful)
            if keep_buffering:
                self.directory.mark_down(child.id)
            else:
                self.directory.unregister(child.id)
            child.status = "stopped"

    # ------------------------------------------------------------------ failures
    @handles(ChildFailed)
    def on_child_failed(self, msg: ChildFailed) -> None:
        child = self._find(msg.name)
        if child is None or child.removed or self._escalated:
            logger.debug("{}: ignoring failure report of {} ({})", self.name, msg.name, msg.kind)
            return
        if msg.incarnation and (child.ref is None or child.ref.actor_urn != msg.incarnation):
            logger.debug("{}: stale failure report of {} (old incarnation)", self.name, msg.name)
            return
        self._on_child_failure(child, msg.kind, msg.error)

    def _on_child_failure(self, child: _Child, kind: str, error: str) -> None:
        child.last_error = f"{kind}: {error}"[:500]
        child.last_error_wall_ns = time.time_ns()
        child.status = "failed"
        metrics.inc("supervisor_failures_total", supervisor=self.name, child=child.id, kind=kind)
        decision = self.spec.decider(child.spec.kind, kind)
        action = decision.action
        reason = f"{child.id} {kind}: {error}"
        hung = kind == "hung"

        if action is Action.RESUME:
            if child.ref is not None and child.ref.is_alive():
                child.status = "running"
                child.heartbeat.reset()
                self._decide(child, "resume", reason)
                return
            logger.warning("{}: cannot resume {} (its actor has stopped); restarting instead", self.name, child.id)
            action = Action.RESTART
        if action is Action.ESCALATE:
            self._escalate(reason)
            return
        if action is Action.STOP:
            self._decide(child, "stop", reason)
            self._remove(child, zombie=hung)
            return
        # RESTART, subject to the child's restart type and the supervisor's intensity
        if not should_restart(child.spec.restart, kind):
            self._decide(child, "stop", f"{reason} ({child.spec.restart.value} child: not restarted)")
            self._remove(child, zombie=hung)
            return
        now = self._clock()
        if not self._intensity.record(now):
            self._escalate(
                f"more than {self.spec.max_restarts} restarts within {self.spec.period_s:g}s (last: {reason})"
            )
            return
        if decision.pause_trading:
            self._pause_trading(child, reason)
        targets = [self._find(i) for i in children_to_restart(self.spec.strategy, self._active_ids(), child.id)]
        if hung and child.ref is not None:
            # Quarantine the hung thread first: siblings that share it (a shared loop) are
            # then seen as stuck too and not waited for one shutdown timeout each.
            self.directory.quarantine_thread_of(child.ref)
        for target in reversed(targets):
            self._stop_child(target, graceful=False, zombie=hung and target is child)
        restart_ids = []
        for target in targets:
            if target is not child and target.spec.restart is RestartType.TEMPORARY:
                self._decide(target, "stop", f"temporary sibling of {child.id}: not restarted")
                self._remove(target)
                continue
            target.status = "restarting"
            target.restarts += 1
            restart_ids.append(target.id)
        child.recent.record(now)
        attempt = child.recent.recent(now)
        delay = backoff_delay(attempt, self.spec.backoff_min_s, self.spec.backoff_max_s, self.spec.backoff_jitter, self._rand())
        detail = f"{reason}; restarting {', '.join(restart_ids)}" + (f" in {delay:.3f}s" if delay > 0 else "")
        self._decide(child, "restart", detail, restarts=child.restarts)
        if delay > 0:
            self._restart_token += 1
            token = self._restart_token
            ids = tuple(restart_ids)
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(call_later(delay, lambda: self._tell_self(_RestartDue(ids=ids, token=token))))
        else:
            self._restart_now(restart_ids)
        self._publish()

    @handles(_RestartDue)
    def on_restart_due(self, msg: _RestartDue) -> None:
        if not self._escalated:
            self._restart_now(list(msg.ids))
            self._publish()

    def _restart_now(self, ids: list[str]) -> None:
        for child_id in ids:
            child = self._find(child_id)
            if child is None or child.removed or child.status != "restarting":
                continue
            try:
                self._start_child(child)
            except Exception as exc:  # noqa: BLE001 - counts as a failed restart
                logger.opt(exception=exc).error("{}: restarting {} failed", self.name, child_id)
                child.status = "failed"
                self._tell_self(ChildFailed(name=child_id, kind="start_failure", error=repr(exc)[:500], error_type=type(exc).__name__))
                return  # the strategy restarts whatever else is still down with it

    def _remove(self, child: _Child, zombie: bool = False) -> None:
        self._stop_child(child, graceful=False, zombie=zombie)
        self.directory.unregister(child.id)
        child.status = "stopped"
        child.removed = True  # out of the restart set for good (OTP: deleted child)
        self._publish()

    def _escalate(self, reason: str) -> None:
        if self._escalated:
            return
        self._escalated = True
        self._escalation_reason = reason
        self._decide(None, "escalate", reason)
        is_root = self.supervisor is None
        if is_root:
            # Halt and cancel open orders first (a kill switch): the safety actor
            # handles it before its stop request, as OTP's last act past the root.
            self.directory.tell(
                self.spec.safety_name,
                KillSwitch(reason=f"escalation: {reason}"[:500], requested_by="supervisor"),
            )
        self._stop_timers()
        self._stop_all(graceful=is_root, keep_buffering=not is_root)
        self._publish()
        if not is_root:
            self.directory.tell(
                self.supervisor,
                ChildFailed(name=self.name, kind="escalated", error=reason[:500], error_type="Escalation", incarnation=self.actor_urn),
            )
            return
        self._notify_engine(reason)

    def _notify_engine(self, reason: str) -> None:
        """Root only: the engine halts, stops cleanly and exits non-zero with ``reason``."""
        if self._tree is not None:
            self._tree.escalation_reason = reason
            self._tree.escalated.set()
        if self._on_escalate is not None:
            try:
                self._on_escalate(reason)
            except Exception:  # noqa: BLE001 - the engine's callback must not kill the supervisor
                logger.exception("{}: on_escalate callback failed", self.name)

    # ------------------------------------------------------------------ trading pause / resume
    def _pause_trading(self, child: _Child, reason: str) -> None:
        child.awaiting_recovery = True
        safety = self.spec.safety_name
        if child.id == safety:
            # The safety actor is down: no order can pass while it is. Its restart
            # recovers its own state; we only act if it reports that it could not.
            self._decide(child, "pause_trading", f"{reason}; {safety} is down until it recovers")
            return
        if self._paused_for:
            self._paused_for.add(child.id)
            self._decide(child, "pause_trading", f"{reason}; trading already paused")
            return
        try:
            info = self.directory.ask(safety, GetTradingState(), timeout=self.spec.pause_query_timeout_s)
            self._state_before_pause = TradingState(info.state)
        except Exception as exc:  # noqa: BLE001 - unknown prior state: we will not resume blindly
            logger.warning("{}: could not read the trading state from {}: {!r}", self.name, safety, exc)
            self._state_before_pause = None
        self._paused_for.add(child.id)
        self.directory.tell(
            safety,
            SetTradingState(state=TradingState.HALTED, reason=f"supervisor: {reason}"[:500], requested_by="supervisor"),
        )
        self._decide(child, "pause_trading", reason)

    @handles(ChildRecovered)
    def on_child_recovered(self, msg: ChildRecovered) -> None:
        child = self._find(msg.name)
        if child is None or not child.awaiting_recovery:
            logger.debug("{}: {} recovered (no pause pending)", self.name, msg.name)
            return
        child.awaiting_recovery = False
        self._paused_for.discard(child.id)
        safety = self.spec.safety_name
        if not msg.ok:
            self._recovery_failed = f"{child.id}: {msg.detail}"
            child.last_error = f"recovery failed: {msg.detail}"[:500]
            child.last_error_wall_ns = time.time_ns()
            self.directory.tell(
                safety,
                SetTradingState(state=TradingState.HALTED, reason=f"recovery failed: {self._recovery_failed}"[:500], requested_by="supervisor"),
            )
            self._decide(child, "pause_trading", f"{child.id} did not recover: {msg.detail}; trading stays HALTED")
            self._publish()
            return
        if child.id == safety or self._paused_for:
            self._decide(child, "resume", f"{child.id} recovered" + (f"; still waiting for {sorted(self._paused_for)}" if self._paused_for else ""))
            return
        before, self._state_before_pause = self._state_before_pause, None
        if self._recovery_failed:
            self._decide(child, "resume", f"{child.id} recovered; trading stays HALTED ({self._recovery_failed})")
        elif before is None or before is TradingState.HALTED:
            why = "state before the pause unknown" if before is None else "it was HALTED before the pause"
            self._decide(child, "resume", f"{child.id} recovered; trading stays HALTED ({why})")
        else:
            self.directory.tell(safety, SetTradingState(state=before, reason="recovered", requested_by="supervisor"))
            self._decide(child, "resume_trading", f"{child.id} recovered; trading back to {before.value}")

    # ------------------------------------------------------------------ heartbeats
    @handles(_Tick)
    def on_tick(self, _msg: _Tick) -> None:
        if self._escalated:
            return
        for child in list(self._children):
            if child.status != "running" or child.ref is None:
                continue
            ref = child.ref
            if not ref.is_alive():
                # A failing EngineActor reports itself: wait for that report (it carries
                # the real failure kind); anything else that died is a normal exit.
                actor = actor_of(ref)
                reporting = actor is not None and (
                    getattr(actor, "failed", False) or getattr(actor, "_pending_failure", None) is not None
                )
                child.dead_ticks += 1
                if child.dead_ticks >= (40 if reporting else 2):
                    self._on_child_failure(child, "stopped", "actor stopped without a failure report")
                continue
            answered = child.probe is None or _resolved(child.probe)
            progress = getattr(actor_of(ref), "progress", None)
            if child.heartbeat.tick(answered, progress):
                misses = child.heartbeat.misses
                self._on_child_failure(child, "hung", f"missed {misses} heartbeats ({self.spec.heartbeat_interval_s:g}s apart)")
                continue
            if answered:
                child.nonce += 1
                try:
                    child.probe = ref.ask(Heartbeat(nonce=child.nonce), block=False)
                except pykka.ActorDeadError:
                    child.probe = None
        self._publish()

    # ------------------------------------------------------------------ status
    @handles(_Ready)
    def on_ready(self, _msg: _Ready) -> bool:
        return True

    @handles(_SubtreeStatus)
    def on_subtree(self, msg: _SubtreeStatus) -> None:
        self._subtrees[msg.supervisor] = msg.statuses

    @handles(GetActorTree)
    def on_get_tree(self, _msg: GetActorTree) -> list[ActorStatus]:
        return self._statuses()

    @handles(GetDecisions)
    def on_get_decisions(self, _msg: GetDecisions) -> list[SupervisorDecision]:
        return list(self._decisions)

    def _statuses(self) -> list[ActorStatus]:
        """This supervisor, then each child in start order; nested trees depth-first."""
        own = ActorStatus(
            name=self.name,
            supervisor=self.supervisor or "",
            status="failed" if self._escalated else "running",
            restarts=0,
            last_error=self._escalation_reason,
            mailbox_depth=self.mailbox_depth(),
            processed=self.processed,
            dead_letters=self.directory.dead_letters(self.name),
        )
        out = [own]
        for child in self._children:
            ref = child.ref
            actor = actor_of(ref) if ref is not None else None
            out.append(
                ActorStatus(
                    name=child.id,
                    supervisor=self.name,
                    status=child.status,  # type: ignore[arg-type]
                    restarts=child.restarts,
                    last_error=child.last_error,
                    last_error_wall_ns=child.last_error_wall_ns,
                    mailbox_depth=(ref.actor_inbox.qsize() if ref is not None else 0) + self.directory.buffered(child.id),  # type: ignore[attr-defined]
                    processed=int(getattr(actor, "processed", 0) or 0),
                    dead_letters=self.directory.dead_letters(child.id),
                )
            )
            if child.spec.kind == "supervisor" and child.id in self._subtrees:
                out.extend(self._subtrees[child.id][1:])
        return out

    def _publish(self, to_parent: bool = True) -> None:
        """Push statuses up: to the parent supervisor, or (root) to the Tree handle."""
        statuses = self._statuses()
        if to_parent and self.supervisor is not None:
            self.directory.tell(self.supervisor, _SubtreeStatus(supervisor=self.name, statuses=statuses))
        if self._tree is not None:
            self._tree.last_statuses = statuses

    def _decide(self, child: _Child | None, action: str, reason: str, restarts: int = 0) -> None:
        name = child.id if child is not None else self.name
        decision = SupervisorDecision(
            supervisor=self.name, child=name, action=action, reason=reason[:1000], restarts=restarts, ts_wall_ns=time.time_ns()  # type: ignore[arg-type]
        )
        self._decisions.append(decision)
        metrics.inc("supervisor_decisions_total", supervisor=self.name, child=name, action=action)
        if action == "restart":
            metrics.inc("actor_restarts_total", actor=name)
        level = "ERROR" if action in ("escalate", "stop", "pause_trading") else "WARNING"
        logger.log(level, "supervisor {} decided {} for {}: {}", self.name, action, name, reason)

    # ------------------------------------------------------------------ helpers
    def _find(self, child_id: str) -> _Child | None:
        for child in self._children:
            if child.id == child_id:
                return child
        return None

    def _active_ids(self) -> list[str]:
        return [c.id for c in self._children if not c.removed]


def _await_started(ref: pykka.ActorRef, timeout: float) -> None:
    """Wait until a child supervisor's on_start is done, or it died trying (a start failure it reports itself)."""
    future = ref.ask(_Ready(), block=False)
    deadline = time.monotonic() + timeout
    while ref.is_alive() and time.monotonic() < deadline:
        try:
            future.get(timeout=0.05)
            return
        except pykka.Timeout:
            continue
        except pykka.ActorDeadError:
            return


def _resolved(future: pykka.Future) -> bool:
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    except Exception:  # noqa: BLE001 - answered with an error still counts as an answer
        return True
    return True


# ---------------------------------------------------------------------- public API


def supervisor_child(
    spec: SupervisorSpec, restart: RestartType = RestartType.PERMANENT, shutdown_timeout_s: float | None = None
) -> ChildSpec:
    """A child spec that runs a nested supervisor (its name is ``spec.id``).

    The default shutdown timeout covers its children's timeouts plus a margin.
    """
    timeout = shutdown_timeout_s or (sum(c.shutdown_timeout_s for c in spec.children) + 1.0)

    def factory(ctx: ChildContext) -> pykka.ActorRef:
        return SupervisorActor.start(ctx.name, ctx.directory, ctx.supervisor, spec=spec)

    return ChildSpec(id=spec.id, factory=factory, restart=restart, shutdown_timeout_s=timeout, kind="supervisor")


class Tree:
    """Handle on a running supervision tree (returned by :func:`start_tree`).

    ``escalated`` is set when the root gives up; the engine's main thread
    waits on it, halts and exits non-zero with ``escalation_reason``.
    """

    def __init__(self, spec: SupervisorSpec, directory: Directory):
        self.spec = spec
        self.directory = directory
        self.name = spec.id
        self.ref: pykka.ActorRef | None = None
        self.escalated = threading.Event()
        self.escalation_reason = ""
        self.start_error = ""
        self.last_statuses: list[ActorStatus] = []

    @property
    def exit_code(self) -> int:
        return 1 if self.escalated.is_set() else 0

    def statuses(self, timeout: float = 2.0) -> list[ActorStatus]:
        """Every actor of the tree, depth-first (the last published view if the root cannot answer)."""
        try:
            return list(self.directory.ask(self.name, GetActorTree(), timeout=timeout))
        except (DeadLetter, pykka.Timeout, pykka.ActorDeadError):
            return list(self.last_statuses)

    def decisions(self, timeout: float = 2.0) -> list[SupervisorDecision]:
        return list(self.directory.ask(self.name, GetDecisions(), timeout=timeout))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every child in reverse start order (each within its shutdown timeout), then the root."""
        self.directory.closing = True
        ref = self.ref
        if ref is not None and ref.is_alive():
            try:
                ref.stop(block=True, timeout=timeout)
            except pykka.Timeout:
                logger.error("supervision tree {} did not stop within {}s", self.name, timeout)
        self.directory.unregister(self.name)


def start_tree(
    spec: SupervisorSpec, directory: Directory, on_escalate: Callable[[str], None] | None = None, start_timeout_s: float = 30.0
) -> Tree:
    """Start the root supervisor (registered under ``spec.id``) and its children, in order.

    Raises :class:`TreeStartError` naming the child if one cannot be started.
    ``on_escalate(reason)`` runs on the supervisor's thread when the root
    gives up: it must not block (set a flag / event; the main thread exits).
    """
    tree = Tree(spec, directory)
    directory.mark_down(spec.id)  # children report to the root while it is still starting
    ref = SupervisorActor.start(spec.id, directory, None, spec=spec, tree=tree, on_escalate=on_escalate)
    directory.register(spec.id, ref)
    try:
        ref.ask(_Ready(), timeout=start_timeout_s)
    except (pykka.ActorDeadError, pykka.Timeout) as exc:
        directory.unregister(spec.id)
        raise TreeStartError(tree.start_error or f"supervisor {spec.id!r} did not start: {exc!r}") from None
    tree.ref = ref
    return tree
