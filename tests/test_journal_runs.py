"""Run bookkeeping: separate paper/live journals, fresh names per replay, and
``--resume`` picking the right unfinished run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
import pytest

from engine.config import default_config
from engine.journal import Journal, JournalError
from engine.journal_runs import (
    config_hash,
    find_unfinished_run,
    finish_run,
    fingerprint_file,
    journal_dir,
    list_runs,
    new_run_path,
    start_run,
)
from engine.messages import FeedCheckpoint

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPY = DATA / "ticks" / "spy_trades_lean" / "SPY_trades_20131007-20131011.norm.csv.gz"


def test_paper_and_live_journals_live_in_separate_directories(tmp_path):
    paper = msgspec.structs.replace(default_config(), journal=msgspec.structs.replace(default_config().journal, dir=str(tmp_path)))
    live = msgspec.structs.replace(paper, mode="live")
    assert journal_dir(paper) == tmp_path / "paper"
    assert journal_dir(live) == tmp_path / "live"
    assert journal_dir(paper) != journal_dir(live)


def test_run_paths_are_fresh_and_sort_by_creation(tmp_path):
    paths = [new_run_path(tmp_path / "paper") for _ in range(50)]
    assert len(set(paths)) == 50
    assert all(p.parent == tmp_path / "paper" and p.name.startswith("replay-") and p.suffix == ".sqlite" for p in paths)
    stamps = [p.name.split("-")[1] for p in paths]
    assert stamps == sorted(stamps)  # minted in order -> timestamps never go backwards
    assert new_run_path(tmp_path, kind="run").name.startswith("run-")
    with pytest.raises(ValueError, match="run kind.*'Re play'"):
        new_run_path(tmp_path, kind="Re play")


def _make_run(directory: Path, fingerprint: str, cfg_hash: str, finished: bool = False) -> Path:
    path = new_run_path(directory)
    journal = start_run(path, data_path="/data/x.csv", data_fingerprint=fingerprint, config_hash=cfg_hash)
    journal.append([FeedCheckpoint(feed="x", batch_seq=0, last_tick_seq=99)])
    if finished:
        finish_run(journal)
    journal.close()
    return path


def test_find_unfinished_run_picks_the_latest_matching_unfinished_journal(tmp_path):
    assert find_unfinished_run(tmp_path / "nowhere", "f", "c") is None
    older = _make_run(tmp_path, "data-A", "cfg-1")
    newer = _make_run(tmp_path, "data-A", "cfg-1")
    _make_run(tmp_path, "data-A", "cfg-1", finished=True)  # newest, but finished
    _make_run(tmp_path, "data-B", "cfg-1")  # other data
    _make_run(tmp_path, "data-A", "cfg-2")  # other config
    (tmp_path / "replay-99999999T999999.999999Z-ffffff.sqlite").write_bytes(b"garbage, not a journal" * 50)
    assert find_unfinished_run(tmp_path, "data-A", "cfg-1") == newer
    with Journal.open(newer) as journal:
        finish_run(journal)
    assert find_unfinished_run(tmp_path, "data-A", "cfg-1") == older
    assert find_unfinished_run(tmp_path, "data-C", "cfg-1") is None
    assert len(list_runs(tmp_path)) == 6


def test_start_run_records_identity_and_status(tmp_path):
    path = new_run_path(tmp_path)
    before = time.time_ns()
    with start_run(path, data_path="/d.csv", data_fingerprint="fp", config_hash="ch") as journal:
        meta = journal.meta()
    assert meta["status"] == "running" and meta["kind"] == "replay"
    assert (meta["data_path"], meta["data_fingerprint"], meta["config_hash"]) == ("/d.csv", "fp", "ch")
    assert int(meta["created_wall_ns"]) >= before


def test_fingerprint_follows_content_size_and_mtime(tmp_path):
    data = tmp_path / "ticks.csv"
    data.write_bytes(b"ts_ns,price,size\n" + b"1,100.0,5\n" * 300_000)  # ~3 MiB: head, middle and tail differ
    first = fingerprint_file(data)
    assert fingerprint_file(data) == first
    st = data.stat()
    with data.open("r+b") as fh:  # change the last MiB, keep size and mtime
        fh.seek(st.st_size - 5)
        fh.write(b"9,9\n\n")
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fingerprint_file(data) != first
    changed = fingerprint_file(data)
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert fingerprint_file(data) != changed
    with pytest.raises(JournalError, match="missing.csv.*not found"):
        fingerprint_file(tmp_path / "missing.csv")


@pytest.mark.skipif(not SPY.is_file(), reason=f"shared market data not present at {SPY}")
def test_fingerprint_of_real_data_is_fast_and_stable():
    start = time.perf_counter()
    first = fingerprint_file(SPY)
    elapsed = time.perf_counter() - start
    assert fingerprint_file(SPY) == first
    assert elapsed < 0.5, f"fingerprinting {SPY.name} took {elapsed:.3f}s"


def test_config_hash_ignores_secrets_but_not_settings():
    base = default_config()
    base_hash = config_hash(base)
    secret = msgspec.structs.replace(base, api=msgspec.structs.replace(base.api, jwt_secret="s3cr3t" * 8))
    keyed = msgspec.structs.replace(base, venue=msgspec.structs.replace(base.venue, api_key="k", api_secret="x"))
    assert config_hash(secret) == config_hash(keyed) == base_hash
    riskier = msgspec.structs.replace(base, risk=msgspec.structs.replace(base.risk, max_order_qty=5.0))
    assert config_hash(riskier) != base_hash
    assert len(base_hash) == 64
