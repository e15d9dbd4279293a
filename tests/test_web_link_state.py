"""Every Asterisk server's AMI link state on the web edge: ``GET /api/health`` (supervisor and
admin only), the ``links`` frame of the supervisor feed (in full) and of the agent socket (no
address, user or count), down then up, per server.  The whole app in this process, real sockets:
the simulator as the Asterisk that is up, a closed port for the one that is down, a peer that
refuses the login with words of its own."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from screen_pop.messages import LinksMsg, parse_server
from simulator import AsteriskSim, SimConfig
from tests.link_support import AGENT, AGENT_PW, PBX2, RefusingAmi, free_port, running_app


async def _frame(ws: aiohttp.ClientWebSocketResponse, t: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            m: dict[str, Any] = await ws.receive_json()
            if m["type"] == t:
                parse_server(json.dumps(m))  # a frame the message types accept
                return m


def _by_server(links: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["server"]: a for a in links}


async def test_health_is_for_supervisors_and_admins(tmp_path: Path) -> None:
    async with AsteriskSim(SimConfig(agi_port=1)) as sim, \
            running_app(tmp_path, {"default": ("127.0.0.1", sim.ami_port)}) as cti:
        assert (await cti.get("/api/health", None))[0] == 401
        assert (await cti.get("/api/health", await cti.token(AGENT, AGENT_PW)))[0] == 403
        for user in ("sue", "root"):
            status, body = await cti.get("/api/health", await cti.token(user, "pw-" + user))
            assert status == 200 and body["ok"] is True
            (a,) = body["ami"]
            assert (a["server"], a["host"], a["port"], a["username"], a["up"], a["state"], a["reason"]) == (
                "default", "127.0.0.1", sim.ami_port, "ctilp", True, "up", "")
            assert isinstance(a["since"], float) and a["attempts"] == 0
            assert "secret" not in str(body)


async def test_two_servers_each_their_own_state_down_then_up(tmp_path: Path) -> None:
    down_port = free_port(PBX2)
    async with AsteriskSim(SimConfig(agi_port=1)) as sim, running_app(
            tmp_path, {"default": ("127.0.0.1", sim.ami_port), "pbx2": (PBX2, down_port)}, two=True) as cti:
        sue = await cti.token("sue", "pw-sue")
        agent = await cti.token(AGENT, AGENT_PW)
        status, body = await cti.get("/api/health", sue)
        links = _by_server(body["ami"])
        assert status == 200 and body["ok"] is False
        assert links["default"]["up"] is True
        assert (links["pbx2"]["up"], links["pbx2"]["state"], links["pbx2"]["reason"]) == (
            False, "unreachable", "connection refused")
        assert (links["pbx2"]["host"], links["pbx2"]["port"]) == (PBX2, down_port)

        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"{cti.ws_base}/ws/supervisor", headers={"Authorization": f"Bearer {sue}"}) as sup, \
                http.ws_connect(f"{cti.ws_base}/ws/agent", headers={"Authorization": f"Bearer {agent}"}) as ag:
            sup_links = _by_server((await _frame(sup, "links"))["links"])
            assert sup_links["pbx2"]["up"] is False and sup_links["pbx2"]["username"] == "ctilp"
            ag_links = _by_server((await _frame(ag, "links"))["links"])
            assert ag_links["pbx2"] == {"server": "pbx2", "up": False, "state": "unreachable",
                                        "reason": "connection refused", "since": links["pbx2"]["since"]}
            assert ag_links["default"]["up"] is True

            async with AsteriskSim(SimConfig(ami_host=PBX2, ami_port=down_port, agi_port=1)):
                while True:  # retries are reported to supervisors (attempts); then the link is up
                    sup_links = _by_server((await _frame(sup, "links", 15))["links"])
                    if sup_links["pbx2"]["up"]:
                        break
                    assert sup_links["pbx2"]["attempts"] >= 1
                ag_links = _by_server((await _frame(ag, "links"))["links"])  # the agent: only the change
                assert ag_links["pbx2"]["up"] is True and ag_links["pbx2"]["state"] == "up"
                status, body = await cti.get("/api/health", sue)
                assert body["ok"] is True and all(a["up"] for a in body["ami"])
                await sup.close()
                await ag.close()
                await cti.app.stop()  # before its Asterisk goes


async def test_the_agent_socket_gets_the_link_only_when_its_view_changes(tmp_path: Path) -> None:
    port = free_port()
    async with running_app(tmp_path, {"default": ("127.0.0.1", port)}) as cti:
        agent = await cti.token(AGENT, AGENT_PW)
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"{cti.ws_base}/ws/agent", headers={"Authorization": f"Bearer {agent}"}) as ag:
            assert (await ag.receive_json(timeout=5))["type"] == "hello"
            first = await ag.receive_json(timeout=5)
            assert first["type"] == "links" and first["links"][0]["state"] == "unreachable"
            client = cti.app.first.client
            assert client is not None
            before = client.link.attempts
            with pytest.raises(TimeoutError):  # retries go on (0.1 s, 0.2 s ...) but say nothing new
                await ag.receive_json(timeout=1.5)
            assert client.link.attempts > before


async def test_a_refusal_in_the_peers_own_words_reaches_the_feed_as_data(tmp_path: Path) -> None:
    words = '<img src=x onerror="alert(1)">Authentication failed'
    async with RefusingAmi(words) as pbx, running_app(tmp_path, {"default": ("127.0.0.1", pbx.port)}) as cti:
        sue = await cti.token("sue", "pw-sue")
        _, body = await cti.get("/api/health", sue)
        (a,) = body["ami"]
        assert (a["up"], a["state"], a["reason"]) == (False, "auth_failed", words)
        assert pbx.logins >= 1


def test_links_frames_are_checked_like_the_others() -> None:
    from screen_pop.errors import MessageError

    ok = '{"type":"links","links":[{"server":"a","up":false,"state":"lost","reason":"EOF","since":1.5}]}'
    assert isinstance(parse_server(ok), LinksMsg)
    for bad in ('{"type":"links","links":{}}', '{"type":"links","links":[{"server":"a"}]}',
                '{"type":"links","links":[{"server":"a","up":"no","state":"x","reason":"","since":1}]}'):
        with pytest.raises(MessageError):
            parse_server(bad)
