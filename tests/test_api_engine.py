"""The control plane against the REAL engine (assembly.build_engine, synthetic feed, paper venue).

The other API tests use fake actors; these prove the seams hold with the real
tree: the API's messages are the ones the real actors answer, an API order
goes through the SafetyActor and the journal like a strategy's, the kill
switch halts the real engine, and /metrics carries the engine's own counters.

One engine per module (booting it costs ~1 s); tests that change the trading
state put it back to ACTIVE before they end.
"""

from __future__ import annotations

import json
import re
import threading
import uuid

import httpx
import pytest

from tests.api_fixtures import SECRET, real_engine_env



@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with real_engine_env(tmp_path_factory.mktemp("engine"), jwt_secret=SECRET) as e:
        yield e


def wait_until(predicate, timeout: float = 10.0, every: float = 0.05):
    """Poll ``predicate`` until truthy, waiting on an Event (never time.sleep); returns its last value."""
    gate = threading.Event()
    deadline = timeout / every
    for _ in range(int(deadline)):
        value = predicate()
        if value:
            return value
        gate.wait(every)
    return predicate()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0.0 when absent)."""
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return 0.0


class SseCollector:
    """Reads /api/v1/events in a thread, keeping (event, data) pairs; ``wait_for`` blocks on an Event."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token
        self.events: list[tuple[str, dict]] = []
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        name = ""
        with httpx.Client(timeout=httpx.Timeout(10, read=30)) as client:
            with client.stream("GET", self.url + "/api/v1/events", headers={"Authorization": "Bearer " + self.token}) as r:
                for line in r.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        with self.changed:
                            self.events.append((name, json.loads(line.split(":", 1)[1])))
                            self.changed.notify_all()

    def wait_for(self, predicate, timeout: float = 10.0):
        with self.changed:
            found = self.changed.wait_for(lambda: next((d for n, d in self.events if predicate(n, d)), None), timeout)
        return found

    def __enter__(self) -> "SseCollector":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()


def last_price(env) -> float:
    pnl = wait_until(lambda: env.client.get("/api/v1/pnl", headers=env.headers("vic")).json().get("by_symbol"))
    return float(pnl["SYN"]["last_price"])


# ---------------------------------------------------------------- reads
def test_health_is_public_and_reports_the_real_trading_state(env):
    h = env.client.get("/api/v1/health").json()
    assert h["status"] == "ok" and h["mode"] == "paper" and h["trading_state"] == "ACTIVE" and h["uptime_s"] >= 0


def test_first_run_admin_can_log_in_with_the_printed_password(tmp_path, capsys):
    from engine.api.server import ApiServer
    from tests.api_fixtures import real_engine_config

    cfg = real_engine_config(tmp_path)
    server = ApiServer(cfg, env_directory_stub(), secret=SECRET)
    server.start()
    try:
        printed = capsys.readouterr().out
        password = re.search(r"password: (\S+)", printed).group(1)
        r = httpx.post(server.url + "/api/v1/auth/login", json={"username": "admin", "password": password})
        assert r.status_code == 200 and r.json()["access_token"]
        assert httpx.post(server.url + "/api/v1/auth/login", json={"username": "admin", "password": "wrong"}).status_code == 401
    finally:
        server.stop()


def env_directory_stub():
    from actors.directory import Directory

    return Directory()


def test_orders_positions_pnl_come_from_the_real_order_actor(env):
    h = env.headers("vic")
    orders = wait_until(lambda: env.client.get("/api/v1/orders", headers=h).json(), timeout=15)
    assert orders and all(o["status"] in {"FILLED", "ACCEPTED", "SUBMITTED", "CANCELED", "DENIED", "REJECTED",
                                          "PARTIALLY_FILLED", "PENDING_CANCEL", "EXPIRED", "INITIALIZED"} for o in orders)
    strategy_order = orders[0]
    assert strategy_order["strategy_id"] == "rsi_mr" and strategy_order["symbol"] == "SYN"
    one = env.client.get(f"/api/v1/orders/{strategy_order['client_order_id']}", headers=h)
    assert one.status_code == 200 and one.json()["client_order_id"] == strategy_order["client_order_id"]
    assert env.client.get("/api/v1/orders/no-such-order", headers=h).status_code == 404
    pnl = env.client.get("/api/v1/pnl", headers=h).json()
    assert pnl["type"] == "PnL" and set(pnl["by_symbol"]) == {"SYN"}
    positions = env.client.get("/api/v1/positions", headers=h).json()
    assert isinstance(positions, list) and all(p["symbol"] == "SYN" for p in positions)


