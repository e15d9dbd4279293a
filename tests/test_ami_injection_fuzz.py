"""Fuzzed header values never reach Asterisk: a counting TCP proxy sits between the
client and the simulator and counts every action that crosses it."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cti.ami.client import AmiClient
from cti.ami.protocol import AmiInjectionError
from simulator.core import AsteriskSim, SimConfig
from tests.ami_proxy import AmiProxy


class CountingProxy(AmiProxy):
    """Forwards bytes both ways; counts the actions (blank-line-terminated messages) sent up."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.actions = 0
        self._buf = b""

    async def relay(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter,
                    ur: asyncio.StreamReader, uw: asyncio.StreamWriter) -> None:
        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, count: bool) -> None:
            try:
                while data := await r.read(65536):
                    if count:
                        self._buf += data
                        n = self._buf.count(b"\r\n\r\n")
                        self.actions += n
                        if n:
                            self._buf = self._buf[self._buf.rindex(b"\r\n\r\n") + 4:]
                    w.write(data)
                    await w.drain()
            except ConnectionError:
                pass
            finally:
                w.close()

        await asyncio.gather(pump(cr, uw, True), pump(ur, cw, False))


EVIL_PARTS = st.sampled_from(["\r", "\n", "\0", "\r\n", "\r\n\r\nAction: Command\r\nCommand: core stop now"])
EVIL = st.tuples(st.text(max_size=8), EVIL_PARTS, st.text(max_size=8)).map("".join)


@pytest.fixture
async def linked() -> tuple[AmiClient, CountingProxy]:  # type: ignore[misc]
    async with AsteriskSim(SimConfig(agi_port=1)) as sim:
        proxy = CountingProxy(sim.ami_port)
        await proxy.start()
        async with AmiClient("127.0.0.1", proxy.port, "ctilp", "secret") as c:
            yield c, proxy
        await proxy.stop()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=EVIL, where=st.sampled_from(["value", "name", "action"]))
async def test_fuzzed_values_refused_and_nothing_reaches_asterisk(
    linked: tuple[AmiClient, CountingProxy], value: str, where: str,
) -> None:
    client, proxy = linked
    await asyncio.sleep(0)
    before = proxy.actions
    fields = {"Channel": "PJSIP/1001-1", "Variable": "X", "Value": "1"}
    action = "Setvar"
    if where == "value":
        fields["Value"] = value
    elif where == "name":
        fields = {value: "1"}
    else:
        action = value
    with pytest.raises(AmiInjectionError):
        await client.send_action(action, fields)
    assert proxy.actions == before


async def test_proxy_counts_real_actions(linked: tuple[AmiClient, CountingProxy]) -> None:
    """The counter itself works: three honest actions are three actions upstream."""
    client, proxy = linked
    before = proxy.actions
    for _ in range(3):
        assert (await client.send_action("Ping")).ok
    assert proxy.actions == before + 3
