"""The link is cut after an Originate is sent and before its reply, 100 times.

A TCP proxy between the client and the simulator forwards the Originate upstream, then
cuts both sides before any reply can come back. Non-idempotent actions are never
replayed: exactly 100 Originates cross the proxy, and every caller gets its typed error
within 2 s.
"""

from __future__ import annotations

import asyncio
import time

from cti.ami.client import AmiClient, AmiConnectionLost
from cti.sim.core import AsteriskSim, SimConfig

ROUNDS = 100


class CutOnOriginate:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.originates = 0
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        cut = asyncio.Event()

        async def up() -> None:
            buf = b""
            try:
                while data := await cr.read(65536):
                    buf += data
                    uw.write(data)
                    await uw.drain()
                    if b"Action: Originate\r\n" in buf:
                        self.originates += buf.count(b"Action: Originate\r\n")
                        cut.set()
                        return
                    buf = buf[buf.rfind(b"\r\n\r\n") + 4:] if b"\r\n\r\n" in buf else buf
            except ConnectionError:
                pass
            finally:
                cut.set()

        async def down() -> None:
            try:
                while not cut.is_set():
                    read = asyncio.ensure_future(ur.read(65536))
                    done, _ = await asyncio.wait({read, asyncio.ensure_future(cut.wait())},
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if read not in done or cut.is_set():
                        read.cancel()
                        return
                    data = read.result()
                    if not data:
                        return
                    cw.write(data)
                    await cw.drain()
            except ConnectionError:
                pass

        await asyncio.gather(up(), down())
        cw.close()
        uw.close()


async def test_originate_never_replayed_after_100_cuts() -> None:
    async with AsteriskSim(SimConfig(agi_port=1)) as sim:
        proxy = CutOnOriginate(sim.ami_port)
        await proxy.start()
        c = AmiClient("127.0.0.1", proxy.port, "ctilp", "secret", backoff_initial=0.01, backoff_max=0.05)
        worst = 0.0
        async with c:
            for i in range(ROUNDS):
                await c.wait_connected(5)
                t0 = time.monotonic()
                try:
                    await c.send_action("Originate", {"Channel": "Local/wait@callers", "Application": "Wait",
                                                      "Data": "1", "Variable": f"ROUND={i}"}, timeout=5)
                except AmiConnectionLost:
                    pass
                else:
                    raise AssertionError(f"round {i}: a reply crossed a cut link")
                worst = max(worst, time.monotonic() - t0)
            await c.wait_connected(5)
            await asyncio.sleep(0.3)  # time for any (wrong) replay to show
            assert (await c.send_action("Ping")).ok
        await proxy.stop()
        assert proxy.originates == ROUNDS
        assert c.reconnects >= ROUNDS
        assert worst < 2.0, worst
