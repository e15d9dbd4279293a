"""Channel, bridge and id model of the simulator (no I/O).

* Uniqueids are ``<epoch>.<seq>`` with one sequence per simulator.
* Local channel pairs are ``Local/<exten>@<ctx>-<8 hex>;1`` / ``;2`` with one counter per simulator.
* Every channel of a call carries the caller ``;1`` uniqueid as Linkedid.
* A wait on a channel (``block``, ``wait_digit``) ends early when the channel is hung up or redirected.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Literal

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TXT = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}

Headers = list[tuple[str, str]]


class Interrupt(enum.Enum):
    """What a wait gives when a hangup or a redirect cut it short."""

    INTERRUPT = "interrupt"


INTERRUPT: Final = Interrupt.INTERRUPT
Digit = str | None | Literal[Interrupt.INTERRUPT]  # a DTMF digit, None on timeout, or INTERRUPT


class Ids:
    """Per-simulator counters for uniqueids, Local channel suffixes and thread ids. A restarted
    Asterisk counts from zero again; its uniqueids stay new because at least a second has passed
    (``after``: the epoch second of the last uniqueid before, for a restart faster than that)."""

    def __init__(self, after: int = 0) -> None:
        self._seq = itertools.count()
        self._local = itertools.count()
        self._thread = itertools.count(140101461112512, 4096)
        self._floor = after + 1 if after else 0
        self.last_epoch = 0

    def uniqueid(self) -> str:
        self.last_epoch = max(int(time.time()), self._floor)
        return f"{self.last_epoch}.{next(self._seq)}"

    def local_suffix(self) -> str:
        return f"{next(self._local):08x}"

    def threadid(self) -> int:
        return next(self._thread)

    @staticmethod
    def bridge_id() -> str:
        return str(uuid.uuid4())


@dataclass
class Bridge:
    uniqueid: str
    channels: list[Channel] = field(default_factory=list)


@dataclass(eq=False)
class Channel:
    """One channel; mutable simulation state (events take snapshots of it)."""

    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    priority: int = 1
    state: int = 0
    cid_num: str = "<unknown>"
    cid_name: str = "<unknown>"
    con_num: str = "<unknown>"
    con_name: str = "<unknown>"
    language: str = "en"
    accountcode: str = ""
    peer: Channel | None = None  # the other half of a Local pair
    app: str = ""
    appdata: str = ""
    bridge: Bridge | None = None
    created: float = field(default_factory=time.monotonic)
    vars: dict[str, str] = field(default_factory=dict)
    hungup: bool = False
    soft_hangup: int | None = None  # cause of a pending hangup
    hangup_by_peer: bool = False  # the far side of the bridge hung up
    pending_redirect: tuple[str, str, int] | None = None
    handlers: list[str] = field(default_factory=list)
    mixmonitor: str | None = None
    in_agi: bool = False
    dtmf: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(maxsize=64))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # set once it first waits for media
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def desc(self) -> str:
        return STATE_DESC.get(self.state, "Unknown")

    @property
    def interrupted(self) -> bool:
        return self.hungup or self.soft_hangup is not None or self.pending_redirect is not None

    def var(self, name: str) -> str:
        return self.vars.get(name, "")

    def kick(self) -> None:
        self.wake.set()

    async def block(self, timeout: float | None) -> bool:
        """Sleep up to ``timeout`` s; True if interrupted by a hangup or redirect."""
        if self.interrupted:
            return True
        self.settled.set()
        self.wake.clear()
        try:
            if timeout is None:
                await self.wake.wait()
            else:
                await asyncio.wait_for(self.wake.wait(), max(0.0, timeout))
        except TimeoutError:
            pass
        return self.interrupted

    async def wait_digit(self, timeout: float | None) -> Digit:
        """The next DTMF digit received, None after ``timeout`` s, INTERRUPT on hangup/redirect."""
        if self.interrupted:
            return INTERRUPT
        self.settled.set()
        if not self.dtmf.empty():
            return self.dtmf.get_nowait()
        self.wake.clear()
        getter = asyncio.ensure_future(self.dtmf.get())
        waiter = asyncio.ensure_future(self.wake.wait())
        try:
            await asyncio.wait({getter, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            digit = getter.result()
            if self.interrupted:
                self.dtmf.put_nowait(digit)
                return INTERRUPT
            return digit
        return INTERRUPT if self.interrupted else None

    def snapshot(self, prefix: str = "") -> Headers:
        p = prefix
        return [
            (f"{p}Channel", self.name),
            (f"{p}ChannelState", str(self.state)),
            (f"{p}ChannelStateDesc", self.desc),
            (f"{p}CallerIDNum", self.cid_num),
            (f"{p}CallerIDName", self.cid_name),
            (f"{p}ConnectedLineNum", self.con_num),
            (f"{p}ConnectedLineName", self.con_name),
            (f"{p}Language", self.language),
            (f"{p}AccountCode", self.accountcode),
            (f"{p}Context", self.context),
            (f"{p}Exten", self.exten),
            (f"{p}Priority", str(self.priority)),
            (f"{p}Uniqueid", self.uniqueid),
            (f"{p}Linkedid", self.linkedid),
        ]


def resolve(ch: Channel, name: str) -> str | None:
    """Value of a variable or of the few dialplan functions an AGI or AMI client asks for."""
    funcs = {"CALLERID(num)": ch.cid_num, "CALLERID(name)": ch.cid_name, "CHANNEL": ch.name,
             "UNIQUEID": ch.uniqueid, "EXTEN": ch.exten, "CONTEXT": ch.context,
             "CHANNEL(linkedid)": ch.linkedid, "CALLERID(all)": f'"{ch.cid_name}" <{ch.cid_num}>'}
    if name in funcs:
        return funcs[name]
    return ch.vars.get(name)
