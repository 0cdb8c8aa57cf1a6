"""Kernels compiled ahead of time (engine.kernels): same results as the JIT, never handed what they would misread.

Why it matters: the compiled modules keep numba and LLVM out of the running
process (most of the memory budget), so they run every batch. They must
give the JIT's exact bits, or a replay's journal would depend on whether
the build had finished; and a call outside their one signature must go to
the JIT instead of into memory read with the wrong type.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from engine import kernels
from tests.paths import REPO, SPY_TICKS, needs_shared, spy_prices

import engine.indicators  # noqa: E402

for _module in kernels.BUILTIN_MODULES:  # importing a module declares its kernels
    importlib.import_module(_module)


@pytest.fixture(scope="module")
def compiled():
    """Every built-in module's compiled kernels, built now if missing: {(module, name): guarded callable}."""
    proc = subprocess.run([sys.executable, "-m", "engine.kernels"], capture_output=True, text=True, cwd=str(REPO),
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"building the compiled kernels failed: {proc.stderr}"
    out = {}
    for module in kernels.BUILTIN_MODULES:
        ext = kernels.load_extension(kernels.extension_path(module))
        for k in kernels._DECLARED[module]:
            held = getattr(ext, k.name + kernels.HELD_SUFFIX) if k.nogil else None
            out[(module, k.name)] = (k, k.guarded(getattr(ext, k.name), held))
    return out


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    return type(a) is type(b) and (a == b or (a != a and b != b))


def _real_prices(n: int) -> np.ndarray:
    if SPY_TICKS.is_file():
        return spy_prices(n)[1]
    rng = np.random.default_rng(7)  # ../shared absent: a random walk with gaps still exercises every branch
    x = 100 + np.cumsum(rng.normal(0, 0.05, n))
    x[rng.integers(0, n, n // 500)] = np.nan
    return x


def _calls(x: np.ndarray):
    """(module, kernel) -> a function building fresh arguments, so each side writes its own outputs."""
    n = x.shape[0]
    ro = x.copy()
    ro.flags.writeable = False  # the feed hands the indicators frozen columns
    side = np.where(np.arange(n) % 3 == 0, -1, 1).astype(np.int8)
    qty = np.abs(np.diff(np.nan_to_num(x), prepend=x[0])) + 1.0
    ts = np.arange(n, dtype=np.int64) * 1_000_000
    ind = "engine.indicators"
    state = {5: lambda: np.array([0.0, np.nan, 0.0, 0.0, np.nan])}
    rsi = engine.indicators.rsi(x, 14)
    return {
        (ind, "_rsi_kernel"): lambda: (ro, np.empty(n), state[5](), 14.0),
        (ind, "_sma_kernel"): lambda: (ro, np.empty(n), engine.indicators.SMAState(20).state.copy(), 20),
        (ind, "_ema_kernel"): lambda: (ro, np.empty(n), engine.indicators.EMAState(20).state.copy(), 20.0),
        (ind, "_bollinger_kernel"): lambda: (ro, np.empty(n), np.empty(n), np.empty(n),
                                              engine.indicators.BollingerState(20, 2.0).state.copy(), 20, 2.0),
        (ind, "_macd_kernel"): lambda: (ro, np.empty(n), np.empty(n), np.empty(n),
                                         engine.indicators.MACDState(12, 26, 9).state.copy(), 12, 26, 9),
        (ind, "_atr_kernel"): lambda: (ro + 0.05, ro - 0.05, ro, np.empty(n), engine.indicators.ATRState(14).state.copy(),
                                       14.0),
        ("engine.orders", "_apply_fills"): lambda: (0.0, 0.0, 0.0, 0.0, 0.0, side, qty, np.nan_to_num(x), qty * 1e-4),
        ("engine.risk", "_within_limits"): lambda: (side[:50], qty[:50], np.nan_to_num(x[:50]), ts[:50], 0.0, ts[:0],
                                                    1e9, 1e12, 1e9, 1e9),
        ("engine.risk", "_sum_in_turn"): lambda: (0.25, side, qty),
        ("strategies.rsi_mean_reversion", "first_rsi_signal"): lambda: (rsi, 0, 0.0, 30.0, 70.0),
        ("strategies.rsi_mean_reversion", "rsi_scan"): lambda: (rsi, 0, 0.0, 0.0, 30.0, 70.0, 1.0, np.zeros(n, np.int64),
                                                                np.zeros(n)),
        ("strategies.sma_cross", "first_sma_signal"): lambda: (engine.indicators.sma(x, 20), engine.indicators.sma(x, 50),
                                                               0, 0.0),
    }  # fmt: skip


def _outputs(args):
    return tuple(a for a in args if isinstance(a, np.ndarray) and a.flags.writeable)


def test_every_declared_kernel_has_a_compiled_twin(compiled):
    declared = {(m, k.name) for m in kernels.BUILTIN_MODULES for k in kernels._DECLARED[m]}
    assert declared == set(compiled)
    assert declared == set(_calls(np.ones(4)))  # and every one is compared below


@pytest.mark.parametrize("n", [200_000, kernels.NOGIL_MIN_ITEMS - 1], ids=["releasing the GIL", "holding it (short)"])
def test_compiled_kernels_give_the_jit_bits_on_real_prices(compiled, n):
    x = _real_prices(200_000)[-n:].copy()  # the short case starts mid-series: NaN-free warm-up is not assumed
    for key, make in _calls(x).items():
        k, aot = compiled[key]
        a_args, j_args = make(), make()
        got, want = aot(*a_args), k.jit(*j_args)
        assert _same(got, want), f"{key}: result differs"
        for out_a, out_j in zip(_outputs(a_args), _outputs(j_args), strict=True):
            assert _same(out_a, out_j), f"{key}: an output or state array differs"


def test_a_nogil_kernel_runs_its_gil_holding_twin_below_the_threshold_only():
    k = next(k for k in kernels._DECLARED["engine.indicators"] if k.name == "_rsi_kernel")
    calls = []
    fn = k.guarded(lambda *a: calls.append(("releasing", len(a[0]))), lambda *a: calls.append(("holding", len(a[0]))))
    for n in (1, kernels.NOGIL_MIN_ITEMS - 1, kernels.NOGIL_MIN_ITEMS, 10 * kernels.NOGIL_MIN_ITEMS):
        fn(np.ones(n), np.empty(n), np.zeros(5), 14.0)
    m = kernels.NOGIL_MIN_ITEMS
    assert calls == [("holding", 1), ("holding", m - 1), ("releasing", m), ("releasing", 10 * m)]
    assert {kk.name for kk in kernels._DECLARED["engine.orders"]} and not any(  # nogil=False: never a twin
        kk.nogil for kk in kernels._DECLARED["engine.orders"])


def test_a_call_outside_the_signature_goes_to_the_jit_with_the_same_result(compiled):
    k, aot = compiled[("engine.indicators", "_rsi_kernel")]
    x = _real_prices(5_000)
    want = np.empty(x.shape[0])
    k.jit(x, want, np.array([0.0, np.nan, 0.0, 0.0, np.nan]), 14.0)
    cases = {
        "float32 prices": lambda: (x.astype(np.float32), np.empty(x.shape[0])),
        "int64 prices (the same item size as float64)": lambda: (np.nan_to_num(x).astype(np.int64), np.empty(x.shape[0])),
        "a strided view": lambda: (np.repeat(x, 2)[::2], np.empty(x.shape[0])),
        "a strided output": lambda: (x, np.empty(2 * x.shape[0])[::2]),
    }
    for label, make in cases.items():
        prices, out = make()
        aot(prices, out, np.array([0.0, np.nan, 0.0, 0.0, np.nan]), 14.0)
        ref = np.empty(x.shape[0])
        k.jit(prices, ref, np.array([0.0, np.nan, 0.0, 0.0, np.nan]), 14.0)
        assert np.array_equal(out, ref, equal_nan=True), label
    # A read-only output is refused as the JIT refuses it, not written through.
    frozen = np.zeros(x.shape[0])
    frozen.flags.writeable = False
    with pytest.raises(Exception, match="(?i)read-?only|readonly|no matching|Cannot"):
        aot(x, frozen, np.array([0.0, np.nan, 0.0, 0.0, np.nan]), 14.0)
    assert not frozen.any()
    # An int64 array where int8 sides are declared: the JIT's answer, not int64 bytes read as int8.
    _, fills = compiled[("engine.orders", "_apply_fills")]
    side64, qty = np.array([1, 1, -1], dtype=np.int64), np.array([1.0, 2.0, 3.0])
    args = (0.0, 0.0, 0.0, 0.0, 0.0, side64, qty, np.array([10.0, 11.0, 12.0]), np.zeros(3))
    assert fills(*args) == kernels._DECLARED["engine.orders"][0].jit(*args)


def _main_thread_turns_while(call) -> int:
    """How often the main thread got round a loop while ``call`` ran on another thread."""
    started = threading.Event()

    def run():
        started.set()
        call()

    t = threading.Thread(target=run)
    t.start()
    assert started.wait(10)
    n = 0
    while t.is_alive():  # with the GIL held by the kernel this loop cannot run until it returns
        n += 1
    t.join(60)
    return n


def test_a_nogil_compiled_kernel_lets_other_threads_run_and_its_twin_does_not(compiled):
    _, aot = compiled[("engine.indicators", "_rsi_kernel")]
    ext = kernels.load_extension(kernels.extension_path("engine.indicators"))
    holding = getattr(ext, "_rsi_kernel" + kernels.HELD_SUFFIX)
    x = np.cumsum(np.random.default_rng(3).normal(0, 0.01, 30_000_000)) + 100
    out = np.empty_like(x)
    released = _main_thread_turns_while(lambda: aot(x, out, np.array([0.0, np.nan, 0.0, 0.0, np.nan]), 14.0))
    held = _main_thread_turns_while(lambda: holding(x, out, np.array([0.0, np.nan, 0.0, 0.0, np.nan]), 14.0))
    assert released > 1000, f"the main thread ran {released} times while the releasing kernel ran"
    # Holding the GIL, only the turns before the call and after its return: far fewer.
    assert held * 10 < released, f"the main thread ran {held} times while the holding twin ran ({released} releasing)"


def test_declaring_a_kernel_wrongly_names_it(monkeypatch):
    def bad_types(x):
        return x

    def two(a, b):
        return a + b

    with pytest.raises(ValueError, match="bad_types: unknown argument type 'f4'"):
        kernels.Kernel(bad_types, ("f4",), True)
    with pytest.raises(ValueError, match="two: 1 argument types for 2 arguments"):
        kernels.Kernel(two, ("f8",), True)
    monkeypatch.setenv(kernels.MODE_ENV, "fast")
    with pytest.raises(ValueError, match="ACTORTRADER_KERNELS='fast': expected one of auto, jit"):
        kernels.mode()


_REPLAY = """
import json, sys
from pathlib import Path
from engine.replay import run_replay
from engine import kernels
from tests.test_replay_e2e import job_config
cfg = job_config(Path(sys.argv[1]), 100_000)
rep = run_replay(cfg, sys.argv[2], symbol="SPY", progress=False, timeout_s=120)
print(json.dumps({"digest": rep["journal_digest"], "orders": rep["orders"], "kernels": kernels.status(),
                  "numba_loaded": "numba" in sys.modules}))
"""


@needs_shared
def test_a_replay_on_compiled_kernels_journals_what_the_jit_journals_without_loading_numba(compiled, tmp_path):
    out = {}
    for how in ("auto", "jit"):
        env = dict(os.environ, ACTORTRADER_KERNELS=how)
        proc = subprocess.run([sys.executable, "-c", _REPLAY, str(tmp_path / how), str(SPY_TICKS)], capture_output=True,
                              text=True, cwd=str(REPO), env=env, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[how] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["auto"]["orders"] > 100
    assert out["auto"]["digest"] == out["jit"]["digest"]
    assert set(out["auto"]["kernels"].values()) == {"aot"}, out["auto"]["kernels"]
    assert not out["auto"]["numba_loaded"]
    assert set(out["jit"]["kernels"].values()) == {"jit"} and out["jit"]["numba_loaded"]


_CACHE_PROBE = """
import sys
import engine.cli
cfg, _ = engine.cli._load(sys.argv[1])
import numpy as np
import engine.indicators
from engine import kernels
engine.indicators.rsi(np.linspace(1.0, 2.0, 40), 14)
print(kernels.extension_path("engine.indicators"))
"""


def test_engine_numba_cache_dir_holds_the_jit_cache_and_the_compiled_kernels(tmp_path):
    cache = tmp_path / "kernel-cache"
    cfg = tmp_path / "engine.toml"
    cfg.write_text(f'[engine]\nnumba_cache_dir = "{cache}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["ACTORTRADER_KERNELS"] = "jit"  # the JIT writes its cache: proof numba read the setting at import
    proc = subprocess.run([sys.executable, "-c", _CACHE_PROBE, str(cfg)], capture_output=True, text=True,
                          cwd=str(REPO), env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(cache.rglob("*_rsi_kernel*.nbi")), sorted(p.name for p in cache.rglob("*"))
    assert proc.stdout.strip().splitlines()[-1].startswith(str(cache / "actortrader-aot"))


def test_doctor_names_the_modules_not_built_and_why(monkeypatch, tmp_path):
    from engine import doctor

    mods = kernels.BUILTIN_MODULES
    paths = {m: tmp_path / f"{m}.so" for m in mods}
    monkeypatch.setattr(kernels, "extension_path", lambda m: paths[m])
    paths[mods[0]].write_bytes(b"")
    paths[mods[1]].with_suffix(".failed").write_text("CompileError: no C compiler\n", encoding="utf-8")
    check = doctor._check_compiled_kernels()
    assert check.ok  # the JIT gives the same results: information, not a failure
    assert f"{mods[1]} (CompileError: no C compiler)" in check.detail
    assert all(m in check.detail for m in mods[2:]) and mods[0] not in check.detail
    for m in mods:
        paths[m].write_bytes(b"")
    assert doctor._check_compiled_kernels().detail.startswith(f"all {len(mods)} modules built")


def test_a_run_on_the_jit_starts_one_low_priority_build_of_what_is_missing(monkeypatch, tmp_path):
    started = []

    class FakePopen:
        def __init__(self, cmd, **kw):
            started.append((cmd, kw))

    monkeypatch.setattr(kernels.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(kernels, "_BUILD_STARTED", False)
    monkeypatch.setattr(kernels, "_LOADED", {"engine.indicators": None, "engine.orders": object(), "engine.risk": None})
    paths = {m: tmp_path / f"{m}.so" for m in ("engine.indicators", "engine.orders", "engine.risk")}
    monkeypatch.setattr(kernels, "extension_path", lambda m: paths[m])
    paths["engine.risk"].with_suffix(".failed").write_text("CompileError\n", encoding="utf-8")  # not retried
    assert kernels.build_in_background()
    assert not kernels.build_in_background()  # once per process
    (cmd, kw), = started
    assert cmd[1:] == ["-m", "engine.kernels", "engine.indicators"]
    assert kw["start_new_session"] and kw["stdout"] is subprocess.DEVNULL
    monkeypatch.setattr(kernels, "_BUILD_STARTED", False)
    monkeypatch.setenv(kernels.MODE_ENV, "jit")
    assert not kernels.build_in_background()  # the JIT mode never builds


def test_a_new_build_removes_the_builds_of_older_sources_and_nothing_else(tmp_path):
    suffix = ".cpython-311-x86_64-linux-gnu.so"
    current = tmp_path / f"_aot_engine_orders_{'a' * 16}{suffix}"
    older = [tmp_path / f"_aot_engine_orders_{'b' * 16}{suffix}",
             tmp_path / f"_aot_engine_orders_{'c' * 16}.cpython-311-x86_64-linux-gnu.failed"]
    others = [tmp_path / f"_aot_engine_orders_extra_{'d' * 16}{suffix}", tmp_path / f"_aot_engine_risk_{'e' * 16}{suffix}"]
    for p in (current, *older, *others):
        p.write_bytes(b"")
    kernels._remove_older_builds("engine.orders", current)
    assert current.exists() and all(p.exists() for p in others) and not any(p.exists() for p in older)


def test_a_bad_kernels_mode_is_refused_by_the_cli_naming_the_variable():
    env = dict(os.environ, ACTORTRADER_KERNELS="fast")
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "config", "check"], capture_output=True, text=True,
                          cwd=str(REPO), env=env, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert "ACTORTRADER_KERNELS='fast': expected one of auto, jit" in proc.stderr and "Traceback" not in proc.stderr
