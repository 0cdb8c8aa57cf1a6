"""Pure pieces of the API: rate limiter, startup security rules, tokens, users, metrics text, SSE channel, EventHub."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import jwt
import numpy as np
import pytest
from tests.api_fixtures import SECRET, FakeClock, make_config

from actors.directory import Directory
from actors.event_hub import EventHub
from engine.api.passwords import OWASP_MEMORY_KIB, hash_password, verify_password
from engine.api.prometheus import render
from engine.api.ratelimit import SlidingWindowLimiter
from engine.api.security import ApiConfigError, check_api_security, resolve_secret
from engine.api.sse import ChannelClosed, EventChannel
from engine.api.tokens import AccessTokens, RefreshTokenStore, TokenError
from engine.api.users import Role, UserError, UserStore, role_allows
from engine.config import ApiSection, Config
from engine.messages import (
    ActorStatus, Fill, FillBlock, MetricsSnapshot, OrderEvent, OrderStatus, OrderUpdates, Side, freeze,
)


# ---------------------------------------------------------------- rate limiter
def test_limiter_allows_exactly_the_limit_then_refuses_with_retry_after():
    clock = FakeClock()
    lim = SlidingWindowLimiter(60, 60.0, clock)
    results = [lim.hit("a").allowed for _ in range(61)]
    assert results[:60] == [True] * 60 and results[60] is False
    assert lim.hit("a").retry_after_s == 60
    assert lim.hit("b").allowed  # per key


def test_limiter_is_sliding_not_fixed_window():
    clock = FakeClock()
    lim = SlidingWindowLimiter(60, 60.0, clock)
    clock.advance(59)  # a fixed window would reset at t=60
    for _ in range(60):
        assert lim.hit("a").allowed
    clock.advance(2)  # 61 s after start: a fixed window would allow 60 more here
    d = lim.hit("a")
    assert not d.allowed and d.retry_after_s == 58
    clock.advance(58)  # now the first 60 leave the window
    assert lim.hit("a").allowed


def test_limiter_refusals_do_not_extend_the_lockout_and_memory_is_bounded():
    clock = FakeClock()
    lim = SlidingWindowLimiter(5, 900, clock, max_keys=100)
    for _ in range(5):
        lim.hit("u")
    for _ in range(50):
        clock.advance(10)
        assert not lim.hit("u").allowed
    clock.advance(900 - 500)
    assert lim.hit("u").allowed
    for i in range(1000):
        lim.hit(f"k{i}")
    assert lim.tracked_keys() <= 100


# ---------------------------------------------------------------- startup rules
def cfg_with(mode="paper", host="127.0.0.1") -> Config:
    return Config(mode=mode, api=ApiSection(host=host))


@pytest.mark.parametrize("mode,host", [("live", "127.0.0.1"), ("paper", "0.0.0.0"), ("paper", "10.1.2.3")])
@pytest.mark.parametrize("secret", ["", "changeme", "short-secret-123", "a" * 40])
def test_strict_setups_refuse_weak_secrets_and_say_how_to_set_one(mode, host, secret):
    problems = check_api_security(cfg_with(mode, host), secret)
    assert problems and all("ACTORTRADER_JWT_SECRET" in p for p in problems)
    with pytest.raises(ApiConfigError, match="ACTORTRADER_JWT_SECRET"):
        resolve_secret(cfg_with(mode, host), secret)


def test_strong_secret_passes_everywhere_and_paper_loopback_generates_one():
    for mode, host in (("live", "0.0.0.0"), ("paper", "127.0.0.1"), ("paper", "::1")):
        assert check_api_security(cfg_with(mode, host), SECRET) == []
    secret, generated = resolve_secret(cfg_with(), "", env={})
    assert generated and len(secret.encode()) >= 32
    assert resolve_secret(cfg_with(), None, env={"ACTORTRADER_JWT_SECRET": SECRET}) == (SECRET, False)


def test_secret_file_is_read_and_a_missing_one_is_a_clear_error(tmp_path):
    f = tmp_path / "jwt.key"
    f.write_text(SECRET + "\n")
    cfg = Config(mode="live", api=ApiSection(jwt_secret_file=str(f)))
    assert resolve_secret(cfg, None, env={}) == (SECRET, False)
    cfg = Config(api=ApiSection(jwt_secret_file=str(tmp_path / "nope")))
    with pytest.raises(ApiConfigError, match="api.jwt_secret_file"):
        resolve_secret(cfg, None, env={})


# ---------------------------------------------------------------- tokens
def test_access_token_claims_and_pinned_algorithm():
    tokens = AccessTokens(SECRET, "iss", "aud", 900)
    token, claims = tokens.mint("alice", "admin")
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], audience="aud")
    assert {"iss", "aud", "sub", "jti", "exp", "iat", "token_type"} <= payload.keys()
    assert payload["exp"] - payload["iat"] == 900 and jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert tokens.verify(token) == claims
    hs512 = jwt.encode(payload, SECRET, algorithm="HS512", headers={"typ": "at+jwt"})
    with pytest.raises(TokenError):
        tokens.verify(hs512)
    no_type = jwt.encode({**payload, "token_type": "refresh"}, SECRET, algorithm="HS256", headers={"typ": "at+jwt"})
    with pytest.raises(TokenError, match="not an access token"):
        tokens.verify(no_type)
    tokens.revoke(claims)
    with pytest.raises(TokenError, match="revoked"):
        tokens.verify(token)
    with pytest.raises(ValueError):
        AccessTokens("short", "iss", "aud", 900)


def test_refresh_tokens_rotate_once_and_reuse_revokes_the_family(tmp_path):
    store = RefreshTokenStore(tmp_path / "s.json", 3600, clock=FakeClock(0))
    first = store.issue("alice")
    user, second = store.rotate(first)
    assert user == "alice" and second != first
    assert first not in (tmp_path / "s.json").read_text()  # only digests are stored
    with pytest.raises(TokenError, match="already used"):
        store.rotate(first)
    with pytest.raises(TokenError, match="revoked"):
        store.rotate(second)  # the legitimate successor dies with the family
    other = store.issue("alice")
    assert RefreshTokenStore(tmp_path / "s.json", 3600, clock=FakeClock(0)).rotate(other)[0] == "alice"  # persisted


def test_refresh_tokens_expire(tmp_path):
    clock = FakeClock(0)
    store = RefreshTokenStore(tmp_path / "s.json", 30 * 24 * 3600, clock=clock)
    token = store.issue("bob")
    clock.advance(30 * 24 * 3600 + 1)
    with pytest.raises(TokenError):
        store.rotate(token)


# ---------------------------------------------------------------- users and passwords
def test_user_store_validates_and_hashes(tmp_path):
    store = UserStore(tmp_path / "u.json")
    store.add("alice", "trader", "a long enough pw")
    raw = (tmp_path / "u.json").read_text()
    assert "a long enough pw" not in raw and "$argon2id$" in raw and f"m={OWASP_MEMORY_KIB},t=2,p=1" in raw
    assert (tmp_path / "u.json").stat().st_mode & 0o777 == 0o600
    for bad in (("bad name!", "viewer", "a long enough pw"), ("bob", "god", "a long enough pw"), ("bob", "viewer", "short"),
                ("alice", "viewer", "a long enough pw")):  # fmt: skip
        with pytest.raises(UserError):
            store.add(*bad)
    store.remove("alice")
    with pytest.raises(UserError, match="does not exist"):
        store.remove("alice")


def test_password_verification_and_roles():
    h = hash_password("s3cret password")
    assert verify_password(h, "s3cret password") and not verify_password(h, "wrong")
    assert not verify_password(None, "anything") and not verify_password("garbage", "x")
    assert role_allows(Role.ADMIN, Role.TRADER) and not role_allows("viewer", Role.TRADER) and not role_allows("x", Role.VIEWER)


# ---------------------------------------------------------------- prometheus
def test_metrics_text_from_snapshot():
    snap = MetricsSnapshot(
        ts_wall_ns=1, rss_bytes=123456, cpu_percent=50.0, threads=9, open_fds=7,
        actors=[ActorStatus(name="orders", supervisor="root", status="running", restarts=2, mailbox_depth=5)],
        rates={"ticks_per_s": 1000.0}, counters={"ticks": 5000.0, "orders.FILLED": 3.0, "rejects.MAX_NOTIONAL": 1.0},
        latency_us={"tick_to_order": {"p50": 40.0, "p99": 200.0}},
    )  # fmt: skip
    text = render(snap, {"batches": 7, "hist": {"p50": 1.5}}).decode()
    for line in (
        "actortrader_process_rss_bytes 123456.0", 'actortrader_orders_total{outcome="FILLED"} 3.0',
        'actortrader_rejects_total{reason="MAX_NOTIONAL"} 1.0', 'actortrader_ticks_total{feed="all"} 5000.0',
        'actortrader_actor_restarts_total{actor="orders"} 2.0', 'actortrader_actor_mailbox_depth{actor="orders"} 5.0',
        'actortrader_latency_seconds{path="tick_to_order",quantile="0.99"} 0.0002', "actortrader_engine_batches 7.0",
        "actortrader_monitor_up 1.0",
    ):  # fmt: skip
        assert line in text, line
    assert "actortrader_monitor_up 0.0" in render(None).decode()


# ---------------------------------------------------------------- SSE channel and EventHub
def test_event_channel_is_bounded_and_reports_gaps():
    async def scenario():
        ch = EventChannel(asyncio.get_running_loop(), capacity=10)
        t = threading.Thread(target=lambda: [ch.offer(i) for i in range(1000)])
        t.start()
        t.join()
        assert len(ch) == 10
        items, dropped = await ch.take(1.0)
        assert items == list(range(10)) and dropped == 990
        ch.close()
        with pytest.raises(ChannelClosed):
            ch.offer(1)

    asyncio.run(scenario())


def _fill(i: int) -> Fill:
    return Fill(client_order_id=f"c{i}", strategy_id="s", trade_id=f"t{i}", symbol="SYN", side=Side.BUY,
                quantity=1.0, price=1.0, fee=0.0, event_seq=i, ts_ns=i)  # fmt: skip


def _fill_block(first: int, n: int) -> FillBlock:
    seq = np.arange(first, first + n, dtype=np.int64)
    return FillBlock(strategy_id="s", symbol="SYN", first_number=first, side=freeze(np.ones(n, dtype=np.int8)),
                     quantity=freeze(np.ones(n)), price=freeze(np.full(n, 2.0)), fee=freeze(np.zeros(n)),
                     event_seq=freeze(seq), ts_ns=freeze(seq))  # fmt: skip


def test_event_hub_ring_holds_its_capacity_in_events_not_in_blocks():
    ref = EventHub.start("events", Directory(), capacity=50)
    try:
        blocks = [_fill_block(1 + 10 * k, 10) for k in range(40)]  # 800 events in all
        for k in range(0, 40, 4):
            ref.tell(OrderUpdates(strategy_id="s", fill_blocks=blocks[k : k + 4]))
        ref.tell(_fill(999))
        hub = ref.proxy()
        got = hub.recent().get(timeout=5)
        expanded = [e for b in blocks for e in (*b.fills(), *b.events())] + [_fill(999)]
        assert got == expanded[-50:]  # the newest 50 events, as a ring of 50 items gave
        held = ref._actor_weakref()._recent
        assert sum(2 * len(i) if isinstance(i, FillBlock) else 1 for i in held) < 50 + 20  # not 40 blocks' worth
    finally:
        ref.stop()


def test_event_hub_replays_ring_fans_out_and_drops_broken_subscribers():
    ref = EventHub.start("events", Directory(), capacity=5)
    try:
        for i in range(8):
            ref.tell(_fill(i))
        ev = OrderEvent(client_order_id="c9", strategy_id="s", symbol="SYN", status=OrderStatus.FILLED, event_seq=9, ts_ns=9)
        ref.tell(OrderUpdates(strategy_id="s", events=[ev], fills=[_fill(9)]))
        got: list = []
        done = threading.Event()

        def cb(e):
            got.append(e)
            if isinstance(e, MetricsSnapshot):
                done.set()

        hub = ref.proxy()
        unsubscribe = hub.subscribe(cb, True).get(timeout=5)
        assert [type(e).__name__ for e in got] == ["Fill", "Fill", "Fill", "OrderEvent", "Fill"]  # ring of 5
        hub.subscribe(lambda e: 1 / 0, False).get(timeout=5)
        assert hub.subscriber_count().get(timeout=5) == 2
        ref.tell(MetricsSnapshot(ts_wall_ns=1, rss_bytes=1, cpu_percent=0, threads=1, open_fds=1))
        assert done.wait(5)
        assert hub.subscriber_count().get(timeout=5) == 1  # the broken one was dropped, the hub lives
        unsubscribe()
        assert hub.subscriber_count().get(timeout=5) == 0
        assert isinstance(hub.recent().get(timeout=5)[-1], MetricsSnapshot)
    finally:
        ref.stop()


def test_make_config_helper_uses_tmp_paths(tmp_path: Path):
    cfg = make_config(tmp_path)
    assert cfg.api.port == 0 and str(tmp_path) in cfg.api.users_file


def test_metrics_text_from_labelled_registry_keys():
    """The engine registry's keys are Prometheus-shaped: labels survive, ``_total`` is not doubled,
    families with different label sets still render, and rates are labelled by what they measure."""
    snap = MetricsSnapshot(
        ts_wall_ns=1, rss_bytes=1, cpu_percent=0.0, threads=1, open_fds=1,
        counters={'feed_ticks_total{feed="feed"}': 5000.0, 'orders_total{outcome="FILLED"}': 3.0,
                  'supervisor_decisions_total{action="restart",child="venue",supervisor="root"}': 1.0,
                  'supervisor_decisions_total{action="stop",supervisor="root"}': 2.0},
        rates={'feed_ticks_total{feed="feed"}': 2000.0},
        latency_us={"feed_to_orders": {"p99.9": 1500.0}},
    )  # fmt: skip
    registry = {"counters": {'feed_ticks_total{feed="feed"}': 5000.0}, "gauges": {'queue_depth{actor="feed"}': 4.0},
                "latency_us": {}}  # fmt: skip
    text = render(snap, registry).decode()
    for line in (
        'actortrader_feed_ticks_total{feed="feed"} 5000.0', 'actortrader_orders_total{outcome="FILLED"} 3.0',
        'actortrader_supervisor_decisions_total{action="restart",child="venue",supervisor="root"} 1.0',
        'actortrader_supervisor_decisions_total{action="stop",child="",supervisor="root"} 2.0',
        'actortrader_rate_per_second{feed="feed",what="feed_ticks"} 2000.0', 'actortrader_queue_depth{actor="feed"} 4.0',
        'actortrader_latency_seconds{path="feed_to_orders",quantile="0.999"} 0.0015',
    ):  # fmt: skip
        assert line in text, line
    assert "_total_total" not in text and "engine_counters" not in text
    assert text.count('actortrader_feed_ticks_total{feed="feed"}') == 1  # the registry's copy is not exported twice
    # Monitor down: the registry's counters are the fallback.
    assert 'actortrader_feed_ticks_total{feed="feed"} 5000.0' in render(None, registry).decode()


def test_event_hub_counts_orders_fills_and_denials_in_the_engine_registry():
    from engine import metrics
    from engine.messages import DenyReason, OrderDenied

    before = metrics.snapshot()["counters"]
    keys = ('orders_total{outcome="FILLED"}', 'fills_total{symbol="SYN"}', 'filled_quantity_total{symbol="SYN"}',
            'order_denials_total{reason="MAX_ORDER_QTY"}')  # fmt: skip
    ref = EventHub.start("events", Directory())
    try:
        filled = OrderEvent(client_order_id="c1", strategy_id="s", symbol="SYN", status=OrderStatus.FILLED, event_seq=1, ts_ns=1)
        denied = OrderDenied(client_order_id="c2", strategy_id="s", reason=DenyReason.MAX_ORDER_QTY)
        ref.ask(OrderUpdates(strategy_id="*", events=[filled], fills=[_fill(1), _fill(2)], denials=[denied]), timeout=5)
        ref.ask(_fill(3), timeout=5)
    finally:
        ref.stop()
    after = metrics.snapshot()["counters"]
    grew = [after.get(k, 0.0) - before.get(k, 0.0) for k in keys]
    assert grew == [1.0, 3.0, 3.0, 1.0]


def test_sse_frame_is_several_standard_messages_in_one_chunk():
    import json as _json

    from engine.api.sse import encode_event, sse_frame

    chunk = sse_frame([encode_event(_fill(1)), {"event": "gap", "data": '{"dropped":3}'}]).decode()
    blocks = [b for b in chunk.split("\r\n\r\n") if b]
    assert chunk.endswith("\r\n\r\n") and len(blocks) == 2
    parsed = [dict(line.split(": ", 1) for line in b.split("\r\n")) for b in blocks]
    assert parsed[0]["event"] == "fill" and _json.loads(parsed[0]["data"])["trade_id"] == "t1"
    assert parsed[1] == {"event": "gap", "data": '{"dropped":3}'}


def test_thin_keeps_rare_events_and_the_newest_bulk_ones_and_counts_the_rest():
    from engine.api.sse import thin
    from engine.messages import TradingState, TradingStateChanged

    state = TradingStateChanged(state=TradingState.HALTED, previous=TradingState.ACTIVE, reason="x", ts_wall_ns=1)
    events = [_fill(i) for i in range(5)] + [state] + [_fill(i) for i in range(5, 10)]
    kept, skipped = thin(events, keep=3)
    assert kept == [state] + [_fill(7), _fill(8), _fill(9)] and skipped == {"fill": 7}
    assert thin(events, keep=10) == (events, {})


def test_event_channel_offer_many_is_bounded_like_offer():
    async def scenario():
        ch = EventChannel(asyncio.get_running_loop(), capacity=10)
        ch.offer_many(list(range(4)))
        ch.offer_many(list(range(4, 20)))
        items, dropped = await ch.take(1.0)
        assert items == list(range(10)) and dropped == 10
        ch.close()
        with pytest.raises(ChannelClosed):
            ch.offer_many([1])

    asyncio.run(scenario())


def test_event_hub_hands_a_batch_subscriber_each_order_update_at_once():
    ref = EventHub.start("events", Directory())
    try:
        singles, batches = [], []
        ref.proxy().subscribe(singles.append, False, batches.append).get(timeout=5)
        ref.ask(OrderUpdates(strategy_id="*", fills=[_fill(1), _fill(2)]), timeout=5)
        ref.ask(_fill(3), timeout=5)  # a lone event still goes to the one-event callback
        assert batches == [(_fill(1), _fill(2))] and singles == [_fill(3)]
        assert ref.proxy().recent().get(timeout=5)[-3:] == [_fill(1), _fill(2), _fill(3)]
    finally:
        ref.stop()
