"""The FastAGI server over real sockets, with the test playing Asterisk's side."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from cti.agi.errors import AgiCommandError, AgiDeadChannel, AgiHangup, AgiProtocolError, AgiTimeout
from cti.agi.protocol import format_env
from cti.agi.server import FastAgiServer
from cti.agi.session import AgiSession

ENV = {"agi_network": "yes", "agi_network_script": "ivr/main", "agi_request": "agi://127.0.0.1/ivr/main",
       "agi_channel": "Local/x@callers-00000000;1", "agi_uniqueid": "1.0", "agi_callerid": "5551234",
       "agi_calleridname": "Grace", "agi_accountcode": ""}


async def play(r: asyncio.StreamReader, w: asyncio.StreamWriter, *steps: tuple[bytes, bytes]) -> None:
    """Play Asterisk's side: expect each command line, answer it."""
    for expect, reply in steps:
        assert await asyncio.wait_for(r.readline(), 2) == expect
        w.write(reply)


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
        await play(r, w,
            (b"ANSWER\n", b"200 result=0\n"),
            (b'SET VARIABLE CTI_CALL_ID "abc def"\n', b"200 result=1\n"),
            (b"GET DATA beep 3000 1\n", b"200 result= (timeout)\n"),
            (b"GET VARIABLE X\n", b"200 result=1 (val)\n"),
        )
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
        await play(r, w,
            (b'STREAM FILE demo-congrats ""\n', b"HANGUP\n200 result=-1 endpos=48160\n"),
            (b"SET VARIABLE A 1\n", b"200 result=1\n"),
        )
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
        _r1, w1 = await connect(srv.port)
        await asyncio.sleep(0.1)
        r2, w2 = await connect(srv.port)
        line = await asyncio.wait_for(r2.readline(), 2)
        assert line.startswith(b'VERBOSE "cti: server busy"')
        w2.write(b"200 result=1\n")
        assert srv.refused == 1
        gate.set()
        for w in (w1, w2):
            w.close()


async def test_command_timeout_is_typed_and_per_command() -> None:
    got: list[object] = []

    async def handler(s: AgiSession) -> None:
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(AgiTimeout):
            await s.answer()
        got.append(asyncio.get_running_loop().time() - t0)
        with pytest.raises(AgiTimeout):
            await s.command("NOOP", timeout=0.1)  # a shorter one than the default
        got.append("short")

    async with FastAgiServer(port=0, command_timeout=0.3, close_wait=0.2) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        assert await r.readline() == b"ANSWER\n"
        assert await asyncio.wait_for(r.readline(), 2) == b"NOOP\n"
        assert await asyncio.wait_for(r.read(), 2) == b""
        w.close()
    assert 0.29 <= got[0] < 1.0 and got[1] == "short"  # type: ignore[operator]


async def test_a_late_reply_after_a_timeout_is_not_taken_by_the_next_command() -> None:
    got: list[object] = []

    async def handler(s: AgiSession) -> None:
        with pytest.raises(AgiTimeout):
            await s.get_variable("SLOW")  # Asterisk answers it only after the timeout
        got.append(await s.get_variable("NEXT"))

    async with FastAgiServer(port=0, command_timeout=0.2, close_wait=0.2) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        assert await r.readline() == b"GET VARIABLE SLOW\n"
        assert await asyncio.wait_for(r.readline(), 2) == b"GET VARIABLE NEXT\n"
        w.write(b"200 result=1 (slow)\n")  # the late reply of the first command
        w.write(b"200 result=1 (next)\n")
        assert await asyncio.wait_for(r.read(), 2) == b""
        w.close()
    assert got == ["next"]


async def test_error_replies_are_typed_exceptions() -> None:
    seen: list[object] = []

    async def handler(s: AgiSession) -> None:
        for _ in range(2):
            try:
                await s.command("FOO")
            except AgiCommandError as e:
                seen.append((e.code, e.text))
        try:
            await s.stream_file("x")
        except AgiDeadChannel:
            seen.append("dead")
        assert s.hung_up
        seen.append(await s.get_variable("X"))  # the one command after a hangup
        with pytest.raises(AgiHangup):
            await s.get_variable("Y")

    async with FastAgiServer(port=0, close_wait=0.2) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        await play(r, w,
            (b"FOO\n", b"510 Invalid or unknown command\n"),
            (b"FOO\n", b"520-Invalid command syntax.  Proper usage follows:\n Usage: FOO\n520 End of proper usage.\n"),
            (b'STREAM FILE x ""\n', b"511 Command Not Permitted on a dead channel or intercept routine\n"),
            (b"GET VARIABLE X\n", b"200 result=1 (v)\n"),
        )
        assert await asyncio.wait_for(r.read(), 2) == b""
        w.close()
    assert seen == [(510, "Invalid or unknown command"), (520, "End of proper usage."), "dead", "v"]


