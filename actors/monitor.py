"""MonitorActor: samples the process and every actor, keeps recent history.

Why an actor: sampling reads many things (psutil, every mailbox, the
supervision tree) and the API, dashboard and soak test all want the same
numbers; one owner samples on a timer and serves the latest
:class:`MetricsSnapshot`, so readers never poke at other actors.

It never blocks on another actor: the tree's statuses are requested with a
non-blocking ask and used at the next sample (at most one interval stale).
"""

from __future__ import annotations

import collections
import os
import time
from typing import TYPE_CHECKING, Any, Callable

import msgspec
import pykka
from loguru import logger

from actors.base import EngineActor, handles
from actors.directory import Directory, actor_of
from actors.ticker import Ticker
from engine import metrics
from engine.config import MonitorSection
from engine.messages import ActorStatus, GetActorTree, GetMetrics, MetricsSnapshot

if TYPE_CHECKING:
    import psutil

#: Series the leak detector watches (per process); mailbox depths are added per actor.
LEAK_SERIES = ("rss_bytes", "open_fds", "threads")


class SampleNow(msgspec.Struct, frozen=True, tag=True):
    """Take a sample now (the ticker sends these; tests and the soak test may too) -> MetricsSnapshot."""


class GetHistory(msgspec.Struct, frozen=True, tag=True):
    """Ask the monitor for its last ``n`` samples (oldest first; 0 = all kept)."""

    n: int = 0


class GetLeakReport(msgspec.Struct, frozen=True, tag=True):
    """Ask the monitor which series grow monotonically -> dict[str, GrowthReport] (flagged only unless ``all``)."""

    all: bool = False
    min_samples: int = 10


class MonitorActor(EngineActor):
    _housekeeping = (SampleNow,)

    def __init__(
        self,
        name: str,
        directory: Directory,
        supervisor: str | None = None,
        cfg: MonitorSection = MonitorSection(),
        tree_root: str | None = None,
        registry: metrics.Registry | None = None,
        tick: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(name, directory, supervisor)
        self.cfg = cfg
        self.tree_root = tree_root if tree_root is not None else supervisor
        self.registry = registry if registry is not None else metrics.REGISTRY
        self._tick = tick
        self._clock = clock
        self._ticker: Ticker | None = None
        import psutil  # here, not at module top: assembly imports this module even when no monitor runs

        self._process = psutil.Process(os.getpid())
        self._history: collections.deque[MetricsSnapshot] = collections.deque(maxlen=cfg.history)
        self._tree_future: pykka.Future | None = None
        self._tree: list[ActorStatus] = []
        self._prev_counters: dict[str, float] = {}
        self._prev_t = 0.0

    def on_start(self) -> None:
        self._process.cpu_percent(None)  # first call primes psutil's CPU delta
        self._prev_counters, self._prev_t = self.registry.counters(), self._clock()
        if self._tick:
            ref = self.actor_ref

            def tell_sample() -> bool:
                try:
                    ref.tell(SampleNow())
                    return True
                except pykka.ActorDeadError:
                    return False

            self._ticker = Ticker(self.cfg.sample_interval_s, tell_sample, name=f"{self.name}-sampler").start()

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        super().on_failure(exception_type, exception_value, traceback)

    # -- handlers
    @handles(SampleNow)
    def on_sample(self, _msg: SampleNow) -> MetricsSnapshot:
        snap = self.sample()
        self._history.append(snap)
        return snap

    @handles(GetMetrics)
    def on_get_metrics(self, _msg: GetMetrics) -> MetricsSnapshot:
        if not self._history:
            self._history.append(self.sample())
        return self._history[-1]

    @handles(GetHistory)
    def on_get_history(self, msg: GetHistory) -> list[MetricsSnapshot]:
        items = list(self._history)
        return items[-msg.n :] if msg.n > 0 else items

    @handles(GetLeakReport)
    def on_leak_report(self, msg: GetLeakReport) -> dict[str, metrics.GrowthReport]:
        reports = metrics.detect_leaks(self._flat_history(), self._leak_keys(), min_samples=msg.min_samples)
        return reports if msg.all else {k: r for k, r in reports.items() if r.flagged}

    # -- sampling
    def sample(self) -> MetricsSnapshot:
        """One sample of the process, every actor and the metrics registry."""
        now = self._clock()
        proc = self._process
        with proc.oneshot():
            rss = proc.memory_info().rss
            cpu = proc.cpu_percent(None)
            threads = proc.num_threads()
            fds = _open_fds(proc)
        self._collect_tree()
        counters = self.registry.counters()
        rates = metrics.rates(self._prev_counters, self._prev_t, counters, now)
        self._prev_counters, self._prev_t = counters, now
        return MetricsSnapshot(
            ts_wall_ns=time.time_ns(),
            rss_bytes=int(rss),
            cpu_percent=float(cpu),
            threads=int(threads),
            open_fds=int(fds),
            actors=self._actor_statuses(),
            rates=rates,
            counters=counters,
            latency_us=self.registry.latency_us(),
        )

    def _collect_tree(self) -> None:
        """Use the tree answer requested last time, then request a fresh one (never block)."""
        fut = self._tree_future
        if fut is not None:
            try:
                self._tree = list(fut.get(timeout=0))
                self._tree_future = None
            except pykka.Timeout:
                return  # still waiting: keep the previous view
            except Exception as exc:  # noqa: BLE001 - supervisor restarting: keep the previous view
                logger.debug("{}: tree query failed: {!r}", self.name, exc)
                self._tree_future = None
        if self.tree_root is None:
            return
        try:
            self._tree_future = self.directory.ask_future(self.tree_root, GetActorTree())
        except Exception:  # noqa: BLE001 - root not running (yet)
            self._tree_future = None

    def _actor_statuses(self) -> list[ActorStatus]:
        """Every directory name: live mailbox depth and processed count; restarts/errors from the tree."""
        from_tree = {s.name: s for s in self._tree}
        out = []
        for name in self.directory.names():
            ref = self.directory.ref(name)
            actor = actor_of(ref) if ref is not None else None
            base = from_tree.get(name)
            depth = (ref.actor_inbox.qsize() if ref is not None else 0) + self.directory.buffered(name)  # type: ignore[attr-defined]
            out.append(
                ActorStatus(
                    name=name,
                    supervisor=base.supervisor if base else "",
                    status=(base.status if base else ("running" if ref is not None and ref.is_alive() else "restarting")),
                    restarts=base.restarts if base else 0,
                    last_error=base.last_error if base else "",
                    last_error_wall_ns=base.last_error_wall_ns if base else 0,
                    mailbox_depth=depth,
                    processed=int(getattr(actor, "processed", 0) or 0),
                    dead_letters=self.directory.dead_letters(name),
                )
            )
        return out

    # -- leak detection over the history
    def _flat_history(self) -> list[dict[str, float]]:
        rows = []
        for snap in self._history:
            row = {"rss_bytes": float(snap.rss_bytes), "open_fds": float(snap.open_fds), "threads": float(snap.threads)}
            for st in snap.actors:
                row[f"mailbox:{st.name}"] = float(st.mailbox_depth)
            rows.append(row)
        return rows

    def _leak_keys(self) -> list[str]:
        keys = list(LEAK_SERIES)
        if self._history:
            keys += [f"mailbox:{st.name}" for st in self._history[-1].actors]
        return keys


def _open_fds(proc: psutil.Process) -> int:
    import psutil

    try:
        return proc.num_fds()
    except (AttributeError, psutil.Error):  # Windows has handles, not fds
        return 0
