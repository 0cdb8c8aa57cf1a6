"""Storage faults: a journal that cannot write says why, stops at once, and
loses nothing it had already committed.

Injected faults (a callable raising sqlite3 errors just before COMMIT) cover
every kind; real faults cover a size-capped database (SQLITE_FULL for real),
a full filesystem (a tiny tmpfs in a private mount namespace, when the
machine allows it), a read-only open, a read-only file (non-root only) and a
lock held by another connection.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.journal import Journal, JournalError, recompute_digest
from engine.messages import Fill, OrderEvent, OrderStatus, Side

REPO = Path(__file__).resolve().parents[1]


def events(first_seq: int, n: int) -> list:
    out = []
    for i in range(first_seq, first_seq + n):
        out.append(OrderEvent(client_order_id=f"c{i}", strategy_id="rsi_mr", symbol="SPY",
                              status=OrderStatus.ACCEPTED, event_seq=i, ts_ns=i * 1000))  # fmt: skip
        out.append(Fill(client_order_id=f"c{i}", strategy_id="rsi_mr", trade_id=f"T{i}", symbol="SPY",
                        side=Side.BUY, quantity=1.0, price=100.0 + i, fee=0.0, event_seq=i, ts_ns=i * 1000))  # fmt: skip
    return out


class Injector:
    """Raises ``error`` on the ``fail_on``-th commit and counts every call."""

    def __init__(self, error: Exception, fail_on: int):
        self.error, self.fail_on, self.calls = error, fail_on, 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise self.error


def assert_committed_intact(path: Path, expected_seq: int, expected_digest: str) -> None:
    """A fresh reader sees exactly what was committed, and the file is sound."""
    with Journal.open(path, readonly=True) as reader:
        assert reader.integrity_check() == "ok"
        assert reader.last_seq == expected_seq
        assert [s for s, _ in reader.records()] == list(range(1, expected_seq + 1))
        assert reader.digest() == expected_digest
    assert recompute_digest(path) == expected_digest


@pytest.mark.parametrize(
    "error, kind",
    [
        (sqlite3.OperationalError("database or disk is full"), "disk_full"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "read_only"),
        (sqlite3.OperationalError("database is locked"), "locked"),
        (sqlite3.OperationalError("disk I/O error"), "io"),
        (sqlite3.DatabaseError("database disk image is malformed"), "corrupt"),
    ],
)
def test_injected_write_failure_rolls_back_and_stops_the_journal(tmp_path, error, kind):
    path = tmp_path / "j.sqlite"
    injector = Injector(error, fail_on=3)
    journal = Journal.open(path, fault_injector=injector)
    journal.append(events(1, 5))
    journal.set_meta("status", "running")
    committed_seq, committed_digest = journal.last_seq, journal.digest()

    with pytest.raises(JournalError) as info:
        journal.append(events(6, 5))
    assert info.value.kind == kind
    assert str(path) in str(info.value) and "appending records 11..20" in str(info.value)
    assert journal.failed is info.value
    assert journal.last_seq == committed_seq and journal.digest() == committed_digest

    # Every later write raises at once, without reaching the storage layer.
    for write in (lambda: journal.append(events(6, 1)), lambda: journal.set_meta("status", "finished")):
        with pytest.raises(JournalError) as later:
            write()
        assert later.value.kind == kind and "earlier failure" in str(later.value)
    assert injector.calls == 3

    # The rolled-back batch left nothing behind; everything before it is readable.
    assert [s for s, _ in journal.records()] == list(range(1, committed_seq + 1))
    journal.close()
    assert_committed_intact(path, committed_seq, committed_digest)
    with Journal.open(path, readonly=True) as reader:
        assert reader.get_meta("status") == "running"


def test_real_size_cap_raises_sqlite_full(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal.open(path, max_pages=16)
    committed_seq, committed_digest = 0, journal.digest()
    with pytest.raises(JournalError) as info:
        for batch in range(10_000):
            journal.append(events(batch * 10, 10))
            committed_seq, committed_digest = journal.last_seq, journal.digest()
    assert info.value.kind == "disk_full" and "full" in str(info.value)
    assert committed_seq > 0  # it did write until the cap
    with pytest.raises(JournalError, match="earlier failure"):
        journal.append(events(0, 1))
    journal.close()
    assert_committed_intact(path, committed_seq, committed_digest)


_FULL_FS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from engine.journal import Journal, JournalError
    from engine.messages import OrderEvent, OrderStatus
    path = sys.argv[1]
    journal = Journal.open(path)
    committed, digest, kind = 0, journal.digest(), None
    try:
        for b in range(100000):
            journal.append([OrderEvent(client_order_id=f"c{b}-{k}", strategy_id="s" * 40, symbol="SPY",
                                       status=OrderStatus.ACCEPTED, event_seq=b, ts_ns=k) for k in range(20)])
            committed, digest = journal.last_seq, journal.digest()
    except JournalError as exc:
        kind = exc.kind
    journal.close()
    reader = Journal.open(path, readonly=True)
    print(json.dumps({"kind": kind, "committed": committed, "digest": digest, "reread_seq": reader.last_seq,
                      "reread_digest": reader.digest(), "integrity": reader.integrity_check()}))
    """
)


