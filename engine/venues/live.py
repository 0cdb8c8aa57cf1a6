"""Live venue adapter boundary.

No exchange adapter ships yet. What ships is the rule a trader's money
depends on: a live engine never falls back to paper. ``connect`` checks the
configured endpoint and raises :class:`VenueUnavailable` naming why; with no
adapter implemented for it, it refuses too, so live mode cannot start by
accident on a simulated venue.
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from engine.config import VenueSection
from engine.messages import Order, Round, VenueReport
from engine.venues.base import VenueUnavailable


class LiveVenue:
    name = "live"

    def __init__(self, cfg: VenueSection):
        self.cfg = cfg

    def connect(self) -> None:
        url = self.cfg.url
        if not url:
            raise VenueUnavailable("venue.url is empty: a live venue needs its endpoint (and credentials)")
        parsed = urlparse(url)
        if not parsed.hostname:
            raise VenueUnavailable(f"venue.url {url!r} has no host")
        port = parsed.port or (443 if parsed.scheme in ("https", "wss") else 80)
        try:
            with socket.create_connection((parsed.hostname, port), timeout=self.cfg.connect_timeout_s):
                pass
        except OSError as exc:
            raise VenueUnavailable(f"live venue {parsed.hostname}:{port} unreachable: {exc}") from None
        raise VenueUnavailable(f"no live adapter is implemented for {url!r}; refusing to trade (never falls back to paper)")

    def on_round(self, rnd: Round) -> VenueReport:  # pragma: no cover - connect() never succeeds yet
        raise VenueUnavailable("live venue is not connected")

    def open_orders(self) -> list[Order]:
        return []

    def restore(self, orders: list[Order]) -> None:
        return None
