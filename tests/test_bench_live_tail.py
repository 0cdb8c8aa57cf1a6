"""bench/bench_live_tail.py's classification: a round waited behind work iff a work span overlaps its wait."""

from __future__ import annotations

import numpy as np
import pytest

from bench.bench_live_tail import _behind

pytestmark = pytest.mark.timeout(30)


def test_a_round_is_behind_exactly_the_spans_that_overlap_its_wait():
    due = np.array([0, 10, 20, 30, 40, 100], dtype=np.int64)
    arrived = np.array([5, 15, 25, 35, 45, 110], dtype=np.int64)
    # [6, 9] lies between the first two waits; [14, 21] overlaps the second and the third;
    # [32, 33] lies inside the fourth; nothing touches the last two.
    spans = [(6, 9), (14, 21), (32, 33)]
    assert _behind(due, arrived, spans).tolist() == [False, True, True, True, False, False]


def test_a_long_span_that_started_earlier_still_counts():
    # Sorted by start, the span that started first ends last: the latest end so far decides.
    due = np.array([50, 300], dtype=np.int64)
    arrived = np.array([60, 310], dtype=np.int64)
    spans = [(0, 100), (10, 20)]
    assert _behind(due, arrived, spans).tolist() == [True, False]


def test_touching_ends_count_and_no_spans_mean_quiet():
    due = np.array([10, 20], dtype=np.int64)
    arrived = np.array([15, 25], dtype=np.int64)
    assert _behind(due, arrived, [(15, 16), (5, 20)]).tolist() == [True, True]
    assert _behind(due, arrived, []).tolist() == [False, False]
