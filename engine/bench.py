"""`actortrader bench`: the benchmark suite, every figure next to an in-run baseline.

Why a baseline in the same run: absolute ticks/s move by 2x between an idle
and a busy machine, so each figure is also given as a ratio against the
plain-Python loop of the same job (RSI, decide on tick i, fill at tick i+1),
timed in the same process on the same data a moment earlier. The ratio is
what compares across machines and runs.

What it measures (keys of the JSON):

* ``baseline``: the plain loop (numba RSI + a Python decision loop), ticks/s.
* ``job``: the full replay (``run_replay``: feed, indicators, strategy,
  safety, orders, paper venue, SQLite journal) with bench/job.toml, best and
  median of ``repeats`` runs; µs per tick, µs per order, engine overhead per
  tick (job time minus baseline time, per tick).
* ``stages``: CPU seconds each actor thread spent in the best run, per tick:
  where the time goes, without a profiler.
* ``replay_latency_us`` / ``live``: HdrHistogram percentiles per stage (see
  engine/metrics.py; recorded once per batch by the actors). ``live`` runs the
  synthetic feed in real time (default 10k ticks/s) with the default RSI
  strategy: "tick due -> order at venue" p50/p99/p99.9. Next to it two
  in-run floors (engine/bench_floor.py): ``wakeup_floor``, an idle thread's
  lateness on the same schedule, and ``framework_floor``, the pipeline's
  shape with empty handlers; ``vs_floor`` / ``vs_framework_floor`` divide
  the engine's percentiles by them.
* ``memory``: peak RSS of the full job at 1M and 20M ticks (the SPY ticks
  repeated with shifted timestamps), each in a fresh subprocess.
* ``rsi``: ns/point of the engine's RSI vs TA-Lib, when TA-Lib is installed.

Run it as ``actortrader bench [--json PATH] [--ticks N] [--data PATH]`` or
``python bench/bench_job.py``. I/O lives here (an edge module), not in the
engine's logic.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec
import numpy as np

from engine.bench_floor import measure_framework_floor, measure_wakeup_floor
from engine.data.sources import TickChunk, TickSource

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO / "var" / "bench" / "data" / "cache"  # the data file's columnar cache, kept between runs
JOB_TOML = REPO / "bench" / "job.toml"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ticks" / "spy_trades_lean" / "SPY_trades_20131007-20131011.norm.csv.gz"
BIG_FACTOR = 20  # the memory figure compares N ticks with 20 N ticks
SYMBOL = "SPY"
EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 1


class BenchError(Exception):
    """A user-facing problem (missing data, bad --ticks)."""


# ---------------------------------------------------------------- configuration
def job_config(workdir: Path, max_ticks: int, data: Path, **feed: Any):
    """bench/job.toml with its journal and logs in ``workdir`` (a temp dir).

    The columnar cache of the data file stays in var/bench/data/cache so a
    second bench run does not parse the CSV again (ingest is reported apart).
    """
    from engine.config import load_config

    cfg = load_config(JOB_TOML, env={})
    rep = msgspec.structs.replace
    return rep(
        cfg,
        engine=rep(cfg.engine, data_dir=str(CACHE_DIR.parent)),
        journal=rep(cfg.journal, dir=str(workdir / "journal")),
        logging=rep(cfg.logging, dir=str(workdir / "log")),
        feed=rep(cfg.feed, path=str(data), max_ticks=max_ticks, **feed),
    )


def resolve_data(arg: str | None) -> Path:
    if arg:
        path = Path(arg)
        if not path.is_file():
            raise BenchError(f"--data {arg}: no such file")
        return path
    if not DEFAULT_DATA.is_file():
        raise BenchError(f"no tick data: the default {DEFAULT_DATA} is absent; pass --data PATH (ts_ns,price,size CSV)")
    return DEFAULT_DATA


def load_prices(data: Path, n: int) -> np.ndarray:
    """The first ``n`` prices of ``data`` through the same columnar cache the replay reads."""
    from engine.config import Instrument
    from engine.data import open_tick_source

    src = open_tick_source(str(data), symbol=SYMBOL, instruments=[Instrument(symbol=SYMBOL)],
                           cache_dir=CACHE_DIR)
    parts, have = [], 0
    for chunk in src:
        parts.append(np.asarray(chunk.price[: n - have], dtype=np.float64))
        have += len(parts[-1])
        if have >= n:
            break
    src.close()
    return np.concatenate(parts) if parts else np.empty(0)


# ---------------------------------------------------------------- baseline
def reference_fills(prices: np.ndarray, rsi_values: np.ndarray, lower: float = 30.0, upper: float = 70.0,
                    qty: float = 1.0) -> tuple[int, float, float]:
    """The job as a plain Python loop: decide on tick i, fill at tick i+1, no decision while pending.

    Returns (fills, position, realized PnL): the same answer the engine must give
    (tests/test_trading_pure.py reference_fills is the tested twin).
    """
    pos, pending, fills, held_cost, realized = 0.0, 0.0, 0, 0.0, 0.0
    px = prices.tolist()
    rv = rsi_values.tolist()
    for i in range(len(px)):
        if pending:
            p = px[i]
            if pending > 0:
                held_cost += pending * p
            else:
                avg = held_cost / pos
                realized += (p - avg) * -pending
                held_cost += pending * avg
            pos += pending
            fills += 1
            pending = 0.0
        x = rv[i]
        if pos == 0 and x < lower:
            pending = qty
        elif pos > 0 and x > upper:
            pending = -pos
    return fills, pos, realized


class Baseline:
    """The plain loop, timed once per call; ``summary()`` reports the best time.

    The suite times it right before each full-job run (interleaved), so a burst of
    load from elsewhere on the machine hits both sides of the ratio alike.
    """

    def __init__(self, prices: np.ndarray):
        from engine.indicators import rsi

        self.prices = prices
        self.times: list[float] = []
        self.out: tuple[int, float, float] = (0, 0.0, 0.0)
        rsi(prices[:64], 14)  # JIT load outside the clock

    def __call__(self) -> None:
        from engine.indicators import rsi

        t0 = time.perf_counter()
        self.out = reference_fills(self.prices, rsi(self.prices, 14))
        self.times.append(time.perf_counter() - t0)

    def summary(self) -> dict[str, Any]:
        if not self.times:
            self()
        best, n = min(self.times), len(self.prices)
        fills, pos, realized = self.out
        return {"ticks": n, "seconds": round(best, 4), "ticks_per_s": round(n / best),
                "median_ticks_per_s": round(n / statistics.median(self.times)),
                "us_per_tick": round(1e6 * best / n, 4), "fills": fills, "position": pos,
                "realized_pnl": round(realized, 6)}  # fmt: skip


def measure_baseline(prices: np.ndarray, repeats: int = 3) -> dict[str, Any]:
    base = Baseline(prices)
    for _ in range(repeats):
        base()
    return base.summary()


# ---------------------------------------------------------------- per-thread CPU
class ThreadCpuSampler(threading.Thread):
    """Samples every live thread's CPU clock so a finished actor's total survives its thread.

    Actor threads are named ``<ActorClass>-<n>`` by pykka; the stage is the class.
    Sampling every ``interval_s`` loses at most that much of a thread's CPU, and
    actors are idle between the end of a run and their stop, so nothing is lost.
    """

    def __init__(self, interval_s: float = 0.01):
        super().__init__(name="bench-cpu-sampler", daemon=True)
        self._interval = interval_s
        self._stop_event = threading.Event()
        self.cpu: dict[int, tuple[str, float]] = {}
        self.baseline: dict[int, float] = {}

    def _sample(self) -> None:
        for t in threading.enumerate():
            if t.ident is None or t is self:
                continue
            try:
                clk = time.pthread_getcpuclockid(t.ident)
                secs = time.clock_gettime(clk)
            except (OSError, ValueError, OverflowError):
                continue
            self.baseline.setdefault(t.ident, secs if t.ident in self._before else 0.0)
            self.cpu[t.ident] = (t.name, secs)

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self._sample()

    def start(self) -> None:
        self._before = {t.ident for t in threading.enumerate()}
        super().start()

    def stop(self) -> dict[str, float]:
        self._sample()
        self._stop_event.set()
        self.join(timeout=5)
        by_stage: dict[str, float] = {}
        for ident, (name, secs) in self.cpu.items():
            stage = name.rsplit("-", 1)[0] if name.rsplit("-", 1)[-1].isdigit() else name
            by_stage[stage] = by_stage.get(stage, 0.0) + secs - self.baseline.get(ident, 0.0)
        return by_stage


def stage_seconds(thread_cpu: dict[str, float], busy_before: dict[str, int]) -> tuple[dict[str, float], dict[str, float]]:
    """(seconds per stage, CPU seconds of each shared-loop thread).

    Actors with a thread of their own count that thread's CPU; actors on a
    shared loop (engine.pipeline_threads) count the time in their handlers,
    since the loop thread's CPU clock covers all of them at once.
    """
    from engine.assembly import stage_busy_ns

    loops = {k: v for k, v in thread_cpu.items() if k.endswith("-loop")}
    stages = {k: v for k, v in thread_cpu.items() if k not in loops}
    for name, ns in stage_busy_ns().items():
        spent = (ns - busy_before.get(name, 0)) / 1e9
        if spent > 0:
            stages[name] = stages.get(name, 0.0) + spent
    return stages, loops


# ---------------------------------------------------------------- the full job
def quiet_config(cfg):
    """The same job with a strategy that never trades (RSI is never below 0): the engine's cost without orders."""
    rep = msgspec.structs.replace
    return rep(cfg, strategies=[rep(s, params={**s.params, "lower": 0.0, "upper": 100.0}) for s in cfg.strategies])


