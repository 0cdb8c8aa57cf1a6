"""MonitorActor: process and actor sampling, rates, history, restarts from the tree, leak report."""

from __future__ import annotations

import threading
import time

import pytest

from actors.directory import Directory
from actors.monitor import GetHistory, GetLeakReport, MonitorActor, SampleNow
from actors.supervisor import start_tree
from engine import metrics
from engine.config import MonitorSection
from engine.messages import GetActorTree, GetMetrics, MetricsSnapshot
from engine.supervision import ChildSpec
from tests.test_directory import Recorder
from tests.test_supervision_support import TIMEOUT, Item, Journal, fast_spec, starts, worker_spec


@pytest.fixture
def stopper():
    refs = []
    gates: list[threading.Event] = []
    yield refs, gates
    for g in gates:
        g.set()
    for r in refs:
        if r.is_alive():
            r.stop(timeout=TIMEOUT)


def test_sample_reports_process_and_every_actor(stopper):
    refs, gates = stopper
    d = Directory()
    gate, entered = threading.Event(), threading.Event()
    gates.append(gate)
    busy = Recorder.start("busy", d, gate=gate, entered=entered)
    idle = Recorder.start("idle", d)
    mon = MonitorActor.start("monitor", d, None, cfg=MonitorSection(sample_interval_s=60), tick=False)
    refs.extend([busy, idle, mon])
    for name, ref in (("busy", busy), ("idle", idle), ("monitor", mon)):
        d.register(name, ref)
    d.ask("idle", Item(1))
    d.tell("busy", Item(0, "block"))
    assert entered.wait(TIMEOUT)
    for n in range(25):
        d.tell("busy", Item(n))
    snap = d.ask("monitor", SampleNow())
    assert isinstance(snap, MetricsSnapshot)
    assert snap.rss_bytes > 10_000_000 and snap.threads >= 3 and snap.open_fds > 0
    by_name = {a.name: a for a in snap.actors}
    assert set(by_name) == {"busy", "idle", "monitor"}
    assert by_name["busy"].mailbox_depth == 25 and by_name["busy"].processed == 1
    assert by_name["idle"].mailbox_depth == 0 and by_name["idle"].processed == 1
    assert d.ask("monitor", GetMetrics()) == snap  # the latest sample


def test_rates_come_from_metrics_counters(stopper):
    refs, _ = stopper
    d = Directory()
    reg = metrics.Registry()
    now = [100.0]
    mon = MonitorActor.start("monitor", d, None, registry=reg, tick=False, clock=lambda: now[0])
    refs.append(mon)
    d.register("monitor", mon)
    ticks = reg.counter("ticks_total", feed="t")
    d.ask("monitor", SampleNow())
    ticks.inc(5000)
    now[0] = 102.0
    snap = d.ask("monitor", SampleNow())
    assert snap.rates['ticks_total{feed="t"}'] == 2500.0
    assert snap.counters['ticks_total{feed="t"}'] == 5000


def test_ticker_fills_a_bounded_history(stopper):
    refs, _ = stopper
    d = Directory()
    mon = MonitorActor.start("monitor", d, None, cfg=MonitorSection(sample_interval_s=0.02, history=5))
    refs.append(mon)
    d.register("monitor", mon)
    deadline = time.monotonic() + TIMEOUT
    history: list = []
    pause = threading.Event()
    while len(history) < 5 or history[-1].ts_wall_ns == history[0].ts_wall_ns:
        assert time.monotonic() < deadline, "history did not fill"
        pause.wait(0.02)
        history = d.ask("monitor", GetHistory())
    assert len(history) == 5  # bounded by cfg.history
    assert [h.ts_wall_ns for h in history] == sorted(h.ts_wall_ns for h in history)
    assert len(d.ask("monitor", GetHistory(n=2))) == 2


def test_restarts_and_errors_come_from_the_supervision_tree():
    j = Journal()
    d = Directory()
    spec = fast_spec("root", [
        ChildSpec("monitor", lambda ctx: MonitorActor.start(ctx.name, ctx.directory, ctx.supervisor, tick=False), kind="monitor"),
        worker_spec("w", j),
    ])
    tree = start_tree(spec, d)
    try:
        d.tell("w", Item(1, "raise"))
        assert j.wait_for(lambda: starts(j, "w") == 2)
        d.ask("monitor", SampleNow())  # requests the tree (never blocks on it)
        d.ask("root", GetActorTree())  # FIFO: the monitor's question has been answered
        snap = d.ask("monitor", SampleNow())
        w = {a.name: a for a in snap.actors}["w"]
        assert w.restarts == 1 and "poison 1" in w.last_error and w.supervisor == "root"
        assert w.dead_letters == 1
    finally:
        tree.stop(timeout=10)


def test_leak_report_flags_a_mailbox_that_keeps_growing(stopper):
    refs, gates = stopper
    d = Directory()
    gate, entered = threading.Event(), threading.Event()
    gates.append(gate)
    stuck = Recorder.start("stuck", d, gate=gate, entered=entered)
    mon = MonitorActor.start("monitor", d, None, tick=False)
    refs.extend([stuck, mon])
    d.register("stuck", stuck)
    d.register("monitor", mon)
    d.tell("stuck", Item(0, "block"))
    assert entered.wait(TIMEOUT)
    for sample in range(12):
        for n in range(10):
            d.tell("stuck", Item(n))
        d.ask("monitor", SampleNow())
    flagged = d.ask("monitor", GetLeakReport())
    assert "mailbox:stuck" in flagged and flagged["mailbox:stuck"].flagged
    assert "mailbox:monitor" not in flagged
    everything = d.ask("monitor", GetLeakReport(all=True))
    assert {"rss_bytes", "open_fds", "threads"} <= set(everything)
