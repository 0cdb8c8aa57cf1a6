"""Configuration: typed, frozen, validated; errors name the dotted key, the bad value and the expectation."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

from engine.config import Config, ConfigError, config_from_dict, load_config, redacted
from tests.paths import REPO


def test_config_toml_equals_embedded_defaults():
    assert load_config(REPO / "config.toml") == Config()


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.risk.max_order_qty = 5  # type: ignore[misc]


@pytest.mark.parametrize("raw,expected", [
    ({"risk": {"max_order_qty": -5}}, "risk.max_order_qty: expected a number > 0.0, got -5"),
    ({"risk": {"max_ordr_qty": 5}}, "risk.max_ordr_qty: unknown key"),
    ({"feed": {"batch_size": 0}}, "feed.batch_size: expected a number >= 1, got 0"),
    ({"feed": {"batch_size": 70000}}, "feed.batch_size: expected a number <= 65536, got 70000"),
    ({"engine": {"pipeline_threads": 3}}, "engine.pipeline_threads: expected a number <= 2, got 3"),
    ({"feed": {"batch_size": "big"}}, "feed.batch_size: expected an integer, got 'big'"),
    ({"instruments": [{"symbol": "a b"}]}, "instruments[0].symbol: expected text matching"),
    ({"mode": "lve"}, "mode: expected one of the allowed values, got 'lve'"),
    ({"feed": {"source": "file"}}, "feed.path: expected a file path"),
    ({"strategies": [{"id": "x", "cls": "nocolon"}]}, "strategies[0].cls: expected text matching"),
    ({"api": {"port": 70000}}, "api.port: expected a number <= 65535, got 70000"),
    ({"supervision": {"backoff_min_s": 5, "backoff_max_s": 1}}, "supervision.backoff_max_s: expected a number >= backoff_min_s"),
    ({"indicators": [{"kind": "macd", "fast": 30, "slow": 10}]}, "indicators[0].fast: expected fast < slow"),
])  # fmt: skip
def test_errors_name_key_value_and_expectation(raw, expected):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(raw)
    assert expected in str(exc.value)


def test_env_overrides_and_secret_redaction():
    secret = "s3cr3t-" + "x" * 40
    cfg = load_config(None, env={"ACTORTRADER_JWT_SECRET": secret, "ACTORTRADER_RISK__MAX_ORDER_QTY": "7",
                                 "ACTORTRADER_API__ENABLED": "false"})
    assert cfg.api.jwt_secret == secret and cfg.risk.max_order_qty == 7 and cfg.api.enabled is False
    shown = redacted(cfg)
    assert shown["api"]["jwt_secret"] == "***" and secret not in msgspec.json.encode(shown).decode()


def test_malformed_toml_names_line_and_column(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[risk]\nmax_order_qty = \n")
    with pytest.raises(ConfigError, match=r"line 2, column \d+"):
        load_config(p)


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, **kw)


def test_config_check_exit_codes(tmp_path):
    ok = run_cli("config", "check", "config.toml")
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nmax_order_qty = -5\n[feed]\nbatchsize = 3\n")
    out = run_cli("config", "check", str(bad))
    assert out.returncode == 2
    assert "risk.max_order_qty: expected a number > 0.0, got -5" in out.stderr or "feed.batchsize" in out.stderr
    assert "Traceback" not in out.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('mode = "paper\n')
    out = run_cli("config", "check", str(broken))
    assert out.returncode == 2 and "line 1" in out.stderr and "Traceback" not in out.stderr
    missing = run_cli("config", "check", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_strategy_params_are_validated_by_the_strategy(tmp_path):
    bad = tmp_path / "s.toml"
    bad.write_text('[[strategies]]\nid = "a"\ncls = "strategies.rsi_mean_reversion:RsiMeanReversion"\n'
                   "[strategies.params]\nperiod = 1\n")
    out = run_cli("config", "check", str(bad))
    assert out.returncode == 2 and "strategies[0].params" in out.stderr and "period" in out.stderr
    nomod = tmp_path / "m.toml"
    nomod.write_text('[[strategies]]\nid = "a"\ncls = "nosuch.module:Thing"\n')
    out = run_cli("config", "check", str(nomod))
    assert out.returncode == 2 and "strategies[0].cls" in out.stderr


def test_user_strategy_module_next_to_config_loads(tmp_path):
    (tmp_path / "my_strats.py").write_text(
        "from strategies.rsi_mean_reversion import RsiMeanReversion\nclass Mine(RsiMeanReversion):\n    pass\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[strategies]]\nid = "mine"\ncls = "my_strats:Mine"\n')
    out = run_cli("config", "check", str(cfg))
    assert out.returncode == 0, out.stderr
