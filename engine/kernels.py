"""Numba kernels compiled ahead of time, so a running engine never loads LLVM.

Why: numba's JIT, even when it only loads its on-disk cache, brings llvmlite
and LLVM into the process: about 58 MB at import and 47 MB more at the first
kernel load, two thirds of the 150 MB memory budget before a tick is read.
``numba.pycc`` compiles the same Python source into a small extension module
that needs only numpy. The engine loads that module when it is built and
fresh, and uses the JIT otherwise.

The contract of :func:`kernel`: it declares the one signature a kernel is
compiled for ahead of time. A call whose arguments fit that signature runs
the compiled code. Any other call (another dtype, a strided view, a read-only
output) goes to the numba JIT of the same function, imported then, and is
logged once. So the compiled module is only a faster, smaller path: it never
changes what a call accepts or returns, and it cannot be handed memory it
would misread (pycc's own wrappers check an array's item size, not its dtype).

Where: beside numba's own cache, ``__pycache__`` next to the module, or
under ``NUMBA_CACHE_DIR`` (``engine.numba_cache_dir``) when that is set.
Freshness: the module's file name carries a hash of the kernel module's
source, this file, the Python, numpy and numba versions and the CPU model.
Any change gives a new name, so a stale build is never loaded.

When it is built: ``python -m engine.kernels`` builds every module now.
``actortrader run`` (through :func:`build_in_background`) starts that build
at low priority in a child process the first time it finds none, and runs on
the JIT meanwhile; the next start loads the built modules. The build needs a
C compiler. If it fails, the reason is kept beside the module (``.failed``)
and the engine stays on the JIT, which gives the same results.

``ACTORTRADER_KERNELS=jit`` turns the compiled modules off (no load, no build).

This is an edge module of ``engine/``: it reads and writes compiled code on
disk, like numba's own cache, and starts the build process.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

MODE_ENV = "ACTORTRADER_KERNELS"
MODES = ("auto", "jit")

# A nogil kernel called on fewer items than this runs a twin that holds the GIL. Why: a
# live batch is one tick, the kernel's work well under a microsecond, and giving the GIL
# up hands it to any thread that wants it; the loop thread then waits for that thread's
# next blocking call, or up to the 5 ms switch interval (measured here: the two nogil
# kernels of the default strategy took 9.3% of the loop's samples over one-tick batches,
# 4.8% holding the GIL). 1024 items is a few microseconds of work: below it the
# hand-over costs more than the other threads gain.
NOGIL_MIN_ITEMS = 1024
HELD_SUFFIX = "__held"  # the exported name of a nogil kernel's GIL-holding twin

# The modules whose kernels ship with the engine: what ``python -m engine.kernels`` builds.
BUILTIN_MODULES = ("engine.indicators", "engine.orders", "engine.risk", "strategies.rsi_mean_reversion",
                   "strategies.sma_cross")  # fmt: skip

# Argument vocabulary: scalar float64 / int64, and 1-D C-contiguous arrays by
# dtype; a trailing "!" marks an array the kernel writes.
_SCALARS = {"f8": "float64", "i8": "int64"}
_ARRAYS = {"f8[]": np.dtype(np.float64), "i8[]": np.dtype(np.int64), "i1[]": np.dtype(np.int8)}


def mode() -> str:
    value = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{MODE_ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


class Kernel:
    """One declared kernel: its Python source function, signature and GIL policy."""

    def __init__(self, fn: Callable[..., Any], specs: tuple[str, ...], nogil: bool):
        for spec in specs:
            if spec not in _SCALARS and spec.rstrip("!") not in _ARRAYS:
                raise ValueError(f"kernel {fn.__qualname__}: unknown argument type {spec!r}")
        argnames = fn.__code__.co_varnames[: fn.__code__.co_argcount]
        if len(argnames) != len(specs):
            raise ValueError(f"kernel {fn.__qualname__}: {len(specs)} argument types for {len(argnames)} arguments")
        self.fn, self.specs, self.nogil, self.argnames = fn, specs, nogil, argnames
        self.module, self.name = fn.__module__, fn.__name__
        self._jit: Any = None

    @property
    def jit(self) -> Any:
        """The numba dispatcher for this kernel (imports numba on first use)."""
        if self._jit is None:
            from numba import njit

            self._jit = njit(cache=True, nogil=self.nogil)(self.fn)
        return self._jit

    def numba_argtypes(self) -> tuple[Any, ...]:
        from numba import types
        from numba.np.numpy_support import from_dtype

        out = []
        for spec in self.specs:
            if spec in _SCALARS:
                out.append(getattr(types, _SCALARS[spec]))
            else:
                dtype = from_dtype(_ARRAYS[spec.rstrip("!")])
                out.append(types.Array(dtype, 1, "C", readonly=not spec.endswith("!")))
        return tuple(out)

    def guarded(self, compiled: Callable[..., Any], held: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """``compiled`` behind a check that the arguments fit its signature; else the JIT.

        ``held``: the same kernel compiled holding the GIL (see
        :data:`NOGIL_MIN_ITEMS`), run when the first array argument is shorter
        than that. Generated source, because this sits on the per-batch path:
        the checks cost about what numba's own dispatcher spends typing the arguments.
        """
        checks = []
        env = {"_ndarray": np.ndarray, "_aot": compiled, "_held": held, "_off": self._off_signature,
               "_min": NOGIL_MIN_ITEMS, "_f8": frozenset((float, int, np.float64)), "_i8": frozenset((int, np.int64))}
        for arg, spec in zip(self.argnames, self.specs, strict=True):
            if spec in _SCALARS:
                checks.append(f"{arg}.__class__ in _{spec}")
            else:
                dtype = _ARRAYS[spec.rstrip("!")]
                env[f"_dt_{arg}"], env[f"_st_{arg}"] = dtype, (dtype.itemsize,)
                # strides == (itemsize,) is "1-D and C-contiguous" in one attribute read
                check = f"{arg}.__class__ is _ndarray and {arg}.dtype is _dt_{arg} and {arg}.strides == _st_{arg}"
                checks.append(f"({check} and {arg}.flags.writeable)" if spec.endswith("!") else f"({check})")
        args = ", ".join(self.argnames)
        short = ""
        if held is not None:
            sized = next(a for a, spec in zip(self.argnames, self.specs, strict=True) if spec not in _SCALARS)
            short = f"        if len({sized}) < _min:\n            return _held({args})\n"
        src = (f"def {self.name}({args}):\n"
               f"    if {' and '.join(checks)}:\n"
               f"{short}"
               f"        return _aot({args})\n"
               f"    return _off({args})\n")  # fmt: skip
        exec(compile(src, f"<kernel {self.module}.{self.name}>", "exec"), env)
        fn = env[self.name]
        fn.__doc__, fn.__module__, fn.__qualname__, fn.__wrapped__ = self.fn.__doc__, self.module, self.name, self.fn
        fn.py_func = self.fn
        return fn

    def _off_signature(self, *args: Any) -> Any:
        if self._jit is None:
            got = ", ".join(_describe(a) for a in args)
            logger.warning(f"kernel {self.module}.{self.name}({got}) is outside its compiled signature "
                           f"({', '.join(self.specs)}): running it on the numba JIT")  # fmt: skip
        return self.jit(*args)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        layout = "C" if value.flags.c_contiguous else "strided"
        return f"{value.dtype}[{value.ndim}-D {layout}{'' if value.flags.writeable else ' read-only'}]"
    return type(value).__name__


# Per process: the kernels declared per module, and what each module runs on.
_DECLARED: dict[str, list[Kernel]] = {}
_LOADED: dict[str, Any] = {}  # module -> its compiled extension module, or None
_BUILD_STARTED = False


def kernel(*specs: str, nogil: bool = True) -> Callable[[Callable[..., Any]], Any]:
    """Declare a numba kernel and the signature it is compiled for ahead of time.

    ``nogil`` releases the GIL while it runs, for loops long enough that other
    threads should go on: on the JIT always; compiled ahead of time, from
    :data:`NOGIL_MIN_ITEMS` items of its first array argument on (a shorter
    call runs a twin compiled holding the GIL).
    """

    def wrap(fn: Callable[..., Any]) -> Any:
        k = Kernel(fn, specs, nogil)
        _DECLARED.setdefault(k.module, []).append(k)
        ext = _load(k.module)
        compiled = getattr(ext, k.name, None) if ext is not None else None
        if compiled is None:
            return k.jit
        return k.guarded(compiled, getattr(ext, k.name + HELD_SUFFIX, None) if nogil else None)

    return wrap


def status() -> dict[str, str]:
    """Each module with declared kernels: "aot" (compiled module loaded) or "jit"."""
    return {m: "aot" if _LOADED.get(m) is not None else "jit" for m in _DECLARED}


# ------------------------------------------------------------ files and freshness
def _source_file(module: str) -> Path | None:
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None)
    if path is None:
        spec = importlib.util.find_spec(module)
        path = spec.origin if spec is not None else None
    return Path(path) if path and path.endswith(".py") else None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _cpu_model() -> str:
    """The CPU's model and feature flags: code built for this host must not load on a CPU with fewer."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            key = line.split(":", 1)[0].strip()
            if key in ("model name", "flags", "Features") and key not in found:
                found[key] = line.split(":", 1)[1].strip()
            if len(found) >= 2:
                break
    return " | ".join(found.values()) or platform.processor()


