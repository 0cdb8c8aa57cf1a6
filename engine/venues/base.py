"""The venue interface every venue (paper now, live later) implements.

Why rounds: the paper venue is driven by event time. It sees each feed batch
once, with the orders decided in it, and matches in tick order, so the same
data gives the same fills no matter how threads interleave. A live venue gets
the same calls and simply ignores the ticks (its fills come from the wire).
"""

from __future__ import annotations

from typing import Protocol

from engine.messages import Order, Round, VenueReport


class VenueUnavailable(Exception):
    """A venue that cannot be reached. Live mode never falls back to paper on this."""


class Venue(Protocol):
    name: str

    def connect(self) -> None:
        """Raise :class:`VenueUnavailable` (with the reason) if not reachable."""

    def on_round(self, rnd: Round) -> VenueReport:
        """Take the round's new orders and cancels, match over its ticks, report."""

    def open_orders(self) -> list[Order]:
        """What the venue believes is open (for reconciliation after a restart)."""

    def restore(self, orders: list[Order]) -> None:
        """Re-adopt orders the journal says are open (after a restart); idempotent."""
