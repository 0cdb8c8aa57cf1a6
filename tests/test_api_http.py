"""The API over real HTTP against a fake engine: endpoints, validation, headers, limits, SSE, startup."""

from __future__ import annotations

import argparse
import io
import json
import threading

import httpx
import pytest
from tests.api_fixtures import PASSWORD, SECRET, FakeEngine, api_env, make_config

from actors.base import EngineActor, handles
from engine.api.cli_users import add_users_parser, cmd_users
from engine.api.security import ApiConfigError
from engine.api.server import ApiServer
from engine.api.users import UserStore
from engine.config import ApiSection, Config, EngineSection
from engine.messages import Flatten, GetTradingState, KillSwitch, SetTradingState, TradingStateInfo

INJECTIONS = [
    "'; DROP TABLE orders; --", "1 OR 1=1", "\" OR \"\"=\"", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
    "javascript:alert(1)", "${7*7}", "{{7*7}}", "../../etc/passwd", "SYN\x00", "SYN\nX", "\u202eNYS", "Robert'); --",
]  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with api_env(tmp_path_factory.mktemp("http")) as e:
        yield e


# ---------------------------------------------------------------- endpoints
def test_health_is_public_and_reports_state(env):
    body = env.client.get("/api/v1/health").json()
    assert body["status"] == "ok" and body["mode"] == "paper" and body["trading_state"] in ("ACTIVE", "HALTED")
    assert body["uptime_s"] >= 0


def test_reads_return_engine_answers(env):
    h = env.headers("vic")
    assert env.client.get("/api/v1/positions", headers=h).json()[0]["symbol"] == "SYN"
    assert env.client.get("/api/v1/pnl", headers=h).json()["unrealized_pnl"] == 1.5
    tree = env.client.get("/api/v1/actors", headers=h).json()
    orders = next(a for a in tree if a["name"] == "orders")
    assert orders["restarts"] == 1 and orders["last_error"] and "mailbox_depth" in orders
    assert env.client.get("/api/v1/auth/me", headers=h).json()["role"] == "viewer"


def test_submit_get_and_cancel_an_order(env):
    h = env.headers("tom")
    r = env.client.post("/api/v1/orders", headers=h, json={"symbol": "SYN", "side": "BUY", "quantity": 5, "client_order_id": "my-1"})
    assert r.status_code == 201 and r.json()["client_order_id"] == "my-1"
    got = env.client.get("/api/v1/orders/my-1", headers=h).json()
    assert got["strategy_id"] == "api" and got["quantity"] == 5
    minted = env.client.post("/api/v1/orders", headers=h, json={"symbol": "SYN", "side": "SELL", "quantity": 1}).json()
    assert minted["client_order_id"].startswith("api-")
    denied = env.client.post("/api/v1/orders", headers=h, json={"symbol": "SYN", "side": "BUY", "quantity": 5000})
    assert denied.status_code == 422 and denied.json()["reason"] == "MAX_ORDER_QTY"
    assert env.client.delete("/api/v1/orders/my-1", headers=h).json()["reason"] == "UNKNOWN_ORDER"
    assert env.client.get("/api/v1/orders/nope", headers=h).status_code == 404
    assert any(o["client_order_id"] == "my-1" for o in env.client.get("/api/v1/orders", headers=h).json())


def test_admin_controls_reach_safety_with_the_requester(env):
    h = env.headers("alice")
    assert env.client.put("/api/v1/trading-state", headers=h, json={"state": "REDUCING", "reason": "test"}).json()["state"] == "REDUCING"
    killed = env.client.post("/api/v1/trading-state/kill-switch", headers=h, json={"reason": "drill"}).json()
    assert killed["state"] == "HALTED" and killed["kill_switch"] is True
    assert env.client.post("/api/v1/trading-state/flatten", headers=h, json={"symbol": "SYN"}).status_code == 200
    assert env.client.put("/api/v1/trading-state", headers=h, json={"state": "ACTIVE"}).json()["state"] == "ACTIVE"
    reqs = env.engine.directory.ref("safety").proxy().requests.get(timeout=5)
    assert {r.requested_by for r in reqs if isinstance(r, (SetTradingState, KillSwitch, Flatten))} == {"api:alice"}


def test_config_is_redacted_and_users_listed_without_hashes(env):
    h = env.headers("alice")
    cfg = env.client.get("/api/v1/config", headers=h).json()
    assert cfg["api"]["jwt_secret"] in ("", "***") and SECRET not in json.dumps(cfg)
    users = env.client.get("/api/v1/users", headers=h).json()
    assert {u["name"] for u in users} == {"alice", "tom", "vic"} and "argon2" not in json.dumps(users)


