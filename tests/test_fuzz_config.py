"""Mutated config.toml: `actortrader config check` exits 0 or 2 with a message naming the key or line; never a traceback.

Mutations of the shipped config.toml: a line deleted or duplicated, a value
replaced by one of the wrong type, an unknown key added to a section, and
garbage bytes (including invalid UTF-8) spliced in anywhere. Most cases run
in-process through engine.cli.main (fast); a handful run as subprocesses,
where a traceback would really reach the user.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main
from tests.paths import REPO

BASE = (REPO / "config.toml").read_bytes()
LINES = BASE.split(b"\n")
ASSIGN = re.compile(rb"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")
WRONG_VALUES = [b'"text"', b"-5", b"0", b"1e999", b"true", b"[1, 2]", b"{ a = 1 }", b"-1.5", b'""', b"nan"]
GARBAGE = [b"\xff\xfe", b"\x00", b"]]", b"[[", b"= =", b'"', b"\xc3\x28", b"\n[", b"\t=\t", b"\x1b[0m"]
NAMES_SOMETHING = re.compile(r"line \d+|[A-Za-z_][\w\[\]]*(\.[\w\[\]]+)*: ")


def mutate(seed: int) -> tuple[bytes, str, bytes | None]:
    """(mutated file, mutation kind, the key it touched if any)."""
    rng = random.Random(seed)
    lines = list(LINES)
    kind = rng.choice(["delete", "duplicate", "wrong_type", "unknown_key", "garbage"])
    assigns = [i for i, ln in enumerate(lines) if ASSIGN.match(ln)]
    key = None
    if kind == "delete":
        del lines[rng.randrange(len(lines))]
    elif kind == "duplicate":
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif kind == "wrong_type":
        i = rng.choice(assigns)
        key = ASSIGN.match(lines[i]).group(1)
        lines[i] = key + b" = " + rng.choice(WRONG_VALUES)
    elif kind == "unknown_key":
        i = rng.choice(assigns)
        key = b"bogus_" + str(rng.randrange(1000)).encode()
        lines.insert(i + 1, key + b" = 1")
    else:
        data = b"\n".join(lines)
        pos = rng.randrange(len(data))
        return data[:pos] + rng.choice(GARBAGE) + data[pos:], kind, None
    return b"\n".join(lines), kind, key


def check(path, capsys) -> tuple[int, str]:
    rc = main(["config", "check", str(path)])
    out = capsys.readouterr()
    return rc, out.out + out.err


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_config_exits_0_or_2_naming_what_is_wrong(tmp_path, capsys, seed):
    data, kind, key = mutate(seed)
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    rc, text = check(path, capsys)
    assert rc in (0, 2), (kind, rc, text)
    assert "Traceback" not in text
    if rc == 2:
        assert NAMES_SOMETHING.search(text), (kind, text)
        if kind == "unknown_key":
            assert key.decode() in text, text
        if kind == "wrong_type" and "line " not in text:
            assert key.decode() in text, (key, text)
    if kind == "unknown_key":
        assert rc == 2  # unknown keys are always rejected


def test_the_shipped_config_is_valid(capsys):
    rc, text = check(REPO / "config.toml", capsys)
    assert rc == 0, text


@pytest.mark.parametrize("seed", [1, 7, 42, 1234, 99991])
def test_mutations_as_subprocess_never_show_a_traceback(tmp_path, seed):
    data, kind, _ = mutate(seed)
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    out = subprocess.run([sys.executable, "-m", "engine.cli", "config", "check", str(path)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 2), out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    if out.returncode == 2:
        assert NAMES_SOMETHING.search(out.stderr), out.stderr