_ENV_KEY: str | None = None


def _env_key() -> str:
    global _ENV_KEY
    if _ENV_KEY is None:
        parts = [sys.version, platform.machine(), _cpu_model(), np.__version__, _version("numba"), _version("llvmlite"),
                 Path(__file__).read_text(encoding="utf-8")]  # fmt: skip
        _ENV_KEY = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return _ENV_KEY


def extension_path(module: str) -> Path | None:
    """Where ``module``'s compiled kernels live (None: the module has no source file)."""
    src = _source_file(module)
    if src is None:
        return None
    key = hashlib.sha256(_env_key().encode() + src.read_bytes()).hexdigest()[:16]
    name = f"_aot_{module.replace('.', '_')}_{key}"
    cache = os.environ.get("NUMBA_CACHE_DIR")  # where numba keeps its cache, ours goes too
    where = Path(cache) / "actortrader-aot" if cache else src.parent / "__pycache__"
    return where / (name + importlib.machinery.EXTENSION_SUFFIXES[0])


def _ext_name(path: Path) -> str:
    return path.name.split(".", 1)[0]


def load_extension(path: Path) -> Any:
    """Import the compiled kernels at ``path`` (ImportError if it is not a loadable module)."""
    name = _ext_name(path)
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    ext = importlib.util.module_from_spec(spec)
    loader.exec_module(ext)
    return ext


