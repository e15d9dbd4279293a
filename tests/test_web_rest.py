"""The CRM REST API over real HTTP on the real store (SQLite file and PostgreSQL): roles,
search, 360, upsert, contacts from any channel showing in the next 360, call-log search."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from crm_core.store import Store
from cti.bus import Bus
from screen_pop.deps import WebDeps
from screen_pop.web import build_app
from tests.web_support import FakeAcd

NOW = 1_795_000_000.0


@pytest.fixture
async def api(store: Store) -> AsyncIterator[tuple[str, Store]]:
    for user, role, agent in [("ann", "agent", "1001"), ("ben", "agent", "1002"), ("sue", "supervisor", None)]:
        await store.set_user(user, f"pw-{user}", role, agent_id=agent)
    bus = Bus()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = build_app(WebDeps(bus=bus, auth=store, customers=store, acd=FakeAcd(bus, ["1001", "1002"])),
                    allowed_origins=[base])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield base, store
    finally:
        await runner.cleanup()


def _client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # keep cookies of 127.0.0.1


async def _as(http: aiohttp.ClientSession, base: str, user: str) -> None:
    async with http.post(f"{base}/api/login", json={"username": user, "password": f"pw-{user}"}) as r:
        assert r.status == 200


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as r:
        return r.status, await r.json()


async def test_roles_search_360_upsert_and_contacts(api: tuple[str, Store]) -> None:
    base, _store = api
    async with aiohttp.ClientSession() as anon:
        assert (await _get(anon, f"{base}/api/customers?q=a"))[0] == 401
    async with _client() as sue, _client() as ann:
        await _as(sue, base, "sue")
        await _as(ann, base, "ann")
        body = {"account_no": "ACC1", "name": "Grace Hopper", "phones": ["555-123-4567"],
                "monthly_revenue": 900.0, "account_manager": "Ada"}
        async with ann.post(f"{base}/api/customers", json=body) as r:
            assert r.status == 403  # an agent may not create customers
        async with sue.post(f"{base}/api/customers", json=body) as r:
            assert r.status == 200
            cust = await r.json()
        assert cust["phones"] == ["+15551234567"]
        async with sue.post(f"{base}/api/customers", json={**body, "phones": ["not a phone"]}) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid-input"
        for query in ("q=grace", "phone=%2B1%20555%20123%204567", "account=ACC1"):
            status, found = await _get(ann, f"{base}/api/customers?{query}")
            assert status == 200 and [c["id"] for c in found["customers"]] == [cust["id"]], query
        assert (await _get(ann, f"{base}/api/customers"))[0] == 400
        # an email logged by the agent shows in the next 360 view, with the agent's id
        async with ann.post(f"{base}/api/customers/{cust['id']}/contacts",
                            json={"channel": "email", "direction": "inbound", "disposition": "complaint",
                                  "notes": "invoice twice", "agent_id": "9999"}) as r:
            assert r.status == 201
        async with ann.post(f"{base}/api/customers/{cust['id']}/contacts",
                            json={"channel": "pigeon", "direction": "inbound"}) as r:
            assert r.status == 400
        async with ann.post(f"{base}/api/customers/999999/contacts", json={"channel": "sms",
                                                                         "direction": "outbound"}) as r:
            assert r.status == 404
        status, view = await _get(ann, f"{base}/api/customers/{cust['id']}")
        assert status == 200 and view["last_contacts"][0]["channel"] == "email"
        assert view["last_contacts"][0]["agent_id"] == "1001"  # not the one the body claimed
        assert "1 complaint in the last 30 days" in view["churn_reasons"]
        assert (await _get(ann, f"{base}/api/customers/999999"))[0] == 404


async def test_call_log_search_by_role(api: tuple[str, Store]) -> None:
    base, store = api
    for i, (agent, outcome) in enumerate([("1001", "answered"), ("1002", "answered"), (None, "abandoned")]):
        cid = f"L{i}"
        await store.call_arrived(cid, uniqueid=cid, linkedid=cid, channel="c", caller_num="5550001",
                                 caller_name="X", dnis="5551000", at=NOW + i)
        if agent:
            await store.call_update(cid, agent_id=agent, answered_at=NOW + i + 5)
        await store.call_end(cid, at=NOW + i + 60, outcome=outcome, hangup_cause=16, hangup_side="caller",
                             end_reason="hangup")
    async with _client() as sue, _client() as ann:
        await _as(sue, base, "sue")
        await _as(ann, base, "ann")
        status, all_calls = await _get(sue, f"{base}/api/calls?since={NOW}")
        assert status == 200 and [c["call_id"] for c in all_calls["calls"]] == ["L0", "L1", "L2"]
        status, ab = await _get(sue, f"{base}/api/calls?outcome=abandoned")
        assert [c["call_id"] for c in ab["calls"]] == ["L2"]
        status, mine = await _get(ann, f"{base}/api/calls")
        assert status == 200 and [c["call_id"] for c in mine["calls"]] == ["L0"]  # own calls only
        assert (await _get(ann, f"{base}/api/calls?agent=1002"))[0] == 403
        assert (await _get(sue, f"{base}/api/calls?since=yesterday"))[0] == 400
        assert (await _get(sue, f"{base}/api/calls?outcome=exploded"))[0] == 400
