"""kill -9 at 20+ random instants, `replay --resume` each time: the journal equals the undisturbed run.

A watcher thread kills the replay process once its journal holds a
seeded-random number of records more than at that start (so the kills land
anywhere in a round: before, inside or after a journal transaction). The
number is at most a quarter of what is still missing, so every attempt is
killed before it could finish, however fast the machine. Progress is read as
the journal's last record number, not as bytes: a restart checkpoints the
WAL into the database and the bytes on disk can shrink. The final resume must
complete and give the undisturbed digest, fills, position and PnL: no order
lost, none duplicated, no fill applied twice.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.journal import Journal
from engine.messages import Fill, OrderRequest
from engine.replay import run_replay
from tests.paths import REPO, SPY_TICKS, needs_shared
from tests.test_replay_e2e import job_config

pytestmark = needs_shared
TICKS = 100_000
KILLS = 20


def _journaled(d: Path) -> int:
    """Records in the newest journal of ``d`` (0 if none yet or not readable yet)."""
    import sqlite3

    runs = sorted(d.glob("*.sqlite")) if d.exists() else []
    if not runs:
        return 0
    try:
        with sqlite3.connect(f"file:{runs[-1]}?mode=ro", uri=True, timeout=0.05) as db:
            row = db.execute("SELECT max(last_seq) FROM batches").fetchone()
        return int(row[0] or 0)
    except sqlite3.Error:
        return 0


def _record_count(path: Path) -> int:
    try:
        with Journal.open(path, readonly=True) as j:
            return sum(1 for _ in j.records())
    except Exception:  # noqa: BLE001 - an orphan killed mid-creation may not even have the schema
        return 0


def _config_file(tmp: Path) -> Path:
    text = (REPO / "bench" / "job.toml").read_text()
    for a, b in (('data_dir = "var/bench/data"', f'data_dir = "{tmp}/data"'),
                 ('dir = "var/bench/journal"', f'dir = "{tmp}/journal"'),
                 ('dir = "var/bench/log"', f'dir = "{tmp}/log"'), ("max_ticks = 1000000", f"max_ticks = {TICKS}"),
                 ("batch_size = 4096", "batch_size = 256")):
        assert a in text, a
        text = text.replace(a, b)
    path = tmp / "job.toml"
    path.write_text(text)
    return path


@pytest.mark.timeout(240)
def test_twenty_kill_9_then_resume_reproduce_the_undisturbed_journal(tmp_path):
    undisturbed = run_replay(job_config(tmp_path / "clean", TICKS, batch_size=256), str(SPY_TICKS), symbol="SPY",
                             progress=False)
    cmd = [sys.executable, "-m", "engine.cli", "replay", str(SPY_TICKS), "--symbol", "SPY", "--config",
           str(_config_file(tmp_path)), "--resume", "--report", str(tmp_path / "r.json")]
    journal_dir = tmp_path / "journal" / "paper"
    with Journal.open(undisturbed["journal"], readonly=True) as j:
        total = j.last_seq
    rng = random.Random(20240611)
    kills = 0
    sizes = []
    while kills < KILLS:
        start = _journaled(journal_dir)
        target = start + rng.randint(1, max(1, (total - start) // 4))
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        done = threading.Event()

        def watch():
            while not done.is_set() and proc.poll() is None:
                if _journaled(journal_dir) >= target:
                    proc.send_signal(signal.SIGKILL)
                    return
                done.wait(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        _, err = proc.communicate(timeout=120)
        done.set()
        watcher.join()
        if proc.returncode != -signal.SIGKILL:
            assert proc.returncode == 0, err.decode()[-2000:]
            break  # finished before the watcher struck: nothing left to kill
        kills += 1
        sizes.append(_journaled(journal_dir))
    assert kills >= KILLS, f"only {kills} kills landed before a run completed"
    # A kill before a run's identity was committed leaves an empty journal (the next start
    # cannot resume it and begins afresh); every journaled record is in one journal.
    runs = sorted(journal_dir.glob("*.sqlite"))
    with_records = [p for p in runs if _record_count(p) > 0]
    assert len(with_records) == 1, [(p.name, _record_count(p)) for p in runs]
    final = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["resumed"] is True and Path(report["journal"]) == with_records[0]
    assert report["journal_digest"] == undisturbed["journal_digest"]
    assert report["fills"] == undisturbed["fills"] and report["orders"] == undisturbed["orders"]
    assert report["position"] == undisturbed["position"]
    assert report["realized_pnl"] == pytest.approx(undisturbed["realized_pnl"], abs=1e-9)
    # Directly in the journal: each client order id submitted once, each trade id applied once.
    with Journal.open(report["journal"], readonly=True) as j:
        records = [r for _, r in j.records()]
    cids = [r.client_order_id for r in records if isinstance(r, OrderRequest)]
    trades = [r.trade_id for r in records if isinstance(r, Fill)]
    assert len(cids) == len(set(cids)) == undisturbed["orders"]
    assert len(trades) == len(set(trades)) == undisturbed["fills"]
