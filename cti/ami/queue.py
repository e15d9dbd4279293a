"""A bounded queue of typed AMI events for one subscriber of the client (see
:meth:`cti.ami.client.AmiClient.subscribe`)."""

from __future__ import annotations

import asyncio
import collections

from cti.ami.events import AmiEvent


class EventQueue:
    """A bounded queue of typed events for one subscriber (see :meth:`AmiClient.subscribe`).

    Overflow policy: **drop the oldest** and count it in ``dropped``.  The reader never waits
    for a subscriber: Asterisk disconnects a client that does not drain its socket within
    ``writetimeout`` (100 ms), so a slow consumer loses its oldest events, not the link.
    """

    def __init__(self, names: frozenset[str] | None, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.names = names
        self.maxsize = maxsize
        self._q: collections.deque[AmiEvent] = collections.deque(maxlen=maxsize)
        self._waiters: list[asyncio.Future[None]] = []
        self.dropped = 0
        self.delivered = 0

    def wants(self, name: str) -> bool:
        return self.names is None or name in self.names

    def _put(self, ev: AmiEvent) -> None:
        q = self._q
        if len(q) == self.maxsize:
            self.dropped += 1  # the deque's maxlen drops the oldest on append
        q.append(ev)
        self.delivered += 1
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    async def _wait(self) -> None:
        while not self._q:
            w = asyncio.get_running_loop().create_future()
            self._waiters.append(w)
            try:
                await w
            finally:
                if w in self._waiters:
                    self._waiters.remove(w)

    async def get(self) -> AmiEvent:
        await self._wait()
        return self._q.popleft()

    def get_nowait(self) -> AmiEvent:
        if not self._q:
            raise asyncio.QueueEmpty
        return self._q.popleft()

    async def get_batch(self, limit: int = 1000) -> list[AmiEvent]:
        """Wait for one event, then take every event already queued (up to ``limit``):
        a consumer wakes once per socket read instead of once per event."""
        await self._wait()
        q = self._q
        if len(q) <= limit:
            out = list(q)
            q.clear()
            return out
        return [q.popleft() for _ in range(limit)]

    def qsize(self) -> int:
        return len(self._q)

    def __aiter__(self) -> EventQueue:
        return self

    async def __anext__(self) -> AmiEvent:
        return await self.get()
