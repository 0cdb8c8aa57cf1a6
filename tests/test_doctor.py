"""`actortrader doctor`: exit 0 when healthy, 1 with every problem named."""

from __future__ import annotations

import io
import socket


from engine import doctor as doctor_mod
from engine.doctor import doctor


def write_config(tmp_path, *, port: int = 0, data_dir: str | None = None, numba_cache_dir: str = "", extra: str = "") -> str:
    data_dir = data_dir or str(tmp_path / "data")
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[engine]
data_dir = "{data_dir}"
numba_cache_dir = "{numba_cache_dir}"

[journal]
dir = "{tmp_path / 'journal'}"

[logging]
dir = "{tmp_path / 'log'}"

[api]
port = {port}
{extra}
""",
        encoding="utf-8",
    )
    return str(path)


def run(config_path, **kwargs) -> tuple[int, str]:
    out = io.StringIO()
    code = doctor(config_path, stream=out, **kwargs)
    return code, out.getvalue()


def test_healthy_machine_exits_zero_and_reports_versions(tmp_path):
    code, text = run(write_config(tmp_path, numba_cache_dir=str(tmp_path / "nbcache")))
    assert code == 0, text
    for name in ("python", "pykka", "numpy", "numba", "msgspec", "config", "engine.data_dir", "journal.dir",
                 "logging.dir", "numba cache", "api port"):
        assert f"ok    {name}:" in text
    assert text.rstrip().endswith("healthy")
    assert (tmp_path / "data").is_dir() and (tmp_path / "journal").is_dir() and (tmp_path / "log").is_dir()
    assert list((tmp_path / "nbcache").iterdir()) == []  # the probe cleans up after itself


def test_invalid_config_is_named_and_path_checks_are_skipped(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[risk]\nmax_order_qty = -5\n", encoding="utf-8")
    code, text = run(str(path), numba_probe=False)
    assert code == 1
    assert "FAIL  config:" in text and "risk.max_order_qty: expected a number > 0" in text and "got -5" in text
    assert "FAIL  paths: skipped" in text
    assert "2 problem(s): config; paths" in text


def test_missing_config_file(tmp_path):
    code, text = run(str(tmp_path / "nope.toml"), numba_probe=False)
    assert code == 1 and "file not found" in text


def test_unwritable_data_dir_is_named(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    code, text = run(write_config(tmp_path, data_dir=str(blocker / "data")), numba_probe=False)
    assert code == 1
    assert "FAIL  engine.data_dir: cannot create" in text and str(blocker / "data") in text
    assert "ok    journal.dir:" in text


def test_port_in_use_is_named(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, text = run(write_config(tmp_path, port=port), numba_probe=False)
    assert code == 1
    assert f"FAIL  api port: api.port {port} on 127.0.0.1 is already in use" in text


def test_unresolvable_api_host_is_named(tmp_path):
    code, text = run(write_config(tmp_path, port=8799, extra='host = "no-such-host.invalid"'), numba_probe=False)
    assert code == 1 and "api.host 'no-such-host.invalid'" in text


def test_unwritable_numba_cache_dir_is_named(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code, text = run(write_config(tmp_path, numba_cache_dir=str(blocker / "cache")))
    assert code == 1 and "FAIL  numba cache: engine.numba_cache_dir: cannot create" in text


def test_package_problems_are_named(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor_mod, "REQUIREMENTS", (
        ("numpy", "numpy", "999.0", None),
        ("pykka", "pykka", "1.0", "2"),
        ("no_such_pkg_xyz", "no-such-pkg-xyz", "1.0", None),
    ))
    code, text = run(write_config(tmp_path), numba_probe=False)
    assert code == 1
    assert "FAIL  numpy:" in text and "too old: need >= 999.0" in text
    assert "FAIL  pykka:" in text and "too new: need < 2" in text
    assert "FAIL  no_such_pkg_xyz: not installed" in text
    assert "3 problem(s)" in text


def test_version_parsing():
    assert doctor_mod._version_tuple("0.68.1") == (0, 68, 1)
    assert doctor_mod._version_tuple("2.1.0rc1") == (2, 1, 0)
    assert doctor_mod._version_tuple("1.26") < doctor_mod._version_tuple("2.4.6")