def test_real_full_filesystem(tmp_path):
    """A 256 KiB tmpfs, mounted in a private mount namespace so nothing outlives the test."""
    if shutil.which("unshare") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to mount a tiny private tmpfs")
    mount_dir = tmp_path / "tiny"
    mount_dir.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(_FULL_FS_SCRIPT)
    shell = f'mount -t tmpfs -o size=256k tmpfs "{mount_dir}" && exec "{sys.executable}" "{script}" "{mount_dir}/j.sqlite"'
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", shell], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    if proc.returncode != 0 and not proc.stdout and "Traceback" not in proc.stderr:
        pytest.skip(f"cannot mount a private tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["kind"] == "disk_full"
    assert result["committed"] > 0
    assert result["reread_seq"] == result["committed"]
    assert result["reread_digest"] == result["digest"]
    assert result["integrity"] == "ok"


def test_real_read_only_open_refuses_writes(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as writer:
        writer.append(events(1, 3))
        committed_digest = writer.digest()
    reader = Journal.open(path, readonly=True)
    with pytest.raises(JournalError) as info:
        reader.append(events(4, 1))
    assert info.value.kind == "read_only"
    with pytest.raises(JournalError, match="earlier failure"):
        reader.set_meta("status", "finished")
    reader.close()
    assert_committed_intact(path, 6, committed_digest)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_real_read_only_file_refuses_writes(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal.open(path)
    journal.append(events(1, 3))
    committed_digest = journal.digest()
    journal.close()
    path.chmod(0o444)
    try:
        with pytest.raises(JournalError) as info:
            with Journal.open(path) as journal:
                journal.append(events(4, 1))
        assert info.value.kind == "read_only"
    finally:
        path.chmod(0o644)
    assert_committed_intact(path, 6, committed_digest)


def test_real_lock_held_by_another_connection(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal.open(path, busy_timeout_ms=50)
    journal.append(events(1, 2))
    committed_digest = journal.digest()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(JournalError) as info:
            journal.append(events(3, 2))
        assert info.value.kind == "locked" and "locked" in str(info.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    # The lock is gone, but the journal stays stopped until someone decides to reopen it.
    with pytest.raises(JournalError, match="earlier failure"):
        journal.append(events(3, 2))
    assert journal.last_seq == 4 and len(list(journal.records())) == 4
    journal.close()
    assert_committed_intact(path, 4, committed_digest)
    with Journal.open(path) as reopened:  # an operator's restart continues where it stopped
        assert reopened.append(events(3, 1)) == 6
