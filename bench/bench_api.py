"""Replay throughput with the API serving (an open dashboard: SSE client reading) vs without.

The real replay: ``engine.replay.run_replay`` with the ``bench/job.toml``
settings (1M SPY ticks, RsiMeanReversion, paper venue, SQLite journal in a
temp dir). In the "with API" condition an ApiServer serves *that* replay's
engine (its Directory) and a client holds ``/api/v1/events`` open and reads
it, like a dashboard, for the whole replay: the stream carries the engine's
orders and fills from the EventHub and polls trading state and PnL every
second.

Why alternating in one run: the machine's speed drifts between runs, so the
two conditions alternate (A B A B ...) after one untimed warm-up that builds
the columnar cache and loads the numba kernels; the medians are compared.
The issue allows the API at most 10% cost. ``ticks_per_s`` is the replay's
own figure (clock from StartFeed to the end of the stream, boot excluded);
the API starts and the client connects before that clock starts.

How the API gets the replay's engine: ``run_replay`` builds its engine
internally, so this bench wraps ``engine.assembly.build_engine`` for the
duration of a "with API" round (the replay imports it at call time) and
starts the server on the returned engine's Directory. A public hook in
run_replay would be nicer; this keeps the bench out of the lead's files.

    python -m bench.bench_api [--rounds 5] [--ticks 1000000] [--out bench/results/api.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import time
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import httpx
import msgspec

REPO = Path(__file__).resolve().parents[1]
SPY_TICKS = REPO.parent / "shared" / "data" / "ticks" / "spy_trades_lean" / "SPY_trades_20131007-20131011.norm.csv.gz"
SECRET = "bench-secret-" + "q7Zr" * 12
USER, PASSWORD = "bench", "bench password 123"
LIMIT_PCT = 10.0


READER = r"""
import sys, httpx
url, token = sys.argv[1], sys.argv[2]
events = 0
try:
    with httpx.Client(timeout=httpx.Timeout(10, read=None)) as client:
        with client.stream("GET", url + "/api/v1/events", headers={"Authorization": "Bearer " + token}) as r:
            for line in r.iter_lines():
                if line.startswith("event:"):
                    events += 1
                    if events == 1:
                        print("hello", flush=True)
except (httpx.HTTPError, KeyboardInterrupt):
    pass
