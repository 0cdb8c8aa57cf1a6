"""MarketFeedActor: turns a TickSource into TickBatch messages, with credits.

Why credits: pykka mailboxes are unbounded, so a feed that simply pushed
would build an arbitrarily large backlog (FACTS: 53k messages) and memory
would grow with the burst. The feed keeps at most ``max_in_flight`` batches
outstanding; a batch's credit returns when every name in ``consumers`` (the
end of the pipeline) has sent ``BatchDone`` for it.

Why it pumps itself: a handler never blocks or sleeps. While it has credit
and data, the feed sends one batch and tells itself ``_Pump`` so that
``BatchDone``, ``GetFeedStats`` and heartbeats interleave with the replay.
In real-time mode (``realtime_rate`` ticks/s > 0) a pacer thread tells it
``_Due`` when the next tick falls due (every ``1/rate`` s, never more often
than every ``MIN_PACER_INTERVAL_S``); each batch is whatever became due since
the last one, capped at ``batch_size``: adaptive batching, a batch of one
while the pipeline keeps up (lowest latency), larger when it falls behind or
credits ran out (highest throughput). On a pipeline that shares one thread
the feed keeps one batch in flight in real time (``realtime_window``), so
ticks that fall due meanwhile ride together in the next one. A tick's ``recv_wall_ns`` is the wall
time it fell due, so latency histograms include any pacing or back-pressure
wait. The pacer never has more than one ``_Due`` in the feed's mailbox.

Batches never cross a source chunk, so every batch is one symbol and the
batches of a symbol keep their order. Tick and batch numbering is
deterministic, so ``StartFeed(after_tick_seq, after_batch_seq)`` resumes
exactly after a checkpoint.
"""

from __future__ import annotations

import threading
import time

import pykka
from loguru import logger

from actors.base import EngineActor, handles
from actors.directory import Directory
from actors.ticker import tighten_timer_slack
from engine.data.errors import DataError
from engine.data.sources import TickChunk, TickSource
from engine.messages import (
    BatchDone, EndOfStream, FeedStats, GetFeedStats, PipelineCheckpoint, StartFeed, TickBatch, freeze,
)

try:  # metrics are optional: the feed works without the registry
    from engine import metrics as _metrics
except ImportError:  # pragma: no cover
    _metrics = None


class _Pump:
    """Internal: send the next batch if there is credit and data."""

    __slots__ = ()


class _Due:
    """Internal (real-time mode): the ticker says more ticks may be due."""

    __slots__ = ()


_PUMP = _Pump()
_DUE = _Due()
MIN_PACER_INTERVAL_S = 50e-6  # above this rate ticks are batched by the pacer itself


class _Pacer(threading.Thread):
    """Tells the feed ``_Due`` every ``interval_s`` until stopped (waits on an Event)."""

    def __init__(self, ref: pykka.ActorRef, interval_s: float, name: str):
        super().__init__(name=f"{name}-pacer", daemon=True)
        self._ref = ref
        self._interval = interval_s
        self._stop_event = threading.Event()
        self.due_pending = False  # set here, cleared by the feed: at most one _Due queued
        self.stalled = False  # set by the feed while it waits for credit: its BatchDone pumps, not us

    def run(self) -> None:
        # Deadline-based, so the wake-ups track the tick schedule instead of drifting
        # by each wait's overshoot; a late wake-up never fires a catch-up burst.
        tighten_timer_slack()
        next_at = time.monotonic() + self._interval
        while not self._stop_event.wait(max(0.0, next_at - time.monotonic())):
            next_at = max(next_at + self._interval, time.monotonic())
            if self.due_pending or self.stalled:
                continue
            self.due_pending = True
            try:
                self._ref.tell(_DUE)
            except pykka.ActorDeadError:
                return

    def stop(self) -> None:
        self._stop_event.set()


