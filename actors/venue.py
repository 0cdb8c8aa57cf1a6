"""VenueActor: the mailbox around a venue (paper or live).

Rounds come only from the OrderActor, already journaled; reports go only back
to it. A live venue that cannot be reached fails in on_start, so the
supervisor sees it and trading stays HALTED: never a silent fallback to paper.
"""

from __future__ import annotations

import time

import pykka

from actors.base import EngineActor, handles
from actors.directory import DeadLetter, Directory
from engine.messages import GetOrders, Round
from engine.venues.base import Venue

try:
    from engine import metrics as _metrics
except ImportError:  # pragma: no cover
    _metrics = None


class VenueActor(EngineActor):
    def __init__(self, name: str, directory: Directory, supervisor: str | None = None, *,
                 venue: Venue, orders: str = "orders", readopt_timeout_s: float = 5.0):
        super().__init__(name, directory, supervisor)
        self.venue = venue
        self.orders = self.addr(orders)
        self.readopt_timeout_s = readopt_timeout_s

    def on_start(self) -> None:
        self.venue.connect()
        # After a restart the venue re-adopts what the OrderActor (journal) says is open.
        try:
            open_orders = self.orders.ask(GetOrders(open_only=True, limit=1_000_000), timeout=self.readopt_timeout_s)
        except (DeadLetter, pykka.Timeout):
            open_orders = []  # nothing to re-adopt is safer than a venue that never starts
        if open_orders:
            self.venue.restore(open_orders)

    @handles(Round)
    def on_round(self, rnd: Round) -> None:
        if _metrics is not None and rnd.recv_wall_ns:
            # Once per round: "tick received -> at venue"; rounds that carry orders also
            # feed the end-to-end "tick -> order at venue" histogram.
            waited = time.time_ns() - rnd.recv_wall_ns
            _metrics.record_ns("feed_to_venue", waited)
            if rnd.approved or rnd.blocks:
                _metrics.record_ns("tick_to_order_at_venue", waited)
        rep = self.venue.on_round(rnd)
        if rnd.wants_report or rep.events or rep.fills or rep.fill_blocks:
            self.orders.tell(rep)