def _load(module: str) -> Any:
    if module in _LOADED:
        return _LOADED[module]
    ext = None
    path = extension_path(module) if mode() == "auto" else None
    if path is not None and path.exists():
        try:
            ext = load_extension(path)
        except (ImportError, OSError) as exc:
            logger.warning(f"compiled kernels of {module} at {path} did not load ({exc}): using the numba JIT")
    _LOADED[module] = ext
    return ext


# ------------------------------------------------------------ building
def _failure_path(path: Path) -> Path:
    return path.with_suffix(".failed")


def build_state(module: str) -> tuple[str, str]:
    """("built" | "failed" | "pending" | "none", why it failed): ``module``'s compiled kernels on disk."""
    path = extension_path(module)
    if path is None:
        return "none", ""
    if path.exists():
        return "built", ""
    failure = _failure_path(path)
    if failure.exists():
        reason = failure.read_text(encoding="utf-8", errors="replace").strip()
        return "failed", reason.splitlines()[0] if reason else "no reason kept"
    return "pending", ""


def needs_build(module: str) -> bool:
    """True if ``module`` has no fresh compiled kernels, no recorded failure to build them, and a place to put them."""
    if build_state(module)[0] != "pending":
        return False
    where = extension_path(module).parent
    while not where.exists() and where != where.parent:
        where = where.parent
    return os.access(where, os.W_OK)  # a read-only install stays on the JIT, without retrying every start


def build_in_background() -> bool:
    """Start building compiled kernels for the modules running on the JIT (once per process).

    A child process at the lowest CPU priority: this run goes on with the JIT,
    the next start loads the result. True if a build was started.
    """
    global _BUILD_STARTED
    if _BUILD_STARTED or mode() != "auto":
        return False
    todo = [m for m, ext in _LOADED.items() if ext is None and needs_build(m)]
    if not todo:
        return False
    _BUILD_STARTED = True
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    kwargs: dict[str, Any] = {"start_new_session": True}
    if hasattr(os, "nice"):
        kwargs["preexec_fn"] = lambda: os.nice(19)
    subprocess.Popen([sys.executable, "-m", "engine.kernels", *todo], env=env, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)  # fmt: skip
    logger.info(f"building compiled kernels for {', '.join(todo)} in the background (this run uses the numba JIT)")
    return True


