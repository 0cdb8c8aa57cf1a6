"""Authentication and authorization attacks against a running API, one test each."""

from __future__ import annotations

import time

import jwt
import pytest
from tests.api_fixtures import PASSWORD, SECRET, api_env


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with api_env(tmp_path_factory.mktemp("auth")) as e:
        yield e


def claims(env, **over):
    now = int(time.time())
    base = {"iss": env.cfg.api.issuer, "aud": env.cfg.api.audience, "sub": "alice", "role": "admin", "jti": "j1",
            "iat": now, "nbf": now, "exp": now + 600, "token_type": "access"}  # fmt: skip
    base.update(over)
    return base


def get_state(env, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return env.client.get("/api/v1/trading-state", headers=headers)


def test_valid_token_works(env):
    assert get_state(env, jwt.encode(claims(env), SECRET, "HS256", headers={"typ": "at+jwt"})).status_code == 200


def test_no_token(env):
    r = env.client.get("/api/v1/trading-state")
    assert r.status_code == 401 and "bearer" in r.json()["detail"]


def test_expired_token(env):
    r = get_state(env, jwt.encode(claims(env, iat=1, nbf=1, exp=2), SECRET, "HS256", headers={"typ": "at+jwt"}))
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_alg_none(env):
    unsigned = jwt.encode(claims(env), None, algorithm="none", headers={"typ": "at+jwt"})
    assert get_state(env, unsigned).status_code == 401


def test_alg_swapped_to_hs512(env):
    assert get_state(env, jwt.encode(claims(env), SECRET, "HS512", headers={"typ": "at+jwt"})).status_code == 401


@pytest.mark.parametrize("field", ["aud", "iss"])
def test_wrong_audience_or_issuer(env, field):
    r = get_state(env, jwt.encode(claims(env, **{field: "someone-else"}), SECRET, "HS256", headers={"typ": "at+jwt"}))
    assert r.status_code == 401 and ("audience" if field == "aud" else "issuer") in r.json()["detail"]


def test_tampered_signature_and_payload(env):
    good = env.login("vic")["access_token"]
    head, body, sig = good.split(".")
    flipped = sig[:-2] + ("AA" if not sig.endswith("AA") else "BB")
    assert get_state(env, f"{head}.{body}.{flipped}").status_code == 401
    forged_body = jwt.utils.base64url_encode(jwt.utils.force_bytes('{"sub":"vic","role":"admin"}')).decode()
    assert get_state(env, f"{head}.{forged_body}.{sig}").status_code == 401


def test_token_signed_with_another_secret(env):
    other = "another-secret-" + "k" * 40
    assert get_state(env, jwt.encode(claims(env), other, "HS256", headers={"typ": "at+jwt"})).status_code == 401


def test_refresh_token_used_as_access_token(env):
    pair = env.client.post("/api/v1/auth/login", json={"username": "vic", "password": PASSWORD}).json()
    assert get_state(env, pair["refresh_token"]).status_code == 401


def test_replayed_refresh_token_revokes_family(env):
    pair = env.client.post("/api/v1/auth/login", json={"username": "tom", "password": PASSWORD}).json()
    r1 = env.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r1.status_code == 200 and r1.json()["refresh_token"] != pair["refresh_token"]
    assert get_state(env, r1.json()["access_token"]).status_code == 200
    replay = env.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert replay.status_code == 401 and "revoked" in replay.json()["detail"]
    successor = env.client.post("/api/v1/auth/refresh", json={"refresh_token": r1.json()["refresh_token"]})
    assert successor.status_code == 401  # the thief's and the victim's sessions both end


def test_logout_revokes_access_and_refresh(env):
    pair = env.client.post("/api/v1/auth/login", json={"username": "tom", "password": PASSWORD}).json()
    headers = {"Authorization": "Bearer " + pair["access_token"]}
    assert env.client.post("/api/v1/auth/logout", headers=headers, json={"refresh_token": pair["refresh_token"]}).status_code == 204
    assert get_state(env, pair["access_token"]).status_code == 401
    assert env.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401


def test_viewer_calling_admin_and_trader_endpoints(env):
    vic = env.headers("vic")
    calls = [
        ("PUT", "/api/v1/trading-state", {"state": "HALTED"}),
        ("POST", "/api/v1/trading-state/kill-switch", {}),
        ("POST", "/api/v1/trading-state/flatten", {}),
        ("GET", "/api/v1/config", None),
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/orders", {"symbol": "SYN", "side": "BUY", "quantity": 1}),
        ("DELETE", "/api/v1/orders/abc", None),
    ]
    for method, path, body in calls:
        r = env.client.request(method, path, headers=vic, json=body)
        assert r.status_code == 403, (method, path, r.text)
    safety = env.engine.directory.ref("safety").proxy()
    assert safety.requests.get(timeout=5) == []  # nothing reached the engine
    tom = env.headers("tom")
    assert env.client.put("/api/v1/trading-state", headers=tom, json={"state": "HALTED"}).status_code == 403
    assert env.client.get("/api/v1/orders", headers=vic).status_code == 200


def test_failed_logins_do_not_reveal_whether_user_exists(env):
    a = env.client.post("/api/v1/auth/login", json={"username": "alice", "password": "wrong password"})
    b = env.client.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong password"})
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


def test_every_non_public_route_requires_a_token(env):
    schema = env.client.get("/api/schema/openapi.json").json()
    public = {"/api/v1/health", "/api/v1/auth/login", "/api/v1/auth/refresh", "/metrics"}
    checked = 0
    for path, ops in schema["paths"].items():
        if path in public:
            continue
        concrete = path.replace("{client_order_id}", "abc")
        for method in ops:
            r = env.client.request(method.upper(), concrete, json={})
            assert r.status_code == 401, (method, path, r.status_code)
            checked += 1
    assert checked >= 14