def measure_quiet(data: Path, ticks: int) -> float:
    """Seconds of one run of the job without orders (see quiet_config)."""
    from engine.replay import run_replay

    with tempfile.TemporaryDirectory(prefix="actortrader-bench-") as tmp:
        rep = run_replay(quiet_config(job_config(Path(tmp), ticks, data)), str(data), symbol=SYMBOL, progress=False,
                         config_dir=REPO, timeout_s=900)  # fmt: skip
    if rep["orders"]:
        raise BenchError(f"the quiet job placed {rep['orders']} orders")
    return rep["elapsed_s"]


def measure_job(data: Path, ticks: int, repeats: int = 3, before_each: Callable[[], None] | None = None,
                quiet: bool = True) -> dict[str, Any]:
    """``run_replay`` of bench/job.toml, best of ``repeats``; stages and latencies of the best run.

    With ``quiet`` each run is followed by one of the same job without orders:
    the difference of the best of each, per order, is what an order costs
    end to end (``us_per_order_marginal``), apart from the per-tick work.
    """
    from engine import metrics
    from engine.assembly import stage_busy_ns
    from engine.replay import run_replay

    runs, quiet_s = [], []
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        if quiet:
            quiet_s.append(measure_quiet(data, ticks))
        with tempfile.TemporaryDirectory(prefix="actortrader-bench-") as tmp:
            cfg = job_config(Path(tmp), ticks, data)
            metrics.REGISTRY.reset()
            sampler = ThreadCpuSampler()
            busy0 = stage_busy_ns()
            sampler.start()
            rep = run_replay(cfg, str(data), symbol=SYMBOL, progress=False, config_dir=REPO, timeout_s=900)
            rep["_cpu"], rep["_loops_cpu"] = stage_seconds(sampler.stop(), busy0)
            rep["_latency"] = metrics.REGISTRY.latency_us()
            runs.append(rep)
    best = max(runs, key=lambda r: r["ticks_per_s"])
    n, secs = best["ticks"], best["elapsed_s"]
    # MainThread (boot, report) and the sampler are not pipeline stages.
    stage_cpu = {k: v for k, v in sorted(best["_cpu"].items(), key=lambda kv: -kv[1])
                 if v > 0 and k not in ("MainThread", "bench-cpu-sampler")}
    return {
        "ticks": n, "orders": best["orders"], "fills": best["fills"], "position": best["position"],
        "realized_pnl": best["realized_pnl"], "journal_digest": best["journal_digest"],
        "seconds": secs, "ticks_per_s": round(best["ticks_per_s"]),
        "median_ticks_per_s": round(statistics.median(r["ticks_per_s"] for r in runs)),
        "runs_ticks_per_s": [round(r["ticks_per_s"]) for r in runs],
        "us_per_tick": round(1e6 * secs / max(n, 1), 4),
        "us_per_order": round(1e6 * secs / max(best["orders"], 1), 2),
        "quiet_ticks_per_s": round(n / min(quiet_s)) if quiet_s else None,
        "us_per_order_marginal": round(1e6 * max(secs - min(quiet_s), 0.0) / max(best["orders"], 1), 2) if quiet_s else None,
        "boot_s": best["boot_s"], "ingest_s": best["ingest_s"], "batch_size": best["batch_size"],
        "stages_cpu_s": {k: round(v, 4) for k, v in stage_cpu.items()},
        "stages_cpu_us_per_tick": {k: round(1e6 * v / max(n, 1), 4) for k, v in stage_cpu.items()},
        "loop_threads_cpu_us_per_tick": {k: round(1e6 * v / max(n, 1), 4) for k, v in best["_loops_cpu"].items()},
        "replay_latency_us": best["_latency"],
    }  # fmt: skip


