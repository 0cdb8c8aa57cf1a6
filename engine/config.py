"""config.toml -> typed, frozen, validated structs.

Why msgspec: one declaration gives types, defaults, constraints and
unknown-key rejection, and errors carry the JSON path of the bad value, which
we turn into the dotted key a trader reads in the file
(``risk.max_order_qty: expected a number > 0, got -5``).

The struct defaults *are* the embedded configuration: ``actortrader run``
works with no file at all, and ``config.toml`` at the repository root spells
the same values out with comments (a test keeps the two equal).

Secrets never need to be in the file: ``ACTORTRADER_JWT_SECRET`` (and any
``ACTORTRADER_<SECTION>__<KEY>``) override it, and :func:`redacted` blanks
every secret before config is printed, logged or served.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegFloat = Annotated[float, Meta(ge=0)]
PositiveInt = Annotated[int, Meta(gt=0)]
NonNegInt = Annotated[int, Meta(ge=0)]
Port = Annotated[int, Meta(ge=0, le=65535)]
Symbol = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,31}$")]
BatchSize = Annotated[int, Meta(ge=1, le=65536)]
Fraction = Annotated[float, Meta(ge=0, le=1)]

SECRET_KEYS = frozenset({"jwt_secret", "api_key", "api_secret", "password", "passphrase"})
ENV_PREFIX = "ACTORTRADER_"


class ConfigError(Exception):
    """A configuration problem a user can fix; ``str()`` names key, value and expectation."""

    def __init__(self, messages: list[str]):
        super().__init__("\n".join(messages))
        self.messages = messages


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class EngineSection(_Section, frozen=True):
    data_dir: str = "var/data"
    shutdown_timeout_s: PositiveFloat = 10.0
    numba_cache_dir: str = ""
    # Threads the pipeline's actors run on (actors/loop.py): 0 = one per actor (pykka's way),
    # 1 = all on one shared thread, 2 = market side (feed, indicators, strategies, safety)
    # and order side (orders, venue) on one thread each.
    pipeline_threads: Annotated[int, Meta(ge=0, le=2)] = 1


class LoggingSection(_Section, frozen=True):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"
    dir: str = "var/log"
    json_file: str = "actortrader.jsonl"
    rotation: str = "50 MB"
    retention: str = "14 days"
    console: bool = True


class Instrument(_Section, frozen=True):
    symbol: Symbol
    tick_size: PositiveFloat = 0.01
    lot_size: PositiveFloat = 1.0
    # Synthetic feed parameters (ignored for file replay).
    start_price: PositiveFloat = 100.0
    volatility: NonNegFloat = 0.0002  # std-dev of a tick's log return


class FeedSection(_Section, frozen=True):
    source: Literal["synthetic", "file"] = "synthetic"
    path: str = ""
    symbol: str = ""  # symbol of a one-symbol file; empty = file has a symbol column
    kind: Literal["ticks", "bars"] = "ticks"
    batch_size: BatchSize = 4096
    max_in_flight: Annotated[int, Meta(ge=1, le=1024)] = 4  # credits: batches not yet fully processed
    rate: NonNegFloat = 1000.0  # synthetic ticks per second; 0 = as fast as possible
    seed: int = 7
    max_ticks: NonNegInt = 0  # 0 = unbounded (synthetic) / whole file
    rejects_file: str = "rejects.csv"  # relative to engine.data_dir
    checkpoint_every: NonNegInt = 64  # replay: pipeline checkpoint every N batches (0 = off)


class IndicatorSpec(_Section, frozen=True):
    kind: Literal["rsi", "sma", "ema", "bollinger", "macd", "atr"]
    period: Annotated[int, Meta(ge=2, le=100000)] = 14
    symbols: list[str] = msgspec.field(default_factory=lambda: ["*"])
    k: PositiveFloat = 2.0  # bollinger width in std-devs
    fast: Annotated[int, Meta(ge=2, le=100000)] = 12  # macd
    slow: Annotated[int, Meta(ge=2, le=100000)] = 26
    signal: Annotated[int, Meta(ge=1, le=100000)] = 9


class StrategySpec(_Section, frozen=True):
    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    cls: Annotated[str, Meta(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] = "strategies.rsi_mean_reversion:RsiMeanReversion"
    symbols: list[str] = msgspec.field(default_factory=lambda: ["*"])
    params: dict[str, Any] = {}
    enabled: bool = True


class RiskSection(_Section, frozen=True):
    max_order_qty: PositiveFloat = 1000.0
    max_notional: PositiveFloat = 1_000_000.0
    max_position: PositiveFloat = 10_000.0
    price_collar_pct: PositiveFloat = 5.0  # % away from the last trade a limit price may be
    max_orders_per_s: PositiveFloat = 100.0  # event time in replay, wall time live; denies, never queues
    daily_loss_limit: PositiveFloat = 100_000.0
    daily_loss_action: Literal["REDUCING", "HALTED"] = "HALTED"
    stale_data_s: NonNegFloat = 0.0  # 0 disables (replay); live default set in config.toml
    require_warm_indicators: bool = True
    initial_state: Literal["ACTIVE", "REDUCING", "HALTED"] = "ACTIVE"


class VenueSection(_Section, frozen=True):
    kind: Literal["paper", "live"] = "paper"
    slippage_bps: NonNegFloat = 0.0
    fee_bps: NonNegFloat = 0.0
    fee_per_unit: NonNegFloat = 0.0
    partial_fills: bool = False
    url: str = ""  # live venues only
    api_key: str = ""
    api_secret: str = ""
    connect_timeout_s: PositiveFloat = 5.0


class JournalSection(_Section, frozen=True):
    enabled: bool = True
    dir: str = "var/journal"
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"


class SupervisionSection(_Section, frozen=True):
    max_restarts: NonNegInt = 5
    period_s: PositiveFloat = 30.0
    backoff_min_s: NonNegFloat = 0.0
    backoff_max_s: NonNegFloat = 5.0
    backoff_jitter: Fraction = 0.1
    heartbeat_interval_s: PositiveFloat = 1.0
    heartbeat_misses: PositiveInt = 3
    buffer_while_down: NonNegInt = 1024  # messages held for an actor being restarted


class MonitorSection(_Section, frozen=True):
    sample_interval_s: PositiveFloat = 1.0
    history: PositiveInt = 600


class ApiSection(_Section, frozen=True):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 8700
    jwt_secret: str = ""  # prefer ACTORTRADER_JWT_SECRET; empty + paper + loopback = random per process
    jwt_secret_file: str = ""
    issuer: str = "actortrader"
    audience: str = "actortrader-api"
    access_ttl_s: PositiveInt = 900
    refresh_ttl_s: PositiveInt = 30 * 24 * 3600
    users_file: str = "var/users.json"
    requests_per_minute: PositiveInt = 60
    login_attempts: PositiveInt = 5
    login_window_s: PositiveInt = 900
    allowed_hosts: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1", "localhost", "[::1]"])
    cors_origins: list[str] = []
    max_body_bytes: PositiveInt = 65536
    tls_certfile: str = ""
    tls_keyfile: str = ""


class LiveSection(_Section, frozen=True):
    confirm: bool = False  # live also needs ACTORTRADER_LIVE_CONFIRM=yes in the environment


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    mode: Literal["paper", "live"] = "paper"
    engine: EngineSection = EngineSection()
    logging: LoggingSection = LoggingSection()
    instruments: list[Instrument] = msgspec.field(default_factory=lambda: [Instrument(symbol="SYN")])
    feed: FeedSection = FeedSection()
    indicators: list[IndicatorSpec] = msgspec.field(default_factory=lambda: [IndicatorSpec(kind="rsi", period=14)])
    strategies: list[StrategySpec] = msgspec.field(default_factory=lambda: [StrategySpec(id="rsi_mr")])
    risk: RiskSection = RiskSection()
    venue: VenueSection = VenueSection()
    journal: JournalSection = JournalSection()
    supervision: SupervisionSection = SupervisionSection()
    monitor: MonitorSection = MonitorSection()
    api: ApiSection = ApiSection()
    live: LiveSection = LiveSection()

    def instrument(self, symbol: str) -> Instrument | None:
        for inst in self.instruments:
            if inst.symbol == symbol:
                return inst
        return None


# --------------------------------------------------------------------------
# Loading


def default_config() -> Config:
    return Config()


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    """Load ``path`` (or the embedded defaults when None), apply env overrides, validate.

    Raises :class:`ConfigError` with one line per problem.
    """
    env = dict(os.environ) if env is None else env
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError([f"{source}: file not found"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{source}: cannot read: {exc}"]) from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{source}: malformed TOML: {_toml_position(exc, text)}"]) from None
    raw = apply_env_overrides(raw, env)
    return config_from_dict(raw, source=source)


def config_from_dict(raw: dict[str, Any], source: str = "<config>") -> Config:
    try:
        cfg = msgspec.convert(raw, Config, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError([f"{source}: {_explain(exc, raw)}"]) from None
    problems = _cross_checks(cfg)
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    return cfg


def apply_env_overrides(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """``ACTORTRADER_JWT_SECRET`` and ``ACTORTRADER_<SECTION>__<KEY>=value``.

    Values are parsed as TOML scalars when they parse (``true``, ``5``, ``1.5``)
    and taken as strings otherwise.
    """
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    secret = env.get(ENV_PREFIX + "JWT_SECRET")
    if secret:
        out.setdefault("api", {})
        out["api"] = {**out["api"], "jwt_secret": secret}
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if not section or not key:
            continue
        parsed = _parse_env_value(value)
        if section == "mode" or key == "":
            continue
        current = out.get(section, {})
        if not isinstance(current, dict):
            continue
        out[section] = {**current, key: parsed}
    return out


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _cross_checks(cfg: Config) -> list[str]:
    problems = []
    symbols = [i.symbol for i in cfg.instruments]
    seen = set()
    for idx, s in enumerate(symbols):
        if s in seen:
            problems.append(f"instruments[{idx}].symbol: duplicate symbol {s!r}")
        seen.add(s)
    if cfg.feed.source == "file" and not cfg.feed.path:
        problems.append("feed.path: expected a file path when feed.source = 'file', got ''")
    if cfg.feed.source == "synthetic" and not symbols:
        problems.append("instruments: expected at least one instrument for the synthetic feed, got []")
    ids = set()
    for idx, st in enumerate(cfg.strategies):
        if st.id in ids:
            problems.append(f"strategies[{idx}].id: duplicate strategy id {st.id!r}")
        ids.add(st.id)
    for idx, ind in enumerate(cfg.indicators):
        if ind.kind == "macd" and ind.fast >= ind.slow:
            problems.append(f"indicators[{idx}].fast: expected fast < slow ({ind.slow}), got {ind.fast}")
    sup = cfg.supervision
    if sup.backoff_max_s < sup.backoff_min_s:
        problems.append(
            f"supervision.backoff_max_s: expected a number >= backoff_min_s ({sup.backoff_min_s}), got {sup.backoff_max_s}"
        )
    for key in ("max_order_qty", "max_notional", "max_position", "daily_loss_limit"):
        if math.isinf(getattr(cfg.risk, key)):
            problems.append(f"risk.{key}: expected a finite number, got inf")
    return problems


_PATH_RE = re.compile(r" - at `\$(.*)`$")


def _explain(exc: msgspec.ValidationError, raw: dict[str, Any]) -> str:
    """Turn msgspec's message into ``dotted.key: expected ..., got <value>``."""
    text = str(exc)
    match = _PATH_RE.search(text)
    path = match.group(1) if match else ""
    body = text[: match.start()] if match else text
    dotted = _dotted(path)
    unknown = re.match(r"Object contains unknown field `([^`]+)`", body)
    if unknown:
        key = f"{dotted}.{unknown.group(1)}" if dotted else unknown.group(1)
        return f"{key}: unknown key (not a setting; check the spelling)"
    missing = re.match(r"Object missing required field `([^`]+)`", body)
    if missing:
        key = f"{dotted}.{missing.group(1)}" if dotted else missing.group(1)
        return f"{key}: required key is missing"
    value = _lookup(raw, path)
    expected = _expected(body)
    return f"{dotted or '(top level)'}: {expected}, got {_show(value)}"


