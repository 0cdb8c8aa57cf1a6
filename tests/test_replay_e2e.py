"""The whole engine over real SPY ticks: correctness anchor, determinism, report contract, checkpoint resume.

(kill -9 at random instants: tests/test_crash_resume.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import config_from_dict, load_config
from engine.indicators import rsi
from engine.replay import run_replay
from tests.paths import REPO, SPY_TICKS, needs_shared, spy_prices
from tests.test_trading_pure import reference_fills

pytestmark = needs_shared

REPORT_KEYS = {"ticks", "rejected_ticks", "orders", "fills", "position", "realized_pnl", "fees", "max_drawdown",
               "elapsed_s", "ticks_per_s", "journal_digest"}


def job_config(tmp: Path, max_ticks: int, **feed):
    base = load_config(REPO / "bench" / "job.toml")
    raw = json.loads(json.dumps(__import__("msgspec").to_builtins(base)))
    raw["engine"]["data_dir"] = str(tmp / "data")
    raw["journal"]["dir"] = str(tmp / "journal")
    raw["logging"]["dir"] = str(tmp / "log")
    raw["feed"]["max_ticks"] = max_ticks
    raw["feed"].update(feed)
    return config_from_dict(raw)


def reference(n: int):
    _, prices = spy_prices(n)
    fills = reference_fills(prices, rsi(prices, 14))
    pos = sum(q for _, q, _ in fills)
    realized, held, cost = 0.0, 0.0, 0.0
    for _, q, p in fills:
        if q > 0:
            held, cost = held + q, cost + q * p
        else:
            avg = cost / held
            realized += (p - avg) * (-q)
            held, cost = held + q, cost + q * avg
    return fills, pos, realized


@pytest.mark.timeout(300)
def test_anchor_first_million_spy_ticks_equal_plain_python_loop(tmp_path):
    cfg = job_config(tmp_path, 1_000_000)
    report = run_replay(cfg, str(SPY_TICKS), symbol="SPY", progress=False)
    fills, pos, realized = reference(1_000_000)
    assert REPORT_KEYS <= report.keys()
    assert report["ticks"] == 1_000_000 and report["rejected_ticks"] == 0
    assert report["orders"] >= report["fills"]
    assert report["fills"] == len(fills)
    assert report["position"] == {"SPY": pos}
    assert report["realized_pnl"] == pytest.approx(realized, abs=1e-6)
    assert report["fees"] == 0


def test_same_digest_for_batch_sizes_and_repeated_runs(tmp_path):
    digests, fills = set(), set()
    for k, batch in enumerate((1, 64, 4096, 4096)):
        cfg = job_config(tmp_path / str(k), 20_000, batch_size=batch)
        rep = run_replay(cfg, str(SPY_TICKS), symbol="SPY", progress=False)
        digests.add(rep["journal_digest"])
        fills.add((rep["fills"], rep["realized_pnl"], json.dumps(rep["position"])))
        assert rep["fills"] > 20
    assert len(digests) == 1 and len(fills) == 1


def test_cli_replay_writes_report_and_plot(tmp_path):
    cfg_path = tmp_path / "job.toml"
    text = (REPO / "bench" / "job.toml").read_text()
    text = text.replace('data_dir = "var/bench/data"', f'data_dir = "{tmp_path}/data"')
    text = text.replace('dir = "var/bench/journal"', f'dir = "{tmp_path}/journal"')
    text = text.replace('dir = "var/bench/log"', f'dir = "{tmp_path}/log"').replace("max_ticks = 1000000", "max_ticks = 50000")
    cfg_path.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "replay", str(SPY_TICKS), "--symbol", "SPY", "--config", str(cfg_path),
         "--report", str(tmp_path / "r.json"), "--plot", str(tmp_path / "eq.png")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert REPORT_KEYS <= report.keys() and report["ticks"] == 50_000
    assert Path(report["journal"]).is_file()
    assert (tmp_path / "eq.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(tmp_path / "nope.csv"), "--symbol", "SPY",
                          "--config", str(cfg_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "nope.csv" in bad.stderr and "Traceback" not in bad.stderr
    unknown = subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(SPY_TICKS), "--symbol", "QQQ",
                              "--config", str(cfg_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "QQQ" in unknown.stderr and "Traceback" not in unknown.stderr


def test_resume_from_a_pipeline_checkpoint_re_decides_exactly(tmp_path):
    """Cut a finished journal back to a checkpoint (as a crash would), resume: the same history.

    The resumed run restores indicators, strategy and safety from the checkpoint and
    re-sends only the ticks after it; any difference in the restored state shows up as
    different orders after the cut, so a different digest.
    """
    import shutil
    import sqlite3

    from engine.journal import Journal
    from engine.messages import PipelineCheckpoint

    cfg = job_config(tmp_path, 120_000, batch_size=512)
    full = run_replay(cfg, str(SPY_TICKS), symbol="SPY", progress=False)
    with Journal.open(full["journal"]) as j:
        cps = [(seq, cp) for seq, cp in j.records(types=(PipelineCheckpoint,))]
    assert len(cps) >= 2
    cut_seq, cut = cps[len(cps) // 2]
    crashed = tmp_path / "crashed.sqlite"
    shutil.copy(full["journal"], crashed)
    with sqlite3.connect(crashed) as db:  # lose every commit after the checkpoint's
        db.execute("DELETE FROM batches WHERE first_seq > ?", (cut_seq,))
    resumed = run_replay(cfg, str(SPY_TICKS), symbol="SPY", progress=False, journal_path=crashed)
    assert resumed["resumed_after_tick"] == cut.last_tick_seq
    assert resumed["ticks"] == 120_000
    assert resumed["journal_digest"] == full["journal_digest"]
    assert (resumed["fills"], resumed["position"], resumed["realized_pnl"]) == (full["fills"], full["position"], full["realized_pnl"])


def test_event_hub_hears_every_fill_once_when_fills_travel_as_blocks(tmp_path):
    """The OrderActor hands the hub several rounds at once and safety only what it acts on: nothing is lost."""
    from engine import metrics

    metrics.REGISTRY.reset()
    report = run_replay(job_config(tmp_path, 200_000), str(SPY_TICKS), symbol="SPY", progress=False)
    assert report["fills"] > 1000
    assert metrics.counter("fills_total", symbol="SPY").value == report["fills"]
    assert metrics.counter("orders_total", outcome="FILLED").value == report["fills"]
    assert metrics.counter("filled_quantity_total", symbol="SPY").value == report["fills"]  # qty 1 each
