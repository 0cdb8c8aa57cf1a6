"""Replay throughput with the API serving (dashboard-like SSE client connected) vs without.

Why in one run: the machine's speed drifts between runs; alternating the two
conditions in one process (A B A B ...) and comparing medians isolates the
API's cost. The acceptance bar is at most 10% slower with the API serving.

Use from code with the real replay::

    from bench.bench_api import compare
    result = compare(run_replay, make_directory)   # run_replay() -> ticks processed

``run_replay`` runs one replay and returns how many ticks it processed;
``make_directory`` returns the Directory the API should serve (the engine's).
Run as a script it uses a stand-in replay (numpy work in this process) so the
harness itself can be exercised: ``python -m bench.bench_api``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import httpx

from actors.directory import Directory
from engine.config import ApiSection, Config, EngineSection

SECRET = "bench-secret-" + "q" * 40


class SseReader:
    """A client holding the event stream open and reading it, like an open dashboard."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token
        self.events = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-sse")

    def _run(self) -> None:
        with httpx.Client(timeout=None) as client:
            with client.stream("GET", self.url + "/api/v1/events", headers={"Authorization": "Bearer " + self.token}) as r:
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        self.events += 1
                    if self._stop.is_set():
                        return

    def __enter__(self) -> "SseReader":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def timed(run_replay: Callable[[], int]) -> float:
    start = time.perf_counter()
    ticks = run_replay()
    return ticks / (time.perf_counter() - start)


def compare(run_replay: Callable[[], int], make_directory: Callable[[], Directory], rounds: int = 3) -> dict:
    """Alternate without/with the API ``rounds`` times; return throughputs and the relative cost."""
    from engine.api.server import ApiServer
    from engine.api.users import UserStore

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    cfg = Config(engine=EngineSection(data_dir=str(tmp)), api=ApiSection(port=0, users_file=str(tmp / "users.json")))
    UserStore(tmp / "users.json").add("bench", "admin", "bench password 123")
    without, with_api = [], []
    for _ in range(rounds):
        without.append(timed(run_replay))
        server = ApiServer(cfg, make_directory(), secret=SECRET)
        server.start()
        try:
            token = httpx.post(server.url + "/api/v1/auth/login", json={"username": "bench", "password": "bench password 123"}).json()["access_token"]
            with SseReader(server.url, token):
                with_api.append(timed(run_replay))
        finally:
            server.stop()
    base, api = statistics.median(without), statistics.median(with_api)
    return {
        "ticks_per_s_without_api": base,
        "ticks_per_s_with_api": api,
        "api_cost_pct": round(100.0 * (base - api) / base, 2),
        "rounds": rounds,
        "limit_pct": 10.0,
    }


def _stand_in_replay(n_ticks: int) -> Callable[[], int]:
    import numpy as np

    def run() -> int:
        rng = np.random.default_rng(7)
        done = 0
        while done < n_ticks:
            prices = 100 + np.cumsum(rng.normal(0, 0.01, 4096))
            np.convolve(prices, np.ones(14) / 14, mode="valid")
            done += 4096
        return done

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=20_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON figures here")
    args = parser.parse_args(argv)
    from tests.api_fixtures import FakeEngine

    engine = FakeEngine()
    engine.start_feed(interval_s=0.1)  # the dashboard stream has something to carry
    try:
        result = compare(_stand_in_replay(args.ticks), lambda: engine.directory, args.rounds)
    finally:
        engine.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if result["api_cost_pct"] <= result["limit_pct"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
