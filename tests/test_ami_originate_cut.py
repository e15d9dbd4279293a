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
from simulator.core import AsteriskSim, SimConfig
from tests.ami_proxy import AmiProxy

ROUNDS = 100


class CutOnOriginate(AmiProxy):
    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.originates = 0

    async def relay(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter,
                    ur: asyncio.StreamReader, uw: asyncio.StreamWriter) -> None:
        down = asyncio.create_task(_pump(ur, cw))
        buf = b""
        try:
            while data := await cr.read(65536):
                buf = buf[-32:] + data  # an action name split across reads is still seen
                if b"Action: Originate\r\n" in buf:
                    down.cancel()  # stop replies first: none can cross once the Originate is up
                    self.originates += data.count(b"Action: Originate\r\n") or 1
                    uw.write(data)
                    await uw.drain()
                    return
                uw.write(data)
                await uw.drain()
        except ConnectionError:
            pass
        finally:
            down.cancel()


async def _pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except ConnectionError:
        pass


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
        print(f"{ROUNDS} cuts after Originate: {proxy.originates} Originates reached Asterisk (none replayed), "
              f"worst error latency {worst * 1000:.1f} ms, {c.reconnects} reconnects")
