"""`actortrader run` as a subprocess: boots the tree, serves, stops cleanly on SIGTERM with exit 0."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading

import pytest

from tests.paths import REPO


def write_config(tmp_path, extra: str = "") -> str:
    cfg = tmp_path / "run.toml"
    cfg.write_text(f"""
[engine]
data_dir = "{tmp_path}/data"
[logging]
dir = "{tmp_path}/log"
[journal]
dir = "{tmp_path}/journal"
[api]
users_file = "{tmp_path}/users.json"
[feed]
rate = 2000.0
{extra}
""")
    return str(cfg)


def start(args, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**__import__("os").environ,
                                                                      "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def wait_for(lines: queue.Queue, needle: str, seen: list[str], timeout: float = 60) -> bool:
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            return False
        if line is None:
            return False
        seen.append(line)
        if needle in line:
            return True


@pytest.mark.timeout(120)
def test_run_then_sigterm_exits_zero_with_a_clean_log(tmp_path):
    proc, lines = start(["run", "--config", write_config(tmp_path), "--api-port", "0"], tmp_path)
    seen: list[str] = []
    try:
        assert wait_for(lines, "engine running", seen), "".join(seen)
        assert any("password:" in s for s in seen), "first start prints the admin password"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    out = "".join(seen)
    assert "stopped cleanly" in out and "Traceback" not in out
    log = (tmp_path / "log" / "actortrader.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in log if x.strip()]
    assert any("stopped cleanly" in json.dumps(r) for r in records)
    assert not any(r.get("record", {}).get("level", {}).get("name") in ("ERROR", "CRITICAL") for r in records)
    password_lines = [s for s in seen if "password:" in s]
    secret_words = {w for s in password_lines for w in s.split() if len(w) >= 16}
    assert secret_words and not any(w in "\n".join(log) for w in secret_words), "the admin password is never logged"


@pytest.mark.timeout(120)
def test_run_for_a_duration_trades_on_the_synthetic_feed(tmp_path):
    proc, lines = start(["run", "--config", write_config(tmp_path, "max_ticks = 0"), "--duration", "3",
                         "--api-port", "0"], tmp_path)
    try:
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    from engine.journal import Journal
    from engine.messages import Fill

    journals = list((tmp_path / "journal" / "paper").glob("run-*.sqlite"))
    assert journals
    with Journal.open(journals[0]) as j:
        assert j.count((Fill,)) > 0, "the default RSI strategy trades the synthetic walk within seconds"


def test_live_mode_refuses_without_confirmation_and_says_why(tmp_path):
    cfg = write_config(tmp_path, "").replace("[feed]", "[feed]")
    text = open(cfg).read().replace("[engine]", 'mode = "live"\n[engine]', 1)
    open(cfg, "w").write(text)
    out = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--config", cfg], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    for needle in ("live.confirm", "ACTORTRADER_LIVE_CONFIRM", "venue.kind", "api.jwt_secret"):
        assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_live_venue_unreachable_keeps_halted_and_exits_nonzero(tmp_path):
    cfg = tmp_path / "live.toml"
    cfg.write_text(f"""mode = "live"
[engine]
data_dir = "{tmp_path}/data"
[logging]
dir = "{tmp_path}/log"
[journal]
dir = "{tmp_path}/journal"
[venue]
kind = "live"
url = "https://127.0.0.1:9"
connect_timeout_s = 1.0
[live]
confirm = true
[api]
enabled = false
""")
    env = {**__import__("os").environ, "ACTORTRADER_LIVE_CONFIRM": "yes", "ACTORTRADER_VENUE__API_KEY": "k" * 20,
           "ACTORTRADER_VENUE__API_SECRET": "s" * 20, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--config", str(cfg)], cwd=REPO,
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1, out.stderr
    assert "unreachable" in out.stderr and "HALTED" in out.stderr
    assert "paper" not in out.stdout.lower() or "live" in out.stdout.lower()


@pytest.mark.timeout(180)
def test_run_after_kill_9_continues_its_journal_with_fresh_client_ids(tmp_path):
    from engine.journal import Journal
    from engine.messages import Fill, OrderRequest

    cfg = write_config(tmp_path, "max_ticks = 0")
    proc, lines = start(["run", "--config", cfg, "--api-port", "0"], tmp_path)
    try:
        seen: list[str] = []
        assert wait_for(lines, "engine running", seen), "".join(seen)
        journal = next((tmp_path / "journal" / "paper").glob("run-*.sqlite"))
        pause = threading.Event()

        def fills_so_far() -> int:
            with Journal.open(journal, readonly=True) as j:
                return j.count((Fill,))

        # Let it trade (polling the journal, bounded by the test timeout), then kill -9 without warning.
        while fills_so_far() < 5 and proc.poll() is None:
            pause.wait(0.1)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    with Journal.open(journal, readonly=True) as j:
        before = [r for _, r in j.records(types=(OrderRequest,))]
        fills_before = j.count((Fill,))
    proc, lines = start(["run", "--config", cfg, "--api-port", "0", "--duration", "4"], tmp_path)
    try:
        seen = []
        assert wait_for(lines, "continuing after an unclean stop", seen), "".join(seen)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with Journal.open(journal, readonly=True) as j:
        after = [r for _, r in j.records(types=(OrderRequest,))]
        assert j.count((Fill,)) > fills_before, "it trades again after the crash"
        assert j.get_meta("status") == "finished"
    ids = [r.client_order_id for r in after]
    assert len(ids) == len(set(ids)), "no client order id is ever reused"
    assert after[: len(before)] == before


def test_a_booted_engine_is_left_out_of_full_collections():
    import gc

    from engine.assembly import freeze_boot_heap

    assert gc.get_freeze_count() == 0
    booted = object.__new__(type("Booted", (), {}))  # a tracked object alive at boot
    try:
        freeze_boot_heap()
        assert gc.get_freeze_count() > 0 and not any(o is booted for o in gc.get_objects())
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0 and any(o is booted for o in gc.get_objects())
