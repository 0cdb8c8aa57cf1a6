"""Soak, briefly: the synthetic live feed through the whole engine; RSS, fds, threads and mailboxes stay flat.

bench/bench_soak.py runs the same for minutes; here a few seconds with a
fast monitor. The run must really trade ticks (so flat series mean something)
and neither our detector nor the MonitorActor's own leak report may flag a series.
"""

from __future__ import annotations

import pytest

from bench.bench_soak import soak


@pytest.mark.timeout(60)
def test_short_soak_flags_no_growth(tmp_path):
    report = soak(tmp_path, seconds=5.0, rate=5000.0, sample_s=0.1, warmup_s=1.5)
    assert report["samples_judged"] >= 25, report
    assert report["ticks"] >= 5000.0 * 5.0 * 0.5, report  # the feed really ran at (about) its rate
    assert report["flagged"] == [], report
    assert report["monitor_flagged"] == [], report
    assert report["series"]["mailbox_depth_total"]["max"] < 1000  # credits bound every mailbox