def test_metrics_prometheus_text(env):
    r = env.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("actortrader_monitor_up 1.0", "actortrader_ticks_total", "actortrader_orders_total{outcome=\"FILLED\"}",
                 "actortrader_rejects_total{reason=\"MAX_ORDER_QTY\"}", "actortrader_actor_restarts_total",
                 "actortrader_actor_mailbox_depth", "actortrader_process_rss_bytes", "actortrader_process_cpu_percent",
                 "actortrader_latency_seconds"):  # fmt: skip
        assert name in text, name


def test_openapi_schema_and_offline_docs(env):
    schema = env.client.get("/api/schema/openapi.json").json()
    assert "/api/v1/orders" in schema["paths"] and "BearerAuth" in schema["components"]["securitySchemes"]
    body_schema = schema["components"]["schemas"]["SubmitOrderBody"]
    assert body_schema["properties"]["symbol"]["pattern"]
    docs = env.client.get("/api/docs")
    assert docs.status_code == 200 and "/static/docs.js" in docs.text and "<script>" not in docs.text
    assert "http" not in docs.text.split("<body>")[0].replace("http-equiv", "")  # no CDN


# ---------------------------------------------------------------- validation and hostile input
@pytest.mark.parametrize(
    "body,field",
    [
        ({"symbol": "SYN", "side": "BUY", "quantity": -1}, "quantity"),
        ({"symbol": "SYN", "side": "BUY", "quantity": 0}, "quantity"),
        ({"symbol": "SYN", "side": "HOLD", "quantity": 1}, "side"),
        ({"symbol": "SYN", "side": "BUY", "quantity": [1]}, "quantity"),
        ({"symbol": "SYN", "side": "BUY", "quantity": 1e12}, "quantity"),
        ({"symbol": "SYN", "side": "BUY", "quantity": 1, "order_type": "LIMIT"}, "limit_price"),
        ({"symbol": "SYN", "side": "BUY", "quantity": 1, "limit_price": 10}, "limit_price"),
        ({"symbol": "SYN", "side": "BUY", "quantity": 1, "quantiy": 2}, "quantiy"),
        ({"side": "BUY", "quantity": 1}, "symbol"),
    ],
)
def test_bad_order_input_is_400_naming_the_field(env, body, field):
    r = env.client.post("/api/v1/orders", headers=env.headers("tom"), json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["detail"]


def test_malformed_json_and_oversized_bodies_are_refused(env):
    h = {**env.headers("tom"), "content-type": "application/json"}
    r = env.client.post("/api/v1/orders", headers=h, content=b'{"symbol": "SYN", "side": "BUY", "quantity": 1e999}')
    assert r.status_code == 400 and "out of range" in r.json()["detail"]  # JSON's way to spell inf
    assert env.client.post("/api/v1/orders", headers=h, content=b"{not json").status_code == 400
    big = json.dumps({"symbol": "SYN", "side": "BUY", "quantity": 1, "x": "a" * (env.cfg.api.max_body_bytes + 10)})
    assert env.client.post("/api/v1/orders", headers=h, content=big.encode()).status_code == 413


def test_injection_strings_are_rejected_or_returned_inert(env):
    h = env.headers("alice")
    for s in INJECTIONS:
        r = env.client.post("/api/v1/orders", headers=h, json={"symbol": s, "side": "BUY", "quantity": 1})
        assert r.status_code == 400 and "symbol" in r.json()["detail"], s
        r = env.client.post("/api/v1/orders", headers=h, json={"symbol": "SYN", "side": "BUY", "quantity": 1, "client_order_id": s})
        assert r.status_code == 400, s
        try:
            url = "/api/v1/orders/" + httpx.URL(path="/" + s).raw_path.decode().lstrip("/")
        except httpx.InvalidURL:
            continue  # not even sendable as a URL
        assert env.client.get(url, headers=h).status_code in (400, 404)
        r = env.client.put("/api/v1/trading-state", headers=h, json={"state": "REDUCING", "reason": s})
        assert r.status_code == 200 and r.json()["reason"] == s  # stored verbatim, returned as JSON data
        assert r.headers["content-type"].startswith("application/json") and r.headers["x-content-type-options"] == "nosniff"
        r = env.client.post("/api/v1/auth/login", json={"username": s, "password": s})
        assert r.status_code == 401
    env.client.put("/api/v1/trading-state", headers=h, json={"state": "ACTIVE"})
    assert env.client.get("/api/v1/health").json()["status"] == "ok"  # still serving


# ---------------------------------------------------------------- headers on every route
def test_security_headers_on_every_route(env):
    # A throwaway login: this walk also calls POST /auth/logout, which revokes the token it uses.
    token = env.client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}).json()["access_token"]
    h = {"Authorization": "Bearer " + token}
    schema = env.client.get("/api/schema/openapi.json").json()
    targets = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/docs"), ("GET", "/api/schema/openapi.json"),
               ("GET", "/no/such/page"), ("GET", "/metrics")]  # fmt: skip
    targets += [(m.upper(), p.replace("{client_order_id}", "x1")) for p, ops in schema["paths"].items() for m in ops if p != "/api/v1/events"]
    for method, path in targets:
        for headers in (h, {}):
            r = env.client.request(method, path, headers=headers, json={} if method in ("POST", "PUT") else None)
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers["x-frame-options"] == "DENY", path
            assert r.headers["referrer-policy"], path
            csp = r.headers["content-security-policy"]
            if path.startswith("/api/") and not path.startswith("/api/docs") or path == "/metrics":
                assert "frame-ancestors 'none'" in csp and r.headers["cache-control"] == "no-store", path
            else:
                assert "default-src 'self'" in csp and "unsafe-inline" not in csp, path
            assert "strict-transport-security" not in r.headers  # plain HTTP
    with env.client.stream("GET", "/api/v1/events", headers=env.headers("vic")) as r:
        assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
    page = env.client.get("/").text
    assert "<script src=" in page and "<script>" not in page and "style=" not in page  # nothing inline


