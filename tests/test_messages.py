"""Every message type round-trips through msgpack and JSON, arrays included and read-only."""

from __future__ import annotations

import typing

import msgspec
import numpy as np
import pytest

import engine.messages as m


def sample(tp):
    """A value of annotation ``tp`` (deterministic, non-default where it matters)."""
    origin = typing.get_origin(tp)
    if tp is np.ndarray:
        return m.freeze(np.arange(4, dtype=np.float64) * 1.5)
    if tp is int:
        return 3
    if tp is float:
        return 2.5
    if tp is str:
        return "SPY"
    if tp is bool:
        return True
    if tp is bytes:
        return b"\x00\x01"
    if isinstance(tp, type) and issubclass(tp, m.enum.Enum):
        return list(tp)[-1]
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return sample(args[0])
    if origin is typing.Literal:
        return typing.get_args(tp)[0]
    if origin is list:
        return [sample(typing.get_args(tp)[0])]
    if origin is dict:
        k, v = typing.get_args(tp)
        return {sample(k): sample(v)}
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return build(tp)
    raise AssertionError(f"no sample for {tp!r}")


def build(cls):
    hints = typing.get_type_hints(cls, globalns=vars(m))
    return cls(**{f: sample(hints[f]) for f in cls.__struct_fields__})


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b) and not b.flags.writeable
    if isinstance(a, msgspec.Struct):
        return type(a) is type(b) and all(same(getattr(a, f), getattr(b, f)) for f in a.__struct_fields__)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("cls", m.ALL_MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_round_trip_msgpack_and_json(cls):
    msg = build(cls)
    assert same(msg, m.from_msgpack(m.to_msgpack(msg)))
    assert same(msg, m.from_json(m.to_json(msg)))


@pytest.mark.parametrize("cls", m.ALL_MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_messages_are_frozen_and_tagged(cls):
    msg = build(cls)
    assert cls.__struct_config__.frozen and cls.__struct_config__.tag == cls.__name__
    if cls.__struct_fields__:
        field = cls.__struct_fields__[0]
        with pytest.raises(AttributeError):
            setattr(msg, field, getattr(msg, field))


def test_arrays_in_messages_are_read_only():
    tb = build(m.TickBatch)
    with pytest.raises(ValueError):
        tb.price[0] = 1.0
