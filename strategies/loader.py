"""Load strategies from config by import path (``package.module:Class``).

A user's own module outside the project loads the same way as long as it is
importable (on ``PYTHONPATH`` or next to the config file: the config file's
folder is put on ``sys.path`` first). Parameters are validated by the
strategy's own ``Params`` struct, and every error names the strategy and key.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import msgspec

from engine.config import Config, StrategySpec
from strategies.base import Strategy


class StrategyLoadError(Exception):
    pass


def load_strategy(spec: StrategySpec, index: int, symbols: list[str], config_dir: Path | None = None) -> Strategy:
    where = f"strategies[{index}]"
    module_name, _, class_name = spec.cls.partition(":")
    if config_dir is not None and str(config_dir) not in sys.path:
        sys.path.insert(0, str(config_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyLoadError(f"{where}.cls: cannot import module {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyLoadError(f"{where}.cls: {spec.cls!r} is not a Strategy subclass")
    try:
        params = msgspec.convert(spec.params, cls.Params, strict=False)
    except msgspec.ValidationError as exc:
        raise StrategyLoadError(f"{where}.params: {exc}") from None
    try:
        return cls(spec.id, params, symbols)
    except (ValueError, TypeError) as exc:
        raise StrategyLoadError(f"{where}.params: {exc}") from None


def strategy_symbols(spec: StrategySpec, cfg: Config) -> list[str]:
    known = [i.symbol for i in cfg.instruments]
    return known if "*" in spec.symbols else [s for s in spec.symbols if s in known]


def load_strategies(cfg: Config, config_dir: Path | None = None) -> list[Strategy]:
    out = []
    for idx, spec in enumerate(cfg.strategies):
        if spec.enabled:
            out.append(load_strategy(spec, idx, strategy_symbols(spec, cfg), config_dir))
    return out
