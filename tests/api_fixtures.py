"""Shared helpers for the API tests: a small fake engine that answers the real messages.

The fakes are real pykka actors registered in a real Directory, so the API is
exercised through the same seams as in the engine (ask_future + bridge).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import msgspec

from actors.base import EngineActor, handles
from actors.directory import Directory
from actors.event_hub import EventHub
from engine.config import ApiSection, Config, EngineSection
from engine.messages import (
    ActorStatus,
    CancelOrder,
    Fill,
    Flatten,
    GetActorTree,
    GetMetrics,
    GetOrder,
    GetOrders,
    GetPnL,
    GetPositions,
    GetTradingState,
    KillSwitch,
    MetricsSnapshot,
    Order,
    OrderRequest,
    OrderStatus,
    PnL,
    Position,
    SetTradingState,
    Side,
    SubmitResult,
    TradingState,
    TradingStateChanged,
    TradingStateInfo,
)

SECRET = "test-secret-" + "x7Qp" * 12  # 60 bytes, not a default
PASSWORD = "correct horse battery staple"


class FakeOrders(EngineActor):
    def __init__(self, directory: Directory):
        super().__init__("orders", directory)
        self.orders: dict[str, Order] = {}
        self.realized = 0.0

    @handles(GetOrders)
    def get_orders(self, msg: GetOrders) -> list[Order]:
        return list(self.orders.values())[-msg.limit :]

    @handles(GetOrder)
    def get_order(self, msg: GetOrder) -> Order | None:
        return self.orders.get(msg.client_order_id)

    @handles(OrderRequest)
    def add(self, msg: OrderRequest) -> None:
        self.orders[msg.client_order_id] = Order(
            client_order_id=msg.client_order_id, strategy_id=msg.strategy_id, symbol=msg.symbol, side=msg.side,
            quantity=msg.quantity, order_type=msg.order_type, status=OrderStatus.ACCEPTED, limit_price=msg.limit_price,
        )  # fmt: skip

    @handles(Fill)
    def fill(self, msg: Fill) -> None:
        self.realized += msg.quantity * 0.01

    @handles(GetPositions)
    def positions(self, msg: GetPositions) -> list[Position]:
        return [Position(symbol="SYN", quantity=10, avg_price=100.0, realized_pnl=self.realized, unrealized_pnl=1.5, fees=0.1, last_price=100.15)]

    @handles(GetPnL)
    def pnl(self, msg: GetPnL) -> PnL:
        pos = self.positions(GetPositions())[0]
        return PnL(realized_pnl=self.realized, unrealized_pnl=1.5, fees=0.1, total=self.realized + 1.4, by_symbol={"SYN": pos})


class FakeSafety(EngineActor):
    """Trading state, kill switch, and order checks (max qty 1000) like the real SafetyActor's contract."""

    def __init__(self, directory: Directory):
        super().__init__("safety", directory)
        self.state = TradingState.ACTIVE
        self.reason = ""
        self.killed = False
        self.requests: list = []

    def _info(self) -> TradingStateInfo:
        return TradingStateInfo(state=self.state, reason=self.reason, kill_switch=self.killed, since_wall_ns=1)

    def _set(self, state: TradingState, reason: str) -> TradingStateInfo:
        previous, self.state, self.reason = self.state, state, reason
        self.directory.tell("events", TradingStateChanged(state=state, previous=previous, reason=reason))
        return self._info()

    @handles(GetTradingState)
    def get(self, msg: GetTradingState) -> TradingStateInfo:
        return self._info()

    @handles(SetTradingState)
    def set(self, msg: SetTradingState) -> TradingStateInfo:
        self.requests.append(msg)
        if msg.state == TradingState.ACTIVE:
            self.killed = False
        return self._set(msg.state, msg.reason)

    @handles(KillSwitch)
    def kill(self, msg: KillSwitch) -> TradingStateInfo:
        self.requests.append(msg)
        self.killed = True
        return self._set(TradingState.HALTED, msg.reason)

    @handles(Flatten)
    def flatten(self, msg: Flatten) -> TradingStateInfo:
        self.requests.append(msg)
        return self._info()

    @handles(OrderRequest)
    def submit(self, msg: OrderRequest) -> SubmitResult:
        self.requests.append(msg)
        if self.state == TradingState.HALTED:
            return SubmitResult(client_order_id=msg.client_order_id, accepted=False, reason="TRADING_HALTED")
        if msg.quantity > 1000:
            return SubmitResult(client_order_id=msg.client_order_id, accepted=False, reason="MAX_ORDER_QTY", detail="qty > 1000")
        self.directory.tell("orders", msg)
        return SubmitResult(client_order_id=msg.client_order_id, accepted=True)

    @handles(CancelOrder)
    def cancel(self, msg: CancelOrder) -> SubmitResult:
        self.requests.append(msg)
        return SubmitResult(client_order_id=msg.client_order_id, accepted=False, reason="UNKNOWN_ORDER")


