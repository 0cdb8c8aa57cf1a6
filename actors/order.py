"""OrderActor: the only owner of order state, and the journal's only writer.

Write-ahead, per round: the checked orders of a feed batch are journaled in
one transaction *before* they go to the venue; the venue's report (events and
fills) is journaled in one transaction *before* strategies, the SafetyActor
or the event hub hear of it. One writer means no locks and one order of
records; one transaction per round (not per order) is what keeps the journal
off the hot path's critical cost.

A journal failure halts trading at once: the kill flag is pulled, nothing
unjournaled reaches the venue, and the reason is logged and shown.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from loguru import logger

from actors.base import EngineActor, handles
from actors.directory import Directory
from actors.safety import KillFlag
from actors.ticker import Ticker
from engine.journal import Journal, JournalError, WalCheckpointer
from engine.messages import (
    BatchDone, CancelAll, CancelOrder, DenyReason, EndOfStream, FeedCheckpoint, FillBlock, Flatten, GetOrder, OrderBlock, GetOrders, GetPnL, GetRecovered,
    RecoveredView,
    GetPositions, Order, OrderDenied, OrderEvent, PipelineCheckpoint, OrderRequest, OrderStatus, OrderType, OrderUpdates, Round,
    SetTradingState, Side, StrategyLifecycle, TradingState, TradingStateChanged, VenueReport,
)  # fmt: skip
from engine.orders import OrderBook
from engine.recovery import fold

try:
    from engine import metrics as _metrics
except ImportError:  # pragma: no cover
    _metrics = None


# Batches between feed checkpoints when rounds carry no orders. Why not rarer, in a live feed's
# one-tick batches: these commits keep SQLite's write path warm for the next order's commit.
# Measured (2026-12-02): one per 65536 ticks instead made each order round's commit ~60 µs slower
# in CPU time. A failing disk is also noticed (and trading halted) within 64 batches, orders or not.
CHECKPOINT_EVERY = 64


def _report_checkpoints(feed: str, batch_seq: int, end_of_stream: bool) -> bool:
    """Whether the report of this batch journals a FeedCheckpoint even with no other record."""
    return batch_seq >= 0 and bool(feed) and (batch_seq % CHECKPOINT_EVERY == 0 or end_of_stream)
HUB_EVERY = 16  # rounds of updates the event hub may wait for while the OrderActor is busy
HUB_PERIOD_S = 0.02  # on a shared loop: at most one hand-off to the event hub's thread per period
WAL_CHECKPOINT_EVERY_S = 0.5  # a journal opened without autocheckpoint is checkpointed this often, off the pipeline


class _FlushHub:
    """Internal: the hub period has passed; hand over what is pending."""

    __slots__ = ()


_FLUSH_HUB = _FlushHub()


class _CommitHeld:
    """Internal: sent to itself behind the mail that was waiting when report ``hold`` was held.

    Whatever arrives first commits what is held (see OrderActor._defer); this
    makes sure something does, even if all that waited was a pykka call that
    never reaches on_receive. One sent for an earlier hold ends nothing.
    """

    __slots__ = ("hold",)

    def __init__(self, hold: int) -> None:
        self.hold = hold


class OrderActor(EngineActor):
    _housekeeping = (_FlushHub, _CommitHeld)

    def __init__(self, name: str, directory: Directory, supervisor: str | None = None, *,
                 journal: Callable[[], Journal | None], kill: KillFlag, venue: str = "venue",
                 safety: str = "safety", feed: str = "feed", events: str | None = "events",
                 on_end_of_stream: Callable[[str], None] | None = None):
        super().__init__(name, directory, supervisor)
        self._journal_factory = journal
        self.journal: Journal | None = None
        self.kill = kill
        self.venue = self.addr(venue)
        self.safety = self.addr(safety)
        self.feed_name = feed
        self.events = self.addr(events) if events else None
        self.on_end_of_stream = on_end_of_stream
        self.book = OrderBook()
        self.last_seq = -1
        self.last_ts_ns = 0
        self.in_flight_resend: set[str] = set()
        self.journal_failed = ""
        self.journal_kind = ""
        self.recovered = None
        self.rounds = 0
        self.flatten_seq = 0
        # Blocks journaled and sent, awaiting their FillBlock: (strategy id, first number) -> block.
        self.blocks_at_venue: dict[tuple[str, int], OrderBlock] = {}
        self.safety_pnl = 0.0  # the realized PnL the SafetyActor last heard
        self.hub_pending: list[OrderUpdates] = []  # journaled updates not yet handed to the event hub
        self._hub_timer_armed = False
        self._checkpointing: tuple[Ticker, WalCheckpointer] | None = None
        # A report's records and what follows their commit, held for the next round's commit (see _defer).
        # At most one: any message but a round, a report included, commits it first.
        self._held: tuple[list, Callable[[], None]] | None = None
        self._holds = 0  # reports held so far: the id a _CommitHeld names

    def on_start(self) -> None:
        try:
            self.journal = self._journal_factory()
        except JournalError as exc:
            # Cannot know what is durable: never trade blind. Halt, say why, stay up for queries.
            self.journal_failed = f"journal {exc.kind}: {exc.detail}"
            self.kill.pull(self.journal_failed)
            logger.critical("trading halted: {}", self.journal_failed)
            self.safety.tell(SetTradingState(state=TradingState.HALTED, reason=self.journal_failed, requested_by="orders"))
            self.report_recovered(False, self.journal_failed)
            return
        self.journal_kind = (self.journal.get_meta("kind") or "") if self.journal is not None else ""
        if self.journal is not None and not self.journal.readonly and not self.journal.autocheckpoint:
            ref, directory = self.actor_ref, self.directory
            self._checkpointing = _checkpoint_in_background(self.journal, f"{self.name}-wal-checkpoint",
                                                            abandoned=lambda: directory.on_zombie_thread(ref))
        if self.journal is not None and self.journal.last_seq > 0:
            rec = fold(self.journal.records())
            self.recovered = rec
            self.book = rec.book
            # Orders journaled as submitted but never acknowledged may not have reached the
            # venue; the venue is asked by client id before anything is re-sent.
            self.in_flight_resend = {c for c, o in self.book.live.items() if o.status is OrderStatus.SUBMITTED}
            logger.info("recovered {} open and {} finished orders, {} fills from {}", len(self.book.live),
                        self.book.archive.count, self.book.fills_count, self.journal)
        self.report_recovered(True, f"{len(self.book.live)} open orders, {self.book.fills_count} fills")

    def on_stop(self) -> None:
        self._journal([])  # a report still held for a group commit
        self._flush_hub()
        self.release_resources()  # now, so the journal is closed when stop() returns

    def release_resources(self) -> None:
        """Close the journal and stop its checkpoint thread (idempotent: a stop or a crash alike)."""
        if self.journal is not None:
            self.journal.close()
        if self._checkpointing is not None:
            ticker, checkpointer = self._checkpointing
            self._checkpointing = None
            ticker.stop()
            checkpointer.close()  # the last connection to close checkpoints what is left

    def on_receive(self, message: Any) -> Any:
        if self._held is not None and not isinstance(message, Round) \
                and not (isinstance(message, _CommitHeld) and message.hold != self._holds):
            self._journal([])  # whatever comes next sees (and may tell) the held report's effects
        return super().on_receive(message)

    # ------------------------------------------------------------- journaling
    def _defer(self, rep: VenueReport, records: list) -> bool:
        """Whether to hold this report's records for one commit with the next round's (group commit).

        Why: in a replay every batch with orders costs two commits, its round's
        and its report's, ~40 µs each. When more mail is already waiting the
        report's records can ride with the next round's commit: the same
        records in the same order (the round behind it is handled after it
        either way), one transaction. Nothing of the report is applied or told
        before that commit. Any message but a round first commits what is
        held, and so does a round that needs the book's current view (see
        on_round); an idle mailbox (a live feed, mostly) commits at once.
        """
        return bool(records) and self.journal is not None and not self.journal_failed and not rep.end_of_stream \
            and not self.in_flight_resend and self.mailbox_depth() > 0

    def _journal(self, records: list) -> bool:
        """Commit ``records`` (after any held report's); then run what the held reports wait for."""
        held, self._held = self._held, None
        if held is not None:
            records = [*held[0], *records]
        ok = self._append(records)
        if ok and held is not None:
            held[1]()
        return ok

    def _append(self, records: list) -> bool:
        if not records or self.journal is None:
            return self.journal_failed == ""
        if self.journal_failed:
            return False
        if self.directory.is_zombie_thread():
            # Declared hung and replaced: a new incarnation owns the journal now. Writing
            # (or telling anyone) from here would fork history: fence ourselves off.
            logger.error("retired order actor tried to journal {} records: fenced off", len(records))
            return False
        try:
            self.journal.append(records)
            return True
        except JournalError as exc:
            self.journal_failed = f"journal {exc.kind}: {exc.detail}"
            self.kill.pull(self.journal_failed)
            logger.critical("trading halted: {}", self.journal_failed)
            self.safety.tell(SetTradingState(state=TradingState.HALTED, reason=self.journal_failed,
                                             requested_by="orders"))
            return False

    # ------------------------------------------------------------- rounds
    @handles(Round)
    def on_round(self, rnd: Round) -> None:
        if _metrics is not None and rnd.recv_wall_ns:
            _metrics.record_ns("feed_to_orders", time.time_ns() - rnd.recv_wall_ns)
        if rnd.price is not None and len(rnd.price):
            self.last_seq = rnd.first_tick_seq + len(rnd.price) - 1
            self.last_ts_ns = int(rnd.ts_ns[-1])
            self.book.mark(rnd.symbol, float(rnd.price[-1]))
        if self._held is not None and (any(self.book.known(r.client_order_id) for r in rnd.approved)
                               or any(not self.book.is_new_block(b) for b in rnd.blocks)):
            self._journal([])  # a re-sent id is answered from the book as it is after the held report
        records: list = []
        new_denials = [d for d in rnd.denials if not self.book.known(d.client_order_id)]
        retold: list[OrderEvent] = []
        to_send: list[OrderRequest] = []
        killed = self.kill.is_set()
        blocks, approved = self._split_blocks(rnd, killed)
        records.extend(blocks)
        for req in approved:
            cid = req.client_order_id
            if self.book.known(cid):
                # Idempotent: the same client id twice sends nothing new ...
                if cid in self.in_flight_resend:
                    # ... unless it was journaled but never reached the venue before a crash.
                    self.in_flight_resend.discard(cid)
                    if not killed:
                        to_send.append(self.book.live[cid].request)
                else:
                    fact = self.book.view(cid)
                    if fact.status is not OrderStatus.SUBMITTED:
                        # A re-run after a restart: tell the strategy what already happened.
                        retold.append(self._fact(fact))
                continue
            if killed:
                new_denials.append(OrderDenied(client_order_id=req.client_order_id, strategy_id=req.strategy_id,
                                               reason=DenyReason.KILL_SWITCH, detail=self.kill.reason,
                                               epoch=req.epoch, decision_seq=req.decision_seq))
                continue
            records.append(req)
            to_send.append(req)
        records.extend(new_denials)
        denials = list(rnd.denials) + [d for d in new_denials if d not in rnd.denials]
        if not self._journal(records):
            to_send, blocks = [], []
            denials = [OrderDenied(client_order_id=r.client_order_id, strategy_id=r.strategy_id,
                                   reason=DenyReason.JOURNAL_UNAVAILABLE, detail=self.journal_failed,
                                   epoch=r.epoch, decision_seq=r.decision_seq)
                       for r in (*(q for b in rnd.blocks for q in b.requests()), *rnd.approved)]
        else:
            for blk in blocks:
                self.book.submit_block(blk)
            for req in to_send:
                if req.client_order_id not in self.book.live:
                    self.book.submit(req)
            for d in new_denials:
                self.book.deny(None, d.client_order_id, d.strategy_id, d.decision_seq)
        if denials or retold:
            self._tell_strategies(denials=denials, events=retold)
        if new_denials:
            self.hub_pending.append(OrderUpdates(strategy_id="*", denials=new_denials))
            self._hand_to_hub()
        if self.in_flight_resend and self.journal_kind == "run" and not killed:
            # `run` continues with fresh ids, so nothing will re-decide these: settle them now.
            # (A paper venue that restarted never knew them; a live one is asked first.)
            to_send.extend(self.book.live[c].request for c in sorted(self.in_flight_resend) if c in self.book.live)
            self.in_flight_resend.clear()
        if self.kill.is_set() and (to_send or blocks):  # pulled while we were journaling
            to_send = [r for r in to_send if r.reduce_only]
            for blk in blocks:  # journaled, never sent: they stay SUBMITTED, as single orders would
                for req in blk.requests():
                    self.book.submit(req)
            blocks = []
        for blk in blocks:
            self.blocks_at_venue[(blk.strategy_id, blk.first_number)] = blk
        quiet = not to_send and not blocks and self._quiet(rnd)
        self.venue.tell(Round(
            feed=rnd.feed, batch_seq=rnd.batch_seq, symbol=rnd.symbol, first_tick_seq=rnd.first_tick_seq,
            ts_ns=rnd.ts_ns, price=rnd.price, approved=to_send, blocks=blocks, cancels=rnd.cancels,
            end_of_stream=rnd.end_of_stream, strategies=rnd.strategies, recv_wall_ns=rnd.recv_wall_ns,
            wants_report=not quiet,
        ))  # fmt: skip
        if quiet:
            self.directory.tell(self.feed_name, BatchDone(feed=rnd.feed, batch_seq=rnd.batch_seq, consumer=self.name))

    def _quiet(self, rnd: Round) -> bool:
        """Whether this round (sending nothing) ends here: its credit returns now and the venue need not report.

        Why: most live rounds carry no order while nothing rests at the venue,
        and their report was a message and a handler per tick (~10 µs of the
        loop's ~90) that journaled nothing and told nobody but the feed. The
        conditions are the ones under which that report is empty and journals
        nothing: no order of ours is open (the book's ``live`` holds every
        order the venue could fill, cancel or expire, re-adopted ones too),
        no cancel, no end of stream, no batch whose report carries the
        FeedCheckpoint, nothing held or failed. A venue that has something to
        report anyway still reports it (``wants_report`` only allows leaving
        out an empty report), and the credit it then brings back again is a
        duplicate the feed ignores.
        """
        return (rnd.batch_seq >= 0 and bool(rnd.feed) and not rnd.cancels
                and not _report_checkpoints(rnd.feed, rnd.batch_seq, rnd.end_of_stream)
                and not self.book.live and not self.blocks_at_venue
                and self._held is None and not self.journal_failed and not self.in_flight_resend)

    def _split_blocks(self, rnd: Round, killed: bool) -> tuple[list[OrderBlock], list[OrderRequest]]:
        """Blocks that go as they are, and everything else as single orders (in decision order).

        A block goes whole only if none of its ids exists yet and the kill
        switch is not pulled; otherwise its orders take the single-order path,
        which knows how to answer re-sends and denials one by one.
        """
        if not rnd.blocks:
            return [], rnd.approved
        whole: list[OrderBlock] = []
        single: list[OrderRequest] = []
        for blk in rnd.blocks:
            if single or killed or not self.book.is_new_block(blk):
                single.extend(blk.requests())
            else:
                whole.append(blk)
        return whole, (single + list(rnd.approved)) if single else rnd.approved

    @handles(VenueReport)
    def on_report(self, rep: VenueReport) -> None:
        if _metrics is not None and rep.recv_wall_ns:
            _metrics.record_ns("feed_to_report", time.time_ns() - rep.recv_wall_ns)
        self.last_seq = max(self.last_seq, rep.watermark)
        records: list = []
        events: list[OrderEvent] = []
        fills = []
        filled_blocks: list[tuple[OrderBlock, FillBlock]] = []
        rep_fills, rep_events = rep.fills, rep.events
        for fb in rep.fill_blocks:
            blk = self.blocks_at_venue.pop((fb.strategy_id, fb.first_number), None)
            if blk is not None and len(blk) == len(fb):
                filled_blocks.append((blk, fb))
                records.append(fb)
            else:  # not a block we sent as such: judge its fills one by one
                rep_fills, rep_events = [*rep_fills, *fb.fills()], [*rep_events, *fb.events()]
        live = self.book.live
        for f in rep_fills:
            st = live.get(f.client_order_id)
            if st is not None and f.trade_id not in st.trade_ids:
                fills.append(f)
        for ev in rep_events:
            st = live.get(ev.client_order_id)
            if st is None or st.status is ev.status:
                continue
            events.append(ev)
        # Fills before the events that complete their orders (recovery folds in this order).
        records.extend(fills)
        records.extend(events)
        if (records and rep.batch_seq >= 0 and rep.feed) or _report_checkpoints(rep.feed, rep.batch_seq, rep.end_of_stream):
            # Rides along with the round's records; a quiet round alone is not worth a commit
            # (~50 µs): resume re-runs from tick 0 and recognises what is journaled anyway.
            records.append(FeedCheckpoint(feed=rep.feed, batch_seq=rep.batch_seq, last_tick_seq=rep.watermark))
        if self._defer(rep, records):
            self._held = (records, lambda: self._after_report(rep, filled_blocks, fills, events))
            self._holds += 1
            self.actor_ref.tell(_CommitHeld(self._holds))
            return
        if not self._journal(records):
            return  # halted; nothing unjournaled is applied or told
        self._after_report(rep, filled_blocks, fills, events)

    def _after_report(self, rep: VenueReport, filled_blocks: list[tuple[OrderBlock, FillBlock]], fills: list,
                      events: list[OrderEvent]) -> None:
        """A report's effects, once its records are journaled: the book, the strategies, safety, the feed's credit."""
        for blk, fb in filled_blocks:
            self.book.apply_fill_block(blk, fb)
        for f in fills:
            self.book.apply_fill(f)
        for ev in events:
            self.book.apply_event(ev)
        self.rounds += 1
        if events or fills or filled_blocks:
            fill_blocks = [fb for _, fb in filled_blocks]
            self._tell_strategies(events=events, fills=fills, watermark=rep.watermark, fill_blocks=fill_blocks)
            realized = self.book.realized_total() - self.book.fees_total()
            upd = OrderUpdates(strategy_id="*", events=events, fills=fills, fill_blocks=fill_blocks,
                               venue_watermark=rep.watermark, realized_pnl=realized)
            if events or fills or realized < self.safety_pnl:
                # Safety acts on order events (exposure) and on losses (the daily limit); a round
                # of block fills that lost nothing changes neither, and a hop per round costs.
                self.safety.tell(upd)
                self.safety_pnl = realized
            self.hub_pending.append(upd)
        if rep.batch_seq >= 0 and rep.feed:
            self.directory.tell(self.feed_name, BatchDone(feed=rep.feed, batch_seq=rep.batch_seq, consumer=self.name))
        self._hand_to_hub(now=rep.end_of_stream)
        if rep.end_of_stream and self.on_end_of_stream is not None:
            self.on_end_of_stream(rep.feed)

    def _hand_to_hub(self, now: bool = False) -> None:
        """When what is pending goes to the event hub (the one policy for every update).

        The hub has a thread of its own, so each hand-off is a wake-up (on a shared
        loop, a futex call per round was ~7% of its time). People read the hub: on a
        loop a timer hands over at most every HUB_PERIOD_S; with a thread per actor,
        when the mailbox is empty or HUB_EVERY rounds are pending.
        """
        if now:
            self._flush_hub()
        elif self._loop is not None:
            if self.hub_pending and not self._hub_timer_armed:
                self._hub_timer_armed = True
                self.tell_self_at(time.monotonic() + HUB_PERIOD_S, _FLUSH_HUB)
        elif len(self.hub_pending) >= HUB_EVERY or not self.mailbox_depth():
            self._flush_hub()

    @handles(_CommitHeld)
    def on_commit_held(self, _msg: _CommitHeld) -> None:
        pass  # on_receive committed the hold this one was sent for, if it was still held

    @handles(_FlushHub)
    def on_flush_hub(self, _msg: _FlushHub) -> None:
        self._hub_timer_armed = False
        self._flush_hub()

    def _flush_hub(self) -> None:
        """Hand the event hub what was journaled, in one message (the hub is for people, not for trading)."""
        pending, self.hub_pending = self.hub_pending, []
        if not pending or self.events is None:
            return
        if len(pending) == 1:
            self.events.tell(pending[0])
            return
        self.events.tell(OrderUpdates(
            strategy_id="*", events=[e for u in pending for e in u.events], fills=[f for u in pending for f in u.fills],
            denials=[d for u in pending for d in u.denials],
            fill_blocks=[b for u in pending for b in u.fill_blocks], venue_watermark=max(u.venue_watermark for u in pending),
            realized_pnl=pending[-1].realized_pnl,
        ))  # fmt: skip

    def _to_hub(self, msg) -> None:
        self._flush_hub()  # keep the hub's order of events
        if self.events is not None:
            self.events.tell(msg)

    @staticmethod
    def _fact(o: Order) -> OrderEvent:
        return OrderEvent(client_order_id=o.client_order_id, strategy_id=o.strategy_id, symbol=o.symbol,
                          status=o.status, event_seq=o.last_event_seq, ts_ns=0, filled_qty=o.filled_qty,
                          avg_price=o.avg_price)

    def _tell_strategies(self, events=(), fills=(), denials=(), watermark: int = -1, fill_blocks=()) -> None:
        by_sid: dict[str, dict[str, list]] = {}
        for kind, items in (("events", events), ("fills", fills), ("denials", denials), ("fill_blocks", fill_blocks)):
            for item in items:
                by_sid.setdefault(item.strategy_id, {"events": [], "fills": [], "denials": [],
                                                     "fill_blocks": []})[kind].append(item)
        for sid, parts in by_sid.items():
            if sid in ("api", "flatten"):
                continue
            self.directory.tell(f"strategy:{sid}", OrderUpdates(strategy_id=sid, venue_watermark=watermark, **parts))

    @handles(PipelineCheckpoint)
    def on_checkpoint(self, cp: PipelineCheckpoint) -> None:
        # Every round up to cp.batch_seq is journaled already (the feed waited for all credits).
        if cp.valid:
            self._journal([cp])

    @handles(EndOfStream)
    def on_feed_drained(self, msg: EndOfStream) -> None:
        # The feed has every credit back: all its batches are journaled. Nothing to do.
        logger.debug("feed {} drained at tick {}", msg.feed, msg.last_tick_seq)

    # ------------------------------------------------------------- control
    @handles(TradingStateChanged, StrategyLifecycle)
    def on_record(self, msg) -> None:
        self._journal([msg])
        if isinstance(msg, TradingStateChanged):
            self._to_hub(msg)

    @handles(CancelOrder)
    def on_cancel(self, msg: CancelOrder) -> None:
        self._cancel([msg.client_order_id])

    @handles(CancelAll)
    def on_cancel_all(self, msg: CancelAll) -> None:
        self._cancel([o.request.client_order_id for o in self.book.open_orders()
                      if msg.symbol is None or o.request.symbol == msg.symbol])

    def _cancel(self, cids: list[str]) -> None:
        events = []
        for cid in cids:
            st = self.book.live.get(cid)
            if st is None or st.status is OrderStatus.PENDING_CANCEL:
                continue
            r = st.request
            events.append(OrderEvent(client_order_id=cid, strategy_id=r.strategy_id, symbol=r.symbol,
                                     status=OrderStatus.PENDING_CANCEL, event_seq=self.last_seq, ts_ns=self.last_ts_ns,
                                     filled_qty=st.filled_qty))
        if not events or not self._journal(events):
            return
        for ev in events:
            self.book.apply_event(ev)
        self.venue.tell(Round(feed="", batch_seq=-1, symbol="", first_tick_seq=0, ts_ns=None, price=None,
                              cancels=[e.client_order_id for e in events]))

    @handles(Flatten)
    def on_flatten(self, msg: Flatten) -> None:
        """Close every position with a reduce-only market order (allowed while HALTED)."""
        orders = []
        for sym, pos in sorted(self.book.positions.items()):
            if pos.quantity == 0 or (msg.symbol and sym != msg.symbol):
                continue
            self.flatten_seq += 1
            orders.append(OrderRequest(
                client_order_id=f"flatten-{time.time_ns()}-{self.flatten_seq}", strategy_id="flatten", symbol=sym,
                side=Side.SELL if pos.quantity > 0 else Side.BUY, quantity=abs(pos.quantity),
                order_type=OrderType.MARKET, decision_seq=self.last_seq, decision_ts_ns=self.last_ts_ns,
                reduce_only=True, decision_price=pos.last_price,
            ))  # fmt: skip
        if orders and self._journal(orders):
            for o in orders:
                self.book.submit(o)
            self.venue.tell(Round(feed="", batch_seq=-1, symbol="", first_tick_seq=0, ts_ns=None, price=None,
                                  approved=orders))

    # ------------------------------------------------------------- queries
    @handles(GetRecovered)
    def on_get_recovered(self, q: GetRecovered) -> RecoveredView:
        rec = self.recovered
        if rec is None:
            return RecoveredView(journal_kind=self.journal_kind)
        exposure: dict[str, float] = {s: p.quantity for s, p in self.book.positions.items()}
        for st in self.book.open_orders():
            r = st.request
            exposure[r.symbol] = exposure.get(r.symbol, 0.0) + (st.remaining if r.side is Side.BUY else -st.remaining)
        sid = q.strategy_id
        return RecoveredView(
            journal_kind=self.journal_kind, trading_state=rec.trading_state, trading_reason=rec.trading_reason,
            next_id=rec.next_id.get(sid, 1),
            positions={sym: qty for (s, sym), qty in self.book.strategy_positions.items() if s == sid},
            exposure=exposure,
            open_orders=[o.request.client_order_id for o in self.book.open_orders() if o.request.strategy_id == sid],
            open=[o.view() for o in self.book.open_orders() if o.request.strategy_id == sid],
        )  # fmt: skip

    @handles(GetOrders)
    def on_get_orders(self, q: GetOrders):
        items = self.book.open_orders()[-q.limit:] if q.open_only else self.book.latest(q.limit)
        return [o.view() for o in items]

    @handles(GetOrder)
    def on_get_order(self, q: GetOrder):
        return self.book.view(q.client_order_id)

    @handles(GetPositions)
    def on_get_positions(self, _q: GetPositions):
        return [p.view() for _, p in sorted(self.book.positions.items())]

    @handles(GetPnL)
    def on_get_pnl(self, _q: GetPnL):
        return self.book.pnl()


def _checkpoint_in_background(journal: Journal, name: str, abandoned: Callable[[], bool]) -> tuple[Ticker, WalCheckpointer]:
    """Checkpoint ``journal``'s WAL every WAL_CHECKPOINT_EVERY_S on a thread of its own (see WalCheckpointer).

    The thread touches no actor state: only its own connection to the file.
    The actor's ``release_resources`` stops it and closes that connection. A failed
    checkpoint is logged and retried; the records are safe in the WAL meanwhile.
    ``abandoned`` says the actor was declared hung and replaced: its thread may
    never come back to stop this one, and the new incarnation checkpoints the
    file itself, so the thread closes its connection and ends.
    """
    checkpointer = WalCheckpointer(journal.path, synchronous=journal.synchronous)
    failures = [0]

    def tick() -> bool:
        if journal.closed:
            return False
        if abandoned():
            checkpointer.close()
            logger.warning("{}: its order actor was abandoned as hung; this checkpoint thread ends", name)
            return False
        try:
            checkpointer.run()
            failures[0] = 0
        except JournalError as exc:
            failures[0] += 1
            if failures[0] in (1, 10) or failures[0] % 1000 == 0:
                logger.warning("journal WAL checkpoint failed ({} in a row): {}", failures[0], exc)
        return True

    return Ticker(WAL_CHECKPOINT_EVERY_S, tick, name=name).start(), checkpointer
