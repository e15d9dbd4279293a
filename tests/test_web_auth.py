"""Login, sessions, roles and the websocket upgrade checks, over real sockets."""

from __future__ import annotations

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from tests.web_support import Env, recv_type


async def test_login_ok_sets_strict_httponly_cookie(env: Env) -> None:
    async with aiohttp.ClientSession() as http, \
            http.post(f"{env.base_url}/api/login", json={"username": "alice", "password": "pw-alice"}) as r:
            assert r.status == 200
            body = await r.json()
            raw = r.headers.getall("Set-Cookie")
    assert body["username"] == "alice" and body["role"] == "agent" and body["agent_id"] == "a1"
    assert "token" not in body
    cookie = next(c for c in raw if c.startswith("cti_session="))
    low = cookie.lower()
    assert "httponly" in low and "samesite=strict" in low and "path=/" in low
    assert len(cookie.split(";")[0].split("=", 1)[1]) >= 40


async def test_login_wrong_password_401(env: Env) -> None:
    status, tok, _ = await env.login("alice", "nope")
    assert status == 401 and tok is None
    status, tok, _ = await env.login("ghost", "x")
    assert status == 401


async def test_login_bad_body_400(env: Env) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{env.base_url}/api/login", data=b"not json") as r:
            assert r.status == 400
        async with http.post(f"{env.base_url}/api/login", json={"username": 1, "password": []}) as r:
            assert r.status == 400


async def test_login_rate_limited_per_username(env: Env) -> None:
    for _ in range(5):
        status, _, _ = await env.login("alice", "wrong")
        assert status == 401
    calls = env.auth.calls
    status, _, r = await env.login("alice", "pw-alice")  # even the right password now
    assert status == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert env.auth.calls == calls  # the store is not asked while blocked
    status, _, _ = await env.login("ALICE ", "wrong")  # same user, other spelling
    assert status == 429
    status, _, _ = await env.login("bob", "pw-bob")  # another user is not affected
    assert status == 200


async def test_me_logout_and_bearer(env: Env) -> None:
    tok = await env.token("alice")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{env.base_url}/api/me") as r:
            assert r.status == 401
        h = {"Authorization": f"Bearer {tok}"}
        async with http.get(f"{env.base_url}/api/me", headers=h) as r:
            assert r.status == 200
            assert (await r.json())["agent_id"] == "a1"
        async with http.get(f"{env.base_url}/api/me", cookies={"cti_session": tok}) as r:
            assert r.status == 200
        async with http.post(f"{env.base_url}/api/logout", headers=h) as r:
            assert r.status == 204
        async with http.get(f"{env.base_url}/api/me", headers=h) as r:
            assert r.status == 401


async def test_stats_roles(env: Env) -> None:
    agent = await env.token("alice")
    sup = await env.token("sue")
    admin = await env.token("root")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{env.base_url}/api/stats") as r:
            assert r.status == 401
        async with http.get(f"{env.base_url}/api/stats", headers={"Authorization": f"Bearer {agent}"}) as r:
            assert r.status == 403
        for tok in (sup, admin):
            async with http.get(f"{env.base_url}/api/stats", headers={"Authorization": f"Bearer {tok}"}) as r:
                assert r.status == 200
                snap = await r.json()
                assert {a["id"] for a in snap["agents"]} == {"a1", "a2"}
                assert "sales" in snap["queues"]


async def test_pages_and_redirect(env: Env) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{env.base_url}/", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/agent"
        async with http.get(f"{env.base_url}/agent") as r:
            assert r.status == 200
            assert "pop-card" in await r.text()
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        async with http.get(f"{env.base_url}/wallboard") as r:
            assert r.status == 200
        async with http.get(f"{env.base_url}/static/agent.js") as r:
            assert r.status == 200


def _status(exc: pytest.ExceptionInfo[InvalidStatus]) -> int:
    return exc.value.response.status_code


async def test_ws_without_session_401(env: Env) -> None:
    with pytest.raises(InvalidStatus) as ei:
        async with env.ws("/ws/agent", None):
            pass
    assert _status(ei) == 401
    with pytest.raises(InvalidStatus) as ei:
        async with env.ws("/ws/agent", "forged-token"):
            pass
    assert _status(ei) == 401


async def test_ws_bad_origin_403(env: Env) -> None:
    tok = await env.token("alice")
    with pytest.raises(InvalidStatus) as ei:
        async with env.ws("/ws/agent", tok, origin="http://evil.example"):
            pass
    assert _status(ei) == 403
    # a cookie client (a browser) must send an Origin
    with pytest.raises(InvalidStatus) as ei:
        async with env.ws("/ws/agent", tok, origin=None):
            pass
    assert _status(ei) == 403
    # a Bearer client may omit it, but not send a foreign one
    async with env.ws("/ws/agent", tok, origin=None, bearer=True) as ws:
        assert (await recv_type(ws, "hello"))["agent_id"] == "a1"
    with pytest.raises(InvalidStatus) as ei:
        async with env.ws("/ws/agent", tok, origin="http://evil.example", bearer=True):
            pass
    assert _status(ei) == 403


async def test_ws_roles(env: Env) -> None:
    sup = await env.token("sue")
    agent = await env.token("alice")
    no_agent_id = await env.token("nobody")
    for tok in (sup, no_agent_id):
        with pytest.raises(InvalidStatus) as ei:
            async with env.ws("/ws/agent", tok):
                pass
        assert _status(ei) == 403
    with pytest.raises(InvalidStatus) as ei:
        async with env.ws("/ws/supervisor", agent):
            pass
    assert _status(ei) == 403


async def test_logout_closes_the_sessions_sockets(env: Env) -> None:
    tok = await env.token("alice")
    async with env.ws("/ws/agent", tok) as ws:
        await recv_type(ws, "hello")
        await ws.send('{"type":"ready"}')
        await recv_type(ws, "state")
        async with aiohttp.ClientSession() as http, \
                http.post(f"{env.base_url}/api/logout", headers={"Authorization": f"Bearer {tok}"}) as r:
                assert r.status == 204
        await ws.wait_closed()
    assert env.acd.states["a1"] == "logged_out"