class FakeRoot(EngineActor):
    def __init__(self, directory: Directory):
        super().__init__("root", directory)

    @handles(GetActorTree)
    def tree(self, msg: GetActorTree) -> list[ActorStatus]:
        names = self.directory.names()
        return [ActorStatus(name=n, supervisor="root", status="running", restarts=1 if n == "orders" else 0,
                            last_error="ValueError('boom')" if n == "orders" else "", mailbox_depth=0) for n in names]  # fmt: skip


class FakeMonitor(EngineActor):
    """Counters that grow on every sample, like a running engine's."""

    def __init__(self, directory: Directory):
        super().__init__("monitor", directory)
        self.samples = 0

    @handles(GetMetrics)
    def get(self, msg: GetMetrics) -> MetricsSnapshot:
        return self.sample()

    def sample(self) -> MetricsSnapshot:
        self.samples += 1
        n = self.samples
        return MetricsSnapshot(
            ts_wall_ns=time.time_ns(), rss_bytes=100_000_000 + n * 4096, cpu_percent=12.5 + n % 7, threads=12, open_fds=20,
            actors=[ActorStatus(name="orders", supervisor="root", status="running", restarts=1, mailbox_depth=n % 3)],
            rates={"ticks_per_s": 50_000.0 + 100 * n}, counters={"ticks": 1000.0 * n, "orders.FILLED": float(n), "rejects.MAX_ORDER_QTY": 2.0},
            latency_us={"tick_to_order": {"p50": 40.0 + n % 5, "p99": 180.0, "max": 900.0}},
        )  # fmt: skip


class FakeEngine:
    """Directory + fake actors + EventHub; ``start_feed()`` makes numbers move (for SSE and the browser)."""

    def __init__(self, with_hub: bool = True):
        self.directory = Directory()
        self.refs = {}
        for cls in (FakeOrders, FakeSafety, FakeRoot, FakeMonitor):
            ref = cls.start(self.directory)
            self.directory.register(ref.proxy().name.get(), ref)
        if with_hub:
            self.directory.register("events", EventHub.start("events", self.directory))
        self._stop = threading.Event()
        self._feed: threading.Thread | None = None

    def start_feed(self, interval_s: float = 0.1) -> None:
        monitor = self.directory.ref("monitor").proxy()

        def run() -> None:
            seq = 0
            while not self._stop.wait(interval_s):  # pacing a producer, not synchronizing a test
                seq += 1
                fill = Fill(client_order_id=f"c{seq}", strategy_id="rsi_mr", trade_id=f"t{seq}", symbol="SYN",
                            side=Side.BUY if seq % 2 else Side.SELL, quantity=10.0, price=100.0 + seq % 5 * 0.01,
                            fee=0.01, event_seq=seq, ts_ns=seq)  # fmt: skip
                self.directory.tell("orders", fill)
                self.directory.tell("events", fill)
                try:
                    self.directory.tell("events", monitor.sample().get(timeout=2))
                except Exception:  # noqa: BLE001 - engine stopping
                    return

        self._feed = threading.Thread(target=run, daemon=True, name="fake-feed")
        self._feed.start()

    def stop(self) -> None:
        self._stop.set()
        if self._feed:
            self._feed.join(5)
        import pykka

        for name in list(self.directory.names()):
            ref = self.directory.ref(name)
            if ref is not None:
                try:
                    ref.stop(timeout=5)
                except pykka.ActorDeadError:
                    pass


def make_config(tmp_path: Path, **api: object) -> Config:
    return Config(engine=EngineSection(data_dir=str(tmp_path / "data")), api=ApiSection(port=0, users_file=str(tmp_path / "users.json"), **api))  # type: ignore[arg-type]


def add_users(cfg: Config) -> None:
    from engine.api.users import UserStore

    store = UserStore(Path(cfg.api.users_file))
    for name, role in (("alice", "admin"), ("tom", "trader"), ("vic", "viewer")):
        store.add(name, role, PASSWORD)


def decode(body: bytes) -> object:
    return msgspec.json.decode(body)