def test_actor_tree_shows_every_real_actor_running(env):
    tree = env.client.get("/api/v1/actors", headers=env.headers("vic")).json()
    by_name = {a["name"]: a for a in tree}
    for name in ("root", "monitor", "events", "orders", "venue", "safety", "strategy:rsi_mr", "indicators", "feed"):
        assert by_name[name]["status"] == "running", (name, by_name.get(name))
        assert by_name[name]["restarts"] == 0
    assert by_name["root"]["supervisor"] == "" and sum(a["processed"] for a in tree) > 0
    for a in tree:  # every actor hangs under a supervisor that is itself in the tree
        assert a["name"] == "root" or a["supervisor"] in by_name, a


def test_config_is_redacted_for_admin_and_forbidden_to_others(env):
    r = env.client.get("/api/v1/config", headers=env.headers("alice"))
    assert r.status_code == 200
    body = r.text
    assert SECRET not in body and r.json()["api"]["jwt_secret"] != SECRET and r.json()["feed"]["source"] == "synthetic"
    for user in ("vic", "tom"):
        for method, path, payload in (("GET", "/api/v1/config", None), ("GET", "/api/v1/users", None),
                                      ("POST", "/api/v1/trading-state/kill-switch", {}),
                                      ("PUT", "/api/v1/trading-state", {"state": "HALTED"})):  # fmt: skip
            resp = env.client.request(method, path, headers=env.headers(user), json=payload)
            assert resp.status_code == 403, (user, path, resp.status_code)
    assert env.client.get("/api/v1/health").json()["trading_state"] == "ACTIVE"  # nothing above reached safety


def test_viewer_cannot_submit_or_cancel(env):
    order = {"symbol": "SYN", "side": "BUY", "quantity": 1}
    assert env.client.post("/api/v1/orders", headers=env.headers("vic"), json=order).status_code == 403
    assert env.client.delete("/api/v1/orders/x-1", headers=env.headers("vic")).status_code == 403


def test_metrics_carry_real_engine_counters_that_grow(env):
    first = env.client.get("/metrics").text
    ticks0 = metric_value(first, "actortrader_feed_ticks_total", feed="feed")
    assert metric_value(first, "actortrader_monitor_up") == 1.0
    assert metric_value(first, "actortrader_process_rss_bytes") > 10e6
    assert metric_value(first, "actortrader_actor_up", actor="orders") == 1.0
    # Fills come through the real journal -> OrderUpdates -> EventHub path.
    assert wait_until(lambda: metric_value(env.client.get("/metrics").text, "actortrader_fills_total", symbol="SYN") > 0, timeout=15)
    later = wait_until(lambda: (t := env.client.get("/metrics").text) and
                       metric_value(t, "actortrader_feed_ticks_total", feed="feed") > ticks0 and t)  # fmt: skip
    assert later, "feed ticks did not grow"
    # The registry is process-wide (other tests' fake hubs count too): compare growth, not totals.
    grown = wait_until(lambda: (t := env.client.get("/metrics").text) and all(
        metric_value(t, name, **labels) > metric_value(first, name, **labels)
        for name, labels in (("actortrader_orders_total", {"outcome": "FILLED"}), ("actortrader_fills_total", {"symbol": "SYN"}))) and t, timeout=15)  # fmt: skip
    assert grown, "orders/fills counters did not grow"
    assert 'actortrader_latency_seconds{path="feed_to_orders",quantile="0.99"}' in later
    assert "actortrader_engine_counters" not in later  # the registry is not exported twice


# ---------------------------------------------------------------- writes
def test_trader_order_goes_through_safety_journal_and_fills_on_the_stream(env):
    cid = "it-" + uuid.uuid4().hex[:12]
    with SseCollector(env.server.url, env.login("tom")["access_token"]) as sse:
        assert sse.wait_for(lambda n, d: n == "hello"), "no hello on the stream"
        r = env.client.post("/api/v1/orders", headers=env.headers("tom"),
                            json={"symbol": "SYN", "side": "BUY", "quantity": 2, "client_order_id": cid})
        assert r.status_code == 201 and r.json() == {"type": "SubmitResult", "client_order_id": cid, "accepted": True,
                                                     "reason": "", "detail": ""}  # fmt: skip
        fill = sse.wait_for(lambda n, d: n == "fill" and d["client_order_id"] == cid, timeout=15)
        assert fill and fill["quantity"] == 2 and fill["strategy_id"] == "api" and fill["price"] > 0
    order = wait_until(lambda: (o := env.client.get(f"/api/v1/orders/{cid}", headers=env.headers("vic"))).status_code == 200
                       and o.json()["status"] == "FILLED" and o.json())  # fmt: skip
    assert order and order["filled_qty"] == 2 and order["strategy_id"] == "api"
    # Idempotency: the same client order id again does not trade twice.
    again = env.client.post("/api/v1/orders", headers=env.headers("tom"),
                            json={"symbol": "SYN", "side": "BUY", "quantity": 2, "client_order_id": cid})
    assert again.status_code in (201, 422)
    same = [o for o in env.client.get("/api/v1/orders", headers=env.headers("vic"), params={"limit": 1000}).json()
            if o["client_order_id"] == cid]  # fmt: skip
    assert len(same) == 1 and same[0]["filled_qty"] == 2


