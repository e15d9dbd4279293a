"""``AsteriskSim``: the simulated Asterisk assembled, as an async context manager.

It builds the floors bottom-up and wires each to the ones below it: the ``CallLedger`` (ground
truth), the channel core (``Switch``), the far halves (``FarEnds``), the FastAGI client and the
``Dialplan`` it serves, the ``Originator``, and the AMI server, which the channel core then
emits into. On top of that it drives traffic: ``place_call``, ``run_traffic`` and the waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from .actors import Caller, CallRecord
from .agi import FastAgiClient
from .ami import AmiServer
from .ami_actions import AmiActions
from .config import SOUNDS, SimConfig
from .dialplan import Dialplan
from .far import FarEnds
from .ledger import CallLedger
from .model import Channel
from .originate import Originator
from .switch import Switch

__all__ = ["SOUNDS", "AsteriskSim", "SimConfig"]


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
        """Originate ``Local/<exten>@callers`` into ``cti-inbound,5551000,1``; -> the linkedid."""
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