async def test_eof_while_waiting_is_a_hangup_and_nothing_more_is_written() -> None:
    seen: list[str] = []

    async def handler(s: AgiSession) -> None:
        try:
            await s.stream_file("x")
        except AgiHangup as e:
            seen.append(str(e))
        with pytest.raises(AgiHangup):
            await s.set_variable("A", "1")
        assert s.commands_sent == 1
        seen.append("done")

    async with FastAgiServer(port=0, close_wait=0.2) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        assert await r.readline() == b'STREAM FILE x ""\n'
        w.write(b"HANGUP\n")
        w.write_eof()
        assert await asyncio.wait_for(r.read(), 2) == b""
        w.close()
        await asyncio.sleep(0.05)
    assert seen == ["connection closed by Asterisk", "done"]


async def test_environment_args_and_query_reach_the_session() -> None:
    got: dict[str, object] = {}

    async def handler(s: AgiSession) -> None:
        got["args"] = s.environment.args
        got["query"] = s.environment.query
        got["script"] = s.environment.script
        got["env"] = s.env
        got["uniqueid"] = s.uniqueid
        got["peer"] = s.peer

    env = {**ENV, "agi_network_script": "ivr/main?lang=fr&x=1", "agi_arg_1": "one", "agi_arg_2": "two words"}
    async with FastAgiServer(port=0, close_wait=0.2) as srv:
        srv.route("ivr/", handler)
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        data = format_env(env)
        for i in range(0, len(data), 7):  # in pieces: the line-by-line path
            w.write(data[i:i + 7])
            await w.drain()
            await asyncio.sleep(0)
        assert await asyncio.wait_for(r.read(), 2) == b""
        w.close()
    assert got["args"] == ["one", "two words"] and got["query"] == {"lang": "fr", "x": "1"}
    assert got["script"] == "ivr/main" and got["uniqueid"] == "1.0"
    assert got["env"] == env
    assert got["peer"][0] == "127.0.0.1"  # type: ignore[index]  # which Asterisk server it is


async def test_oversized_and_malformed_environment_refused_at_once() -> None:
    async with FastAgiServer(port=0, env_timeout=5.0) as srv:
        srv.route("ivr/", lambda s: asyncio.sleep(0))
        payloads = (b"agi_network: " + b"y" * 10_000,  # no line end in sight
                    b"agi_network: yes\n" * 600 + b"\n",  # too many lines
                    b"agi_network: yes\nnot an agi line\n\n")
        t0 = asyncio.get_running_loop().time()
        for payload in payloads:
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            w.write(payload)
            with contextlib.suppress(ConnectionResetError):  # closed with our data unread: a reset is as good
                assert await asyncio.wait_for(r.read(), 2) == b""
            w.close()
        assert asyncio.get_running_loop().time() - t0 < 1.5
        assert srv.rejected_bad == 3 and srv.sessions_total == 0


async def test_close_at_once_when_asterisk_closed_first() -> None:
    async def handler(s: AgiSession) -> None:
        await s.hangup()

    async with FastAgiServer(port=0, close_wait=5.0) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        assert await r.readline() == b"HANGUP\n"
        w.write(b"200 result=1\nHANGUP\n")
        w.write_eof()
        t0 = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(r.read(), 2) == b""
        assert asyncio.get_running_loop().time() - t0 < 1.0  # not close_wait
        w.close()


async def test_unsolicited_replies_do_not_pile_up() -> None:
    gate = asyncio.Event()
    got: list[object] = []

    async def handler(s: AgiSession) -> None:
        await gate.wait()
        got.append((await s.command("NOOP")).result)

    async with FastAgiServer(port=0, close_wait=0.2) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        for _ in range(200):
            w.write(b"200 result=7\n" * 100)
            await asyncio.sleep(0)
        await asyncio.sleep(0.2)
        (conn,) = srv._conns
        assert conn.paused and len(conn.queue) < 20_000  # reading stopped; the kernel holds the rest
        gate.set()
        assert await asyncio.wait_for(r.readline(), 2) == b"NOOP\n"
        w.close()
    assert got == ["7"]


async def test_garbage_reply_is_a_protocol_error_then_fallback_path() -> None:
    fell: list[str] = []

    async def handler(s: AgiSession) -> None:
        await s.answer()

    async def fallback(s: AgiSession, e: BaseException | None) -> None:
        fell.append(type(e).__name__)

    async with FastAgiServer(port=0, fallback=fallback, close_wait=0.2) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        assert await r.readline() == b"ANSWER\n"
        w.write(b"this is not agi\n")
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(r.read(), 2) == b""
        w.close()
        await asyncio.sleep(0.05)
    assert srv.errors == 1 and fell == []  # the connection is gone: no fallback commands to send


async def test_stop_closes_waiting_and_running_connections() -> None:
    started = asyncio.Event()

    async def handler(s: AgiSession) -> None:
        started.set()
        await s.answer()  # never answered

    srv = FastAgiServer(port=0)
    srv.route("ivr/", handler)
    await srv.start()
    r1, w1 = await asyncio.open_connection("127.0.0.1", srv.port)
    w1.write(b"agi_network: yes\n")  # environment never completed
    r2, w2 = await connect(srv.port)
    await asyncio.wait_for(started.wait(), 2)
    await asyncio.wait_for(srv.stop(), 2)
    for r in (r1, r2):
        data = await asyncio.wait_for(r.read(), 2)
        assert data in (b"", b"ANSWER\n")
    for w in (w1, w2):
        w.close()
    assert not srv._conns or all(c.transport.is_closing() for c in srv._conns)


