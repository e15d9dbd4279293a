"""Screen-pop fan-out baseline: one server, 500 websocket clients, 1 KB messages.

The server (its own process) is either the ``websockets`` library server using
``websockets.broadcast`` or an aiohttp server looping ``send_str``; with and without
permessage-deflate.  Once every client is connected it broadcasts without pause (the
websockets broadcast has no backpressure, so it yields while any write buffer is
above 256 KiB; aiohttp's ``send_str`` drains by itself).  The clients (this process)
are raw sockets that do the upgrade handshake and count complete frames: they never
decompress, so the figure is the server's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from multiprocessing.connection import Connection
from typing import Any

from bench.common import HOST, Child, Options, Report, quiet_logging

N_CLIENTS = 500
IMPLS = ("websockets", "aiohttp")
PAUSE_ABOVE = 256 * 1024


def pop_message(seq: int) -> str:
    """A ~1 KB screen pop: the caller's customer record as the agent page receives it."""
    msg: dict[str, Any] = {
        "type": "screen_pop", "seq": seq, "call_id": f"2004af97-33c2-4717-b38b-{seq:012d}",
        "queue": "support", "ani": "5551234", "dnis": "5551000", "offered_at": 1795461450.0 + seq,
        "customer": {"id": 4711 + seq % 97, "name": "Grace Hopper", "tier": "gold", "account": "ACC-00042",
                     "phones": ["+15551234", "+15559876"], "email": "grace@example.com",
                     "address": "1 Navy Way, Arlington VA", "churn_risk": 0.12, "lifetime_value": 18250.5,
                     "last_contacts": [{"at": f"2026-11-20T10:0{i}:00Z", "channel": "voice",
                                        "agent": "1004", "disposition": "resolved"} for i in range(3)]},
        "ivr": {"path": ["main", "billing", "queue"], "digits": "1"},
    }
    text = json.dumps(msg, separators=(",", ":"))
    return text + " " * max(0, 1024 - len(text))


# -- servers ---------------------------------------------------------------------------

async def _websockets(compress: bool, n: int, conn: Connection) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    clients: set[ServerConnection] = set()
    ready = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        if len(clients) >= n:
            ready.set()
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async with serve(handler, HOST, 0, compression="deflate" if compress else None,
                     ping_interval=None, max_queue=None) as server:
        conn.send(next(iter(server.sockets)).getsockname()[1])
        await ready.wait()
        seq = 0
        while True:
            broadcast(clients, pop_message(seq))
            seq += 1
            while any(ws.transport.get_write_buffer_size() > PAUSE_ABOVE for ws in clients):  # noqa: ASYNC110  a write buffer has no "drained" event to await
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)


async def _aiohttp(compress: bool, n: int, conn: Connection) -> None:
    from aiohttp import web
    clients: set[web.WebSocketResponse] = set()
    ready = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=compress)
        await ws.prepare(request)
        clients.add(ws)
        if len(clients) >= n:
            ready.set()
        try:
            async for _ in ws:
                pass
        finally:
            clients.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, backlog=1024)
    await site.start()
    server = site._server  # the only way aiohttp exposes the bound port
    assert isinstance(server, asyncio.Server) and server.sockets
    conn.send(server.sockets[0].getsockname()[1])
    await ready.wait()
    seq = 0
    while True:
        text = pop_message(seq)
        seq += 1
        for ws in list(clients):
            await ws.send_str(text)
        await asyncio.sleep(0)


def serve(impl: str, compress: bool, n: int, conn: Connection) -> None:
    quiet_logging()
    runner = {"websockets": _websockets, "aiohttp": _aiohttp}[impl]
    asyncio.run(runner(compress, n, conn))


# -- clients ----------------------------------------------------------------------------

class FrameCounter(asyncio.Protocol):
    """Upgrade, then count complete data frames (server frames are never masked)."""

    total = 0  # messages over all clients

    def __init__(self, port: int, compress: bool, ready: asyncio.Future[bool]) -> None:
        self.port, self.compress, self.ready = port, compress, ready
        self.buf = bytearray()
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        key = base64.b64encode(os.urandom(16)).decode()
        ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if self.compress else ""
        transport.write((f"GET / HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                         f"Origin: http://{HOST}:{self.port}\r\n{ext}\r\n").encode())

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            deflate = b"permessage-deflate" in head
            self.ready.set_result(head.startswith(b"http/1.1 101") and deflate == self.compress)
            del buf[:end + 4]
            self.upgraded = True
        pos, size, count = 0, len(buf), 0
        while size - pos >= 2:
            b0, length = buf[pos], buf[pos + 1] & 0x7F
            head_len = 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head_len = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head_len = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if size - pos < head_len + length:
                break
            if b0 & 0x80 and (b0 & 0x0F) < 8:  # FIN on a data frame: one message
                count += 1
            pos += head_len + length
        FrameCounter.total += count
        del buf[:pos]


async def load(child: Child, port: int, compress: bool, warmup: float, window: float) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    for batch in range(0, N_CLIENTS, 100):
        futures = [loop.create_future() for _ in range(batch, min(batch + 100, N_CLIENTS))]
        made = await asyncio.gather(*(loop.create_connection(
            lambda f=f: FrameCounter(port, compress, f), HOST, port) for f in futures))  # type: ignore[misc]
        transports += [t for t, _ in made]
        if not all(await asyncio.wait_for(asyncio.gather(*futures), 30)):
            raise RuntimeError("websocket upgrade refused or compression not as asked")
    await asyncio.sleep(warmup)
    n0, c0 = FrameCounter.total, child.cpu()
    await asyncio.sleep(window)
    n1, c1 = FrameCounter.total, child.cpu()
    for t in transports:
        t.close()
    return (n1 - n0) / window, (c1 - c0) / max(n1 - n0, 1)


def measure(impl: str, compress: bool, warmup: float, window: float) -> tuple[float, float]:
    FrameCounter.total = 0
    with Child(serve, impl, compress, N_CLIENTS) as child:
        port = child.recv(30)
        return asyncio.run(load(child, port, compress, warmup, window))


def run(report: Report, opts: Options) -> None:
    warmup, window = (0.5, 1.0) if opts.quick else (1.0, 2.5)
    rounds = 1 if opts.quick else 2  # keep the best round
    for compress in (False, True):
        variant = "deflate" if compress else "plain"
        for impl in IMPLS:
            rate, cpu = max(measure(impl, compress, warmup, window) for _ in range(rounds))
            report.add(f"ws_fanout_msgs_per_s_{variant}", impl, rate)
            report.add(f"ws_fanout_cpu_us_per_msg_{variant}", impl, cpu * 1e6, lower_is_better=True)
