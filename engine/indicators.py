"""Technical indicators as numba kernels over arrays, with streaming state.

Why this shape
--------------
Numba only pays over arrays (FACTS: a per-tick ``@njit`` call from Python is
slower than plain Python), so every indicator is one kernel that walks a
whole batch. Each kernel reads and writes a small float64 *state vector*;
the batch functions (``rsi``, ``sma``, ...) simply run the kernel from a fresh
state, and the streaming classes (``RSIState``, ...) keep the state between
batches. Streaming over any split of a series therefore gives exactly (bit
for bit) the batch function's output on the concatenation, and a state is
snapshotted by copying one small array.

Conventions (TA-Lib 0.6 / python ``ta-lib`` 0.8, checked by the tests)
-------------------------------------------------------------------------
* Output arrays are float64 and aligned to the input; NaN during warm-up.
  Warm-up ("lookback", index of the first value on a clean series):
  RSI(n) n, SMA(n) n-1, EMA(n) n-1, Bollinger(n) n-1,
  MACD(f, s, g) s-1+g-1 (all three outputs), ATR(n) n.
* RSI: Wilder. Seed = simple mean of the first ``n`` gains and losses, then
  ``avg = avg*((n-1)/n) + x*(1/n)``; RSI = ``100 * (g / (g + l))``. TA-Lib
  writes ``(avg*(n-1) + x) / n``; our form has two independent multiplies
  instead of a mul-add-mul chain, which makes the loop ~1.5x faster than
  TA-Lib's and differs only in the last bits (< 1e-13 relative).
* SMA: running sum (add the new value, divide, subtract the oldest), as TA-Lib.
* EMA: ``k = 2/(n+1)``, seeded with the SMA of the first ``n`` values,
  then ``ema = (x - ema)*k + ema``.
* Bollinger: middle = SMA(n); deviation = population standard deviation from
  the running sum of squares, ``sqrt(mean(x^2) - middle^2)``, read as 0 when
  upper/lower = middle +/- k * deviation. The variance is computed from sums
  of deviations from a re-anchored level (see the kernel), so it is accurate
  where a raw sum of squares cancels; a variance below 1e-12 of the mean
  squared deviation from the anchor is rounding noise and reads as 0 (flat
  windows give exactly zero width, as in TA-Lib).
* MACD: slow EMA seeded with the SMA of the first ``slow`` values; the fast
  EMA is seeded, as TA-Lib does, with the SMA of the ``fast`` values *ending
  at index slow-1* (not of the first ``fast`` values); signal = EMA(g) of the
  MACD line seeded with its first ``g`` values; hist = macd - signal.
* ATR: true range ``max(h-l, |c_prev-h|, |c_prev-l|)`` from the second row;
  seed = mean of the first ``n`` true ranges, then Wilder smoothing written
  as for RSI (``atr*((n-1)/n) + tr*(1/n)``: no division in the loop-carried
  chain; last-bit differences from TA-Lib only). For tick data
  high = low = close = price, so TR = |price change|.

Deliberate differences from TA-Lib (NaN safety)
-----------------------------------------------
* A NaN or +/-inf input is *skipped*: the state is unchanged and the output at
  that index repeats the previous output (NaN while warming up). TA-Lib
  instead returns 0 (RSI) or NaN (the others) for that index *and every later
  one*: one bad tick would poison a live session.
* RSI of a window with neither gains nor losses (flat prices) is 50, not 0:
  TA-Lib's 0 reads as "deeply oversold" and would buy into a stale market.
  TA-Lib also prints 0 when avg gain + avg loss < 1e-8; we compute the ratio
  whenever the sum is > 0 (identical on any real price series).
* Periods are validated (2..100000; MACD signal 1..100000) with a clear
  ``ValueError``; input shorter than the warm-up gives all NaN.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np

from engine.kernels import kernel

MIN_PERIOD = 2
MAX_PERIOD = 100_000

# --------------------------------------------------------------------------
# Kernels. State layouts are documented next to each ``_new_*`` helper; every
# kernel loads the state into locals, loops, and stores it back once.


@kernel("f8[]", "f8[]!", "f8[]!", "f8")
def _rsi_kernel(x, out, st, period):  # pragma: no cover - compiled
    # st = [count, prev, avg_gain, avg_loss, last_out]
    count = st[0]
    prev = st[1]
    gain = st[2]
    loss = st[3]
    last = st[4]
    n = period
    nm1 = n - 1.0
    inv_n = 1.0 / n
    keep = nm1 * inv_n
    i = 0
    size = x.shape[0]
    # warm-up: until `period` changes are accumulated
    while i < size and count <= n:
        v = x[i]
        if v - v == 0.0:
            if count == 0.0:
                prev = v
            else:
                d = v - prev
                prev = v
                if d < 0.0:
                    loss -= d
                else:
                    gain += d
                if count == n:
                    loss *= inv_n
                    gain *= inv_n
                    s = gain + loss
                    last = 100.0 * (gain / s) if s > 0.0 else 50.0
            count += 1.0
        out[i] = last
        i += 1
    # steady state: Wilder smoothing. Branch-free gain/loss split (a price
    # change's sign is unpredictable); adding 0.0 keeps TA-Lib's bits.
    while i < size:
        v = x[i]
        if v - v == 0.0:
            d = v - prev
            prev = v
            up = d if d > 0.0 else 0.0
            down = up - d
            gain = gain * keep + up * inv_n
            loss = loss * keep + down * inv_n
            s = gain + loss
            last = 100.0 * (gain / s) if s > 0.0 else 50.0
            count += 1.0
        out[i] = last
        i += 1
    st[0] = count
    st[1] = prev
    st[2] = gain
    st[3] = loss
    st[4] = last


@kernel("f8[]", "f8[]!", "f8[]!", "i8")
def _sma_kernel(x, out, st, period):  # pragma: no cover - compiled
    # st = [count, total, head, last_out, ring(period-1)...]
    count = st[0]
    total = st[1]
    head = int(st[2])
    last = st[3]
    m = period - 1
    base = 4
    for i in range(x.shape[0]):
        v = x[i]
        if v - v == 0.0:
            if count < m:
                st[base + int(count)] = v
                total += v
                count += 1.0
            else:
                total += v
                last = total / period
                total -= st[base + head]
                st[base + head] = v
                head += 1
                if head == m:
                    head = 0
                count += 1.0
        out[i] = last
    st[0] = count
    st[1] = total
    st[2] = head
    st[3] = last


@kernel("f8[]", "f8[]!", "f8[]!", "f8")
def _ema_kernel(x, out, st, period):  # pragma: no cover - compiled
    # st = [count, seed_sum, ema, last_out]
    count = st[0]
    total = st[1]
    ema = st[2]
    last = st[3]
    k = 2.0 / (period + 1.0)
    for i in range(x.shape[0]):
        v = x[i]
        if v - v == 0.0:
            if count < period:
                total += v
                count += 1.0
                if count == period:
                    ema = total / period
                    last = ema
            else:
                ema = ((v - ema) * k) + ema
                last = ema
                count += 1.0
        out[i] = last
    st[0] = count
    st[1] = total
    st[2] = ema
    st[3] = last


@kernel("f8[]", "f8[]!", "f8[]!", "f8[]!", "f8[]!", "i8", "f8")
def _bollinger_kernel(x, upper, middle, lower, st, period, k):  # pragma: no cover - compiled
    # st = [count, total, s_total, s_total_sq, head, anchor, last_u, last_m, last_l, ring(period-1)...]
    # ``total`` is the raw running sum (middle == SMA, bit for bit). The
    # variance uses sums of (x - anchor): with the anchor near the window's
    # level, mean(x^2) - mean^2 does not cancel catastrophically (a raw sum
    # of squares of prices ~165 loses ~7 digits), and re-anchoring each time
    # the ring wraps (O(1) amortized) keeps the running sums from drifting.
    count = st[0]
    total = st[1]
    s1 = st[2]
    s2 = st[3]
    head = int(st[4])
    anchor = st[5]
    lu = st[6]
    lm = st[7]
    ll = st[8]
    m = period - 1
    base = 9
    for i in range(x.shape[0]):
        v = x[i]
        if v - v == 0.0:
            if count == 0.0:
                anchor = v
            if count < m:
                st[base + int(count)] = v
                total += v
                d = v - anchor
                s1 += d
                s2 += d * d
                count += 1.0
            else:
                total += v
                mid = total / period
                d = v - anchor
                s1 += d
                s2 += d * d
                mean1 = s1 / period
                mean2 = s2 / period
                var = mean2 - mean1 * mean1
                old = st[base + head]
                total -= old
                d = old - anchor
                s1 -= d
                s2 -= d * d
                st[base + head] = v
                head += 1
                if head == m:
                    head = 0
                    anchor = mid
                    s1 = 0.0
                    s2 = 0.0
                    for j in range(m):
                        d = st[base + j] - anchor
                        s1 += d
                        s2 += d * d
                dev = math.sqrt(var) if var > 1e-12 * mean2 else 0.0
                width = dev * k
                lm = mid
                lu = mid + width
                ll = mid - width
                count += 1.0
        upper[i] = lu
        middle[i] = lm
        lower[i] = ll
    st[0] = count
    st[1] = total
    st[2] = s1
    st[3] = s2
    st[4] = head
    st[5] = anchor
    st[6] = lu
    st[7] = lm
    st[8] = ll


@kernel("f8[]", "f8[]!", "f8[]!", "f8[]!", "f8[]!", "i8", "i8", "i8")
def _macd_kernel(x, out_macd, out_sig, out_hist, st, fast, slow, signal):  # pragma: no cover - compiled
    # st = [count, fast_ema, slow_ema, sig_count, sig_sum, sig_ema,
    #       last_macd, last_sig, last_hist, warm(slow)...]
    count = st[0]
    fe = st[1]
    se = st[2]
    sc = st[3]
    ssum = st[4]
    sig = st[5]
    lmacd = st[6]
    lsig = st[7]
    lhist = st[8]
    base = 9
    kf = 2.0 / (fast + 1.0)
    ks = 2.0 / (slow + 1.0)
    kg = 2.0 / (signal + 1.0)
    for i in range(x.shape[0]):
        v = x[i]
        if v - v == 0.0:
            have = False
            if count < slow:
                st[base + int(count)] = v
                count += 1.0
                if count == slow:
                    t = 0.0
                    for j in range(slow):
                        t += st[base + j]
                    se = t / slow
                    t = 0.0
                    for j in range(slow - fast, slow):
                        t += st[base + j]
                    fe = t / fast
                    have = True
            else:
                fe = ((v - fe) * kf) + fe
                se = ((v - se) * ks) + se
                count += 1.0
                have = True
            if have:
                mv = fe - se
                if sc < signal:
                    ssum += mv
                    sc += 1.0
                    if sc == signal:
                        sig = ssum / signal
                        lmacd = mv
                        lsig = sig
                        lhist = mv - sig
                else:
                    sig = ((mv - sig) * kg) + sig
                    lmacd = mv
                    lsig = sig
                    lhist = mv - sig
        out_macd[i] = lmacd
        out_sig[i] = lsig
        out_hist[i] = lhist
    st[0] = count
    st[1] = fe
    st[2] = se
    st[3] = sc
    st[4] = ssum
    st[5] = sig
    st[6] = lmacd
    st[7] = lsig
    st[8] = lhist


@kernel("f8[]", "f8[]", "f8[]", "f8[]!", "f8[]!", "f8")
def _atr_kernel(high, low, close, out, st, period):  # pragma: no cover - compiled
    # st = [count, prev_close, tr_sum, atr, last_out]
    count = st[0]
    pc = st[1]
    trs = st[2]
    atr = st[3]
    last = st[4]
    n = period
    inv_n = 1.0 / n
    keep = (n - 1.0) * inv_n
    for i in range(close.shape[0]):
        h = high[i]
        lo = low[i]
        c = close[i]
        if h - h == 0.0 and lo - lo == 0.0 and c - c == 0.0:
            if count > 0.0:
                tr = h - lo
                a = abs(pc - h)
                if a > tr:
                    tr = a
                b = abs(pc - lo)
                if b > tr:
                    tr = b
                if count <= n:
                    trs += tr
                    if count == n:
                        atr = trs / n
                        last = atr
                else:
                    atr = atr * keep + tr * inv_n
                    last = atr
            pc = c
            count += 1.0
        out[i] = last
    st[0] = count
    st[1] = pc
    st[2] = trs
    st[3] = atr
    st[4] = last


# --------------------------------------------------------------------------
# Python-side helpers


def _check_period(name: str, value: int, low: int = MIN_PERIOD) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer {low}..{MAX_PERIOD}, got {value!r}")
    if not low <= int(value) <= MAX_PERIOD:
        raise ValueError(f"{name}: expected an integer {low}..{MAX_PERIOD}, got {value}")
    return int(value)


def _as_f64(x: Any, name: str = "x") -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    return arr


def _nan_state(size: int, nan_slots: tuple[int, ...]) -> np.ndarray:
    st = np.zeros(size, dtype=np.float64)
    for s in nan_slots:
        st[s] = np.nan
    return st


# --------------------------------------------------------------------------
# Streaming state classes: one ``update`` per batch.


class _Stream:
    """Common bits: the state vector is the whole truth (snapshot = copy)."""

    kind = ""
    state: np.ndarray

    def lookback(self) -> int:
        raise NotImplementedError

    @property
    def count(self) -> int:
        """Valid (finite) inputs consumed so far."""
        return int(self.state[0])

    @property
    def warm(self) -> bool:
        return self.count > self.lookback()

    def get_state(self) -> bytes:
        return self.state.tobytes()

    def set_state(self, data: bytes) -> None:
        arr = np.frombuffer(data, dtype=np.float64)
        if arr.shape != self.state.shape:
            raise ValueError(f"{self.kind}: snapshot has {arr.size} state values, expected {self.state.size}")
        self.state = arr.copy()


class RSIState(_Stream):
    """Streaming Wilder RSI; ``update(prices)`` returns the RSI for that batch."""

    kind = "rsi"

    def __init__(self, period: int = 14):
        self.period = _check_period("rsi period", period)
        self.state = _nan_state(5, (1, 4))

    def lookback(self) -> int:
        return self.period

    def update(self, prices: np.ndarray) -> np.ndarray:
        x = _as_f64(prices, "prices")
        out = np.empty(x.shape[0], dtype=np.float64)
        _rsi_kernel(x, out, self.state, float(self.period))
        return out


class SMAState(_Stream):
    kind = "sma"

    def __init__(self, period: int = 20):
        self.period = _check_period("sma period", period)
        self.state = _nan_state(4 + self.period - 1, (3,))

    def lookback(self) -> int:
        return self.period - 1

    def update(self, x: np.ndarray) -> np.ndarray:
        arr = _as_f64(x)
        out = np.empty(arr.shape[0], dtype=np.float64)
        _sma_kernel(arr, out, self.state, self.period)
        return out


class EMAState(_Stream):
    kind = "ema"

    def __init__(self, period: int = 20):
        self.period = _check_period("ema period", period)
        self.state = _nan_state(4, (2, 3))

    def lookback(self) -> int:
        return self.period - 1

    def update(self, x: np.ndarray) -> np.ndarray:
        arr = _as_f64(x)
        out = np.empty(arr.shape[0], dtype=np.float64)
        _ema_kernel(arr, out, self.state, float(self.period))
        return out


class BollingerState(_Stream):
    kind = "bollinger"

    def __init__(self, period: int = 20, k: float = 2.0):
        self.period = _check_period("bollinger period", period)
        if not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0):
            raise ValueError(f"bollinger k: expected a finite number > 0, got {k!r}")
        self.k = float(k)
        self.state = _nan_state(9 + self.period - 1, (6, 7, 8))

    def lookback(self) -> int:
        return self.period - 1

    def update(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arr = _as_f64(x)
        n = arr.shape[0]
        up, mid, lo = np.empty(n), np.empty(n), np.empty(n)
        _bollinger_kernel(arr, up, mid, lo, self.state, self.period, self.k)
        return up, mid, lo


class MACDState(_Stream):
    kind = "macd"

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9):
        self.fast = _check_period("macd fast", fast)
        self.slow = _check_period("macd slow", slow)
        self.signal = _check_period("macd signal", signal, low=1)
        if self.fast >= self.slow:
            raise ValueError(f"macd: expected fast < slow, got fast={fast}, slow={slow}")
        self.state = _nan_state(9 + self.slow, (1, 2, 5, 6, 7, 8))

    def lookback(self) -> int:
        return self.slow - 1 + self.signal - 1

    def update(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arr = _as_f64(x)
        n = arr.shape[0]
        m, s, h = np.empty(n), np.empty(n), np.empty(n)
        _macd_kernel(arr, m, s, h, self.state, self.fast, self.slow, self.signal)
        return m, s, h


class ATRState(_Stream):
    kind = "atr"

    def __init__(self, period: int = 14):
        self.period = _check_period("atr period", period)
        self.state = _nan_state(5, (1, 3, 4))

    def lookback(self) -> int:
        return self.period

    def update(self, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
        c = _as_f64(close, "close")
        h = _as_f64(high, "high")
        lo = _as_f64(low, "low")
        if not (h.shape == lo.shape == c.shape):
            raise ValueError(f"atr: high, low, close must have equal lengths, got {h.size}, {lo.size}, {c.size}")
        out = np.empty(c.shape[0], dtype=np.float64)
        _atr_kernel(h, lo, c, out, self.state, float(self.period))
        return out


# --------------------------------------------------------------------------
# Batch functions: the streaming kernel from a fresh state.


def rsi(prices: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder RSI aligned to ``prices``; NaN for the first ``period`` valid inputs."""
    return RSIState(period).update(prices)