def _dotted(path: str) -> str:
    # "$.risk.max_order_qty" -> "risk.max_order_qty"; "$.instruments[0].symbol" stays indexed
    return path.lstrip(".")


def _lookup(raw: Any, path: str) -> Any:
    node = raw
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        key, index = part
        try:
            node = node[int(index)] if index else node[key]
        except (KeyError, IndexError, TypeError):
            return "<missing>"
    return node


def _expected(body: str) -> str:
    rules = [
        (r"Expected `(.+)` >= (\S+)", lambda m: f"expected a number >= {m.group(2)}"),
        (r"Expected `(.+)` > (\S+)", lambda m: f"expected a number > {m.group(2)}"),
        (r"Expected `(.+)` <= (\S+)", lambda m: f"expected a number <= {m.group(2)}"),
        (r"Expected `(.+)` < (\S+)", lambda m: f"expected a number < {m.group(2)}"),
        (r"Expected `str` matching regex '(.+)'", lambda m: f"expected text matching {m.group(1)}"),
        (r"Invalid enum value (.+)", lambda m: "expected one of the allowed values"),
        (r"Expected `(.+)`, got `(.+)`", lambda m: f"expected {_article(m.group(1))}"),
    ]
    for pattern, fmt in rules:
        m = re.match(pattern, body)
        if m:
            return fmt(m)
    return f"invalid value ({body.strip()})"


