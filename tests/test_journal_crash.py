"""``kill -9`` at random instants never loses a committed record, never
duplicates one, and never leaves a corrupt journal.

A child process appends batches as fast as it can and prints each committed
seq (with the running digest) right after ``append`` returns. The test kills
it at seeded-random moments, restarts it on the same file several times, and
then checks the file against everything the children acknowledged.
"""

from __future__ import annotations

import hashlib
import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from engine.journal import Journal, digest_payload, recompute_digest
from engine.messages import OrderEvent

REPO = Path(__file__).resolve().parents[1]

_CHILD = textwrap.dedent(
    """
    import random, sys
    from engine.journal import Journal
    from engine.messages import Fill, OrderEvent, OrderStatus, Side
    path, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    journal = Journal.open(path)
    print(f"open {journal.last_seq} {journal.digest()}", flush=True)
    while True:
        seq = journal.last_seq
        batch = []
        for _ in range(rng.randint(1, 120)):
            seq += 1  # record content is a function of its seq: loss or duplication is visible
            if seq % 3:
                batch.append(OrderEvent(client_order_id=f"c{seq}", strategy_id="rsi_mr", symbol="SPY",
                                        status=OrderStatus.ACCEPTED, event_seq=seq, ts_ns=seq * 7))
            else:
                batch.append(Fill(client_order_id=f"c{seq}", strategy_id="rsi_mr", trade_id=f"T{seq}",
                                  symbol="SPY", side=Side.SELL, quantity=1.0, price=float(seq), fee=0.0,
                                  event_seq=seq, ts_ns=seq * 7))
        last = journal.append(batch)
        print(f"committed {last} {journal.digest()}", flush=True)
    """
)


def _reader(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line.split())
    out.put(None)


def test_kill_minus_nine_never_loses_duplicates_or_corrupts(tmp_path):
    rng = random.Random(20131007)
    path = tmp_path / "crash.sqlite"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    acknowledged: dict[int, str] = {}  # committed seq -> digest the child reported after it
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    for round_no in range(10):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(round_no)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
        reader.start()
        try:
            opened = lines.get(timeout=20)
            assert opened is not None and opened[0] == "open", proc.stderr.read()
            # The journal a restarted child sees holds at least everything acknowledged so far.
            assert int(opened[1]) >= max(acknowledged, default=0)
            seen = int(opened[1])
            if seen in acknowledged:
                assert opened[2] == acknowledged[seen]
            for _ in range(rng.randint(1, 40)):  # let it commit a random number of batches
                line = lines.get(timeout=20)
                assert line is not None and line[0] == "committed", proc.stderr.read()
                acknowledged[int(line[1])] = line[2]
        finally:
            proc.send_signal(signal.SIGKILL)  # mid-stream: usually inside encode, append or commit
            proc.wait(timeout=20)
        reader.join(timeout=20)
        while (line := lines.get(timeout=20)) is not None:  # lines already printed before the kill
            if line[0] == "committed":
                acknowledged[int(line[1])] = line[2]
        proc.stderr.close()

    assert len(acknowledged) >= 10
    with Journal.open(path, readonly=True) as journal:
        assert journal.integrity_check() == "ok"
        stored = list(journal.records())
        final_digest = journal.digest()
    seqs = [seq for seq, _ in stored]
    assert seqs == list(range(1, len(seqs) + 1)), "seqs are contiguous from 1"
    assert max(acknowledged) <= len(seqs), "every acknowledged record survived"
    assert all(record.event_seq == seq for seq, record in stored), "no record lost, duplicated or shifted"
    assert sum(isinstance(r, OrderEvent) for _, r in stored) == sum(1 for s in seqs if s % 3)

    # The digest each child reported for an acknowledged prefix equals a fresh re-read of that prefix.
    h = hashlib.sha256()
    prefix_digests = {}
    for seq, record in stored:
        payload = digest_payload(record)
        h.update(type(record).__name__.encode() + b"\x00" + len(payload).to_bytes(8, "little") + payload)
        prefix_digests[seq] = h.hexdigest()
    for seq, digest in acknowledged.items():
        assert prefix_digests[seq] == digest, f"digest after seq {seq}"
    assert final_digest == h.hexdigest() == recompute_digest(path)