def sma(x: np.ndarray, period: int = 20) -> np.ndarray:
    """Simple moving average; NaN for the first ``period - 1`` valid inputs."""
    return SMAState(period).update(x)


def ema(x: np.ndarray, period: int = 20) -> np.ndarray:
    """Exponential moving average (k = 2/(period+1)), seeded with the SMA of the first ``period`` values."""
    return EMAState(period).update(x)


def bollinger(x: np.ndarray, period: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper, middle, lower) bands: SMA +/- k * population std-dev."""
    return BollingerState(period, k).update(x)


def macd(x: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(macd, signal, hist) with TA-Lib's seeding; NaN for the first ``slow + signal - 2`` inputs."""
    return MACDState(fast, slow, signal).update(x)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Average true range (Wilder); NaN for the first ``period`` rows."""
    return ATRState(period).update(high, low, close)


# --------------------------------------------------------------------------
# Config-driven sets of indicators (what the IndicatorActor keeps per symbol)


def _fmt(value: float) -> str:
    return f"{value:g}"


def key_for(spec: Any) -> list[str]:
    """Value keys of one ``IndicatorSpec`` in ``IndicatorBatch.values`` (stable: strategies match on them)."""
    kind = spec.kind
    if kind in ("rsi", "sma", "ema", "atr"):
        return [f"{kind}_{spec.period}"]
    if kind == "bollinger":
        tail = f"{spec.period}_{_fmt(spec.k)}"
        return [f"bb_upper_{tail}", f"bb_middle_{tail}", f"bb_lower_{tail}"]
    if kind == "macd":
        tail = f"{spec.fast}_{spec.slow}_{spec.signal}"
        return [f"macd_{tail}", f"macd_signal_{tail}", f"macd_hist_{tail}"]
    raise ValueError(f"indicator kind: expected one of rsi, sma, ema, bollinger, macd, atr, got {kind!r}")


def stream_for(spec: Any) -> _Stream:
    """A fresh streaming state for ``spec``."""
    kind = spec.kind
    if kind == "rsi":
        return RSIState(spec.period)
    if kind == "sma":
        return SMAState(spec.period)
    if kind == "ema":
        return EMAState(spec.period)
    if kind == "bollinger":
        return BollingerState(spec.period, spec.k)
    if kind == "macd":
        return MACDState(spec.fast, spec.slow, spec.signal)
    if kind == "atr":
        return ATRState(spec.period)
    raise ValueError(f"indicator kind: expected one of rsi, sma, ema, bollinger, macd, atr, got {kind!r}")


class _Snapshot(msgspec.Struct, frozen=True):
    version: int
    keys: list[list[str]]
    states: list[bytes]


class IndicatorSet:
    """Every configured indicator of one symbol, updated one batch at a time.

    Duplicate specs (same keys) are computed once. ``warm_index[key]`` is the
    number of valid inputs consumed before ``key`` has its first value (the
    TA-Lib lookback); ``is_warm(key)`` says whether that point has passed.
    """

    _VERSION = 1

    def __init__(self, specs: list[Any]):
        self.specs: list[Any] = []
        self._streams: list[_Stream] = []
        self._keys: list[list[str]] = []
        seen: set[str] = set()
        for spec in specs:
            keys = key_for(spec)
            if keys[0] in seen:
                continue
            seen.add(keys[0])
            self.specs.append(spec)
            self._keys.append(keys)
            self._streams.append(stream_for(spec))
        self.keys: list[str] = [k for ks in self._keys for k in ks]
        self.warm_index: dict[str, int] = {k: s.lookback() for ks, s in zip(self._keys, self._streams) for k in ks}

    def is_warm(self, key: str) -> bool:
        for ks, s in zip(self._keys, self._streams):
            if key in ks:
                return s.warm
        raise KeyError(f"unknown indicator key {key!r}; known: {', '.join(self.keys)}")

    def update(self, price: np.ndarray, high: np.ndarray | None = None, low: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Advance every indicator over one batch; returns key -> column aligned to ``price``."""
        p = _as_f64(price, "price")
        out: dict[str, np.ndarray] = {}
        for keys, stream in zip(self._keys, self._streams):
            if isinstance(stream, ATRState):
                cols = (stream.update(p if high is None else high, p if low is None else low, p),)
            elif isinstance(stream, (BollingerState, MACDState)):
                cols = stream.update(p)
            else:
                cols = (stream.update(p),)
            for k, col in zip(keys, cols):
                out[k] = col
        return out

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_Snapshot(self._VERSION, self._keys, [s.get_state() for s in self._streams]))

    @classmethod
    def restore(cls, specs: list[Any], data: bytes) -> IndicatorSet:
        inst = cls(specs)
        snap = msgspec.msgpack.decode(data, type=_Snapshot)
        if snap.version != cls._VERSION or snap.keys != inst._keys:
            raise ValueError(
                f"indicator snapshot does not match the configured indicators: snapshot has {snap.keys}, config has {inst._keys}"
            )
        for stream, state in zip(inst._streams, snap.states):
            stream.set_state(state)
        return inst
