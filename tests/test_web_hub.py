"""The websocket hub over real sockets: pops, routing, commands, errors, slow clients."""

from __future__ import annotations

import asyncio
import time

from cti.domain import CallAnswered, CallEnded
from screen_pop.deps import WebConfig
from tests.web_support import CUSTOMER_360, Env, frames_for, recv_json, recv_type, start_env


async def test_hello_then_ready_logs_in_and_reports_state(env: Env) -> None:
    tok = await env.token("alice")
    async with env.ws("/ws/agent", tok) as ws:
        hello = await recv_json(ws)
        assert hello == {"type": "hello", "agent_id": "a1", "state": "logged_out"}
        assert env.acd.log == []  # connecting does not log the agent in
        await ws.send('{"type":"ready"}')
        s1 = await recv_type(ws, "state")
        s2 = await recv_type(ws, "state")
        assert (s1["state"], s2["state"]) == ("not_ready", "ready")
        assert set(s2) == {"type", "agent_id", "state", "reason", "call_id", "at"}
        await ws.send('{"type":"not_ready","reason":"lunch"}')
        s3 = await recv_type(ws, "state")
        assert (s3["state"], s3["reason"]) == ("not_ready", "lunch")
        assert [op for op, *_ in env.acd.log] == ["set_ready", "login", "set_ready", "set_not_ready"]


async def test_pop_reaches_only_the_offered_agent(env: Env) -> None:
    ta, tb = await env.token("alice"), await env.token("bob")
    async with env.ws("/ws/agent", ta) as wa, env.ws("/ws/agent", tb) as wb, env.ws("/ws/agent", ta) as wa2:
        for w in (wa, wb, wa2):
            await recv_type(w, "hello")
        ev = env.offer("a1", "c1", customer_id=7)
        pop = await recv_type(wa, "pop")
        assert pop == {
            "type": "pop", "call_id": "c1", "cti_call_id": "cti-c1", "offer_no": 1, "caller_num": "+15550001",
            "caller_name": "ADA L", "queue": "sales", "ivr_choice": "billing", "customer": CUSTOMER_360,
            "offered_at": ev.at,
        }
        assert (await recv_type(wa2, "pop"))["call_id"] == "c1"  # every socket of that agent
        assert await frames_for(wb, 0.3) == []  # the other agent gets nothing
        assert env.customers.lookups == 1  # one lookup for both sockets

        # answered / ended go to the call's agent only
        env.bus.publish(CallAnswered("c1", "a1", 3.5, time.time()))
        env.bus.publish(CallEnded("c1", 16, "Normal Clearing", "caller", "hangup", time.time()))
        ans = await recv_type(wa, "call_answered")
        assert ans["call_id"] == "c1" and ans["wait_s"] == 3.5
        end = await recv_type(wa, "call_ended")
        assert end["call_id"] == "c1" and end["cause"] == 16 and end["hangup_side"] == "caller"
        assert await frames_for(wb, 0.3) == []


async def test_pop_unknown_caller_and_phone_fallback(env: Env) -> None:
    tok = await env.token("alice")
    async with env.ws("/ws/agent", tok) as ws:
        await recv_type(ws, "hello")
        env.offer("a1", "c2", customer_id=None, caller_num="+19999999")
        assert (await recv_type(ws, "pop"))["customer"] is None
        env.offer("a1", "c3", customer_id=None, caller_num="+15550001")  # the IVR missed; the number finds it
        assert (await recv_type(ws, "pop"))["customer"]["customer"]["name"] == "Ada Lovelace"


async def test_state_changes_only_to_that_agent(env: Env) -> None:
    ta, tb = await env.token("alice"), await env.token("bob")
    async with env.ws("/ws/agent", ta) as wa, env.ws("/ws/agent", tb) as wb:
        await recv_type(wa, "hello")
        await recv_type(wb, "hello")
        env.acd.force("a2", "ringing", "c9")
        m = await recv_type(wb, "state")
        assert (m["agent_id"], m["state"], m["call_id"]) == ("a2", "ringing", "c9")
        assert await frames_for(wa, 0.3) == []


async def test_disposition_calls_the_acd(env: Env) -> None:
    tok = await env.token("alice")
    async with env.ws("/ws/agent", tok) as ws:
        await recv_type(ws, "hello")
        env.acd.force("a1", "wrap_up", "c1")
        await recv_type(ws, "state")
        await ws.send('{"type":"disposition","call_id":"c1","code":"sale","notes":"upsold"}')
        await ws.send('{"type":"ping"}')
        await recv_type(ws, "pong")
        assert env.acd.dispositions == [("a1", "c1", "sale", "upsold")]
        # a disposition for a call the ACD does not know: error frame, socket stays
        await ws.send('{"type":"disposition","call_id":"nope","code":"resolved"}')
        err = await recv_type(ws, "error")
        assert err["code"] == "unknown-call" and err["ref"] == "disposition"


