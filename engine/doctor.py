"""``actortrader doctor``: is this machine ready to run the engine?

Why: most failed first runs are environmental (an old library, a read-only
directory, a port already taken, a numba cache it cannot write). Each check
here names exactly what is wrong and where, so the fix is obvious; the exit
code (0 healthy, 1 problems) lets scripts gate on it.
"""

from __future__ import annotations

import errno
import importlib
import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from engine.config import Config, ConfigError, load_config

#: Minimum versions (mirrors pyproject.toml); upper bound only where an API we rely on may change.
REQUIREMENTS: tuple[tuple[str, str, str, str | None], ...] = (
    ("pykka", "pykka", "4.5", "5"),
    ("numpy", "numpy", "1.26", None),
    ("numba", "numba", "0.60", None),
    ("msgspec", "msgspec", "0.19", None),
)
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def doctor(config_path: str | None, stream: TextIO | None = None, numba_probe: bool = True) -> int:
    """Print the health report to ``stream``; 0 when healthy, 1 when any check failed."""
    out = stream if stream is not None else sys.stdout
    checks: list[Check] = []
    checks.append(_check_python())
    checks.extend(_check_package(*req) for req in REQUIREMENTS)
    cfg, config_check = _check_config(config_path)
    checks.append(config_check)
    if cfg is None:
        checks.append(Check("paths", False, "skipped: the config is not valid (fix it first)"))
    else:
        checks.extend(_check_paths(cfg))
        if numba_probe:
            checks.append(_check_numba_cache(cfg))
        checks.append(_check_compiled_kernels())
        checks.append(_check_port(cfg))

    problems = [c for c in checks if not c.ok]
    print("actortrader doctor", file=out)
    for c in checks:
        print(f"  {'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}", file=out)
    if problems:
        print(f"{len(problems)} problem(s): " + "; ".join(c.name for c in problems), file=out)
        return 1
    print("healthy", file=out)
    return 0


# --------------------------------------------------------------------------
# Individual checks (each returns a Check, never raises)


def _check_python() -> Check:
    version = platform.python_version()
    ok = sys.version_info[:2] >= MIN_PYTHON
    need = ".".join(map(str, MIN_PYTHON))
    return Check("python", ok, version if ok else f"{version} is too old: need >= {need}")


def _version_tuple(text: str) -> tuple[int, ...]:
    """``"2.1.0rc1"`` -> ``(2, 1, 0)``: the leading numeric release, enough for minimum checks."""
    parts = []
    for piece in text.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


def _check_package(label: str, dist: str, minimum: str, below: str | None) -> Check:
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return Check(label, False, f"not installed (need >= {minimum}): pip install '{dist}>={minimum}'")
    try:
        importlib.import_module(label)
    except Exception as exc:  # noqa: BLE001 - a broken install is exactly what doctor reports
        return Check(label, False, f"{version} is installed but cannot be imported: {type(exc).__name__}: {exc}")
    have = _version_tuple(version)
    if have < _version_tuple(minimum):
        return Check(label, False, f"{version} is too old: need >= {minimum}")
    if below is not None and have >= _version_tuple(below):
        return Check(label, False, f"{version} is too new: need < {below}")
    return Check(label, True, version)


def _check_config(config_path: str | None) -> tuple[Config | None, Check]:
    where = config_path or "<embedded defaults>"
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        return None, Check("config", False, " | ".join(exc.messages))
    return cfg, Check("config", True, f"{where} is valid (mode={cfg.mode})")


def _check_writable_dir(label: str, path: Path) -> Check:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return Check(label, False, f"cannot create {str(path)!r}: {exc.strerror or exc}")
    if not path.is_dir():
        return Check(label, False, f"{str(path)!r} exists but is not a directory")
    probe = path / f".doctor-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Check(label, False, f"{str(path)!r} is not writable: {exc.strerror or exc}")
    return Check(label, True, f"{path} writable")


def _check_paths(cfg: Config) -> list[Check]:
    return [
        _check_writable_dir("engine.data_dir", Path(cfg.engine.data_dir)),
        _check_writable_dir("journal.dir", Path(cfg.journal.dir)),
        _check_writable_dir("logging.dir", Path(cfg.logging.dir)),
    ]


