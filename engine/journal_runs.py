"""Run bookkeeping: where journals live, how replays are named, and which
unfinished replay ``--resume`` continues.

Why a separate module: :mod:`engine.journal` is storage and knows nothing of
configs or data files. This module decides the *policy*:

* paper and live journals never share a directory (``<journal.dir>/paper/``
  vs ``<journal.dir>/live/``), so a paper replay can never be mistaken for,
  or resumed into, a live trading history;
* every replay writes a fresh file named ``<kind>-<UTC timestamp>-<random>.sqlite``;
  names sort by creation time, so "most recent" is "last by name";
* a replay is resumable when its journal says the same data (by
  :func:`fingerprint_file`) and the same config (by :func:`config_hash`) and
  its status is not ``finished``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import secrets
import time
from pathlib import Path
from typing import Any

import msgspec

from engine.config import SECRET_KEYS, Config
from engine.journal import (
    META_CONFIG_HASH,
    META_CREATED_WALL_NS,
    META_DATA_FINGERPRINT,
    META_DATA_PATH,
    META_KIND,
    META_STATUS,
    Journal,
    JournalError,
)

JOURNAL_SUFFIX = ".sqlite"
STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
_FINGERPRINT_CHUNK = 1 << 20  # 1 MiB from each end


def journal_dir(cfg: Config) -> Path:
    """The directory for ``cfg``'s journals: ``<journal.dir>/<mode>`` (paper or live).

    A relative ``journal.dir`` is relative to the working directory, like every
    other path in the config.
    """
    return Path(cfg.journal.dir) / cfg.mode


def new_run_path(directory: Path | str, kind: str = "replay") -> Path:
    """A fresh, unique, sortable journal path in ``directory`` (created if missing).

    ``replay-20261124T201924.123456Z-3fa9c2.sqlite``: the UTC timestamp makes
    names sort by creation time; the random suffix keeps two runs started in
    the same microsecond apart.
    """
    if not _KIND_RE.match(kind):
        raise ValueError(f"journal run kind: expected lowercase letters/digits/underscore, got {kind!r}")
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError("io", f"{directory}: cannot create the journal directory: {exc}") from None
    while True:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        path = directory / f"{kind}-{stamp}-{secrets.token_hex(3)}{JOURNAL_SUFFIX}"
        if not path.exists():
            return path


def list_runs(directory: Path | str, kind: str | None = None) -> list[Path]:
    """Journal files in ``directory``, oldest first (by name, i.e. creation time)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    prefix = f"{kind}-" if kind else ""
    return sorted(p for p in directory.iterdir()
                  if p.name.endswith(JOURNAL_SUFFIX) and p.name.startswith(prefix) and p.is_file())  # fmt: skip


def find_unfinished_run(directory: Path | str, data_fingerprint: str, config_hash: str) -> Path | None:
    """The most recent journal in ``directory`` for the same data and config whose
    status is not ``finished``; None if there is none.

    Journals that cannot be opened (corrupt, newer schema, foreign files) are
    skipped: they can never be resumed, and refusing to start because of an
    unrelated broken file would help nobody.
    """
    for path in reversed(list_runs(directory)):
        try:
            with Journal.open(path, readonly=True) as journal:
                meta = journal.meta()
        except JournalError:
            continue
        if (meta.get(META_DATA_FINGERPRINT) == data_fingerprint
                and meta.get(META_CONFIG_HASH) == config_hash
                and meta.get(META_STATUS) != STATUS_FINISHED):  # fmt: skip
            return path
    return None


def start_run(path: Path | str, *, kind: str = "replay", data_path: str = "", data_fingerprint: str = "",
              config_hash: str = "", synchronous: str = "NORMAL") -> Journal:  # fmt: skip
    """Open a new journal at ``path`` and record the run's identity with status ``running``."""
    journal = Journal.open(path, synchronous=synchronous)
    try:
        journal.update_meta({META_KIND: kind, META_DATA_PATH: data_path, META_DATA_FINGERPRINT: data_fingerprint,
                             META_CONFIG_HASH: config_hash, META_CREATED_WALL_NS: str(time.time_ns()),
                             META_STATUS: STATUS_RUNNING})  # fmt: skip
    except BaseException:
        journal.close()
        raise
    return journal


def finish_run(journal: Journal) -> None:
    """Mark the run finished: ``--resume`` will no longer pick it."""
    journal.set_meta(META_STATUS, STATUS_FINISHED)


def fingerprint_file(path: Path | str) -> str:
    """A fast identity for a (possibly huge) data file: sha256 over its size,
    mtime and the first and last MiB. Changing, appending to or touching the
    file changes the fingerprint; reading 2 MiB keeps it instant."""
    path = Path(path)
    try:
        st = path.stat()
        h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}:".encode())
        with path.open("rb") as fh:
            h.update(fh.read(_FINGERPRINT_CHUNK))
            if st.st_size > _FINGERPRINT_CHUNK:
                fh.seek(max(_FINGERPRINT_CHUNK, st.st_size - _FINGERPRINT_CHUNK))
                h.update(fh.read(_FINGERPRINT_CHUNK))
    except FileNotFoundError:
        raise JournalError("io", f"{path}: data file not found (cannot fingerprint it)") from None
    except OSError as exc:
        raise JournalError("io", f"{path}: cannot read the data file to fingerprint it: {exc}") from None
    return h.hexdigest()


def config_hash(cfg: Config) -> str:
    """sha256 of the config as canonical JSON (sorted keys) with every secret key removed,
    so rotating a password or API key does not make a replay look like a new one."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in SECRET_KEYS}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    data = strip(msgspec.to_builtins(cfg))
    return hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest()

