"""Logging: readable console, JSON-lines file with rotation, secrets never written.

Why one setup function: pykka (and other libraries) log through stdlib
``logging`` while the engine logs through loguru; routing both into loguru
gives one format, one file and one place where secrets are scrubbed.

Redaction happens in a loguru *patcher*, i.e. before any sink sees the
record: the message, every ``extra`` value and the exception text (we format
tracebacks ourselves, without loguru's variable-revealing ``diagnose``) have
each secret replaced by ``***``.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from loguru import logger

from engine.config import ConfigError, LoggingSection

MIN_SECRET_LEN = 4  # shorter "secrets" would blank ordinary words; they are refused with a warning

_state: dict[str, Any] = {"sinks": [], "secrets": (), "intercept": None}


def setup_logging(cfg: LoggingSection, secrets: list[str] | tuple[str, ...] = ()) -> Path:
    """Install the console and JSON-lines sinks; returns the JSON log path.

    Idempotent: a second call replaces the sinks of the first (never duplicates).
    Raises :class:`ConfigError` naming ``logging.*`` keys a user got wrong.
    """
    log_dir = Path(cfg.dir)
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError([f"logging.dir: cannot create {str(log_dir)!r}: {exc.strerror or exc}"]) from None
    path = log_dir / cfg.json_file

    for sink_id in _state["sinks"]:
        try:
            logger.remove(sink_id)
        except ValueError:
            pass
    _state["sinks"] = []
    try:
        logger.remove(0)  # loguru's default stderr sink would duplicate ours
        _state["default_removed"] = True
    except ValueError:
        pass

    set_secrets(secrets)
    logger.configure(patcher=_patch)

    if cfg.console:
        _state["sinks"].append(
            logger.add(sys.stderr, level=cfg.level, format=_console_format, colorize=None, backtrace=False, diagnose=False)
        )
    for key in ("rotation", "retention"):
        problem = _check_file_option(key, getattr(cfg, key))
        if problem:
            raise ConfigError([problem])
    try:
        sink_id = logger.add(
            str(path),
            level=cfg.level,
            format=_json_format,
            rotation=cfg.rotation,
            retention=cfg.retention,
            encoding="utf-8",
            backtrace=False,
            diagnose=False,
            enqueue=False,
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError([f"logging: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"logging.json_file: cannot open {str(path)!r}: {exc.strerror or exc}"]) from None
    _state["sinks"].append(sink_id)
    _intercept_stdlib(cfg.level)
    return path


def _check_file_option(key: str, value: str) -> str:
    """Ask loguru to parse ``value`` on a throwaway sink so the error names the key."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            probe = logger.add(str(Path(tmp) / "probe.log"), **{key: value}, level="CRITICAL", filter=lambda r: False)
        except (ValueError, TypeError) as exc:
            return f"logging.{key}: {exc} (got {value!r})"
        logger.remove(probe)
    return ""


def shutdown_logging() -> None:
    """Undo :func:`setup_logging`: remove our sinks, the stdlib bridge and the patcher
    (loguru's plain stderr sink comes back). Tests and embedding applications use it."""
    for sink_id in _state["sinks"]:
        try:
            logger.remove(sink_id)
        except ValueError:
            pass
    _state["sinks"] = []
    handler = _state["intercept"]
    if handler is not None:
        logging.getLogger().removeHandler(handler)
    logger.configure(patcher=None)
    if _state.get("default_removed"):
        logger.add(sys.stderr)
        _state["default_removed"] = False


def set_secrets(secrets: list[str] | tuple[str, ...]) -> None:
    """Replace the set of strings scrubbed from every record (longest first)."""
    usable = sorted({s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
    short = [s for s in secrets if isinstance(s, str) and 0 < len(s) < MIN_SECRET_LEN]
    _state["secrets"] = tuple(usable)
    if short:
        logger.warning("{} secret(s) shorter than {} characters are not redacted (too short to be secrets)", len(short), MIN_SECRET_LEN)


def add_secret(secret: str) -> None:
    """Scrub one more secret from now on (e.g. a JWT key generated at start-up)."""
    set_secrets(list(_state["secrets"]) + [secret])


def redact(text: str) -> str:
    for secret in _state["secrets"]:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(repr(value))


def _patch(record: dict[str, Any]) -> None:
    record["message"] = redact(record["message"])
    extra = record["extra"]
    for key in list(extra):
        if not key.startswith("_"):
            extra[key] = _redact_value(extra[key])
    exc = record["exception"]
    text = ""
    if exc is not None and exc.type is not None:
        text = redact("".join(traceback.format_exception(exc.type, exc.value, exc.traceback)))
    extra["_exc"] = text
    extra["_json"] = _to_json(record, text)


def _to_json(record: dict[str, Any], exc_text: str) -> str:
    payload = {
        "ts": record["time"].isoformat(),
        "level": record["level"].name,
        "logger": record["name"],
        "function": record["function"],
        "line": record["line"],
        "thread": record["thread"].name,
        "message": record["message"],
    }
    extra = {k: v for k, v in record["extra"].items() if not k.startswith("_")}
    if extra:
        payload["extra"] = extra
    if exc_text:
        payload["exception"] = exc_text
    return json.dumps(payload, default=str, ensure_ascii=False)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}").replace("<", r"\<")


def _console_format(record: dict[str, Any]) -> str:
    line = "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>{thread.name}</cyan> {message}\n"
    exc = record["extra"].get("_exc", "")
    return line + (_escape(exc) if exc else "")


def _json_format(record: dict[str, Any]) -> str:
    return "{extra[_json]}\n"


class _InterceptHandler(logging.Handler):
    """stdlib logging -> loguru (loguru's documented recipe), keeping the caller's depth."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = logging.currentframe(), 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def _intercept_stdlib(level: str) -> None:
    root = logging.getLogger()
    handler = _state["intercept"]
    if handler is None:
        handler = _state["intercept"] = _InterceptHandler()
    if handler not in root.handlers:
        root.addHandler(handler)
    numeric = logging.getLevelName("INFO" if level in ("SUCCESS", "TRACE") else level)
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