# ---------------------------------------------------------------- memory (subprocesses)
class RepeatSource(TickSource):
    """The first ``base`` ticks of a file, ``laps`` times, timestamps shifted each lap.

    Reads the file's columnar cache one chunk at a time, so the source itself
    never holds more than a chunk however long the run.
    """

    def __init__(self, data: Path, base: int, laps: int):
        super().__init__()
        self.data, self.base, self.laps = data, base, laps
        self.name = f"repeat({data.name} x{laps})"

    def _reset_counters(self) -> None:
        self.rows_read = 0

    def _generate(self) -> Iterator[TickChunk]:
        from engine.config import Instrument
        from engine.data import open_tick_source

        seq = span = 0
        for _lap in range(self.laps):
            src = open_tick_source(str(self.data), symbol=SYMBOL, instruments=[Instrument(symbol=SYMBOL)],
                                   cache_dir=CACHE_DIR)
            have = first_ts = last_ts = 0
            for chunk in src:
                take = min(len(chunk), self.base - have)
                if have == 0:
                    first_ts = int(chunk.ts_ns[0])
                last_ts = int(chunk.ts_ns[take - 1])
                self.rows_read += take
                # Shifted into a buffer of the source's chunk size, as the source allocates its
                # own (engine.data.cache.read_cached): one size of buffer, no heap growth of ours.
                ts = np.add(chunk.ts_ns[:take], np.int64(span),
                            out=np.empty(max(take, src.chunk_rows), dtype=np.int64)[:take])
                yield TickChunk(SYMBOL, seq, ts, chunk.price[:take], chunk.size[:take])
                seq += take
                have += take
                if have >= self.base:
                    break
            src.close()
            span += last_ts - first_ts + 1