@contextlib.contextmanager
def _locked(directory: Path):
    """One build per directory at a time, across processes (a second builder waits)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".aot.lock", "w") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: builds are rare enough to go unlocked
            pass
        yield


def _release_gil_per_kernel(nogil_funcs: set[Any]) -> None:
    """Make pycc honour each kernel's ``nogil``: pycc compiles every export holding the GIL.

    The wrapper that releases the GIL is numba's own (``Flags.release_gil``,
    as ``@njit(nogil=True)`` sets it); pycc only never asks for it.
    """
    import numba.pycc.compiler as pycc_compiler

    original = pycc_compiler.compile_extra
    if getattr(original, "_per_kernel_gil", False):
        original = original.__wrapped__

    def compile_extra(typingctx, targetctx, func, args, return_type, flags, locals, **kw):
        flags = flags.copy()
        flags.release_gil = func in nogil_funcs
        return original(typingctx, targetctx, func, args, return_type, flags, locals, **kw)

    compile_extra._per_kernel_gil, compile_extra.__wrapped__ = True, original
    pycc_compiler.compile_extra = compile_extra


def build(module: str) -> Path:
    """Compile ``module``'s declared kernels into its extension module (run with the JIT mode on).

    Raises RuntimeError naming the module when it cannot be built; a failed
    compile is also recorded beside the module, so background builds stop retrying it.
    """
    importlib.import_module(module)
    declared = _DECLARED.get(module)
    path = extension_path(module)
    if not declared or path is None:
        raise RuntimeError(f"{module} declares no @kernel functions")
    with _locked(path.parent):
        if path.exists():
            return path
        try:
            _compile(module, declared, path)
        except Exception as exc:
            with contextlib.suppress(OSError):
                _failure_path(path).write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
            raise RuntimeError(f"{module}: compiling its kernels failed: {type(exc).__name__}: {exc}") from exc
        _failure_path(path).unlink(missing_ok=True)
        _remove_older_builds(module, path)
    return path


def _remove_older_builds(module: str, current: Path) -> None:
    """Builds of earlier sources of ``module`` (a process that loaded one keeps its mapping)."""
    stem = f"_aot_{module.replace('.', '_')}_"
    for old in current.parent.glob(stem + "*"):
        name = _ext_name(old)
        if name != _ext_name(current) and len(name) == len(stem) + 16:  # this module's, not "<module>_more"'s
            with contextlib.suppress(OSError):
                old.unlink()


def _twin(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The same code and globals as ``fn`` in a new function object (pycc keys its GIL flag on the object)."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + HELD_SUFFIX, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + HELD_SUFFIX
    return twin


def _compile(module: str, declared: list[Kernel], path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending deprecation notice
        from numba.pycc import CC

    _release_gil_per_kernel({k.fn for k in declared if k.nogil})
    cc = CC(_ext_name(path))
    cc.target_cpu = "host"  # built where it runs: the file name carries the CPU model
    for k in declared:
        argtypes = k.numba_argtypes()
        k.jit.compile(argtypes)  # types the kernel once, for the return type pycc needs
        signature = k.jit.overloads[argtypes].signature.return_type(*argtypes)
        cc.export(k.name, signature)(k.fn)
        if k.nogil:  # the twin for short calls: another function object, so it is compiled holding the GIL
            cc.export(k.name + HELD_SUFFIX, signature)(_twin(k.fn))
    with tempfile.TemporaryDirectory(prefix="actortrader-aot-", dir=path.parent) as tmp:
        cc.output_dir = tmp
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc.compile()
        built = [p for p in Path(tmp).iterdir() if p.name.startswith(_ext_name(path)) and p.suffix in (".so", ".pyd")]
        if not built:
            raise RuntimeError(f"pycc produced no extension module in {tmp}")
        os.replace(built[0], path)


def main(argv: list[str] | None = None) -> int:
    """Build the compiled kernels of ``argv``'s modules (default: the engine's own); 1 if any failed."""
    modules = list(argv if argv is not None else sys.argv[1:]) or list(BUILTIN_MODULES)
    failed = 0
    for module in modules:
        try:
            print(f"{module}: {build(module)}")
        except Exception as exc:  # noqa: BLE001 - reported; the engine stays on the JIT for this module
            failed += 1
            print(f"{module}: not built ({exc})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ[MODE_ENV] = "jit"  # the build compiles from source; it must not load an older build
    from engine.kernels import main as _main

    sys.exit(_main())