def test_cors_closed_and_unknown_hosts_refused(env):
    r = env.client.options("/api/v1/orders", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    r = env.client.get("/api/v1/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = env.client.get("/api/v1/health", headers={"Host": "evil.example"})
    assert r.status_code == 400 and r.headers["x-frame-options"] == "DENY"


# ---------------------------------------------------------------- rate limits at the boundary (injected clock)
def test_request_limit_60th_ok_61st_429_then_window_slides(tmp_path):
    with api_env(tmp_path, requests_per_minute=60) as env:
        codes = [env.client.get("/api/v1/health").status_code for _ in range(60)]
        assert codes == [200] * 60
        r = env.client.get("/api/v1/health")
        assert r.status_code == 429 and int(r.headers["retry-after"]) == 60 and r.headers["x-frame-options"] == "DENY"
        env.clock.advance(59)
        assert env.client.get("/api/v1/health").status_code == 429
        env.clock.advance(1)
        assert env.client.get("/api/v1/health").status_code == 200


def test_login_limit_5th_ok_6th_429_per_user_and_per_client(tmp_path):
    with api_env(tmp_path, login_attempts=5) as env:
        codes = [env.client.post("/api/v1/auth/login", json={"username": "alice", "password": "wrong"}).status_code for _ in range(4)]
        assert codes == [401] * 4
        assert env.client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200  # 5th
        r = env.client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})  # 6th, even right
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 900
        assert env.client.post("/api/v1/auth/login", json={"username": "tom", "password": PASSWORD}).status_code == 429  # same client
        env.clock.advance(900)
        assert env.client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200


def test_login_limit_per_username_across_clients():
    from engine.api.ratelimit import SlidingWindowLimiter

    # The per-username window is shared by all addresses: the route checks both keys (see routes_auth).
    from tests.api_fixtures import FakeClock

    clock = FakeClock()
    by_user = SlidingWindowLimiter(5, 900, clock)
    assert [by_user.hit("alice").allowed for _ in range(6)] == [True] * 5 + [False]


# ---------------------------------------------------------------- actors down or slow
class SlowSafety(EngineActor):
    def __init__(self, directory, release: threading.Event):
        super().__init__("safety", directory)
        self.release = release

    @handles(GetTradingState)
    def get(self, msg):
        self.release.wait(10)
        return TradingStateInfo(state="ACTIVE", reason="", kill_switch=False)


def test_actor_down_is_503_and_slow_is_504(env):
    h = env.headers("vic")
    d = env.engine.directory
    original = d.ref("safety")
    try:
        d.unregister("safety")  # gone for good
        r = env.client.get("/api/v1/trading-state", headers=h)
        assert r.status_code == 503 and "safety" in r.json()["detail"]
        health = env.client.get("/api/v1/health").json()
        assert health["status"] == "degraded" and health["trading_state"] == "UNKNOWN"
        env.server.ctx.ask_timeout_s = 0.3
        d.mark_down("safety")  # being restarted: the ask waits in the directory's buffer, then times out
        r = env.client.get("/api/v1/trading-state", headers=h)
        assert r.status_code == 504 and "safety" in r.json()["detail"]
        release = threading.Event()
        slow = SlowSafety.start(d, release)
        d.register("safety", slow)
        r = env.client.get("/api/v1/trading-state", headers=h)
        assert r.status_code == 504 and "did not answer" in r.json()["detail"]
        assert env.client.get("/api/v1/orders", headers=h).status_code == 200  # the loop was never blocked
        release.set()
        slow.stop()
    finally:
        env.server.ctx.ask_timeout_s = 2.0
        d.register("safety", original)