def _rss_now_mb() -> float:
    """Current RSS without importing psutil in the measured process (Linux: /proc; else psutil)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    """This process's peak RSS. Linux: VmHWM, which starts afresh at exec; ``ru_maxrss``
    does not (it keeps the high-water mark of the forked parent's copy, so a child
    of a big bench process reported the parent's size)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cache_is_built(data: Path) -> bool:
    from engine.config import Instrument
    from engine.data import open_tick_source

    src = open_tick_source(str(data), symbol=SYMBOL, instruments=[Instrument(symbol=SYMBOL)], cache_dir=CACHE_DIR)
    src.close()
    return src.cache_hit


def build_cache(data: Path) -> float:
    """Ingest ``data`` into the columnar cache the benchmarks read (seconds; 0 when it was there)."""
    from engine.config import Instrument
    from engine.data import open_tick_source
    from engine.replay import ingest

    return ingest(lambda: open_tick_source(str(data), symbol=SYMBOL, instruments=[Instrument(symbol=SYMBOL)],
                                           cache_dir=CACHE_DIR))


def rss_child(data: Path, ticks: int) -> dict[str, Any]:
    """(runs in a fresh process) the full job over ``ticks`` repeated SPY ticks; peak RSS.

    The columnar cache must be built (by another process: parsing the CSV
    imports pyarrow, which a cached replay never does); the child builds it in
    a subprocess when it is missing, so a first run measures the job, not the
    CSV parse. Besides the peak and the end it reports RSS after the imports
    and after boot (engine built, numba kernels loaded): what the job itself
    adds is ``peak - boot``.
    """
    if not cache_is_built(data):
        subprocess.run([sys.executable, "-m", "engine.bench", "--build-cache", "--data", str(data)],
                       check=True, cwd=str(REPO), capture_output=True, timeout=1800)  # fmt: skip
    from engine import kernels
    from engine.assembly import FEED, build_engine
    from engine.journal_runs import journal_dir, new_run_path, start_run
    from engine.messages import GetFeedStats, StartFeed

    rss_imports = _rss_now_mb()
    base = min(ticks, 1_000_000)
    laps = max(1, -(-ticks // base))
    with tempfile.TemporaryDirectory(prefix="actortrader-rss-") as tmp:
        cfg = job_config(Path(tmp), ticks, data)
        jdir = journal_dir(cfg)
        jdir.mkdir(parents=True, exist_ok=True)
        journal_path = new_run_path(jdir, kind="replay")
        start_run(journal_path, kind="replay", data_path=str(data), data_fingerprint="bench", config_hash="bench",
                  synchronous=cfg.journal.synchronous).close()
        from engine.replay import capped

        eng = build_engine(cfg, source_factory=lambda: capped(RepeatSource(data, base, laps), ticks),
                           journal_path=journal_path, config_dir=REPO, with_monitor=False)
        rss_boot = _rss_now_mb()
        t0 = time.perf_counter()
        try:
            eng.directory.tell(FEED, StartFeed(after_tick_seq=-1))
            if not eng.ended.wait(1800):
                raise BenchError(f"memory run of {ticks} ticks did not finish in 30 min")
            stats = eng.directory.ask(FEED, GetFeedStats(), timeout=10)
            secs = time.perf_counter() - t0
            rss_end = _rss_now_mb()
        finally:
            eng.stop()
    return {"ticks": stats.ticks, "seconds": round(secs, 3), "ticks_per_s": round(stats.ticks / secs),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "rss_end_mb": round(rss_end, 1), "rss_imports_mb": round(rss_imports, 1),
            "rss_boot_mb": round(rss_boot, 1), "kernels": kernels.status(),
            "numba_loaded": "numba" in sys.modules}  # fmt: skip


def build_kernels() -> str | None:
    """Build the compiled kernels the memory runs load (as the engine's first start would); the error, or None."""
    proc = subprocess.run([sys.executable, "-m", "engine.kernels"], capture_output=True, text=True, cwd=str(REPO),
                          timeout=1800)  # fmt: skip
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"exit {proc.returncode}")


def measure_memory(data: Path, small: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    error = build_kernels()
    if error:
        out["kernels_build_error"] = error
    for n in (small, small * BIG_FACTOR):
        proc = subprocess.run([sys.executable, "-m", "engine.bench", "--rss-child", str(n), "--data", str(data)],
                              capture_output=True, text=True, cwd=str(REPO), timeout=1800)  # fmt: skip
        if proc.returncode != 0:
            raise BenchError(f"memory run of {n} ticks failed: {proc.stderr.strip().splitlines()[-1:]}")
        out[str(n)] = json.loads(proc.stdout.strip().splitlines()[-1])
    a, b = out[str(small)], out[str(small * BIG_FACTOR)]
    out["sizes"] = [small, small * BIG_FACTOR]
    out["peak_growth_pct"] = round(100 * (b["peak_rss_mb"] - a["peak_rss_mb"]) / a["peak_rss_mb"], 2)
    out["end_growth_pct"] = round(100 * (b["rss_end_mb"] - a["rss_end_mb"]) / a["rss_end_mb"], 2)
    return out


# ---------------------------------------------------------------- live latency
def live_config(workdir: Path, rate: float, **feed: Any):
    """Embedded defaults (synthetic feed, RSI mean reversion) in real time, journal on in ``workdir``."""
    from engine.config import default_config

    cfg = default_config()
    rep = msgspec.structs.replace
    return rep(
        cfg,
        engine=rep(cfg.engine, data_dir=str(workdir / "data")),
        journal=rep(cfg.journal, dir=str(workdir / "journal")),
        logging=rep(cfg.logging, dir=str(workdir / "log"), level="WARNING"),
        api=rep(cfg.api, enabled=False),
        feed=rep(cfg.feed, source="synthetic", rate=rate, max_ticks=0, **feed),
    )


LIVE_STAGES = ("feed_to_indicators", "feed_to_strategy", "feed_to_safety", "feed_to_orders", "feed_to_venue",
               "tick_to_order_at_venue", "feed_to_report")  # fmt: skip


def measure_live(seconds: float = 10.0, rate: float = 10_000.0, warmup_s: float = 1.0,
                 on_engine: Callable[[Any], None] | None = None, **feed: Any) -> dict[str, Any]:
    """Real-time synthetic feed at ``rate`` ticks/s for ``seconds``: latency percentiles per stage.

    Latency starts when a tick falls due (the feed's ``recv_wall_ns``), so pacing
    and back-pressure waits count. The first ``warmup_s`` are not recorded.
    """
    from engine import metrics
    from engine.assembly import FEED, build_engine, freeze_boot_heap, stage_busy_ns
    from engine.data import SyntheticSource
    from engine.journal_runs import journal_dir, new_run_path
    from engine.messages import GetFeedStats, StartFeed

    with tempfile.TemporaryDirectory(prefix="actortrader-live-") as tmp:
        cfg = live_config(Path(tmp), rate, **feed)
        jdir = journal_dir(cfg)
        jdir.mkdir(parents=True, exist_ok=True)
        eng = build_engine(cfg, source_factory=lambda: SyntheticSource(cfg.instruments, seed=cfg.feed.seed, max_ticks=0),
                           journal_path=new_run_path(jdir, kind="run"), realtime_rate=rate, with_monitor=False)
        clock = threading.Event()  # never set: a plain timed wait for the run's duration
        frozen = gc.get_freeze_count()
        freeze_boot_heap()  # as `actortrader run` does before its first tick
        try:
            eng.directory.tell(FEED, StartFeed(after_tick_seq=-1))
            clock.wait(warmup_s)
            before = eng.directory.ask(FEED, GetFeedStats(), timeout=10)
            metrics.REGISTRY.reset()
            sampler = ThreadCpuSampler()  # actor threads exist already: only the window's CPU counts
            busy0 = stage_busy_ns()
            sampler.start()
            if on_engine is not None:
                on_engine(eng)
            clock.wait(seconds)
            after = eng.directory.ask(FEED, GetFeedStats(), timeout=10)
            cpu, loops_cpu = stage_seconds(sampler.stop(), busy0)
            lat = {k: metrics.REGISTRY.percentiles_us(k) for k in LIVE_STAGES}
        finally:
            eng.stop()
            if not frozen:
                gc.unfreeze()  # this process goes on (more benchmarks, tests): collect the engine's cycles again
    ticks = after.ticks - before.ticks
    batches = max(after.batches - before.batches, 1)
    return {"rate": rate, "seconds": seconds, "ticks": ticks, "batches": batches,
            "mean_batch": round(ticks / batches, 2), "backpressure_waits": after.backpressure_waits,
            "stages_cpu_us_per_batch": {k: round(1e6 * v / batches, 1) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])
                                        if v > 0 and k not in ("MainThread", "bench-cpu-sampler")},
            "loop_threads_cpu_us_per_batch": {k: round(1e6 * v / batches, 1) for k, v in loops_cpu.items()},
            "latency_us": lat}  # fmt: skip


# ---------------------------------------------------------------- RSI vs TA-Lib
def measure_rsi(prices: np.ndarray, repeat: int = 15) -> dict[str, Any]:
    """ns/point of our RSI and of TA-Lib's over the same prices: best of ``repeat`` calls each, interleaved.

    Why interleaved (ours, theirs, ours, ...): a call is ~3 ms, so a burst of
    load from elsewhere on the machine lands on a few calls of one side when
    each side runs its calls in a row; five of ours then five of theirs gave
    ratios of 0.7-1.4x for the same two kernels across runs.
    """
    from engine.indicators import rsi

    calls: dict[str, Callable[[], Any]] = {"ours": lambda: rsi(prices, 14)}
    try:
        import talib

        calls["talib"] = lambda: talib.RSI(prices, 14)
    except ImportError:
        pass
    best = dict.fromkeys(calls, float("inf"))
    for fn in calls.values():
        fn()  # warm: the first call of each pays its code's and its allocator's first use
    for _ in range(repeat):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    n = len(prices)
    out: dict[str, Any] = {"points": n, "ns_per_point": round(1e9 * best["ours"] / n, 3)}
    if "talib" not in best:
        out["talib"] = None
        return out
    out["talib_ns_per_point"] = round(1e9 * best["talib"] / n, 3)
    out["vs_talib"] = round(best["talib"] / best["ours"], 3)  # > 1: ours is faster
    return out


# ---------------------------------------------------------------- suite
def _vs(latency_us: dict[str, Any], floor_us: dict[str, float]) -> dict[str, dict[str, float]]:
    """Each stage's percentiles over a floor's: the figures that compare across machines and phases."""
    return {stage: {k: round(p[k] / max(floor_us[k], 1e-3), 2) for k in ("p50", "p99", "p99.9")}
            for stage, p in latency_us.items() if p}  # fmt: skip


def run_suite(data: Path, ticks: int, *, live_seconds: float = 10.0, repeats: int = 3, memory: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    from engine.replay import ingest

    if ticks < 1000:
        raise BenchError(f"--ticks {ticks}: expected at least 1000")
    if not JOB_TOML.is_file():
        raise BenchError(f"{JOB_TOML}: the benchmark job's config is missing (run from a source checkout)")
    t_start = time.perf_counter()
    from engine.config import Instrument
    from engine.data import open_tick_source

    ingest_s = ingest(lambda: open_tick_source(str(data), symbol=SYMBOL, instruments=[Instrument(symbol=SYMBOL)],
                                               cache_dir=CACHE_DIR))
    prices = load_prices(data, ticks)
    if len(prices) < ticks:
        log(f"note: {data.name} has {len(prices)} ticks, fewer than --ticks {ticks}")
        ticks = len(prices)
    log(f"data: {data} ({ticks:,} ticks; ingest {ingest_s:.1f} s)")
    base = Baseline(prices)
    job = measure_job(data, ticks, repeats=repeats, before_each=base)  # interleaved: loop, job, loop, job, ...
    baseline = base.summary()
    log(f"baseline (plain Python loop): {baseline['ticks_per_s']:,} ticks/s (runs {[round(len(prices) / t) for t in base.times]})")
    log(f"full job: {job['ticks_per_s']:,} ticks/s (runs {job['runs_ticks_per_s']})")
    live = measure_live(seconds=live_seconds) if live_seconds > 0 else None
    if live:
        floor = measure_wakeup_floor(seconds=min(live_seconds, 5.0), rate=live["rate"])
        live["wakeup_floor"] = floor
        live["vs_floor"] = _vs(live["latency_us"], floor["late_us"])
        framework = measure_framework_floor(seconds=min(live_seconds, 5.0), rate=live["rate"])
        live["framework_floor"] = framework
        live["vs_framework_floor"] = _vs(live["latency_us"], framework["late_us"])
        e2e = live["latency_us"].get("feed_to_venue", {})
        log(f"live {live['rate']:.0f} ticks/s: tick -> venue p50 {e2e.get('p50')} p99 {e2e.get('p99')} us")
    mem = measure_memory(data, min(ticks, 1_000_000)) if memory else None
    rsi_fig = measure_rsi(prices)
    base_s_per_tick = baseline["seconds"] / max(baseline["ticks"], 1)
    job_s_per_tick = job["seconds"] / max(job["ticks"], 1)
    result: dict[str, Any] = {
        "bench": "actortrader",
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "data": str(data),
        "baseline": baseline,
        "job": job,
        "live": live,
        "memory": mem,
        "rsi": rsi_fig,
        "ratios": {
            "job_vs_baseline_ticks_per_s": round(job["ticks_per_s"] / baseline["ticks_per_s"], 4),
            "engine_overhead_us_per_tick": round(1e6 * (job_s_per_tick - base_s_per_tick), 4),
            "us_per_order_vs_baseline_us_per_tick": round(job["us_per_order"] / baseline["us_per_tick"], 1),
            "fills_match_baseline": job["fills"] == baseline["fills"] and job["position"].get(SYMBOL, 0.0) == baseline["position"],
        },
        "total_s": 0.0,
    }  # fmt: skip
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    return result


def format_table(r: dict[str, Any]) -> str:
    b, j, ratios = r["baseline"], r["job"], r["ratios"]
    rows = [
        ("baseline: plain Python loop", f"{b['ticks_per_s']:,} ticks/s", "1.00x"),
        ("full job (run_replay, journal on)", f"{j['ticks_per_s']:,} ticks/s", f"{ratios['job_vs_baseline_ticks_per_s']:.2f}x"),
        ("  median of runs", f"{j['median_ticks_per_s']:,} ticks/s", f"{j['median_ticks_per_s'] / b['ticks_per_s']:.2f}x"),
        ("  per tick", f"{j['us_per_tick']:.3f} us", f"{j['us_per_tick'] / b['us_per_tick']:.2f}x"),
        ("  engine overhead per tick", f"{ratios['engine_overhead_us_per_tick']:.3f} us", ""),
        ("  per order", f"{j['us_per_order']:.2f} us", f"{ratios['us_per_order_vs_baseline_us_per_tick']:.0f}x tick"),
        *([("  per order, marginal (job - job without orders)", f"{j['us_per_order_marginal']:.2f} us", ""),
           ("  same job without orders", f"{j['quiet_ticks_per_s']:,} ticks/s",
            f"{j['quiet_ticks_per_s'] / b['ticks_per_s']:.2f}x")] if j.get("us_per_order_marginal") is not None else []),
        ("  orders / fills", f"{j['orders']:,} / {j['fills']:,}", "match" if ratios["fills_match_baseline"] else "DIFFER"),
    ]
    for stage, us in j["stages_cpu_us_per_tick"].items():
        rows.append((f"  cpu {stage}", f"{us:.4f} us/tick", f"{us / b['us_per_tick']:.2f}x"))
    for stage, p in j["replay_latency_us"].items():
        if p:
            rows.append((f"  replay latency {stage}", f"p50 {p['p50']:.0f} p99 {p['p99']:.0f} us", ""))
    live = r.get("live")
    if live:
        rows.append((f"live {live['rate']:.0f} ticks/s, {live['seconds']:.0f} s", f"{live['ticks']:,} ticks, mean batch {live['mean_batch']}", ""))
        busiest = list(live.get("stages_cpu_us_per_batch", {}).items())[:3]
        if busiest:
            rows.append(("  cpu per batch, busiest", ", ".join(f"{k} {v:.0f} us" for k, v in busiest), ""))
        for stage in ("feed_to_venue", "tick_to_order_at_venue", "feed_to_report"):
            p = live["latency_us"].get(stage) or {}
            if p:
                rows.append((f"  {stage}", f"p50 {p['p50']:.0f} p99 {p['p99']:.0f} p99.9 {p['p99.9']:.0f} us",
                             f"n={p['count']:.0f}"))
        floor = live.get("wakeup_floor")
        if floor:
            f = floor["late_us"]
            rows.append(("  machine floor: an idle thread's wake-up lateness", f"p50 {f['p50']:.0f} p99 {f['p99']:.0f} "
                         f"p99.9 {f['p99.9']:.0f} us", f"n={floor['samples']}"))  # fmt: skip
        fw = live.get("framework_floor")
        if fw:
            f = fw["late_us"]
            rows.append((f"  framework floor: {fw['stages']} empty actors on one loop", f"p50 {f['p50']:.0f} p99 {f['p99']:.0f} "
                         f"p99.9 {f['p99.9']:.0f} us", f"{fw['handler_calls_per_batch']} calls/batch"))  # fmt: skip
    mem = r.get("memory")
    if mem:
        small, big = mem["sizes"]
        rows.append((f"peak RSS {small:,} ticks", f"{mem[str(small)]['peak_rss_mb']} MB", ""))
        rows.append((f"peak RSS {big:,} ticks", f"{mem[str(big)]['peak_rss_mb']} MB", f"{mem['peak_growth_pct']:+.1f}%"))
        jit = sorted(m for m, how in mem[str(small)].get("kernels", {}).items() if how != "aot")
        rows.append(("  kernels", "compiled ahead of time" if not jit else f"numba JIT for {', '.join(jit)}",
                     "numba not loaded" if not mem[str(small)].get("numba_loaded") else "numba loaded"))
    rs = r.get("rsi")
    if rs:
        rows.append(("RSI(14)", f"{rs['ns_per_point']} ns/point",
                     f"TA-Lib {rs['talib_ns_per_point']} ns (ours take {1 / rs['vs_talib']:.2f}x its time)"
                     if rs.get("talib_ns_per_point") else "no TA-Lib"))  # fmt: skip
        rows.append(("  RSI vs baseline tick", "", f"{rs['ns_per_point'] / (1000 * b['us_per_tick']):.3f}x"))
    w1 = max(len(x[0]) for x in rows)
    w2 = max(len(x[1]) for x in rows)
    lines = [f"{'figure':<{w1}}  {'value':>{w2}}  vs baseline", "-" * (w1 + w2 + 16)]
    lines += [f"{a:<{w1}}  {v:>{w2}}  {c}" for a, v, c in rows]
    return "\n".join(lines)


def run_bench(args) -> int:
    """CLI entry: ``args.json``, ``args.ticks``, ``args.data`` (argparse namespace)."""
    from loguru import logger

    logger.remove()  # the suite's own lines and the table are the output; engine chatter only if it matters
    logger.add(sys.stderr, level="ERROR")
    try:
        out = getattr(args, "json", None)
        if out:
            _check_writable(Path(out))  # before minutes of benchmarking, not after
        data = resolve_data(getattr(args, "data", None))
        ticks = int(getattr(args, "ticks", None) or 1_000_000)
        live_s = float(getattr(args, "live_seconds", None) or (10.0 if ticks >= 1_000_000 else 2.0))
        result = run_suite(data, ticks, live_seconds=live_s, log=lambda s: print(s, file=sys.stderr))
    except BenchError as exc:
        print(f"actortrader bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a user-facing engine refusal (bad config, unwritable dir): say it, no traceback
        from engine.replay import ReplayError

        if isinstance(exc, (ReplayError, OSError)):
            print(f"actortrader bench: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise
    print(format_table(result))
    text = json.dumps(result, indent=2)
    if out:
        try:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(text)
        except OSError as exc:
            print(f"actortrader bench: --json {out}: cannot write: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"wrote {out}")
    else:
        print(text)
    return EXIT_OK


def _check_writable(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as exc:
        raise BenchError(f"--json {path}: cannot write: {exc.strerror or exc}") from None


def _main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m engine.bench")
    ap.add_argument("--rss-child", type=int, default=0)
    ap.add_argument("--build-cache", action="store_true", help=argparse.SUPPRESS)  # rss_child's helper process
    ap.add_argument("--data")
    ap.add_argument("--json")
    ap.add_argument("--ticks", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    if args.build_cache:
        print(json.dumps({"ingest_s": round(build_cache(resolve_data(args.data)), 3)}))
        return EXIT_OK
    if args.rss_child:
        print(json.dumps(rss_child(resolve_data(args.data), args.rss_child)))
        return EXIT_OK
    return run_bench(args)


if __name__ == "__main__":
    sys.exit(_main())
