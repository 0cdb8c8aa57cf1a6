"""Chaos bench: faults in random actors during a replay; the journal must equal the undisturbed run.

    python bench/bench_chaos.py --ticks 1000000 --faults 100 --seed 7 --out bench/results/chaos.json

Runs the benchmark job (bench/job.toml) once undisturbed and once under
chaos: a seeded RNG repeatedly picks an actor (feed, indicators, strategy,
safety, orders, venue, monitor), a fault kind (engine/faults.py: raise,
raise_after, hang, exit, stop) and a message count, arms the fault, waits
until it fires and the supervision tree has acted on it (a decision logged),
then arms the next. After the last fault the run must complete by itself
(the restarted feed re-runs; nobody tells it to) and its journal digest,
fills, position and PnL must equal the undisturbed run.
tests/test_chaos.py runs :func:`run_chaos` with fewer ticks.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine import faults  # noqa: E402
from engine.config import Config, load_config  # noqa: E402

SPY = REPO.parent / "shared" / "data" / "ticks" / "spy_trades_lean" / "SPY_trades_20131007-20131011.norm.csv.gz"
TARGETS = ("feed", "indicators", "strategy:rsi_mr", "safety", "orders", "venue", "monitor")


def chaos_config(workdir: Path, max_ticks: int, batch_size: int = 256, base: Config | None = None) -> Config:
    """The benchmark job with private directories, fast heartbeats and a generous restart intensity."""
    cfg = base or load_config(REPO / "bench" / "job.toml")
    r = msgspec.structs.replace
    return r(
        cfg,
        engine=r(cfg.engine, data_dir=str(workdir / "data")),
        journal=r(cfg.journal, dir=str(workdir / "journal")),
        logging=r(cfg.logging, dir=str(workdir / "log")),
        feed=r(cfg.feed, max_ticks=max_ticks, batch_size=batch_size),
        supervision=r(cfg.supervision, max_restarts=100_000, period_s=1.0, heartbeat_interval_s=0.25,
                      heartbeat_misses=4, backoff_min_s=0.0),
        monitor=r(cfg.monitor, sample_interval_s=0.05),
    )


def _last_decisions(eng) -> tuple:
    from actors.supervisor import GetDecisions

    out = []
    for name in ("root", "pipeline"):
        try:
            ds = eng.directory.ask(name, GetDecisions(), timeout=5)
            out.append((len(ds), ds[-1].ts_wall_ns if ds else 0))
        except Exception:  # noqa: BLE001 - a supervisor being restarted: not a decision yet
            out.append((-1, -1))
    return tuple(out)


def run_replay_under(cfg: Config, data: Path, *, chaos: dict[str, Any] | None, timeout_s: float = 300.0) -> dict[str, Any]:
    """One replay through the full tree (monitor included); with ``chaos`` (faults, seed, kinds, targets) inject faults."""
    from engine.assembly import FEED, build_engine
    from engine.data import open_tick_source
    from engine.journal import Journal
    from engine.journal_runs import journal_dir, new_run_path, start_run
    from engine.messages import GetFeedStats, StartFeed
    from engine.replay import build_report, capped, ingest, replay_config

    cfg = replay_config(cfg, str(data), "SPY", None)
    jdir = journal_dir(cfg)
    jdir.mkdir(parents=True, exist_ok=True)
    journal_path = new_run_path(jdir, kind="replay")
    start_run(journal_path, kind="replay").close()
    rejects = Path(cfg.engine.data_dir) / cfg.feed.rejects_file
    cache = Path(cfg.engine.data_dir) / "cache"

    def open_source():
        return open_tick_source(str(data), symbol="SPY", instruments=cfg.instruments, kind=cfg.feed.kind,
                                rejects_path=rejects, cache_dir=cache)

    ingest(open_source)
    injector = faults.FaultInjector() if chaos else None
    faults.install(injector)
    escalated: list[str] = []
    eng = build_engine(cfg, source_factory=lambda: capped(open_source(), cfg.feed.max_ticks), journal_path=journal_path,
                       on_escalate=escalated.append, with_monitor=True)
    injected: list[dict[str, Any]] = []
    missed = 0
    t0 = time.perf_counter()
    try:
        if injector is not None:
            def stop_actor(name: str) -> None:
                ref = eng.directory.ref(name)
                if ref is not None:
                    ref.stop(block=False)

            injector.stop_actor = stop_actor
        eng.directory.tell(FEED, StartFeed(after_tick_seq=-1))
        if chaos:
            rng = random.Random(chaos.get("seed", 0))
            kinds = tuple(chaos.get("kinds", faults.KINDS))
            targets = tuple(chaos.get("targets", TARGETS))
            for k in range(int(chaos["faults"])):
                if eng.ended.is_set() or escalated:
                    break
                # Kinds in turn (every kind gets exercised), targets at random.
                target, kind = rng.choice(targets), kinds[k % len(kinds)]
                before = _last_decisions(eng)
                fired = injector.arm(target, kind, after=rng.randint(0, int(chaos.get("max_after", 40))))
                deadline = time.monotonic() + 20
                while not fired.wait(0.01):
                    if eng.ended.is_set() or time.monotonic() > deadline:
                        break
                if not fired.is_set():
                    injector.disarm_all()
                    missed += 1
                    continue
                # The fault fired: wait until a supervisor has decided about it.
                while _last_decisions(eng) == before and time.monotonic() < deadline:
                    threading.Event().wait(0.01)
                recovered = _last_decisions(eng) != before
                injector.release_hangs()
                injected.append({"target": target, "kind": kind, "handled": recovered})
            injector.disarm_all()
            injector.release_hangs()
        if not eng.ended.wait(timeout_s):
            raise TimeoutError(f"replay did not end within {timeout_s}s")
        if escalated:
            raise RuntimeError(f"engine gave up: {escalated[0]}")
        stats = eng.directory.ask(FEED, GetFeedStats(), timeout=10)
        elapsed = time.perf_counter() - t0
        statuses = eng.tree.statuses()
    finally:
        eng.stop()
        faults.install(None)
        if injector is not None:
            injector.release_hangs()
    with Journal.open(journal_path) as j:
        report = build_report(j, stats, elapsed, cfg)
    report.pop("_equity", None)
    report["journal"] = str(journal_path)
    report["faults_injected"] = len(injected)
    report["faults_handled"] = sum(1 for f in injected if f["handled"])
    report["faults_not_fired"] = missed
    report["faults_by_kind"] = _count(injected, "kind")
    report["faults_by_target"] = _count(injected, "target")
    report["restarts"] = {s.name: s.restarts for s in statuses if s.restarts}
    report["dead_letters"] = eng.directory.dead_letters()
    return report


def _count(items: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        out[it[key]] = out.get(it[key], 0) + 1
    return dict(sorted(out.items()))


SAME = ("journal_digest", "fills", "orders", "position", "realized_pnl", "fees", "ticks")


def compare(clean: dict[str, Any], chaos: dict[str, Any]) -> list[str]:
    """Differences between the undisturbed and the chaos run ([] = exactly-once held)."""
    return [f"{k}: undisturbed {clean[k]!r} != chaos {chaos[k]!r}" for k in SAME if clean[k] != chaos[k]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--faults", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--workdir", default=str(REPO / "var" / "bench_chaos"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "chaos.json"))
    args = ap.parse_args(argv)
    if not SPY.is_file():
        print(f"real market data not found at {SPY}", file=sys.stderr)
        return 2
    from engine.logging_setup import setup_logging  # quiet, files only

    work = Path(args.workdir)
    clean_cfg = chaos_config(work / "clean", args.ticks, args.batch_size)
    setup_logging(clean_cfg.logging) if callable(setup_logging) else None
    clean = run_replay_under(clean_cfg, SPY, chaos=None)
    t = time.perf_counter()
    chaos = run_replay_under(chaos_config(work / "chaos", args.ticks, args.batch_size), SPY,
                             chaos={"faults": args.faults, "seed": args.seed})
    diffs = compare(clean, chaos)
    out = {"ticks": args.ticks, "batch_size": args.batch_size, "seed": args.seed, "faults_asked": args.faults,
           "faults_injected": chaos["faults_injected"], "faults_handled": chaos["faults_handled"],
           "faults_by_kind": chaos["faults_by_kind"], "faults_by_target": chaos["faults_by_target"],
           "restarts": chaos["restarts"], "dead_letters": chaos["dead_letters"],
           "chaos_wall_s": round(time.perf_counter() - t, 2), "undisturbed_elapsed_s": clean["elapsed_s"],
           "journal_digest_equal": clean["journal_digest"] == chaos["journal_digest"], "differences": diffs,
           "fills": chaos["fills"], "position": chaos["position"], "realized_pnl": chaos["realized_pnl"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