_PROBE_SOURCE = textwrap.dedent(
    """
    from numba import njit

    @njit(cache=True, nogil=True)
    def doctor_probe(n):
        total = 0
        for i in range(n):
            total += i
        return total
    """
)

_PROBE_RUN = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import doctor_probe_mod as m
    assert m.doctor_probe(10) == 45
    print(sum(m.doctor_probe.stats.cache_hits.values()))
    """
)


def _check_compiled_kernels() -> Check:
    """Which kernel modules load compiled ahead of time; the rest run on the JIT (same results, more memory)."""
    from engine import kernels

    built, pending, failed = [], [], []
    for module in kernels.BUILTIN_MODULES:
        state, reason = kernels.build_state(module)
        if state == "built":
            built.append(module)
        elif state == "failed":
            failed.append(f"{module} ({reason})")
        elif state == "pending":
            pending.append(module)
    if not pending and not failed:
        return Check("compiled kernels", True, f"all {len(built)} modules built: numba and LLVM stay out of the engine")
    parts = []
    if pending:
        parts.append(f"not built yet: {', '.join(pending)} (the first run that uses them builds them; "
                     "or now: python -m engine.kernels)")
    if failed:
        parts.append(f"failed to build, running on the numba JIT: {'; '.join(failed)} (retry: python -m engine.kernels)")
    return Check("compiled kernels", True, "; ".join(parts))


def _check_numba_cache(cfg: Config, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Check:
    """Compile a tiny ``cache=True`` kernel in a fresh interpreter, then load it from the cache in another."""
    configured = cfg.engine.numba_cache_dir or os.environ.get("NUMBA_CACHE_DIR", "")
    label = "numba cache"
    if configured:
        dir_check = _check_writable_dir(label, Path(configured))
        if not dir_check.ok:
            return Check(label, False, f"engine.numba_cache_dir: {dir_check.detail}")
    else:
        default = Path(__file__).resolve().parent / "__pycache__"
        dir_check = _check_writable_dir(label, default)
        if not dir_check.ok:
            return Check(label, False, f"{dir_check.detail} (set engine.numba_cache_dir to a writable directory)")
    work = Path(tempfile.mkdtemp(prefix="actortrader-doctor-"))
    env = dict(os.environ)
    cache_root = Path(configured) / f"doctor-{uuid.uuid4().hex[:8]}" if configured else None
    if cache_root is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_root)
    try:
        (work / "doctor_probe_mod.py").write_text(_PROBE_SOURCE, encoding="utf-8")
        hits = []
        for _ in range(2):
            proc = run([sys.executable, "-c", _PROBE_RUN, str(work)], capture_output=True, text=True, timeout=120, env=env)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                return Check(label, False, f"a cached @njit kernel failed to compile: {tail[0]}")
            hits.append(int((proc.stdout.strip().splitlines() or ["0"])[-1]))
        if hits[1] < 1:
            return Check(label, False, "compiled but not reloaded from the cache (cache files are not being written)")
        where = configured or "beside each module (__pycache__)"
        return Check(label, True, f"njit(cache=True) compiles and reloads from {where}")
    except subprocess.TimeoutExpired:
        return Check(label, False, "compiling a tiny kernel took over 120 s")
    except OSError as exc:
        return Check(label, False, f"cannot run the probe: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if cache_root is not None:
            shutil.rmtree(cache_root, ignore_errors=True)


def _check_port(cfg: Config) -> Check:
    api = cfg.api
    label = "api port"
    if not api.enabled:
        return Check(label, True, "API disabled (api.enabled = false)")
    if api.port == 0:
        return Check(label, True, f"{api.host}: port 0 (the OS picks a free one)")
    try:
        infos = socket.getaddrinfo(api.host, api.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return Check(label, False, f"api.host {api.host!r} does not resolve: {exc.strerror or exc}")
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(addr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return Check(label, False, f"api.port {api.port} on {api.host} is already in use (stop the other process or pick another port)")
        if exc.errno == errno.EADDRNOTAVAIL:
            return Check(label, False, f"api.host {api.host!r} is not an address of this machine")
        return Check(label, False, f"cannot bind {api.host}:{api.port}: {exc.strerror or exc}")
    finally:
        sock.close()
    return Check(label, True, f"{api.host}:{api.port} is free")