def _article(typ: str) -> str:
    names = {
        "int": "an integer", "float": "a number", "str": "text", "bool": "true or false",
        "array": "a list", "object": "a table", "int | float": "a number",
    }  # fmt: skip
    if typ.startswith("'") or "'" in typ:
        return f"one of {typ}"
    return names.get(typ, f"`{typ}`")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _toml_position(exc: tomllib.TOMLDecodeError, text: str) -> str:
    msg = str(exc)
    m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
    if m:
        return f"line {m.group(1)}, column {m.group(2)}: {msg[: m.start()].strip()}"
    if "end of document" in msg:
        lines = text.count("\n") + 1
        return f"line {lines}: {msg}"
    return msg


# --------------------------------------------------------------------------
# Printing


def to_dict(cfg: Config) -> dict[str, Any]:
    return msgspec.to_builtins(cfg)


def redacted(cfg: Config | dict[str, Any]) -> dict[str, Any]:
    """A plain dict of ``cfg`` with every secret replaced by ``"***"`` (or ``""`` if unset)."""
    data = to_dict(cfg) if isinstance(cfg, Config) else cfg

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (("***" if v else "") if k in SECRET_KEYS and isinstance(v, str) else walk(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(data)


def dumps_redacted(cfg: Config) -> str:
    """The effective config as indented JSON with secrets redacted, for `config show`."""
    import json

    return json.dumps(redacted(cfg), indent=2)
