"""``AsteriskSim``: the simulated Asterisk assembled, as an async context manager.

It builds the floors bottom-up and wires each to the ones below it: the ``CallLedger`` (ground
truth), the channel core (``Switch``), the far halves (``FarEnds``), the FastAGI client and the
``Dialplan`` it serves, the ``Originator``, and the AMI server, which the channel core then
emits into. On top of that it drives traffic: ``place_call``, ``run_traffic`` and the waits,
the background traffic of the rest of the PBX (``run_background``, or ``SimConfig.
background_calls_per_s`` for the simulator's whole life), and ``shutdown`` (``core stop|restart now``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from . import events as ev
from .actors import Caller, CallRecord
from .agi import FastAgiClient
from .ami import AmiServer
from .ami_actions import AmiActions
from .background import BackgroundStats, BackgroundTraffic
from .config import SOUNDS, BackgroundMix, SimConfig
from .dialplan import Dialplan
from .far import FarEnds
from .ledger import CallLedger
from .model import Channel
from .originate import Originator
from .switch import Switch

__all__ = ["SOUNDS", "AsteriskSim", "BackgroundMix", "BackgroundStats", "SimConfig"]


class AsteriskSim:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.ledger = CallLedger()
        self.switch = Switch(self.config, self.ledger)
        self.far = FarEnds(self.switch, self.config.phones)
        self.dialplan = Dialplan(self.switch, self.far, FastAgiClient(self.switch))
        self.originator = Originator(self.dialplan)
        self.ami = AmiServer(self.config, AmiActions(self.switch, self.originator))

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.ami.start()
        self.switch.sink = self.ami
        if self.config.background_calls_per_s > 0:
            self.spawn(self.run_background(self.config.background_calls_per_s, wait=False), "background")
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.switch.close()
        await self.ami.stop()

    @property
    def ami_port(self) -> int:
        return self.ami.port

    def drop_ami_clients(self) -> None:
        """Cut every AMI connection at once (chaos tests)."""
        self.ami.drop_all()

    def spawn(self, coro: Coroutine[Any, Any, object], name: str = "") -> asyncio.Task[object]:
        return self.switch.spawn(coro, name)

    # ------------------------------------------------------------------ state, by its owners

    @property
    def channels(self) -> dict[str, Channel]:
        return self.switch.channels

    @property
    def record(self) -> dict[str, CallRecord]:
        """The ground truth of the calls placed with ``place_call``, by linkedid."""
        return self.ledger.records

    @property
    def started(self) -> float:
        return self.switch.started

    def find(self, name: str) -> Channel | None:
        return self.switch.find(name)

    def redirect(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        self.switch.redirect(ch, context, exten, priority)

    def request_hangup(self, ch: Channel, cause: int | None) -> None:
        self.switch.request_hangup(ch, cause)

    # ------------------------------------------------------------------ traffic

    async def place_call(self, caller: Caller, action_id: str | None = None) -> str:
        """Originate ``Local/<exten>@callers`` into ``cti-inbound,5551000,1``; -> the linkedid.
        RuntimeError while Asterisk is shutting down or stopped."""
        if not self.switch.accepting:
            raise RuntimeError("Asterisk is shutting down or stopped: no new channels")
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_created(linkedid: str) -> None:
            if not done.done():
                done.set_result(linkedid)

        self.originator.originate(channel=f"Local/{caller.local_exten}@callers", context="cti-inbound",
                                  exten="5551000", priority=1, callerid=caller.callerid, action_id=action_id,
                                  caller=caller, on_created=on_created)
        return await done

    async def wait_in_app(self, linkedid: str, app: str = "MusicOnHold", timeout: float = 3.0) -> Channel:
        """The caller's channel of call ``linkedid`` once it runs ``app`` (on hold, by default)."""
        deadline = time.monotonic() + timeout
        while True:
            ch = self.find(self.record[linkedid].channel)
            if ch is not None and ch.app == app:
                return ch
            if time.monotonic() > deadline:
                raise TimeoutError(f"call {linkedid} not in {app} after {timeout}s")
            await asyncio.sleep(0.01)

    async def wait_ended(self, linkedid: str, timeout: float | None = None) -> CallRecord:
        return await self.ledger.wait_ended(linkedid, timeout)

    async def run_traffic(self, n_calls: int, rate_per_s: float,
                          caller_factory: Callable[[int], Caller]) -> list[CallRecord]:
        """Place ``n_calls`` calls at ``rate_per_s`` (real time); wait until all have ended."""
        ids = []
        for i in range(n_calls):
            ids.append(await self.place_call(caller_factory(i)))
            if i + 1 < n_calls and rate_per_s > 0:
                await asyncio.sleep(1.0 / rate_per_s)
        for lid in ids:
            await self.wait_ended(lid)
        return [self.record[lid] for lid in ids]

    async def run_background(self, rate_per_s: float, *, count: int | None = None, duration_s: float | None = None,
                             mix: BackgroundMix | None = None, wait: bool = True,
                             timeout: float = 120.0) -> BackgroundStats:
        """The rest of the PBX's traffic at ``rate_per_s`` arrivals a second (real time, Poisson):
        internal calls, calls through the ``queue-test`` queue, and other clients' Redirects of our
        callers waiting in ``cti-hold`` (the mix: ``mix``, default ``SimConfig.background``). Runs
        until ``count`` arrivals or ``duration_s`` seconds, or until cancelled; with ``wait``, then
        until the background calls it placed have ended (up to ``timeout`` s). -> what it did (and,
        unless endless, the linkedids of the calls it placed). New channels are refused while
        Asterisk is shut down: those arrivals count as skipped."""
        bg = BackgroundTraffic(self.originator, mix or self.config.background,
                               keep_ids=wait or count is not None)  # an endless run keeps none
        await bg.run(rate_per_s, count, duration_s)
        if wait:
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout
            while bg.pending or not set(bg.stats.linkedids).isdisjoint(c.linkedid for c in self.channels.values()):
                if loop.time() > end:
                    break
                await asyncio.sleep(0.01)
        return bg.stats

    # ------------------------------------------------------------------ shutdown

    async def shutdown(self, restart: bool = False) -> None:
        """``core stop now`` / ``core restart now`` as Asterisk 22 does it (main/asterisk.c): no new
        channels; every channel soft-hung-up with AST_SOFTHANGUP_SHUTDOWN (``SoftHangupRequest``
        Cause 4) and ended; when channels had to die, 1 s more; ``Shutdown`` (class ``system``:
        ``Cleanly``/``Uncleanly``, ``Restart``); then every AMI connection and the listener close.
        With ``restart`` a fresh Asterisk (counters from zero) listens on the same AMI port after
        ``SimConfig.restart_s`` (scaled) and greets ``system`` readers with ``FullyBooted``, its
        Uptime counted from the restart. Returns once AMI is back (restart) or gone (stop)."""
        sw, loop = self.switch, asyncio.get_running_loop()
        busy = bool(sw.channels)
        sw.softhangup_all()
        end = loop.time() + sw.scale(15)  # wait_for_channels_to_die(): SHUTDOWN_TIMEOUT, polled every 100 ms
        while sw.channels:
            if loop.time() > end:
                break
            await asyncio.sleep(sw.scale(0.1))
        if busy:
            await asyncio.sleep(sw.scale(1.0))
        self.ami.broadcast(ev.shutdown(restart, cleanly=not sw.channels))
        await self.ami.exit()
        sw.drop_all()
        if restart:
            sw.boot()
            sw.accepting = False
            await asyncio.sleep(sw.scale(self.config.restart_s))
            await self.ami.start(self.ami.port)
            sw.accepting = True
