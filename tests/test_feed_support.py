"""Shared helpers for the feed / indicator actor tests (no tests here)."""

from __future__ import annotations

import threading

import pytest

from actors.base import EngineActor, handles
from actors.directory import Directory
from engine.messages import BatchDone, EndOfStream, IndicatorBatch, TickBatch


class Collector(EngineActor):
    """Records batches; acknowledges them to ``feed`` unless ``hold`` is set.

    ``done`` is set when ``eos_expected`` EndOfStream messages arrived;
    ``count_event`` when ``count_target`` batches arrived.
    """

    def __init__(self, name, directory, supervisor=None, *, feed=None, feed_id="feed", hold=False,
                 eos_expected=1, count_target=None):  # fmt: skip
        super().__init__(name, directory, supervisor)
        self.feed, self.feed_id, self.hold = feed, feed_id, hold
        self.items: list = []
        self.eos: list = []
        self.held: list[int] = []
        self.done = threading.Event()
        self.count_event = threading.Event()
        self.eos_expected = eos_expected
        self.count_target = count_target

    @handles(TickBatch, IndicatorBatch)
    def on_batch(self, msg):
        self.items.append(msg)
        if self.count_target is not None and len(self.items) >= self.count_target:
            self.count_event.set()
        if self.feed is None:
            return
        if self.hold:
            self.held.append(msg.batch_seq)
        else:
            self.addr(self.feed).tell(BatchDone(feed=msg.feed, batch_seq=msg.batch_seq, consumer=self.name))

    @handles(EndOfStream)
    def on_eos(self, msg):
        self.eos.append(msg)
        if len(self.eos) >= self.eos_expected:
            self.done.set()

    def release(self):
        """Acknowledge everything held so far."""
        for seq in self.held:
            self.addr(self.feed).tell(BatchDone(feed=self.feed_id, batch_seq=seq, consumer=self.name))
        self.held = []
        self.hold = False


class Harness:
    """A Directory plus the actors a test started (stopped at teardown)."""

    def __init__(self):
        self.directory = Directory()
        self.refs = []

    def start(self, cls, name, **kwargs):
        ref = cls.start(name, self.directory, None, **kwargs)
        self.directory.register(name, ref)
        self.refs.append(ref)
        return ref

    def stop(self):
        for ref in reversed(self.refs):
            if ref.is_alive():
                ref.stop(timeout=5)


@pytest.fixture
def harness():
    h = Harness()
    yield h
    h.stop()
