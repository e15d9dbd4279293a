"""The AMI client against the simulator over real TCP."""

from __future__ import annotations

import asyncio

import pytest

from cti.ami.client import AmiClient, AmiConnectionLost, AmiNotConnected
from cti.ami.protocol import AmiInjectionError, Message
from simulator.core import AsteriskSim, SimConfig


async def test_login_action_and_events() -> None:
    async with AsteriskSim(SimConfig(agi_port=1)) as sim:
        got: list[Message] = []
        c = AmiClient("127.0.0.1", sim.ami_port, "ctilp", "secret")
        c.add_listener(got.append)
        async with c:
            assert c.banner == "Asterisk Call Manager/11.0.0"
            r = await c.send_action("Ping")
            assert r.ok and r.get("Ping") == "Pong"
            lst = await c.send_action("CoreShowChannels", timeout=5)
            assert lst.ok and lst.events == []
            bad = await c.send_action("NoSuchAction")
            assert not bad.ok and "Invalid/unknown command" in bad.message


async def test_md5_login_and_wrong_secret() -> None:
    async with AsteriskSim(SimConfig(agi_port=1, auth_fail_delay_s=0.05)) as sim:
        async with AmiClient("127.0.0.1", sim.ami_port, "ctilp", "secret", auth="md5") as c:
            assert (await c.send_action("Ping")).ok
        bad = AmiClient("127.0.0.1", sim.ami_port, "ctilp", "wrong")
        with pytest.raises(AmiNotConnected):
            await bad.start(timeout=1.0)
        await bad.stop()


async def test_injection_refused_before_the_wire() -> None:
    async with AsteriskSim(SimConfig(agi_port=1)) as sim, AmiClient("127.0.0.1", sim.ami_port, "ctilp", "secret") as c:
            for evil in ("x\r\nAction: Command", "a\nb", "nul\0", "\r\n\r\nAction: Command"):
                with pytest.raises(AmiInjectionError):
                    await c.send_action("Setvar", {"Channel": evil, "Variable": "A", "Value": "1"})
            assert (await c.send_action("Ping")).ok  # the link is still healthy


async def test_drop_fails_pending_and_reconnects_with_resync_hook() -> None:
    async with AsteriskSim(SimConfig(agi_port=1)) as sim:
        c = AmiClient("127.0.0.1", sim.ami_port, "ctilp", "secret", backoff_initial=0.05)
        connected = 0

        async def hook() -> None:
            nonlocal connected
            connected += 1

        c.on_connected(hook)
        async with c:
            await asyncio.sleep(0.05)
            # an Originate whose reply never comes: cut the link right after sending it
            orig = asyncio.create_task(c.send_action("Originate", {"Channel": "Local/wait@callers",
                                                                   "Application": "Wait", "Data": "1"}, timeout=5))
            await asyncio.sleep(0)
            sim.drop_ami_clients()
            with pytest.raises(AmiConnectionLost):
                await asyncio.wait_for(orig, 2.0)
            await c.wait_connected(5)
            await asyncio.sleep(0.1)
            assert c.reconnects >= 1 and connected == 2
            assert (await c.send_action("Ping")).ok


async def test_backoff_starts_over_after_each_successful_login() -> None:
    """Ten drops of a link that logs in again each time: every reconnect takes the first step.

    (Without the reset the tenth would wait 0.05 s * 2**9 = 25 s.)
    """
    async with AsteriskSim(SimConfig(agi_port=1)) as sim:
        c = AmiClient("127.0.0.1", sim.ami_port, "ctilp", "secret", backoff_initial=0.05)
        async with c:
            loop = asyncio.get_running_loop()
            worst = 0.0
            for _ in range(10):
                t0 = loop.time()
                sim.drop_ami_clients()
                while c.connected:  # noqa: ASYNC110  the client has no "disconnected" event to wait on
                    await asyncio.sleep(0.005)
                await c.wait_connected(5)
                worst = max(worst, loop.time() - t0)
            assert c.reconnects == 10
            assert worst < 0.5, f"a reconnect took {worst:.2f}s"