print(events, flush=True)
"""


class SseReader:
    """A dashboard stand-in: another process holding the event stream open and reading it.

    Another process, as a browser is: its parsing must not be billed to the engine's GIL."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token
        self.events = 0
        self.cpu_s = 0.0  # the reader process's own CPU (what a browser tab would spend)
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "SseReader":
        self._proc = subprocess.Popen([sys.executable, "-c", READER, self.url, self.token], stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "hello":
            raise RuntimeError("the event stream did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the reader (SIGINT) and collect how many events it read and its CPU."""
        proc = self._proc
        if proc is None:
            return
        try:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc.send_signal(signal.SIGINT)  # the reader prints how many events it read, then exits
            out, _ = proc.communicate(timeout=15)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            self.cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            self.events = int(out.split()[-1]) + 1 if out.split() else 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def job_config(tmp: Path, max_ticks: int):
    """bench/job.toml with every directory in ``tmp`` (the journal never lands in the repo)."""
    from engine.config import config_from_dict, load_config

    raw: dict[str, Any] = msgspec.to_builtins(load_config(REPO / "bench" / "job.toml"))
    raw["engine"]["data_dir"] = str(tmp / "data")
    raw["journal"]["dir"] = str(tmp / "journal")
    raw["logging"]["dir"] = str(tmp / "log")
    raw["feed"]["max_ticks"] = max_ticks
    raw["api"].update(port=0, users_file=str(tmp / "users.json"), requests_per_minute=100_000)
    return config_from_dict(raw)


@contextlib.contextmanager
def api_serving_the_replay(server, token: str, served: dict[str, Any]) -> Iterator[None]:
    """While active, the engine the replay builds is served by ``server`` and read by a dashboard."""
    import engine.assembly as assembly

    original = assembly.build_engine

    def build_with_api(*args: Any, **kwargs: Any):
        eng = original(*args, **kwargs)
        server.ctx.directory = eng.directory  # the API now talks to this replay's actors
        served["reader"] = SseReader(server.url, token).__enter__()
        return eng

    assembly.build_engine = build_with_api
    try:
        yield
    finally:
        assembly.build_engine = original
        if "reader" in served:
            served["reader"].__exit__()


def compare(data: Path, max_ticks: int, rounds: int) -> dict[str, Any]:
    from actors.directory import Directory
    from engine.api.server import ApiServer
    from engine.api.users import UserStore
    from engine.replay import run_replay

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    server = None
    try:
        cfg = job_config(tmp, max_ticks)
        UserStore(Path(cfg.api.users_file)).add(USER, "viewer", PASSWORD)
        # One server for the whole bench, started and logged into before any clock runs: a round
        # measures serving, not booting uvicorn or hashing a password.
        server = ApiServer(cfg, Directory(), secret=SECRET)
        server.start()
        token = httpx.post(server.url + "/api/v1/auth/login", json={"username": USER, "password": PASSWORD}).json()["access_token"]

        def replay() -> tuple[dict[str, Any], float]:
            cpu = time.process_time()
            report = run_replay(cfg, str(data), symbol="SPY", progress=False)
            return report, time.process_time() - cpu

        warm, _ = replay()  # untimed: columnar cache + numba kernels
        runs: dict[str, list[float]] = {"without": [], "with": []}
        cpu: dict[str, list[float]] = {"without": [], "with": []}
        pair_cost: list[float] = []
        events: list[int] = []
        reader_cpu: list[float] = []
        digests = {warm["journal_digest"]}
        for i in range(rounds):
            for condition in (("without", "with") if i % 2 == 0 else ("with", "without")):
                if condition == "without":
                    report, cpu_s = replay()
                else:
                    served: dict[str, Any] = {}
                    with api_serving_the_replay(server, token, served):
                        report, cpu_s = replay()
                    events.append(served["reader"].events)
                    reader_cpu.append(served["reader"].cpu_s)
                runs[condition].append(report["ticks_per_s"])
                cpu[condition].append(cpu_s)
                digests.add(report["journal_digest"])
                print(f"  round {i + 1} {condition:>7} API: {report['ticks_per_s']:>12,.0f} ticks/s  cpu {cpu_s:.3f} s", file=sys.stderr)
            pair_cost.append(100.0 * (runs["without"][-1] - runs["with"][-1]) / runs["without"][-1])
        base, api = statistics.median(runs["without"]), statistics.median(runs["with"])
        cpu_base, cpu_api = statistics.median(cpu["without"]), statistics.median(cpu["with"])
        return {
            "data": str(data.name),
            "ticks": warm["ticks"],
            "fills": warm["fills"],
            "rounds": rounds,
            "ticks_per_s_without_api": round(base),
            "ticks_per_s_with_api": round(api),
            "runs_without_api": [round(x) for x in runs["without"]],
            "runs_with_api": [round(x) for x in runs["with"]],
            "api_cost_pct": round(100.0 * (base - api) / base, 2),
            "api_cost_pct_median_of_pairs": round(statistics.median(pair_cost), 2),
            "engine_cpu_s_per_replay_without_api": round(cpu_base, 3),
            "engine_cpu_s_per_replay_with_api": round(cpu_api, 3),
            "api_cpu_cost_pct": round(100.0 * (cpu_api - cpu_base) / cpu_base, 2),
            "sse_events_read_per_run": events,
            "reader_process_cpu_s_per_run": [round(x, 3) for x in reader_cpu],
            "limit_pct": LIMIT_PCT,
            "same_journal_digest_every_run": len(digests) == 1,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        }
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def table(result: dict[str, Any]) -> str:
    rows = [
        ("condition", "median ticks/s", "runs"),
        ("replay alone", f"{result['ticks_per_s_without_api']:,}", ", ".join(f"{x:,}" for x in result["runs_without_api"])),
        ("+ API + SSE reader", f"{result['ticks_per_s_with_api']:,}", ", ".join(f"{x:,}" for x in result["runs_with_api"])),
    ]
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
    verdict = "OK" if result["api_cost_pct"] <= result["limit_pct"] else "OVER LIMIT"
    lines.append(f"engine CPU per replay: {result['engine_cpu_s_per_replay_without_api']} s alone, "
                 f"{result['engine_cpu_s_per_replay_with_api']} s with the API ({result['api_cpu_cost_pct']:+.2f}%); "
                 f"median of per-pair throughput costs {result['api_cost_pct_median_of_pairs']:+.2f}%; "
                 f"load average {result['load_average_1m_at_end']}")  # fmt: skip
    lines.append(f"API cost: {result['api_cost_pct']:+.2f}% (limit {result['limit_pct']:g}%) {verdict}; "
                 f"SSE events read per run: {result['sse_events_read_per_run']}; "
                 f"same journal digest every run: {result['same_journal_digest_every_run']}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SPY_TICKS, help="normalized SPY ticks (default: ../shared data)")
    parser.add_argument("--ticks", type=int, default=1_000_000, help="ticks per replay (default 1M, as bench/job.toml)")
    parser.add_argument("--rounds", type=int, default=5, help="pairs of runs, alternating order (default 5)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "api.json")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"bench_api: data file not found: {args.data} (needs ../shared/data)", file=sys.stderr)
        return 2
    from loguru import logger

    import logging

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    result = compare(args.data, args.ticks, args.rounds)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0 if result["api_cost_pct"] <= result["limit_pct"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
