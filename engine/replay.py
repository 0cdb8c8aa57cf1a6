"""`actortrader replay`: run the configured strategies over a data file, fast.

The report is computed from the journal, not from actor memory: what it says
is what was made durable. Its keys are a contract (tests and the benchmark
job read them): ticks, rejected_ticks, orders, fills, position, realized_pnl,
fees, max_drawdown, elapsed_s, ticks_per_s, journal_digest, journal.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from engine.config import Config, FeedSection
from engine.journal import Journal
from engine.journal_runs import config_hash, find_unfinished_run, finish_run, fingerprint_file, journal_dir, new_run_path, start_run
from engine.messages import Fill, GetFeedStats, OrderRequest, StartFeed
from engine.recovery import canonical_digest, fold


class ReplayError(Exception):
    """A user-facing replay problem (bad data path, unknown symbol, ...)."""


def replay_config(cfg: Config, data: str, symbol: str | None, batch_size: int | None) -> Config:
    feed = msgspec.structs.replace(
        cfg.feed, source="file", path=str(data), symbol=symbol or cfg.feed.symbol,
        batch_size=batch_size or cfg.feed.batch_size,
    )  # fmt: skip
    out = msgspec.structs.replace(cfg, feed=feed)
    if symbol and out.instrument(symbol) is None:
        raise ReplayError(f"--symbol {symbol}: not declared under [[instruments]] in the config")
    return out


def run_replay(
    cfg: Config,
    data: str,
    *,
    symbol: str | None = None,
    batch_size: int | None = None,
    report_path: str | None = None,
    plot_path: str | None = None,
    resume: bool = False,
    config_dir: Path | None = None,
    progress: bool | None = None,
    journal_path: Path | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    from engine.assembly import FEED, build_engine, latest_checkpoint
    from engine.data import open_tick_source

    data_path = Path(data)
    if not data_path.is_file():
        raise ReplayError(f"{data}: no such data file")
    cfg = replay_config(cfg, data, symbol, batch_size)
    jdir = journal_dir(cfg)
    jdir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint_file(data_path)
    chash = config_hash(_without_batch_size(cfg))
    resumed = False
    if journal_path is None and resume:
        journal_path = find_unfinished_run(jdir, fp, chash)
    if journal_path is not None and journal_path.exists():
        # Resume = deterministic re-run into the same journal: everything already
        # journaled is recognised by client order id / trade id and not repeated,
        # and what was in flight at the crash is settled with the venue.
        resumed = True
    else:
        journal_path = new_run_path(jdir, kind="replay")
        start_run(journal_path, kind="replay", data_path=str(data_path.resolve()), data_fingerprint=fp,
                  config_hash=chash, synchronous=cfg.journal.synchronous).close()
    rejects = Path(cfg.engine.data_dir) / cfg.feed.rejects_file
    cache = Path(cfg.engine.data_dir) / "cache"

    def open_source():
        return open_tick_source(str(data_path), symbol=cfg.feed.symbol or None, instruments=cfg.instruments,
                                kind=cfg.feed.kind, rejects_path=rejects, cache_dir=cache)

    ingest_s = ingest(open_source)

    def source_factory():
        return capped(open_source(), cfg.feed.max_ticks)

    escalated: list[str] = []
    # Resume from the last consistent cut when there is one; before it, everything is journaled.
    checkpoint = latest_checkpoint(journal_path) if resumed else None
    skipped = checkpoint.last_tick_seq + 1 if checkpoint is not None else 0
    t_boot = time.perf_counter()
    eng = build_engine(cfg, source_factory=source_factory, journal_path=journal_path, config_dir=config_dir,
                       on_escalate=escalated.append, with_monitor=False, checkpoint=checkpoint)  # kernels loaded too
    boot_s = time.perf_counter() - t_boot
    t0 = time.perf_counter()
    try:
        eng.directory.tell(FEED, StartFeed(after_tick_seq=-1) if checkpoint is None else StartFeed(
            after_tick_seq=checkpoint.last_tick_seq, after_batch_seq=checkpoint.batch_seq))
        _wait(eng, progress if progress is not None else sys.stderr.isatty(), timeout_s)
        stats = eng.directory.ask(FEED, GetFeedStats(), timeout=10)
        elapsed = time.perf_counter() - t0
    finally:
        eng.stop()
    if escalated:
        raise ReplayError(f"engine gave up: {escalated[0]}")
    with Journal.open(journal_path) as j:
        report = build_report(j, stats, elapsed, cfg, ticks_skipped=skipped)
        if not eng.kill.is_set():
            finish_run(j)
    report["journal"] = str(journal_path)
    report["ingest_s"] = round(ingest_s, 4)
    report["boot_s"] = round(boot_s, 4)
    report["resumed"] = resumed
    report["resumed_after_tick"] = skipped - 1 if checkpoint is not None else None
    report["batch_size"] = cfg.feed.batch_size
    report["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    if plot_path:
        write_equity_plot(report.pop("_equity"), plot_path)
        report["plot"] = plot_path
    else:
        report.pop("_equity")
    if report_path:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2))
    return report


def ingest(open_source) -> float:
    """Build the columnar cache of a data file once (validation + raw column copy).

    Replays then stream the cached columns instead of re-parsing text, the
    way a data catalog is ingested once and read many times. Returns seconds
    spent (0 when the cache was already valid).
    """
    src = open_source()
    cache = getattr(src, "cache", None)
    if cache is None or cache.valid():
        src.close()
        return 0.0
    t = time.perf_counter()
    for _chunk in src:
        pass
    src.close()
    return time.perf_counter() - t


class _Capped:
    """A tick source that stops after ``limit`` accepted ticks (``feed.max_ticks``)."""

    def __init__(self, source, limit: int):
        self._source = source
        self._limit = limit

    def __getattr__(self, name):
        return getattr(self._source, name)

    def __iter__(self):
        return self

    def __next__(self):
        chunk = next(self._source)
        if chunk.first_tick_seq >= self._limit:
            self._source.exhausted = True
            raise StopIteration
        if chunk.first_tick_seq + len(chunk) > self._limit:
            chunk = chunk.slice(0, self._limit - chunk.first_tick_seq)
        return chunk


def capped(source, limit: int):
    return _Capped(source, limit) if limit and limit > 0 else source


def _without_batch_size(cfg: Config) -> Config:
    # Batch size never changes results, so it must not make a run "different" for --resume.
    return msgspec.structs.replace(cfg, feed=msgspec.structs.replace(cfg.feed, batch_size=FeedSection().batch_size))


def _wait(eng, show_progress: bool, timeout_s: float | None) -> None:
    from engine.assembly import FEED

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(unit=" ticks", unit_scale=True, desc="replay", file=sys.stderr)
    last = 0
    try:
        while not eng.ended.wait(0.25):
            if eng.tree.escalated.is_set():
                return
            if deadline is not None and time.monotonic() > deadline:
                raise ReplayError(f"replay did not finish within {timeout_s}s")
            if bar is not None:
                try:
                    st = eng.directory.ask(FEED, GetFeedStats(), timeout=1)
                    bar.update(st.ticks - last)
                    last = st.ticks
                except Exception:  # noqa: BLE001 - progress is best effort
                    pass
    finally:
        if bar is not None:
            bar.close()


def build_report(j: Journal, stats, elapsed: float, cfg: Config, ticks_skipped: int = 0) -> dict[str, Any]:
    records = [r for _, r in j.records()]
    rec = fold(enumerate(records))
    book = rec.book
    orders = sum(1 for r in records if isinstance(r, OrderRequest))
    fills = sorted((r for r in records if isinstance(r, Fill)), key=lambda f: (f.event_seq, f.trade_id))
    equity, peak, max_dd = [], 0.0, 0.0
    realized = 0.0
    from engine.orders import PositionState

    positions: dict[str, PositionState] = {}
    for f in fills:
        pos = positions.setdefault(f.symbol, PositionState(f.symbol))
        realized += pos.apply_fill(f.side, f.quantity, f.price, f.fee) - f.fee
        equity.append((f.event_seq, realized))
        peak = max(peak, realized)
        max_dd = max(max_dd, peak - realized)
    ticks = stats.ticks  # from the start of the data, also when resumed from a checkpoint
    return {
        "ticks": ticks,
        "rejected_ticks": stats.rejected,
        "rejected_by_reason": dict(stats.rejected_by_reason),
        "orders": orders,
        "fills": len(fills),
        "denied": rec.denied,
        "position": {s: p.quantity for s, p in sorted(book.positions.items())},
        "realized_pnl": round(book.realized_total(), 10),
        "fees": round(book.fees_total(), 10),
        "max_drawdown": round(max_dd, 10),
        "elapsed_s": round(elapsed, 4),
        "ticks_per_s": round((ticks - ticks_skipped) / elapsed, 1) if elapsed > 0 else 0.0,
        "journal_digest": canonical_digest(records),
        "_equity": equity,
    }


def write_equity_plot(equity: list[tuple[int, float]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ReplayError("--plot needs matplotlib: pip install 'actortrader[plot]'") from None
    fig, ax = plt.subplots(figsize=(9, 4))
    xs = [e[0] for e in equity] or [0]
    ys = [e[1] for e in equity] or [0.0]
    ax.plot(xs, ys, lw=1)
    ax.set_xlabel("tick")
    ax.set_ylabel("realized PnL net of fees")
    ax.set_title("equity curve")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _peak_rss_mb() -> float:
    try:  # Linux: VmHWM starts afresh at exec; ru_maxrss keeps a big parent's high-water mark
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except ImportError:  # pragma: no cover - non-POSIX
        import psutil  # only here: a replay does not need it otherwise (~1 MB RSS)

        return psutil.Process(os.getpid()).memory_info().rss / 1e6