def test_risk_denial_names_the_reason_and_does_not_poison_later_orders(env):
    r = env.client.post("/api/v1/orders", headers=env.headers("tom"), json={"symbol": "SYN", "side": "BUY", "quantity": 999_999})
    assert r.status_code == 422 and r.json()["accepted"] is False and r.json()["reason"] == "MAX_ORDER_QTY"
    # Regression: after a denied API order, safety used to drop every later API order as "superseded"
    # (same epoch) while answering accepted; the order never reached the journal.
    cid = "after-deny-" + uuid.uuid4().hex[:8]
    ok = env.client.post("/api/v1/orders", headers=env.headers("tom"), json={"symbol": "SYN", "side": "BUY", "quantity": 1, "client_order_id": cid})
    assert ok.status_code == 201
    got = wait_until(lambda: (o := env.client.get(f"/api/v1/orders/{cid}", headers=env.headers("vic"))).status_code == 200 and o.json())
    assert got and got["status"] in ("SUBMITTED", "ACCEPTED", "FILLED"), got
    bad = env.client.post("/api/v1/orders", headers=env.headers("tom"), json={"symbol": "SYN", "side": "BUY", "quantity": -1})
    assert bad.status_code == 400 and "quantity" in bad.text


def test_kill_switch_halts_denies_new_orders_lets_cancels_through_then_active_again(env):
    admin, trader = env.headers("alice"), env.headers("tom")
    price = last_price(env)
    resting = "rest-" + uuid.uuid4().hex[:12]
    r = env.client.post("/api/v1/orders", headers=trader, json={"symbol": "SYN", "side": "BUY", "quantity": 1, "order_type": "LIMIT",
                                                                 "limit_price": round(price * 0.97, 2), "client_order_id": resting})
    assert r.status_code == 201, r.text
    status = lambda: env.client.get(f"/api/v1/orders/{resting}", headers=trader).json().get("status")  # noqa: E731
    assert wait_until(lambda: status() == "ACCEPTED"), status()
    try:
        # HALTED by state first: the resting order survives, and its cancel still passes.
        info = env.client.put("/api/v1/trading-state", headers=admin, json={"state": "HALTED", "reason": "test"}).json()
        assert info["state"] == "HALTED" and info["kill_switch"] is False
        denied = env.client.post("/api/v1/orders", headers=trader, json={"symbol": "SYN", "side": "BUY", "quantity": 1})
        assert denied.status_code == 422 and denied.json()["reason"] in ("TRADING_HALTED", "KILL_SWITCH")
        cancel = env.client.delete(f"/api/v1/orders/{resting}", headers=trader)
        assert cancel.status_code == 200 and cancel.json()["accepted"] is True
        assert wait_until(lambda: status() == "CANCELED"), status()

        # The kill switch: HALTED with the switch pulled, new orders denied, health shows it.
        killed = env.client.post("/api/v1/trading-state/kill-switch", headers=admin, json={"reason": "it test"})
        assert killed.status_code == 200 and killed.json()["state"] == "HALTED" and killed.json()["kill_switch"] is True
        assert env.client.get("/api/v1/health").json()["trading_state"] == "HALTED"
        denied = env.client.post("/api/v1/orders", headers=trader, json={"symbol": "SYN", "side": "SELL", "quantity": 1})
        assert denied.status_code == 422 and denied.json()["reason"] in ("KILL_SWITCH", "TRADING_HALTED")
        assert env.client.delete(f"/api/v1/orders/{resting}", headers=trader).json()["accepted"] is True
    finally:
        back = env.client.put("/api/v1/trading-state", headers=admin, json={"state": "ACTIVE", "reason": "test over"})
    assert back.status_code == 200 and back.json() == {**back.json(), "state": "ACTIVE", "kill_switch": False}
    ok = env.client.post("/api/v1/orders", headers=trader, json={"symbol": "SYN", "side": "SELL", "quantity": 1})
    assert ok.status_code == 201, ok.text
