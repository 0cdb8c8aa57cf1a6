"""`actortrader run | replay | bench | doctor | users | config check|show`.

Exit codes: 0 success; 1 the engine failed or gave up (reason printed);
2 a user mistake (bad config, bad flag, missing file), with a message that
names what was wrong and where. Never a traceback for a user's mistake.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _print_err(msg: str) -> None:
    print(f"actortrader: {msg}", file=sys.stderr)


def _load(path: str | None):
    from engine.config import ConfigError, load_config

    if path is None and Path("config.toml").is_file():
        path = "config.toml"
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        for line in exc.messages:
            _print_err(line)
        raise SystemExit(EXIT_USAGE) from None
    _use_kernel_cache(cfg)
    return cfg, (Path(path).resolve().parent if path else None)


def _use_kernel_cache(cfg) -> None:
    """Point numba's cache (and the compiled kernels beside it) at ``engine.numba_cache_dir``.

    Numba reads NUMBA_CACHE_DIR once, when it is imported, and the kernel
    modules are imported with the engine: so this runs before any command
    imports them. The environment wins over the config, as for numba itself.
    """
    if cfg.engine.numba_cache_dir and "NUMBA_CACHE_DIR" not in os.environ:
        os.environ["NUMBA_CACHE_DIR"] = str(Path(cfg.engine.numba_cache_dir).resolve())


# ---------------------------------------------------------------- config
def cmd_config(args) -> int:
    from engine.config import ConfigError, dumps_redacted, load_config

    try:
        cfg = load_config(args.path)
    except ConfigError as exc:
        for line in exc.messages:
            _print_err(line)
        return EXIT_USAGE
    if args.config_cmd == "show":
        print(dumps_redacted(cfg))
    else:
        from strategies.loader import StrategyLoadError, load_strategies

        try:
            load_strategies(cfg, Path(args.path).resolve().parent if args.path else None)
        except StrategyLoadError as exc:
            _print_err(f"{args.path or '<defaults>'}: {exc}")
            return EXIT_USAGE
        print(f"{args.path or '<embedded defaults>'}: OK")
    return EXIT_OK


# ---------------------------------------------------------------- replay
def cmd_replay(args) -> int:
    cfg, cfg_dir = _load(args.config)  # first: it picks the kernel cache the imports below load from
    from engine.replay import ReplayError, run_replay
    from strategies.loader import StrategyLoadError

    if args.batch_size is not None and not 1 <= args.batch_size <= 65536:
        _print_err(f"--batch-size: expected 1..65536, got {args.batch_size}")
        return EXIT_USAGE
    _setup_logging(cfg, console_level="WARNING")
    try:
        report = run_replay(cfg, args.data, symbol=args.symbol, batch_size=args.batch_size, report_path=args.report,
                            plot_path=args.plot, resume=args.resume, config_dir=cfg_dir)
    except (ReplayError, StrategyLoadError) as exc:
        _print_err(str(exc))
        return EXIT_USAGE
    except _data_error() as exc:
        _print_err(str(exc))
        return EXIT_USAGE
    keys = ("ticks", "rejected_ticks", "orders", "fills", "position", "realized_pnl", "fees", "max_drawdown",
            "elapsed_s", "ticks_per_s", "journal_digest", "journal")
    for k in keys:
        print(f"{k:>16}: {report[k]}")
    if args.report:
        print(f"{'report':>16}: {args.report}")
    return EXIT_OK


def _data_error():
    try:
        from engine.data import DataError

        return DataError
    except ImportError:  # pragma: no cover
        return ()


# ---------------------------------------------------------------- run
def _setup_logging(cfg, console_level: str | None = None):
    from engine.logging_setup import setup_logging

    secrets = [s for s in (cfg.api.jwt_secret, cfg.venue.api_key, cfg.venue.api_secret) if s]
    log_cfg = cfg.logging
    if console_level is not None:
        import msgspec

        log_cfg = msgspec.structs.replace(log_cfg, level=console_level)
    return setup_logging(log_cfg, secrets)


def cmd_run(args) -> int:
    import msgspec
    from loguru import logger

    cfg, cfg_dir = _load(args.config)  # first: it picks the kernel cache the imports below load from
    from engine.assembly import FEED, build_engine, freeze_boot_heap
    from engine.messages import StartFeed
    from actors.supervisor import TreeStartError
    from engine.production import live_problems
    from strategies.loader import StrategyLoadError

    if args.api_port is not None:
        cfg = msgspec.structs.replace(cfg, api=msgspec.structs.replace(cfg.api, port=args.api_port))
    problems = live_problems(cfg, dict(os.environ))
    if problems:
        _print_err("refusing to start in live mode:")
        for p in problems:
            _print_err(f"  {p}")
        return EXIT_USAGE
    log_path = _setup_logging(cfg)
    data_dir = Path(cfg.engine.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    from engine.journal_runs import journal_dir

    jdir = journal_dir(cfg)
    jdir.mkdir(parents=True, exist_ok=True)
    journal_path, continued = _run_journal(jdir) if cfg.journal.enabled else (None, False)
    print(f"actortrader {cfg.mode} engine")
    print(f"  logs:    {log_path}")
    print(f"  data:    {data_dir}")
    print(f"  journal: {journal_path}" + ("  (continuing after an unclean stop)" if continued else ""))

    def source_factory():
        return _make_source(cfg)

    escalated = threading.Event()
    reason: list[str] = []

    def on_escalate(why: str) -> None:
        reason.append(why)
        escalated.set()

    try:
        eng = build_engine(cfg, source_factory=source_factory, journal_path=journal_path, config_dir=cfg_dir,
                           on_escalate=on_escalate, realtime_rate=cfg.feed.rate if cfg.feed.source == "synthetic" else 0.0)
    except StrategyLoadError as exc:
        _print_err(str(exc))
        return EXIT_USAGE
    except TreeStartError as exc:
        _print_err(f"engine could not start: {exc}; trading stays HALTED")
        return EXIT_FAILED
    api = None
    stop = threading.Event()
    signals = {"count": 0}

    def on_signal(signum, _frame):
        signals["count"] += 1
        if signals["count"] > 1:
            print("\nforced exit", file=sys.stderr)
            os._exit(130)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = EXIT_OK
    try:
        if cfg.api.enabled:
            from engine.api.server import ApiConfigError, ApiServer

            try:
                api = ApiServer(cfg, eng.directory)
                api.start()
                print(f"  api:     {api.url}  (dashboard at /, docs at /api/docs)")
            except ApiConfigError as exc:
                _print_err(str(exc))
                code = EXIT_USAGE
                stop.set()
        freeze_boot_heap()  # before the first tick: full collections no longer walk the booted engine
        eng.directory.tell(FEED, StartFeed(after_tick_seq=-1))
        logger.info("engine running; Ctrl-C or SIGTERM to stop")
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.is_set():
            if escalated.is_set() or eng.tree.escalated.is_set():
                why = reason[0] if reason else eng.tree.escalation_reason
                _print_err(f"supervision gave up: {why}; trading halted")
                code = EXIT_FAILED
                break
            if eng.ended.is_set() and cfg.feed.source == "file":
                logger.info("data file finished")
                break
            timeout = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(timeout)
    finally:
        logger.info("shutting down")
        if api is not None:
            api.stop()
        eng.stop()
        if journal_path is not None and code == EXIT_OK and not eng.kill.is_set():
            _finish_journal(journal_path)
        logger.info("stopped cleanly")
        from loguru import logger as _l

        _l.complete()
    return code


def _run_journal(jdir: Path) -> tuple[Path, bool]:
    """The last `run` journal if it did not finish cleanly (a crash): continue it; else a new one."""
    from engine.journal import Journal, JournalError
    from engine.journal_runs import list_runs, new_run_path, start_run

    runs = list_runs(jdir, kind="run")
    if runs:
        try:
            with Journal.open(runs[-1], readonly=True) as j:
                if j.get_meta("status") != "finished":
                    return runs[-1], True
        except JournalError:
            pass
    path = new_run_path(jdir, kind="run")
    start_run(path, kind="run").close()
    return path, False


def _finish_journal(path: Path) -> None:
    from engine.journal import Journal
    from engine.journal_runs import finish_run

    with Journal.open(path) as j:
        finish_run(j)


def _make_source(cfg):
    from engine.data import SyntheticSource, open_tick_source

    if cfg.feed.source == "synthetic":
        return SyntheticSource(cfg.instruments, seed=cfg.feed.seed, max_ticks=cfg.feed.max_ticks)
    rejects = Path(cfg.engine.data_dir) / cfg.feed.rejects_file
    from engine.replay import capped

    src = open_tick_source(cfg.feed.path, symbol=cfg.feed.symbol or None, instruments=cfg.instruments,
                           kind=cfg.feed.kind, rejects_path=rejects, cache_dir=Path(cfg.engine.data_dir) / "cache")
    return capped(src, cfg.feed.max_ticks)


# ---------------------------------------------------------------- doctor / users / bench
def cmd_doctor(args) -> int:
    from engine.doctor import doctor

    return doctor(args.config)


def cmd_users(args) -> int:
    from engine.api.cli_users import cmd_users as run_users

    cfg, _ = _load(args.config)
    return run_users(args, cfg)


def cmd_bench(args) -> int:
    from engine.bench import run_bench

    return run_bench(args)


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="actortrader",
        description="Actor-based trading engine: pykka actors, msgspec messages, numba indicators, "
        "a write-ahead journal and a secure control API, in one process.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="start the engine (synthetic feed and paper venue by default)",
                       description="Boot the supervision tree, the feed and the API; run until Ctrl-C, SIGTERM or --duration.")
    r.add_argument("--config", metavar="PATH", help="config file (default: ./config.toml if present, else embedded defaults)")
    r.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    r.add_argument("--api-port", type=int, metavar="PORT", help="override api.port")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("replay", help="run the configured strategies over a data file as fast as possible",
                        description="Replay DATA (normalized ticks CSV/.gz/Parquet) through the whole engine and report.")
    rp.add_argument("data", metavar="DATA", help="tick file: ts_ns,price,size[,side] (.csv, .csv.gz, .parquet)")
    rp.add_argument("--symbol", metavar="SYMBOL", help="symbol of a one-symbol file (must be declared in [[instruments]])")
    rp.add_argument("--config", metavar="PATH", help="config file")
    rp.add_argument("--report", metavar="PATH.json", help="write the JSON report here")
    rp.add_argument("--batch-size", type=int, metavar="N", help="ticks per batch, 1..65536 (never changes results)")
    rp.add_argument("--plot", metavar="PATH", help="write an equity-curve plot (PNG/SVG by extension)")
    rp.add_argument("--resume", action="store_true", help="continue the most recent unfinished replay of the same data and config")
    rp.set_defaults(func=cmd_replay)

    b = sub.add_parser("bench", help="run the benchmark suite and print/save figures")
    b.add_argument("--json", metavar="PATH", help="write the JSON results here")
    b.add_argument("--ticks", type=int, default=1_000_000, metavar="N", help="ticks for the full job (default 1M)")
    b.add_argument("--data", metavar="PATH", help="tick file (default: ../shared SPY ticks if present)")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("doctor", help="check versions, JIT cache, config, paths and the API port")
    d.add_argument("--config", metavar="PATH")
    d.set_defaults(func=cmd_doctor)

    u = sub.add_parser("users", help="manage API users (add, list, remove)")
    u.add_argument("--config", metavar="PATH")
    try:
        from engine.api.cli_users import add_users_parser

        add_users_parser(u.add_subparsers(dest="users_cmd", metavar="ACTION", required=True))
    except ImportError:  # pragma: no cover - api extra missing
        pass
    u.set_defaults(func=cmd_users)

    c = sub.add_parser("config", help="check or show a configuration file")
    csub = c.add_subparsers(dest="config_cmd", metavar="ACTION", required=True)
    cc = csub.add_parser("check", help="validate a config file: exit 0 if valid, 2 naming each problem")
    cc.add_argument("path", nargs="?", metavar="PATH", help="config file (default: embedded defaults)")
    cs = csub.add_parser("show", help="print the effective config with secrets redacted")
    cs.add_argument("path", nargs="?", metavar="PATH")
    c.set_defaults(func=cmd_config)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from engine.kernels import mode as kernels_mode

    try:
        kernels_mode()  # read when the kernel modules are imported: refuse a bad value before that
    except ValueError as exc:
        _print_err(str(exc))
        return EXIT_USAGE
    try:
        return args.func(args)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
