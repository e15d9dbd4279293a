"""The FastAGI servers under test, each running the same 5-command IVR.

``serve(impl, conn)`` runs in its own process: it listens on an ephemeral port, sends
the port through ``conn`` and serves until it is terminated.  Every server gets the
same accept backlog.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import socketserver
from multiprocessing.connection import Connection
from typing import Any

from bench.common import HOST, profile_text, quiet_logging

BACKLOG = 4096
IMPLS = ("cti", "panoramisk", "pyst2", "bare")

# the IVR: ANSWER, STREAM FILE, GET DATA, SET VARIABLE, HANGUP
PROMPT, MENU, TIMEOUT_MS, DIGITS = "cti/welcome", "cti/enter-account", 3000, 6
BARE_COMMANDS = (
    b"ANSWER\n",
    b'STREAM FILE cti/welcome ""\n',
    b"GET DATA cti/enter-account 3000 6\n",
    b"SET VARIABLE CTI_NEXT queue\n",
    b"HANGUP\n",
)


# -- ours --------------------------------------------------------------------------------

async def _cti(conn: Connection) -> None:
    from cti.agi.server import FastAgiServer
    from cti.agi.session import AgiSession

    async def ivr(s: AgiSession) -> None:
        await s.answer()
        await s.stream_file(PROMPT)
        await s.get_data(MENU, TIMEOUT_MS, DIGITS)
        await s.set_variable("CTI_NEXT", "queue")
        await s.hangup()

    server = FastAgiServer(host=HOST, port=0, backlog=BACKLOG)
    server.route("ivr/", ivr)
    await server.start()
    conn.send(server.port)
    await _until_stopped(conn)


# -- panoramisk -----------------------------------------------------------------------------

async def _panoramisk(conn: Connection) -> None:
    from panoramisk.fast_agi import Application, Request

    async def ivr(request: Request) -> None:
        await request.send_command("ANSWER")
        await request.send_command(f'STREAM FILE {PROMPT} ""')
        await request.send_command(f"GET DATA {MENU} {TIMEOUT_MS} {DIGITS}")
        await request.send_command("SET VARIABLE CTI_NEXT queue")
        await request.send_command("HANGUP")

    app = Application(loop=asyncio.get_running_loop())
    app.add_route("ivr/main", ivr)
    server = await asyncio.start_server(app.handler, HOST, 0, backlog=BACKLOG)
    conn.send(server.sockets[0].getsockname()[1])
    await _until_stopped(conn)


# -- pyst2: one forked process per call, the way its AGI class expects -----------------------

class _Pyst2Handler(socketserver.StreamRequestHandler):
    devnull: Any = None

    def handle(self) -> None:
        import asterisk.agi
        # pyst2 writes str; socketserver types its binary socket file more loosely than TextIOWrapper asks
        out = io.TextIOWrapper(self.wfile, encoding="utf-8", write_through=True)  # type: ignore[type-var]
        agi = asterisk.agi.AGI(stdin=self.rfile, stdout=out, stderr=self.devnull)
        agi.answer()
        agi.stream_file(PROMPT)
        agi.get_data(MENU, TIMEOUT_MS, DIGITS)
        agi.set_variable("CTI_NEXT", "queue")
        agi.hangup()
        out.detach()


class _Pyst2Server(socketserver.ForkingTCPServer):
    request_queue_size = BACKLOG
    allow_reuse_address = True
    max_children = 1024  # the default (40) would cap the concurrency under test


def _pyst2(conn: Connection) -> None:
    _Pyst2Handler.devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the server
    server = _Pyst2Server((HOST, 0), _Pyst2Handler)
    conn.send(server.server_address[1])
    server.serve_forever(poll_interval=0.05)


# -- the ceiling: the same exchange, nothing else ------------------------------------------------

async def _bare(conn: Connection) -> None:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\n\n")
            for command in BARE_COMMANDS:
                writer.write(command)
                await reader.readline()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(session, HOST, 0, backlog=BACKLOG)
    conn.send(server.sockets[0].getsockname()[1])
    await _until_stopped(conn)


async def _until_stopped(conn: Connection) -> None:
    """Serve until the parent sends anything (or goes away)."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), stopped.set)
    await stopped.wait()
    loop.remove_reader(conn.fileno())


def serve(impl: str, profile: bool, conn: Connection) -> None:
    """Serve ``impl``; with ``profile``, answer the stop message with a cProfile summary."""
    quiet_logging()
    if impl == "pyst2":
        _pyst2(conn)
        return
    runner = {"cti": _cti, "panoramisk": _panoramisk, "bare": _bare}[impl]
    if not profile:
        asyncio.run(runner(conn))
        return
    prof = cProfile.Profile()
    prof.runcall(asyncio.run, runner(conn))
    conn.recv()
    conn.send(profile_text(prof))
