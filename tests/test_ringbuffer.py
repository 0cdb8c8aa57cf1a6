import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.ringbuffer import RingBuffer


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 50),
    sizes=st.lists(st.integers(0, 120), min_size=1, max_size=20),
)
def test_last_n_equals_tail_of_everything_appended(capacity, sizes):
    ring = RingBuffer(capacity)
    everything = []
    counter = 0
    for size in sizes:
        batch = np.arange(counter, counter + size, dtype=np.float64)
        counter += size
        ring.extend(batch)
        everything.extend(batch.tolist())
        held = min(len(everything), capacity)
        assert len(ring) == held
        assert ring.total == len(everything)
        np.testing.assert_array_equal(ring.last(), everything[len(everything) - held :])
        for n in {0, min(1, held), held // 2, held}:
            np.testing.assert_array_equal(ring.last(n), everything[len(everything) - n :] if n else [])


def test_last_is_a_read_only_view_not_a_copy():
    ring = RingBuffer(8)
    ring.extend(np.arange(13.0))
    view = ring.last(5)
    assert np.shares_memory(view, ring._data)
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0] = 1.0
    np.testing.assert_array_equal(view, [8, 9, 10, 11, 12])
    assert ring.latest() == 12.0


def test_memory_is_bounded_whatever_the_stream_length():
    ring = RingBuffer(1000)
    before = ring.nbytes
    for start in range(0, 1_000_000, 50_000):
        ring.extend(np.arange(start, start + 50_000, dtype=np.float64))
    assert ring.nbytes == before == 2 * 1000 * 8
    assert ring.latest() == 999_999.0
    assert ring.total == 1_000_000


def test_snapshot_restore_round_trip_keeps_values_and_total():
    ring = RingBuffer(6, np.int64)
    ring.extend(np.arange(10))
    back = RingBuffer.restore(ring.snapshot())
    assert back.capacity == 6 and back.dtype == np.int64 and back.total == 10
    np.testing.assert_array_equal(back.last(), ring.last())
    back.append(99)
    np.testing.assert_array_equal(back.last(3), [8, 9, 99])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="capacity"):
        RingBuffer(0)
    ring = RingBuffer(4)
    ring.extend([1.0, 2.0])
    with pytest.raises(ValueError, match="last 3 values, holding 2"):
        ring.last(3)
    with pytest.raises(IndexError):
        RingBuffer(2).latest()
