"""Assemble the supervision tree from a Config: the one place engine/ imports actors/.

The tree::

    root (one_for_one): monitor, events, pipeline
    pipeline (one_for_all): orders, venue, safety, strategy:<id>..., indicators, feed

Children start downstream-first (orders, venue, safety, strategies,
indicators, feed) so that every address a message is sent to already exists,
and stop in reverse: the feed stops first and nothing new enters the pipeline
while the rest drains.

Why the pipeline restarts as a whole (exactly-once through actor restarts):
a fresh strategy, indicator, safety or venue actor in the middle of a run
has lost state that its neighbours still assume. Restarting the whole
pipeline turns any actor failure into the situation ``replay --resume``
already handles after ``kill -9``: the OrderActor re-folds the journal, the
venue re-adopts the open orders the journal knows, and the feed re-runs from
tick 0 while every stage recognises what is already journaled (client order
ids, trade ids, denied ids). Nothing is sent twice and nothing is lost; the
cost is re-computing the run so far (seconds for a 1M-tick replay). Messages
the old incarnations left in flight are dropped (counted as dead letters):
the re-run produces them again, and delivering them to fresh actors would
mix two runs. The pipeline does not pause trading on a failure the way the
root policy does for a lone order/venue/safety actor: while it restarts
nothing flows at all, and a HALTED transition would be journaled into the
trading history of a run that never needed one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from actors.directory import Directory
from actors.event_hub import EventHub
from actors.indicator import IndicatorActor
from actors.loop import SharedLoop, stage_busy_ns  # noqa: F401 - re-exported for the benchmarks
from actors.ticker import tighten_timer_slack  # noqa: F401 - re-exported for the benchmarks
from actors.market_feed import MarketFeedActor
from actors.monitor import MonitorActor
from actors.order import OrderActor
from actors.safety import KillFlag, SafetyActor
from actors.strategy import StrategyActor
from actors.directory import actor_of
from actors.supervisor import start_tree, supervisor_child
from actors.venue import VenueActor
from engine.config import Config, IndicatorSpec
from engine.journal import Journal, JournalError
from engine.messages import PipelineCheckpoint, StartFeed, TradingState
from engine.supervision import (
    TRADING_CRITICAL_KINDS, Action, ChildSpec, Decision, RestartStrategy, SupervisorSpec,
)
from engine.venues.base import Venue
from engine.venues.paper import PaperVenue
from strategies.base import Strategy
from strategies.loader import load_strategies

FEED = "feed"
INDICATORS = "indicators"
SAFETY = "safety"
ORDERS = "orders"
VENUE = "venue"
MONITOR = "monitor"
EVENTS = "events"
ROOT = "root"
PIPELINE = "pipeline"


def pipeline_decider(child_kind: str, failure_kind: str) -> Decision:
    """Any failure in the pipeline restarts all of it (one_for_all).

    No trading pause for a failure mid-run (see module doc). An order, safety
    or venue actor that cannot even *start* (an unreachable live venue, an
    unreadable journal) is different: nothing will recover by re-running, so
    trading is HALTED first and stays so while the restarts go on.
    """
    return Decision(Action.RESTART, pause_trading=failure_kind == "start_failure" and child_kind in TRADING_CRITICAL_KINDS)


def strategy_name(strategy_id: str) -> str:
    return f"strategy:{strategy_id}"


def make_venue(cfg: Config) -> Venue:
    if cfg.mode == "live" or cfg.venue.kind == "live":
        from engine.venues.live import LiveVenue

        return LiveVenue(cfg.venue)
    return PaperVenue(cfg.venue)


def indicator_specs(cfg: Config, strategies: list[Strategy]) -> list[IndicatorSpec]:
    """Configured indicators plus those the strategies declare, without duplicates."""
    from engine.indicators import key_for

    specs: list[IndicatorSpec] = []
    seen: set[tuple[str, ...]] = set()
    for spec in list(cfg.indicators) + [s for st in strategies for s in st.indicators()]:
        key = tuple(key_for(spec)) + tuple(spec.symbols)
        if key not in seen:
            seen.add(key)
            specs.append(spec)
    return specs


@dataclass
class Engine:
    cfg: Config
    directory: Directory
    tree: Any
    kill: KillFlag
    strategies: list[Strategy]
    journal_path: Path | None
    ended: threading.Event = field(default_factory=threading.Event)
    loops: Any = None  # PipelineLoops

    def stop(self) -> None:
        self.tree.stop(timeout=self.cfg.engine.shutdown_timeout_s)


def build_engine(
    cfg: Config,
    *,
    source_factory: Callable[[], Any],
    journal_path: Path | None,
    config_dir: Path | None = None,
    checkpoint: PipelineCheckpoint | None = None,
    on_escalate: Callable[[str], None] | None = None,
    realtime_rate: float = 0.0,
    with_monitor: bool = True,
    journal_options: dict[str, Any] | None = None,
    venue_factory: Callable[[Config], Venue] | None = None,
) -> Engine:
    """Start the whole tree and return a handle. The feed starts when told (``StartFeed``).

    ``journal_options`` are extra :meth:`Journal.open` arguments (``max_pages``,
    ``fault_injector``) and ``venue_factory`` replaces :func:`make_venue`: the
    patch points storage-fault tests use to fail the disk and watch the venue.
    """
    journal_options = dict(journal_options or {})
    venue_factory = venue_factory or make_venue
    directory = Directory(buffer_while_down=cfg.supervision.buffer_while_down)
    kill = KillFlag()
    strategies = load_strategies(cfg, config_dir)
    # Every numba kernel loaded (or, on a fresh install, compiled) here, before any actor runs:
    # a compile of seconds inside a handler would stall its loop-mates (health asks, heartbeats).
    warm_up(strategies)
    ended = threading.Event()
    # The cut the pipeline (re)starts from: given for --resume, re-read from the journal on a restart.
    restore: dict[str, PipelineCheckpoint | None] = {"cp": checkpoint}

    def state_of(name: str) -> bytes | None:
        cp = restore["cp"]
        return cp.states.get(name) if cp is not None else None

    routes_ids: dict[str, list[str]] = {}
    for st in strategies:
        for sym in st.symbols:
            routes_ids.setdefault(sym, []).append(st.strategy_id)
    routes_names = {sym: [strategy_name(s) for s in ids] for sym, ids in routes_ids.items()}
    specs = indicator_specs(cfg, strategies)

    def journal_factory() -> Journal | None:
        if journal_path is None or not cfg.journal.enabled:
            return None
        # The OrderActor checkpoints the WAL on a thread of its own: never inside a pipeline commit.
        return Journal.open(journal_path, synchronous=cfg.journal.synchronous, **{"autocheckpoint": False, **journal_options})

    def on_eos(_feed: str) -> None:
        ended.set()

    pipeline_names = [ORDERS, VENUE, SAFETY, *(strategy_name(st.strategy_id) for st in strategies), INDICATORS, FEED]
    starts = {"orders": 0}
    loops = PipelineLoops(cfg.engine.pipeline_threads)

    def orders_factory(ctx):
        starts["orders"] += 1
        if starts["orders"] > 1:
            forget_in_flight(ctx.directory, pipeline_names)
            loops.renew()  # the old threads may be stuck in a hung handler: never reuse them
            if realtime_rate <= 0:
                restore["cp"] = latest_checkpoint(journal_path)
        return OrderActor.start(ctx.name, ctx.directory, ctx.supervisor, journal=journal_factory, kill=kill, venue=VENUE,
                                safety=SAFETY, feed=FEED, events=EVENTS, on_end_of_stream=on_eos, loop=loops.orders)

    feed_factory = _feed_factory(cfg, source_factory, realtime_rate, lambda: restore["cp"], loops)

    pipeline: list[ChildSpec] = [ChildSpec(ORDERS, orders_factory, kind="order")]
    pipeline.append(ChildSpec(VENUE, lambda ctx: VenueActor.start(
        ctx.name, ctx.directory, ctx.supervisor, venue=venue_factory(cfg), orders=ORDERS, loop=loops.orders), kind="venue"))
    pipeline.append(ChildSpec(SAFETY, lambda ctx: SafetyActor.start(
        ctx.name, ctx.directory, ctx.supervisor, cfg=cfg, routes=routes_ids, kill=kill, orders=ORDERS,
        event_time=realtime_rate == 0, restore_from=state_of(SAFETY), loop=loops.market), kind="safety"))
    for st in strategies:
        pipeline.append(ChildSpec(strategy_name(st.strategy_id), _strategy_factory(st, cfg, state_of, loops),
                                  kind="strategy"))
    pipeline.append(ChildSpec(INDICATORS, lambda ctx: IndicatorActor.start(
        ctx.name, ctx.directory, ctx.supervisor, specs=specs, routes=routes_names,
        restore_from=state_of(INDICATORS), loop=loops.market), kind="indicator"))
    pipeline.append(ChildSpec(FEED, feed_factory, kind="feed"))
    pipeline_spec = SupervisorSpec.from_config(PIPELINE, pipeline, cfg.supervision, strategy=RestartStrategy.ONE_FOR_ALL,
                                               decider=pipeline_decider)

    children: list[ChildSpec] = []
    if with_monitor:
        children.append(ChildSpec(MONITOR, lambda ctx: MonitorActor.start(ctx.name, ctx.directory, ctx.supervisor, cfg=cfg.monitor), kind="monitor"))
    children.append(ChildSpec(EVENTS, lambda ctx: EventHub.start(ctx.name, ctx.directory, ctx.supervisor), kind="other"))
    children.append(supervisor_child(pipeline_spec))
    spec = SupervisorSpec.from_config(ROOT, children, cfg.supervision)
    tree = start_tree(spec, directory, on_escalate=on_escalate)
    eng = Engine(cfg=cfg, directory=directory, tree=tree, kill=kill, strategies=strategies,
                 journal_path=journal_path, ended=ended, loops=loops)
    return eng


class PipelineLoops:
    """The shared threads of the current pipeline incarnation (``engine.pipeline_threads``).

    ``market`` hosts feed, indicators, strategies and safety; ``orders`` hosts
    the OrderActor and the venue; with one thread both are the same loop, with
    none each actor has its own thread.
    """

    def __init__(self, threads: int):
        self.threads = int(threads)
        self.market: SharedLoop | None = None
        self.orders: SharedLoop | None = None
        self.renew()

    def renew(self) -> None:
        if self.threads == 0:
            return
        self.market = SharedLoop("pipeline" if self.threads == 1 else "market")
        self.orders = self.market if self.threads == 1 else SharedLoop("orders")


def freeze_boot_heap() -> None:
    """Collect once, then leave every object that exists now out of future garbage collections.

    Why: a full collection walks every tracked object, and after boot most of
    them (modules, classes, functions, config, the API app) live as long as
    the process. Measured on a booted live engine: 9-20 ms per full
    collection (CPython runs one once the survivors of young collections
    reach a quarter of the long-lived objects), a stall of the pipeline's
    thread and every other; ~0 ms frozen. For a process running
    one engine (``actortrader run``): objects frozen here that later become
    cyclic garbage (the first pipeline incarnation, after a restart) are not
    reclaimed, a one-time cost.
    """
    import gc

    gc.collect()
    gc.freeze()


def warm_up(strategies) -> None:
    """Load every numba kernel the pipeline uses, on the calling thread (build_engine does, first).

    Kernels compiled ahead of time (engine.kernels) are loaded by their
    module's import and this only runs them once. On the JIT it loads numba's
    on-disk cache (~0.3 s once per process), a compile only on a fresh install;
    a replay's report counts it in ``boot_s`` rather than hiding it in ticks/s.
    Modules still on the JIT get their compiled build started in the background.
    """
    import numpy as np

    from engine.config import IndicatorSpec
    from engine.indicators import IndicatorSet, atr, bollinger, ema, key_for, macd, rsi, sma
    from engine.messages import IndicatorBatch, freeze

    x = np.linspace(1.0, 2.0, 64)
    rsi(x, 14), sma(x, 5), ema(x, 5), bollinger(x, 5, 2.0), macd(x, 3, 6, 2), atr(x, x, x, 5)
    from engine.orders import _apply_fills
    from engine.risk import _sum_in_turn, _within_limits

    side, ts = np.ones(2, dtype=np.int8), np.arange(2, dtype=np.int64)  # the order path's column kernels
    _apply_fills(0.0, 0.0, 0.0, 0.0, 0.0, side, x[:2], x[:2], x[:2])
    _within_limits(side, x[:2], x[:2], ts, 0.0, ts, 1.0, 1.0, 1.0, 1.0), _sum_in_turn(0.0, side, x[:2])
    for st in strategies:
        specs = list(st.indicators())
        IndicatorSet(specs or [IndicatorSpec(kind="rsi")]).update(x)
        values = {k: freeze(np.full(64, np.nan)) for spec in specs for k in key_for(spec)}
        batch = IndicatorBatch(feed="warm", batch_seq=0, symbol="", first_tick_seq=0,
                               ts_ns=freeze(np.zeros(64, dtype=np.int64)), price=freeze(x), size=freeze(x), values=values)
        try:
            st.decide(batch, 0, 0.0)
        except NotImplementedError:
            pass  # a per-tick strategy: nothing compiled to load
    from engine import kernels

    kernels.build_in_background()  # modules still on the JIT: the next start loads them compiled


def forget_in_flight(directory: Directory, names: list[str]) -> None:
    """Drop what the previous pipeline incarnation left buffered for ``names``.

    Called when the pipeline restarts, after every old incarnation stopped and
    before the first new one starts: those batches, rounds and reports belong
    to a run that the restarted feed re-runs from tick 0. They are counted as
    dead letters; a pending ask among them fails with DeadLetter (the asker
    asks again), which is the honest answer for a query to a restarting actor.
    """
    for name in names:
        directory.unregister(name)
        directory.mark_down(name)


def latest_checkpoint(journal_path: Path | None) -> PipelineCheckpoint | None:
    """The newest valid pipeline checkpoint in the journal, or None (then the re-run starts at tick 0)."""
    if journal_path is None or not Path(journal_path).exists():
        return None
    try:
        with Journal.open(journal_path, readonly=True) as j:
            found = j.last_record(PipelineCheckpoint)
    except JournalError:
        return None
    return found[1] if found else None


def _feed_factory(cfg: Config, source_factory: Callable[[], Any], realtime_rate: float,
                  checkpoint: Callable[[], PipelineCheckpoint | None], loops: PipelineLoops) -> Callable:
    """A fresh feed per start; a restart of a feed that had started resumes by itself.

    Replay (as fast as possible) re-runs from tick 0: the journal recognises
    everything already done, so the result is exactly the undisturbed run.
    Real time (`run`) cannot re-run the past, and must not: its strategies
    come back with the journal's positions and fresh client ids, so re-deciding
    old ticks would trade them twice. It goes on after the last tick sent;
    the batches lost in flight are market data missed during the restart.
    """
    last: dict[str, Any] = {"actor": None, "started": False}

    def factory(ctx):
        actor = last["actor"]  # held strongly: a collected actor could not say whether it had started
        if actor is not None:
            last["started"] = last["started"] or bool(actor.started or actor.finished)
        autostart = None
        if last["started"] and realtime_rate > 0:
            autostart = StartFeed(after_tick_seq=actor.last_tick_seq, after_batch_seq=actor.next_batch_seq - 1)
        elif last["started"]:
            cp = checkpoint()  # re-send only what follows the last consistent cut
            autostart = StartFeed(after_tick_seq=-1) if cp is None else StartFeed(
                after_tick_seq=cp.last_tick_seq, after_batch_seq=cp.batch_seq)
        ref = MarketFeedActor.start(
            ctx.name, ctx.directory, ctx.supervisor, feed_id=FEED, source=source_factory(), subscribers=[INDICATORS],
            consumers=[ORDERS], batch_size=cfg.feed.batch_size, max_in_flight=cfg.feed.max_in_flight,
            realtime_rate=realtime_rate, autostart=autostart, checkpoint_every=cfg.feed.checkpoint_every,
            realtime_window=1 if loops.threads == 1 else 0, loop=loops.market)
        last["actor"] = actor_of(ref)
        return ref

    return factory


def _strategy_factory(st: Strategy, cfg: Config, state_of: Callable[[str], bytes | None],
                      loops: PipelineLoops) -> Callable:
    cls, params, sid, symbols = type(st), st.params, st.strategy_id, st.symbols
    assume = cfg.mode == "paper"

    def factory(ctx):
        fresh = cls(sid, params, symbols)  # fresh state on every (re)start, then the checkpoint's if any
        return StrategyActor.start(ctx.name, ctx.directory, ctx.supervisor, strategy=fresh, safety=SAFETY,
                                   assume_fills=assume, restore_from=state_of(ctx.name) or None, loop=loops.market)

    return factory


def initial_trading_state(cfg: Config) -> TradingState:
    return TradingState(cfg.risk.initial_state)
