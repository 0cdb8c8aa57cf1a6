"""Assemble the supervision tree from a Config: the one place engine/ imports actors/.

Children start downstream-first (orders, venue, safety, strategies,
indicators, feed) so that every address a message is sent to already exists,
and stop in reverse: the feed stops first and nothing new enters the pipeline
while the rest drains.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from actors.directory import Directory
from actors.event_hub import EventHub
from actors.indicator import IndicatorActor
from actors.market_feed import MarketFeedActor
from actors.monitor import MonitorActor
from actors.order import OrderActor
from actors.safety import KillFlag, SafetyActor
from actors.strategy import StrategyActor
from actors.supervisor import start_tree
from actors.venue import VenueActor
from engine.config import Config, IndicatorSpec
from engine.journal import Journal
from engine.messages import TradingState
from engine.supervision import ChildSpec, RestartType, SupervisorSpec
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

    def stop(self) -> None:
        self.tree.stop(timeout=self.cfg.engine.shutdown_timeout_s)


def build_engine(
    cfg: Config,
    *,
    source_factory: Callable[[], Any],
    journal_path: Path | None,
    config_dir: Path | None = None,
    feed_start_after: int = -1,
    indicator_restore: bytes | None = None,
    strategy_restore: dict[str, bytes] | None = None,
    on_escalate: Callable[[str], None] | None = None,
    realtime_rate: float = 0.0,
    with_monitor: bool = True,
) -> Engine:
    """Start the whole tree and return a handle. The feed starts when told (``StartFeed``)."""
    directory = Directory(buffer_while_down=cfg.supervision.buffer_while_down)
    kill = KillFlag()
    strategies = load_strategies(cfg, config_dir)
    ended = threading.Event()
    strategy_restore = strategy_restore or {}

    routes_ids: dict[str, list[str]] = {}
    for st in strategies:
        for sym in st.symbols:
            routes_ids.setdefault(sym, []).append(st.strategy_id)
    routes_names = {sym: [strategy_name(s) for s in ids] for sym, ids in routes_ids.items()}
    specs = indicator_specs(cfg, strategies)

    def journal_factory() -> Journal | None:
        if journal_path is None or not cfg.journal.enabled:
            return None
        return Journal.open(journal_path, synchronous=cfg.journal.synchronous)

    def on_eos(_feed: str) -> None:
        ended.set()

    children: list[ChildSpec] = []
    if with_monitor:
        children.append(ChildSpec(MONITOR, lambda ctx: MonitorActor.start(ctx.name, ctx.directory, ctx.supervisor, cfg=cfg.monitor), kind="monitor"))
    children.append(ChildSpec(EVENTS, lambda ctx: EventHub.start(ctx.name, ctx.directory, ctx.supervisor), kind="other"))
    children.append(ChildSpec(ORDERS, lambda ctx: OrderActor.start(
        ctx.name, ctx.directory, ctx.supervisor, journal=journal_factory, kill=kill, venue=VENUE, safety=SAFETY,
        feed=FEED, events=EVENTS, on_end_of_stream=on_eos), kind="order"))
    children.append(ChildSpec(VENUE, lambda ctx: VenueActor.start(
        ctx.name, ctx.directory, ctx.supervisor, venue=make_venue(cfg), orders=ORDERS), kind="venue"))
    children.append(ChildSpec(SAFETY, lambda ctx: SafetyActor.start(
        ctx.name, ctx.directory, ctx.supervisor, cfg=cfg, routes=routes_ids, kill=kill, orders=ORDERS,
        event_time=realtime_rate == 0), kind="safety"))
    for st in strategies:
        children.append(ChildSpec(strategy_name(st.strategy_id), _strategy_factory(st, cfg, strategy_restore), kind="strategy"))
    children.append(ChildSpec(INDICATORS, lambda ctx: IndicatorActor.start(
        ctx.name, ctx.directory, ctx.supervisor, specs=specs, routes=routes_names,
        restore_from=indicator_restore), kind="indicator"))
    children.append(ChildSpec(FEED, lambda ctx: MarketFeedActor.start(
        ctx.name, ctx.directory, ctx.supervisor, feed_id=FEED, source=source_factory(), subscribers=[INDICATORS],
        consumers=["pipeline"], batch_size=cfg.feed.batch_size, max_in_flight=cfg.feed.max_in_flight,
        realtime_rate=realtime_rate), kind="feed"))
    spec = SupervisorSpec.from_config(ROOT, children, cfg.supervision)
    tree = start_tree(spec, directory, on_escalate=on_escalate)
    eng = Engine(cfg=cfg, directory=directory, tree=tree, kill=kill, strategies=strategies,
                 journal_path=journal_path, ended=ended)
    return eng


def _strategy_factory(st: Strategy, cfg: Config, restore: dict[str, bytes]) -> Callable:
    cls, params, sid, symbols = type(st), st.params, st.strategy_id, st.symbols
    assume = cfg.mode == "paper"

    def factory(ctx):
        fresh = cls(sid, params, symbols)  # fresh state on every (re)start
        return StrategyActor.start(ctx.name, ctx.directory, ctx.supervisor, strategy=fresh, safety=SAFETY,
                                   assume_fills=assume, restore_from=restore.get(sid))

    return factory


def initial_trading_state(cfg: Config) -> TradingState:
    return TradingState(cfg.risk.initial_state)
