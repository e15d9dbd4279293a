"""The simulator's ground truth: what happened to each call it placed (``CallRecord`` by linkedid).

Only the simulator's own callers (``AsteriskSim.place_call``) have a record; the other calls (AMI
Originates of a client) have none, and every method here ignores them.
"""

from __future__ import annotations

import asyncio
import time

from .actors import Caller, CallRecord
from .model import Channel


class CallLedger:
    """Owns the records and the "call ended" signals; the channel layers report to it."""

    def __init__(self) -> None:
        self.records: dict[str, CallRecord] = {}
        self._ended: dict[str, asyncio.Event] = {}

    def open(self, linkedid: str, caller: Caller, channel: str) -> None:
        self.records[linkedid] = CallRecord(linkedid, caller, channel, time.time())
        self._ended[linkedid] = asyncio.Event()

    def get(self, ch: Channel) -> CallRecord | None:
        return self.records.get(ch.linkedid)

    def digit(self, ch: Channel, digit: str) -> None:
        """A digit received on a channel: the caller's IVR digits when it is the caller's ``;1``."""
        rec = self.records.get(ch.linkedid)
        if rec is not None and ch.name == rec.channel:
            rec.ivr_digits += digit

    def far_end_left(self, ch: Channel) -> None:
        """The far half of ``ch`` hung up: an abandon unless an agent had answered."""
        rec = self.records.get(ch.linkedid)
        if rec is not None and rec.answered_by is None:
            rec.abandoned = True

    def offered(self, ch: Channel, agent: str, status: str) -> None:
        rec = self.records.get(ch.linkedid)
        if rec is not None:
            rec.offers.append((agent, status))

    def answered(self, ch: Channel, agent: str) -> CallRecord | None:
        rec = self.records.get(ch.linkedid)
        if rec is not None:
            rec.answered_by = agent
            rec.offers.append((agent, "ANSWER"))
        return rec

    def foreign(self, ch: Channel, what: str) -> None:
        """Another AMI client did ``what`` to the caller ``ch`` (a Redirect out of the contract)."""
        rec = self.records.get(ch.linkedid)
        if rec is not None:
            rec.foreign.append(what)

    def ended(self, ch: Channel, cause: int) -> None:
        rec = self.records.get(ch.linkedid)
        if rec is not None and rec.channel == ch.name:
            rec.ended = time.time()
            rec.cause = cause
            rec.shutdown = bool(ch.meta.get("shutdown"))
            rec.call_id = ch.var("CTI_CALL_ID")
            done = self._ended.get(ch.linkedid)
            if done is not None:
                done.set()

    async def wait_ended(self, linkedid: str, timeout: float | None = None) -> CallRecord:
        rec = self.records[linkedid]
        if rec.ended is None:
            await asyncio.wait_for(self._ended[linkedid].wait(), timeout)
        return rec