async def test_a_hangup_notice_counts_at_once_even_between_commands() -> None:
    """``HANGUP`` in the same segment as a reply, or while the handler is busy elsewhere, is
    noted on arrival: one command may follow it, not two (review finding)."""
    sent: list[bytes] = []
    got: list[object] = []

    async def handler(s: AgiSession) -> None:
        got.append(await s.get_variable("X"))
        await asyncio.sleep(0.1)  # busy between commands (a CRM lookup) while HANGUP arrives
        assert s.hung_up
        got.append(await s.get_variable("Y"))  # the one command after the hangup
        with pytest.raises(AgiHangup):
            await s.get_variable("Z")
        got.append("refused")

    async with FastAgiServer(port=0, close_wait=0.2) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        sent.append(await r.readline())
        w.write(b"200 result=1 (x)\nHANGUP\n")  # one segment
        sent.append(await asyncio.wait_for(r.readline(), 2))
        w.write(b"200 result=1 (y)\n")
        assert await asyncio.wait_for(r.read(), 2) == b""
        w.close()
    assert sent == [b"GET VARIABLE X\n", b"GET VARIABLE Y\n"]
    assert got == ["x", "y", "refused"]


async def test_a_command_the_handler_cancels_does_not_shift_later_replies() -> None:
    got: list[object] = []

    async def handler(s: AgiSession) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await s.get_variable("SLOW")
        got.append(await s.get_variable("FAST"))

    async with FastAgiServer(port=0, close_wait=0.2) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        assert await r.readline() == b"GET VARIABLE SLOW\n"
        assert await asyncio.wait_for(r.readline(), 2) == b"GET VARIABLE FAST\n"
        w.write(b"200 result=1 (slow-value)\n200 result=1 (fast-value)\n")
        assert await asyncio.wait_for(r.read(), 2) == b""
        w.close()
    assert got == ["fast-value"]


async def test_odd_digits_in_a_reply_code_are_a_protocol_error_not_a_crash() -> None:
    seen: list[str] = []

    async def handler(s: AgiSession) -> None:
        try:
            await s.get_variable("X")
        except AgiProtocolError:
            seen.append("protocol error")

    async with FastAgiServer(port=0, close_wait=0.2) as srv:
        srv.route("ivr/", handler)
        r, w = await connect(srv.port)
        assert await r.readline() == b"GET VARIABLE X\n"
        w.write("²²² result=1\n".encode())
        await asyncio.wait_for(r.read(), 2)
        w.close()
        await asyncio.sleep(0.05)
    assert seen == ["protocol error"]


async def test_stop_waits_for_handlers_whose_connection_is_gone() -> None:
    finished: list[str] = []

    async def handler(s: AgiSession) -> None:
        try:
            await asyncio.sleep(30)  # a slow CRM call; Asterisk hangs up meanwhile
        finally:
            finished.append("handler cleaned up")

    srv = FastAgiServer(port=0, close_wait=0.2)
    await srv.start()
    srv.route("ivr/", handler)
    _r, w = await connect(srv.port)
    await asyncio.sleep(0.05)
    w.close()  # the connection goes; the handler still runs
    await asyncio.sleep(0.05)
    await asyncio.wait_for(srv.stop(), 2)
    assert finished == ["handler cleaned up"]


async def test_the_fallback_runs_though_its_note_fails() -> None:
    ran: list[object] = []

    async def boom(s: AgiSession) -> None:
        raise RuntimeError("bug")

    async def fallback(s: AgiSession, err: BaseException | None) -> None:
        ran.append(type(err).__name__)
        await s.set_variable("CTI_NEXT", "queue")

    async with FastAgiServer(port=0, close_wait=0.2, fallback=fallback) as srv:
        srv.route("ivr/", boom)
        r, w = await connect(srv.port)
        assert (await r.readline()).startswith(b"VERBOSE")
        w.write(b"510 Invalid or unknown command\n")  # the note is refused
        assert await asyncio.wait_for(r.readline(), 2) == b"SET VARIABLE CTI_NEXT queue\n"
        w.write(b"200 result=1\n")
        assert await asyncio.wait_for(r.read(), 2) == b""
        w.close()
    assert ran == ["RuntimeError"]


async def test_a_connection_flood_is_shed_beyond_max_connections() -> None:
    async with FastAgiServer(port=0, max_sessions=1, max_connections=5, env_timeout=2.0) as srv:
        conns = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(8)]
        await asyncio.sleep(0.1)
        closed = 0
        for r, _w in conns:
            with contextlib.suppress(TimeoutError):
                closed += await asyncio.wait_for(r.read(), 0.05) == b""
        assert srv.shed == 3 and closed == 3 and len(srv._conns) == 5
        for _r, w in conns:
            w.close()
