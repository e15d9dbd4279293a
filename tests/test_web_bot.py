"""simulator.agent_bot.AgentBot against the real app."""

from __future__ import annotations

import asyncio
import time

import pytest

from cti.domain import CallAnswered, CallEnded
from simulator.agent_bot import AgentBot, AgentBotError
from tests.web_support import Env


async def _until(pred, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not pred():  # noqa: ASYNC110  polls any predicate; no single event signals them all
            await asyncio.sleep(0.01)


async def test_bot_records_pops_and_disposes(env: Env) -> None:
    bot = AgentBot(env.base_url, "alice", "pw-alice", "a1", origin=env.origin, disposition_delay_s=0.05)
    async with bot:
        await asyncio.wait_for(bot.connected.wait(), 3)
        await _until(lambda: env.acd.states["a1"] == "ready")
        assert "password" not in repr(bot) and "pw-alice" not in repr(bot)
        for n in range(3):
            env.offer("a1", f"c{n}")
        await _until(lambda: len(bot.pops) == 3)
        assert [p["call_id"] for p in bot.pops] == ["c0", "c1", "c2"]
        assert bot.pops[0]["customer"]["customer"]["name"] == "Ada Lovelace"
        assert len(bot.latencies_ms) == 3 and all(0 <= x < 2000 for x in bot.latencies_ms)
        env.acd.force("a1", "on_call", "c2")
        env.bus.publish(CallAnswered("c2", "a1", 1.0, time.time()))
        env.acd.force("a1", "wrap_up", "c2")
        env.bus.publish(CallEnded("c2", 16, "Normal Clearing", "caller", "hangup", time.time()))
        await _until(lambda: env.acd.dispositions == [("a1", "c2", "resolved", "")])
        assert bot.dispositions == ["c2"]
        assert bot.errors == []
    assert bot.pops and not bot.connected.is_set()


async def test_bot_reconnects_after_a_drop(env: Env) -> None:
    bot = AgentBot(env.base_url, "bob", "pw-bob", "a2", origin=env.origin, retry_delay_s=0.05)
    async with bot:
        await asyncio.wait_for(bot.connected.wait(), 3)
        await _until(lambda: env.hub.connections("a2") == 1)
        # the server drops the socket (e.g. a restart of the edge): the bot comes back and is ready again
        conn = next(iter(env.hub._agents["a2"]))
        conn.close()
        await _until(lambda: bot.connects == 2 and env.hub.connections("a2") == 1)
        await _until(lambda: env.acd.states["a2"] == "ready")
        env.offer("a2", "after")
        await _until(lambda: [p["call_id"] for p in bot.pops] == ["after"])


async def test_bot_logs_in_again_after_logout(env: Env) -> None:
    import aiohttp

    bot = AgentBot(env.base_url, "bob", "pw-bob", "a2", origin=env.origin, retry_delay_s=0.05)
    async with bot:
        await asyncio.wait_for(bot.connected.wait(), 3)
        tok = bot._token
        async with aiohttp.ClientSession() as http:
            await http.post(f"{env.base_url}/api/logout", headers={"Authorization": f"Bearer {tok}"})
        await _until(lambda: bot.connects == 2 and bot._token != tok)


async def test_bot_wrong_password_fails_fast(env: Env) -> None:
    bot = AgentBot(env.base_url, "bob", "nope", "a2", origin=env.origin)
    with pytest.raises(AgentBotError):
        await asyncio.wait_for(bot.run(), 3)


async def test_bot_foreign_origin_refused(env: Env) -> None:
    bot = AgentBot(env.base_url, "bob", "pw-bob", "a2", origin="http://evil.example")
    with pytest.raises(AgentBotError):
        await asyncio.wait_for(bot.run(), 3)
    assert bot.errors == ["ws refused: HTTP 403"]