class FakeClock:
    """A monotonic clock tests move by hand (no sleeping)."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ApiEnv:
    """A started ApiServer over a FakeEngine, an httpx client, and cached logins."""

    def __init__(self, server, engine: FakeEngine, cfg: Config, clock: FakeClock):
        import httpx

        self.server, self.engine, self.cfg, self.clock = server, engine, cfg, clock
        self.client = httpx.Client(base_url=server.url, timeout=10)
        self._tokens: dict[str, dict] = {}

    def login(self, user: str, password: str = PASSWORD) -> dict:
        if user not in self._tokens:
            r = self.client.post("/api/v1/auth/login", json={"username": user, "password": password})
            assert r.status_code == 200, r.text
            self._tokens[user] = r.json()
        return self._tokens[user]

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.login(user)["access_token"]}


class api_env:  # noqa: N801 - used as a context manager like a function
    """``with api_env(tmp_path, requests_per_minute=60) as env:`` -> :class:`ApiEnv`.

    Limits default high so unrelated tests never trip them; limit tests set them."""

    def __init__(self, tmp_path: Path, *, with_hub: bool = True, users: bool = True, **api: object):
        api.setdefault("requests_per_minute", 100_000)
        api.setdefault("login_attempts", 10_000)
        self.cfg = make_config(tmp_path, **api)
        self.users, self.with_hub = users, with_hub

    def __enter__(self) -> ApiEnv:
        from engine.api.server import ApiServer

        if self.users:
            add_users(self.cfg)
        self.engine = FakeEngine(with_hub=self.with_hub)
        self.clock = FakeClock()
        try:
            self.server = ApiServer(self.cfg, self.engine.directory, clock=self.clock, secret=SECRET)
            self.server.start()
        except BaseException:
            self.engine.stop()
            raise
        self.env = ApiEnv(self.server, self.engine, self.cfg, self.clock)
        return self.env

    def __exit__(self, *exc: object) -> None:
        self.env.client.close()
        self.server.stop()
        self.engine.stop()


# ---------------------------------------------------------------- the real engine
def real_engine_config(tmp_path: Path, *, rate: float = 2000.0, **api: object) -> Config:
    """A paper config for the real engine: synthetic feed at ``rate`` ticks/s, API on port 0, all dirs in tmp."""
    from engine.config import config_from_dict

    raw = msgspec.to_builtins(Config())
    raw["engine"]["data_dir"] = str(tmp_path / "data")
    raw["journal"]["dir"] = str(tmp_path / "journal")
    raw["logging"]["dir"] = str(tmp_path / "log")
    raw["logging"]["console"] = False
    raw["feed"].update(source="synthetic", rate=rate, batch_size=64)
    raw["monitor"]["sample_interval_s"] = 0.2
    raw["api"].update(port=0, users_file=str(tmp_path / "users.json"), requests_per_minute=100_000,
                      login_attempts=10_000, **api)  # fmt: skip
    return config_from_dict(raw)


class real_engine_env:  # noqa: N801 - used as a context manager like a function
    """``with real_engine_env(tmp_path) as env:`` -> :class:`ApiEnv` over the REAL engine (assembly.build_engine).

    The engine is built exactly as ``actortrader run`` builds it (synthetic source, journal in tmp,
    realtime rate), the feed is started, and users alice (admin), tom (trader) and vic (viewer) exist."""

    def __init__(self, tmp_path: Path, *, rate: float = 2000.0, **api: object):
        self.tmp_path = tmp_path
        self.cfg = real_engine_config(tmp_path, rate=rate, **api)

    def __enter__(self) -> ApiEnv:
        from engine.api.server import ApiServer
        from engine.assembly import FEED, build_engine
        from engine.cli import _make_source
        from engine.journal_runs import journal_dir, new_run_path
        from engine.messages import StartFeed

        cfg = self.cfg
        logging.getLogger("httpx").setLevel(logging.WARNING)  # request lines from client threads outlive pytest's capture
        add_users(cfg)
        jdir = journal_dir(cfg)
        jdir.mkdir(parents=True, exist_ok=True)
        Path(cfg.engine.data_dir).mkdir(parents=True, exist_ok=True)
        self.escalations: list[str] = []
        self.engine = build_engine(cfg, source_factory=lambda: _make_source(cfg), journal_path=new_run_path(jdir, kind="run"),
                                   on_escalate=self.escalations.append, realtime_rate=cfg.feed.rate)  # fmt: skip
        try:
            self.server = ApiServer(cfg, self.engine.directory, secret=SECRET)
            self.server.start()
        except BaseException:
            self.engine.stop()
            raise
        self.engine.directory.tell(FEED, StartFeed(after_tick_seq=-1))
        self.env = ApiEnv(self.server, self.engine, cfg, FakeClock())  # type: ignore[arg-type]
        return self.env

    def __exit__(self, *exc: object) -> None:
        self.env.client.close()
        self.server.stop()
        self.engine.stop()
