"""The end of a FastAGI session as Asterisk 22 ends it: the last lines (``200 result=-1``,
``HANGUP``, ``HANGUP``, or the ``HANGUP`` after the server's half-close) and the close come in the
same read, so a server never sends a command into a closing socket (v3-06: Asterisk closed before
the IVR's next command could go; a server that saw the lines first and the close later would send
it and draw a reset)."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from simulator import AsteriskSim, Caller, SimConfig

ROUNDS = 10


def recv_until(conn: socket.socket, end: bytes) -> bytes:
    buf = b""
    while not buf.endswith(end):
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def serve(sock: socket.socket, mode: str, ready: threading.Event, out: list[str]) -> None:
    """A plain FastAGI server (blocking sockets), one IVR session per round."""
    for _ in range(ROUNDS):
        conn, _ = sock.accept()
        with conn:
            recv_until(conn, b"\n\n")
            conn.sendall(b"ANSWER\n")
            recv_until(conn, b"200 result=0\n")
            if mode == "half-close":
                conn.shutdown(socket.SHUT_WR)
                tail = recv_until(conn, b"HANGUP\n")
            else:
                if mode == "in-command":
                    conn.sendall(b"GET DATA beep 10000 1\n")
                ready.set()  # now the test hangs the caller up
                tail = recv_until(conn, b"HANGUP\nHANGUP\n")
            conn.setblocking(False)
            try:
                more = conn.recv(1)
                state = "eof" if more == b"" else f"data {more!r}"
            except BlockingIOError:
                state = "open"  # the close had not come with the last lines
            except ConnectionResetError:
                state = "reset"
            out.append(f"{tail.decode().splitlines()[-3:]} {state}")


@pytest.mark.parametrize("mode", ["in-command", "between-commands", "half-close"])
async def test_last_lines_and_close_in_one_read(mode: str) -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    ready, out = threading.Event(), list[str]()
    server = threading.Thread(target=serve, args=(sock, mode, ready, out), daemon=True)
    server.start()
    try:
        async with AsteriskSim(SimConfig(agi_port=sock.getsockname()[1], time_factor=0.02)) as sim:
            for _ in range(ROUNDS):
                ready.clear()
                lid = await sim.place_call(Caller("5556789", "Niaj"))
                if mode != "half-close":
                    await asyncio.to_thread(ready.wait, 5)
                    await asyncio.sleep(0.01)
                    ch = sim.find(sim.record[lid].channel)
                    assert ch is not None
                    sim.request_hangup(sim.find(ch.name[:-1] + "2") or ch, 16)
                await sim.wait_ended(lid, 5)
        await asyncio.to_thread(server.join, 5)
    finally:
        sock.close()
    last = "['HANGUP']" if mode == "half-close" else "['HANGUP', 'HANGUP']"
    assert len(out) == ROUNDS
    assert all(o.endswith(" eof") and last[1:-1] in o for o in out), out