class MarketFeedActor(EngineActor):
    _housekeeping = (_Pump, _Due)

    def __init__(
        self,
        name: str,
        directory: Directory,
        supervisor: str | None = None,
        *,
        feed_id: str,
        source: TickSource,
        subscribers: list[str],
        consumers: list[str],
        batch_size: int,
        max_in_flight: int,
        realtime_rate: float = 0.0,
        autostart: StartFeed | None = None,
        checkpoint_every: int = 0,
        realtime_window: int = 0,
    ):
        """``autostart``: start by itself with this message (a restarted feed re-runs without being told).

        ``realtime_window`` (real time only; 0 = ``max_in_flight``): batches in
        flight before due ticks wait to join the next batch. 1 when the whole
        pipeline shares the feed's thread: there a second batch in flight
        cannot run alongside the first, it only queues behind it and costs a
        full pass of every actor for a tick or two (measured at 10k ticks/s:
        tick -> venue p50 ~2x lower with 1 than with 4 credits).
        """
        super().__init__(name, directory, supervisor)
        if not 1 <= int(batch_size) <= 65536:
            raise ValueError(f"feed {feed_id}: batch_size must be 1..65536, got {batch_size}")
        if int(max_in_flight) < 1:
            raise ValueError(f"feed {feed_id}: max_in_flight must be >= 1, got {max_in_flight}")
        if realtime_rate < 0:
            raise ValueError(f"feed {feed_id}: realtime_rate must be >= 0 (0 = as fast as possible), got {realtime_rate}")
        self.feed_id = feed_id
        self._counters: dict[str, object] = {}
        self.source = source
        self.subscribers = list(dict.fromkeys(subscribers))
        self.consumers = list(dict.fromkeys(consumers))
        self.batch_size = int(batch_size)
        self.max_in_flight = int(max_in_flight)
        self.realtime_rate = float(realtime_rate)
        window = int(realtime_window) if realtime_rate > 0 and int(realtime_window) > 0 else self.max_in_flight
        self._window = min(window, self.max_in_flight)
        self._reset_run_state()
        self._pacer: _Pacer | None = None
        self._autostart = autostart
        # Replay only: a checkpoint needs a drained pipeline, which real time never waits for.
        self.checkpoint_every = int(checkpoint_every) if realtime_rate <= 0 else 0

    def on_start(self) -> None:
        if self._autostart is not None:
            self.actor_ref.tell(self._autostart)

    def _reset_run_state(self) -> None:
        self.started = False
        self.finished = False
        self.error = ""
        self.next_batch_seq = 0
        self.last_tick_seq = -1
        self.ticks_sent = 0
        self.batches_sent = 0
        self.backpressure_waits = 0
        self._stalled = False
        self._in_flight: dict[int, set[str]] = {}
        self._chunk: TickChunk | None = None
        self._cols: tuple = ()
        self._offset = 0
        self._pump_scheduled = False
        self._timer_armed = False
        self._eos_to_consumers_sent = False
        self._marked_batch = -1
        self._rt_start = 0.0
        self._rt_start_wall_ns = 0
        self._rt_sent = 0

    # -- lifecycle
    def on_stop(self) -> None:
        self._stop_pacer()
        self.source.close()

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self._stop_pacer()
        super().on_failure(exception_type, exception_value, traceback)

    def _stop_pacer(self) -> None:
        if self._pacer is not None:
            self._pacer.stop()
            self._pacer = None

    # -- handlers
    @handles(StartFeed)
    def on_start_feed(self, msg: StartFeed) -> None:
        """Start, or restart from a checkpoint (the batch after ``after_batch_seq``)."""
        self._stop_pacer()
        self._reset_run_state()
        self.started = True
        self.next_batch_seq = msg.after_batch_seq + 1
        self.last_tick_seq = msg.after_tick_seq
        # Counted from the start of the data: a feed resumed from a checkpoint reports the same totals.
        self.ticks_sent = msg.after_tick_seq + 1
        self.batches_sent = msg.after_batch_seq + 1
        self.source.skip_to(msg.after_tick_seq + 1)
        if self.realtime_rate > 0:
            self._rt_start = time.monotonic()
            self._rt_start_wall_ns = time.time_ns()
            if self._loop is None:  # on a shared loop, the loop's own timers pace (see _arm_timer)
                interval = min(0.1, max(MIN_PACER_INTERVAL_S, 1.0 / self.realtime_rate))
                self._pacer = _Pacer(self.actor_ref, interval, self.name)
                self._pacer.start()
        self._schedule_pump()

    @handles(BatchDone)
    def on_batch_done(self, msg: BatchDone) -> None:
        if msg.feed != self.feed_id:
            return
        waiting = self._in_flight.get(msg.batch_seq)
        if waiting is None:
            return  # duplicate or stale acknowledgement
        waiting.discard(msg.consumer)
        if waiting:
            return
        del self._in_flight[msg.batch_seq]
        was_stalled = self._stalled
        self._set_stalled(False)
        if self.finished:
            self._maybe_end_consumers()
        elif self.realtime_rate <= 0:
            self._schedule_pump()  # a replay pumps by message, so stats asks and heartbeats interleave
        elif was_stalled or (self._loop is not None and not self._timer_armed and not self._pump_scheduled):
            # Real time: what fell due while waiting goes now, without a message hop first; or, on a
            # shared loop whose window was full, the timer for the next tick is armed now (see _pump).
            self._pump()
        # else (real time, not waiting for this credit): a timer or a pump is already pending.

    @handles(GetFeedStats)
    def on_get_stats(self, _msg: GetFeedStats) -> FeedStats:
        return FeedStats(
            feed=self.feed_id,
            ticks=self.ticks_sent,
            batches=self.batches_sent,
            rejected=self.source.rejected,
            rejected_by_reason=dict(self.source.rejected_by_reason),
            in_flight=len(self._in_flight),
            credits=self.max_in_flight - len(self._in_flight),
            backpressure_waits=self.backpressure_waits,
            finished=self.finished,
            error=self.error,
        )

    @handles(_Pump)
    def on_pump(self, _msg: _Pump) -> None:
        self._pump_scheduled = False
        self._pump()

    @handles(_Due)
    def on_due(self, _msg: _Due) -> None:
        self._timer_armed = False
        if self._pacer is not None:
            self._pacer.due_pending = False
        if not self._pump_scheduled:
            self._pump()

    def _arm_timer(self) -> None:
        """On a shared loop: be told ``_Due`` exactly when the next tick falls due (real time)."""
        if self._loop is None or self._timer_armed or self._stalled or self.finished:
            return
        self._timer_armed = True
        self.tell_self_at(self._rt_start + (self._rt_sent + 1) / self.realtime_rate, _DUE)

    # -- the pump
    def _schedule_pump(self) -> None:
        if not self._pump_scheduled and not self.finished:
            self._pump_scheduled = True
            self.actor_ref.tell(_PUMP)

    def _pump(self) -> None:
        if not self.started or self.finished:
            return
        budget = due = self.batch_size
        if self.realtime_rate > 0:
            due = int((time.monotonic() - self._rt_start) * self.realtime_rate) - self._rt_sent
            if due <= 0:
                self._arm_timer()
                return
            budget = min(budget, due)
        if not self._have_data():
            self._finish()
            return
        if self._checkpoint_due():
            if self._in_flight:
                return  # drain first: the returning credits pump again
            self._mark()
        if self._window_full():
            if not self._stalled:
                self._set_stalled(True)
                # Back-pressure: out of credits, or more ticks due than one batch carries. Waiting
                # within the real-time window with a tick or two due is just batching.
                if len(self._in_flight) >= self.max_in_flight or due > self.batch_size:
                    self.backpressure_waits += 1
                    self._count("feed_backpressure_waits_total", 1)
            return
        sent = self._send(budget)
        if self.realtime_rate == 0 or sent < due:
            self._schedule_pump()  # as fast as possible, or more ticks are already due
        elif not self._window_full():
            self._arm_timer()
        # else the window is full: the credit coming back pumps (on_batch_done). A timer would only
        # wake the feed to find no credit, a handler call per batch whenever the loop is saturated.

    def _window_full(self) -> bool:
        """Every batch the window allows is in flight: due ticks wait for a credit (and ride together)."""
        return bool(self.consumers) and len(self._in_flight) >= self._window

    def _checkpoint_due(self) -> bool:
        n = self.next_batch_seq
        return bool(self.checkpoint_every) and n > 0 and n % self.checkpoint_every == 0 and self._marked_batch != n - 1

    def _mark(self) -> None:
        """Every credit is back: a consistent cut after the last batch; let it flow behind the batches."""
        self._marked_batch = self.next_batch_seq - 1
        marker = PipelineCheckpoint(feed=self.feed_id, batch_seq=self._marked_batch, last_tick_seq=self.last_tick_seq)
        for name in self.subscribers:
            self.addr(name).tell(marker)

    def _set_stalled(self, stalled: bool) -> None:
        self._stalled = stalled
        if self._pacer is not None:
            self._pacer.stalled = stalled  # no wake-ups while only a returned credit can help

    def _have_data(self) -> bool:
        while self._chunk is None or self._offset >= len(self._chunk):
            try:
                self._chunk = next(self.source)
            except StopIteration:
                self._chunk = None
                return False
            except DataError as exc:  # a file corrupt half-way: a user problem, not a crash
                logger.error("feed {}: {}", self.feed_id, exc)
                self.error = str(exc)
                self._chunk = None
                return False
            self._offset = 0
            c = self._chunk
            # Frozen once per chunk: a slice of a read-only array is read-only, so batches need no freeze.
            self._cols = tuple(None if a is None else freeze(a) for a in (c.ts_ns, c.price, c.size, c.side, c.high, c.low))
        return True

    def _send(self, budget: int) -> int:
        chunk = self._chunk
        assert chunk is not None
        start = self._offset
        stop = min(len(chunk), start + budget)
        self._offset = stop
        ts, price, size, side, high, low = self._cols
        batch = TickBatch(
            feed=self.feed_id,
            batch_seq=self.next_batch_seq,
            symbol=chunk.symbol,
            first_tick_seq=chunk.first_tick_seq + start,
            ts_ns=ts[start:stop],
            price=price[start:stop],
            size=size[start:stop],
            side=None if side is None else side[start:stop],
            recv_wall_ns=self._recv_wall_ns(),
            high=None if high is None else high[start:stop],
            low=None if low is None else low[start:stop],
        )
        n = stop - start
        if self.consumers:
            self._in_flight[batch.batch_seq] = set(self.consumers)
        for name in self.subscribers:
            self.addr(name).tell(batch)
        self.next_batch_seq += 1
        self.last_tick_seq = batch.first_tick_seq + n - 1
        self.ticks_sent += n
        self.batches_sent += 1
        self._rt_sent += n
        self._count("feed_ticks_total", n)
        self._count("feed_batches_total", 1)
        return n

    def _recv_wall_ns(self) -> int:
        """When this batch's first tick arrived: now, or in real time the moment it fell due."""
        now = time.time_ns()
        if self.realtime_rate <= 0:
            return now
        due = self._rt_start_wall_ns + int((self._rt_sent + 1) * 1e9 / self.realtime_rate)
        return min(due, now)

    def _finish(self) -> None:
        self.finished = True
        self._stop_pacer()
        if _metrics is not None:
            for reason, count in self.source.rejected_by_reason.items():
                _metrics.set_gauge("feed_rejected_rows", count, feed=self.feed_id, reason=reason)
        eos = self._eos()
        for name in self.subscribers:
            self.addr(name).tell(eos)
        logger.info(
            "feed {} finished: {} ticks in {} batches, {} rejected rows{}",
            self.feed_id, self.ticks_sent, self.batches_sent, self.source.rejected,
            f" (stopped early: {self.error})" if self.error else "",
        )  # fmt: skip
        self._maybe_end_consumers()

    def _maybe_end_consumers(self) -> None:
        """Consumers hear EndOfStream only once every credit is back: then it means "all done"."""
        if self._in_flight or self._eos_to_consumers_sent:
            return
        self._eos_to_consumers_sent = True
        eos = self._eos()
        for name in self.consumers:
            if name not in self.subscribers:
                self.addr(name).tell(eos)

    def _eos(self) -> EndOfStream:
        return EndOfStream(feed=self.feed_id, last_batch_seq=self.next_batch_seq - 1, last_tick_seq=self.last_tick_seq)

    def _count(self, name: str, amount: float) -> None:
        if _metrics is not None:
            handle = self._counters.get(name)
            if handle is None:  # a handle per counter: no key string built per batch
                handle = self._counters[name] = _metrics.counter(name, feed=self.feed_id)
            handle.inc(amount)