async def test_malformed_frames_get_error_frames_and_the_socket_stays(env: Env) -> None:
    tok = await env.token("alice")
    async with env.ws("/ws/agent", tok) as ws:
        await recv_type(ws, "hello")
        cases = {
            "not json": "bad-json",
            "[1,2]": "bad-json",
            '{"no":"type"}': "missing-type",
            '{"type":"launch_missiles"}': "unknown-type",
            '{"type":"not_ready","reason":5}': "bad-field",
            '{"type":"disposition","call_id":"c1","code":"weird"}': "bad-field",
            '{"type":"disposition","code":"resolved"}': "missing-field",
            '{"type":"not_ready","reason":"' + "x" * 20000 + '"}': "too-large",
        }
        for raw, code in cases.items():
            await ws.send(raw)
            err = await recv_json(ws)
            assert err["type"] == "error" and err["code"] == code, raw[:40]
        await ws.send(b"\x00\x01")
        assert (await recv_json(ws))["code"] == "bad-frame"
        # an illegal state change is an error frame too
        env.acd.force("a1", "on_call", "c1")
        await recv_type(ws, "state")
        await ws.send('{"type":"ready"}')
        err = await recv_type(ws, "error")
        assert err["code"] == "invalid-transition" and "on_call" in err["message"]
        await ws.send('{"type":"ping"}')
        assert (await recv_type(ws, "pong"))["type"] == "pong"


async def test_supervisor_feed_gets_every_state_and_stats(env: Env) -> None:
    sup, ta = await env.token("sue"), await env.token("alice")
    async with env.ws("/ws/supervisor", sup) as ws, env.ws("/ws/agent", ta) as wa:
        assert (await recv_json(ws))["type"] == "hello"
        first = await recv_type(ws, "stats")
        assert {a["id"] for a in first["snapshot"]["agents"]} == {"a1", "a2"}
        await recv_type(wa, "hello")
        await wa.send('{"type":"ready"}')
        env.acd.force("a2", "not_ready", None, "rona")
        seen = []
        while len(seen) < 3:
            m = await recv_type(ws, "state")
            seen.append((m["agent_id"], m["state"]))
        assert sorted(seen) == [("a1", "not_ready"), ("a1", "ready"), ("a2", "not_ready")]
        periodic = await recv_type(ws, "stats", timeout=2)
        assert periodic["snapshot"]["queues"]["sales"]["ready_agents"] == 1
        env.offer("a1", "c5")
        assert all(m["type"] != "pop" for m in await frames_for(ws, 0.3))
        await ws.send('{"type":"ready"}')
        assert (await recv_type(ws, "error"))["code"] == "forbidden"


async def test_closing_the_last_socket_sets_not_ready(env: Env) -> None:
    tok = await env.token("alice")
    async with env.ws("/ws/agent", tok) as ws:
        await recv_type(ws, "hello")
        await ws.send('{"type":"ready"}')
        await recv_type(ws, "state")
        await recv_type(ws, "state")
    for _ in range(50):
        if env.acd.states["a1"] == "not_ready":
            break
        await asyncio.sleep(0.02)
    assert env.acd.states["a1"] == "not_ready"
    assert env.acd.log[-1] == ("set_not_ready", "a1", "disconnected")


async def test_a_slow_client_is_dropped_without_stalling_others() -> None:
    e = await start_env(WebConfig(send_queue=8, stats_interval_s=60))
    try:
        gate = asyncio.Event()
        e.customers.gate = gate  # a1's pop hangs on its lookup, so a1's queue fills up
        ta, tb = await e.token("alice"), await e.token("bob")
        async with e.ws("/ws/agent", ta) as wa, e.ws("/ws/agent", tb) as wb:
            await recv_type(wa, "hello")
            await recv_type(wb, "hello")
            e.offer("a1", "slow", customer_id=7)
            for rnd in range(3):  # bursts smaller than the queue: b keeps up, a falls behind
                for i in range(5):
                    e.acd.force("a1", "ringing", "slow")
                    e.acd.force("a2", "ringing", f"fast{rnd}-{i}")
                got = [await recv_type(wb, "state") for _ in range(5)]
                assert got[-1]["call_id"] == f"fast{rnd}-4"
            e.offer("a2", "c-b", customer_id=None, caller_num="")
            assert (await recv_type(wb, "pop"))["call_id"] == "c-b"
            await asyncio.wait_for(wa.wait_closed(), 3)
            assert wa.close_code == 1013
            assert e.hub.dropped_clients == 1
            gate.set()
    finally:
        await e.runner.cleanup()


async def test_customer_lookup_timeout_still_pops() -> None:
    e = await start_env(WebConfig(customer_timeout_s=0.1, stats_interval_s=60))
    try:
        e.customers.gate = asyncio.Event()  # never set
        tok = await e.token("alice")
        async with e.ws("/ws/agent", tok) as ws:
            await recv_type(ws, "hello")
            e.offer("a1", "c1", customer_id=7)
            pop = await recv_type(ws, "pop")
            assert pop["customer"] is None and pop["call_id"] == "c1"
            assert e.hub.lookup_errors == 1
    finally:
        await e.runner.cleanup()
