"""Logging setup: JSON-lines file, console, stdlib bridge, secret redaction, idempotence, user errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from loguru import logger

from engine.config import ConfigError, LoggingSection
from engine.logging_setup import _state, add_secret, setup_logging, shutdown_logging

SECRET = "s3cr3t-jwt-key-0123456789"


@pytest.fixture(autouse=True)
def clean_logging():
    yield
    shutdown_logging()


def lines(path: Path) -> list[dict]:
    logger.complete()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_json_lines_file_with_fields(tmp_path):
    path = setup_logging(LoggingSection(dir=str(tmp_path / "log"), console=False), secrets=[])
    assert path == tmp_path / "log" / "actortrader.jsonl"
    logger.bind(actor="orders").warning("order {} rejected", "c-1")
    rows = lines(path)
    assert len(rows) == 1
    row = rows[0]
    assert row["message"] == "order c-1 rejected" and row["level"] == "WARNING"
    assert row["extra"] == {"actor": "orders"} and row["function"] == "test_json_lines_file_with_fields"
    assert "ts" in row and "thread" in row


def test_secrets_never_reach_any_sink(tmp_path, capsys):
    path = setup_logging(LoggingSection(dir=str(tmp_path), console=True), secrets=[SECRET, ""])
    logger.bind(header=f"Bearer {SECRET}").info("config loaded with key {}", SECRET)
    try:
        raise ValueError(f"bad token {SECRET}")
    except ValueError:
        logger.exception("login failed")
    logging.getLogger("pykka").error("stdlib says %s", SECRET)
    text = path.read_text(encoding="utf-8")
    console = capsys.readouterr().err
    for out in (text, console):
        assert SECRET not in out
        assert "config loaded with key ***" in out and "bad token ***" in out and "stdlib says ***" in out
    rows = lines(path)
    assert rows[0]["extra"]["header"] == "Bearer ***"
    assert "ValueError: bad token ***" in rows[1]["exception"]


def test_added_secret_is_redacted_from_then_on(tmp_path):
    path = setup_logging(LoggingSection(dir=str(tmp_path), console=False), secrets=[])
    generated = "generated-at-start-abcdef"
    add_secret(generated)
    logger.info("key {}", generated)
    assert lines(path)[0]["message"] == "key ***"


def test_stdlib_logging_is_routed_into_the_file(tmp_path):
    path = setup_logging(LoggingSection(dir=str(tmp_path), console=False), secrets=[])
    logging.getLogger("pykka").warning("actor %s stopped", "x")
    rows = lines(path)
    assert rows[-1]["message"] == "actor x stopped" and rows[-1]["level"] == "WARNING"


def test_setup_twice_does_not_duplicate_sinks(tmp_path):
    cfg = LoggingSection(dir=str(tmp_path), console=True)
    setup_logging(cfg, secrets=[])
    path = setup_logging(cfg, secrets=[])
    assert len(_state["sinks"]) == 2
    assert sum(1 for h in logging.getLogger().handlers if h is _state["intercept"]) == 1
    logger.info("once")
    assert [r["message"] for r in lines(path)] == ["once"]


def test_level_filters(tmp_path):
    path = setup_logging(LoggingSection(dir=str(tmp_path), console=False, level="WARNING"), secrets=[])
    logger.info("quiet")
    logger.error("loud")
    assert [r["message"] for r in lines(path)] == ["loud"]


def test_rotation_from_config(tmp_path):
    cfg = LoggingSection(dir=str(tmp_path), console=False, rotation="2 KB", retention="1 day")
    setup_logging(cfg, secrets=[])
    for i in range(200):
        logger.info("line {} {}", i, "x" * 40)
    logger.complete()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "actortrader.jsonl" in files
    assert len(files) >= 3  # ~12 KB written into 2 KB files
    assert all(p.stat().st_size < 4096 for p in tmp_path.iterdir())


@pytest.mark.parametrize("field, value", [("rotation", "every blue moon"), ("retention", "forever-ish")])
def test_bad_rotation_or_retention_names_the_key(tmp_path, field, value):
    with pytest.raises(ConfigError, match=f"logging.{field}"):
        setup_logging(LoggingSection(dir=str(tmp_path), console=False, **{field: value}), secrets=[])


def test_unwritable_log_dir_names_the_key(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"logging.dir: cannot create .*file/log"):
        setup_logging(LoggingSection(dir=str(blocker / "log"), console=False), secrets=[])


def test_message_with_braces_and_markup_is_safe(tmp_path, capsys):
    path = setup_logging(LoggingSection(dir=str(tmp_path), console=True), secrets=[])
    try:
        raise KeyError("{weird} <red>")
    except KeyError:
        logger.exception("payload {}", "{not a field} <b>")
    assert lines(path)[0]["message"] == "payload {not a field} <b>"
    assert "{weird} <red>" in capsys.readouterr().err