# ---------------------------------------------------------------- SSE
def read_events(response, want: set[str], limit: int = 200, until=lambda seen: True) -> dict[str, list]:
    """Read until every kind in ``want`` was seen and ``until(seen)`` holds (or ``limit`` events)."""
    seen: dict[str, list] = {}
    name = None
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:") and name:
            seen.setdefault(name, []).append(json.loads(line[5:]))
        if (want <= seen.keys() and until(seen)) or sum(map(len, seen.values())) > limit:
            break
    return seen


def test_sse_streams_fills_state_metrics_and_pnl(env):
    env.engine.start_feed(interval_s=0.05)
    h = env.headers("alice")
    with env.client.stream("GET", "/api/v1/events", headers=h) as r:
        assert r.headers["content-type"].startswith("text/event-stream"), (r.status_code, r.read())
        env.client.post("/api/v1/trading-state/kill-switch", headers=h, json={"reason": "sse test"})
        seen = read_events(r, {"hello", "fill", "metrics", "pnl", "state"},
                           until=lambda seen: any(x.get("reason") == "sse test" for x in seen.get("state", [])))
    assert {"hello", "fill", "metrics", "pnl", "state"} <= seen.keys()
    assert any(s.get("reason") == "sse test" for s in seen["state"])
    env.client.put("/api/v1/trading-state", headers=h, json={"state": "ACTIVE"})


def test_sse_without_token_is_401(env):
    assert env.client.get("/api/v1/events").status_code == 401


# ---------------------------------------------------------------- startup rules and first run
def test_first_run_creates_admin_and_prints_password_once(tmp_path, capsys):
    cfg = make_config(tmp_path)
    engine = FakeEngine(with_hub=False)
    try:
        server = ApiServer(cfg, engine.directory, secret=None)  # nothing configured: random secret
        assert server.secret_generated
        server.start()
        try:
            out = capsys.readouterr().out
            password = out.split("password: ")[1].split()[0]
            r = httpx.post(server.url + "/api/v1/auth/login", json={"username": "admin", "password": password})
            assert r.status_code == 200 and r.json()["role"] == "admin"
            assert password not in (tmp_path / "users.json").read_text()
        finally:
            server.stop()
        server2 = ApiServer(cfg, engine.directory, secret=None)
        server2.start()
        server2.stop()
        assert "password:" not in capsys.readouterr().out  # only once
    finally:
        engine.stop()


def test_live_or_exposed_api_refuses_weak_secret_with_instructions(tmp_path):
    for cfg in (Config(mode="live", api=ApiSection(port=0)), Config(api=ApiSection(host="0.0.0.0", port=0))):
        with pytest.raises(ApiConfigError, match="ACTORTRADER_JWT_SECRET"):
            ApiServer(cfg, FakeEngine.__new__(FakeEngine), secret="")


def test_port_in_use_is_a_clear_error(env, tmp_path):
    cfg = Config(engine=EngineSection(data_dir=str(tmp_path)), api=ApiSection(port=env.server.port, users_file=str(tmp_path / "u.json")))
    server = ApiServer(cfg, env.engine.directory, secret=SECRET)
    with pytest.raises(ApiConfigError, match="--api-port"):
        server.start()


# ---------------------------------------------------------------- users CLI
def run_cli(argv, cfg, stdin=""):
    parser = argparse.ArgumentParser(prog="actortrader")
    add_users_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    import sys

    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return cmd_users(args, cfg)
    finally:
        sys.stdin = old


def test_users_cli_add_list_remove(tmp_path, capsys):
    cfg = make_config(tmp_path)
    assert run_cli(["users", "add", "carol", "--role", "trader", "--password-stdin"], cfg, "a very long password\n") == 0
    assert UserStore(tmp_path / "users.json").get("carol").role.value == "trader"
    assert run_cli(["users", "list"], cfg) == 0 and "carol\ttrader" in capsys.readouterr().out
    assert run_cli(["users", "add", "carol", "--role", "admin", "--password-stdin"], cfg, "a very long password\n") == 2
    assert "already exists" in capsys.readouterr().err
    assert run_cli(["users", "add", "dave", "--role", "viewer", "--password-stdin"], cfg, "short\n") == 2
    assert "at least 12" in capsys.readouterr().err
    assert run_cli(["users", "remove", "carol"], cfg) == 0
    assert run_cli(["users", "remove", "carol"], cfg) == 2 and "does not exist" in capsys.readouterr().err
