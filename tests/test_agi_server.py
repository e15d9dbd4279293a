"""The FastAGI server over real sockets, with the test playing Asterisk's side."""

from __future__ import annotations

import asyncio

import pytest

from cti.agi.errors import AgiHangup
from cti.agi.protocol import format_env
from cti.agi.server import FastAgiServer
from cti.agi.session import AgiSession

ENV = {"agi_network": "yes", "agi_network_script": "ivr/main", "agi_request": "agi://127.0.0.1/ivr/main",
       "agi_channel": "Local/x@callers-00000000;1", "agi_uniqueid": "1.0", "agi_callerid": "5551234",
       "agi_calleridname": "Grace", "agi_accountcode": ""}


async def connect(port: int, script: str = "ivr/main") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(format_env({**ENV, "agi_network_script": script}))
    return r, w


async def test_commands_replies_and_final_hangup() -> None:
    seen: list[object] = []

    async def handler(s: AgiSession) -> None:
        await s.answer()
        await s.set_variable("CTI_CALL_ID", "abc def")
        seen.append(await s.get_data("beep", 3000, 1))
        seen.append(await s.get_variable("X"))

    async with FastAgiServer(port=0, close_wait=1.0) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        assert await r.readline() == b"ANSWER\n"
        w.write(b"200 result=0\n")
        assert await r.readline() == b'SET VARIABLE CTI_CALL_ID "abc def"\n'
        w.write(b"200 result=1\n")
        assert await r.readline() == b"GET DATA beep 3000 1\n"
        w.write(b"200 result= (timeout)\n")
        assert await r.readline() == b"GET VARIABLE X\n"
        w.write(b"200 result=1 (val)\n")
        assert await r.read() == b""  # server half-closes
        w.write(b"HANGUP\n")
        w.close()
    assert seen == [None, "val"]


async def test_hangup_between_command_and_reply_then_one_more_command_at_most() -> None:
    errors: list[str] = []

    async def handler(s: AgiSession) -> None:
        try:
            await s.stream_file("demo-congrats")
        except AgiHangup:
            errors.append("hangup")
        await s.set_variable("A", "1")  # still allowed once on a dead channel
        with pytest.raises(AgiHangup):
            await s.set_variable("B", "2")  # never reaches the wire
        errors.append("done")

    async with FastAgiServer(port=0, close_wait=0.5) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        assert await r.readline() == b'STREAM FILE demo-congrats ""\n'
        w.write(b"HANGUP\n200 result=-1 endpos=48160\n")
        assert await r.readline() == b"SET VARIABLE A 1\n"
        w.write(b"200 result=1\n")
        assert await r.read() == b""
        w.close()
    assert errors == ["hangup", "done"]


async def test_empty_garbage_and_silent_connections_do_not_stall() -> None:
    async with FastAgiServer(port=0, env_timeout=0.3) as srv:
        srv.route("ivr/", lambda s: asyncio.sleep(0))
        conns = []
        for payload in (b"", b"\x00\xffgarbage\n", b"agi_network: yes\n"):  # last one never ends
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            if payload:
                w.write(payload)
            else:
                w.write_eof()
            conns.append((r, w))
        t0 = asyncio.get_running_loop().time()
        for r, w in conns:
            assert await asyncio.wait_for(r.read(), 2.0) == b""
            w.close()
        assert asyncio.get_running_loop().time() - t0 < 1.5
        assert srv.rejected_bad == 3


async def test_handler_error_goes_to_fallback_not_silence() -> None:
    fell: list[str] = []

    async def broken(s: AgiSession) -> None:
        raise RuntimeError("bug")

    async def fallback(s: AgiSession, e: BaseException | None) -> None:
        fell.append(type(e).__name__)
        await s.set_variable("CTI_NEXT", "queue")

    async with FastAgiServer(port=0, fallback=fallback, close_wait=0.5) as srv:
        srv.route("ivr/", broken)
        r, w = await connect(srv.port)
        assert (await r.readline()).startswith(b"VERBOSE")
        w.write(b"200 result=1\n")
        assert await r.readline() == b"SET VARIABLE CTI_NEXT queue\n"
        w.write(b"200 result=1\n")
        assert await r.read() == b""
        w.close()
    assert fell == ["RuntimeError"] and srv.errors == 1


async def test_session_cap_refuses_clearly() -> None:
    gate = asyncio.Event()

    async def slow(s: AgiSession) -> None:
        await gate.wait()

    async with FastAgiServer(port=0, max_sessions=1, close_wait=0.2) as srv:
        srv.route("ivr/", slow)
        r1, w1 = await connect(srv.port)
        await asyncio.sleep(0.1)
        r2, w2 = await connect(srv.port)
        line = await asyncio.wait_for(r2.readline(), 2)
        assert line.startswith(b'VERBOSE "cti: server busy"')
        w2.write(b"200 result=1\n")
        assert srv.refused == 1
        gate.set()
        for w in (w1, w2):
            w.close()
