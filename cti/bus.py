"""In-process publish/subscribe for domain events.

Two kinds of subscriber:

* ``bus.on(EventType, handler)``: a plain callable run inline at ``publish`` time.  For
  cheap state updates (the ACD's tables, statistics).  A handler that raises is logged
  and counted; it never stops delivery to the others.
* ``bus.queue(*types, maxsize=..., overflow="drop-oldest"|"block")``: a bounded
  ``asyncio.Queue`` per subscriber, for consumers that do I/O (the store writer, the
  websocket hub).  ``drop-oldest`` keeps the newest events and counts drops in
  ``Subscription.dropped``; ``block`` is for consumers that must not lose anything
  (the call-log writer): ``publish`` then never drops, and the queue's bound is a
  soft limit reported in ``Subscription.overflowed``.

An event is queued before the inline handlers run, so events those handlers publish in
response reach every queue after the event that caused them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from cti.domain import DomainEvent

log = logging.getLogger(__name__)

E = TypeVar("E", bound=DomainEvent)


class Subscription:
    def __init__(self, types: tuple[type[DomainEvent], ...], maxsize: int, overflow: str) -> None:
        if overflow not in ("drop-oldest", "block"):
            raise ValueError(f"unknown overflow policy {overflow!r}")
        self.types = types
        self.maxsize = maxsize
        self.overflow = overflow
        self._q: asyncio.Queue[DomainEvent] = asyncio.Queue(0 if overflow == "block" else maxsize)
        self.dropped = 0
        self.overflowed = 0

    def _put(self, ev: DomainEvent) -> None:
        if self.overflow == "block":
            if self._q.qsize() >= self.maxsize:
                self.overflowed += 1
            self._q.put_nowait(ev)
            return
        if self._q.full():
            self._q.get_nowait()
            self.dropped += 1
        self._q.put_nowait(ev)

    async def get(self) -> DomainEvent:
        return await self._q.get()

    def get_nowait(self) -> DomainEvent:
        return self._q.get_nowait()

    def qsize(self) -> int:
        return self._q.qsize()

    def empty(self) -> bool:
        return self._q.empty()


class Bus:
    def __init__(self) -> None:
        self._handlers: dict[type[DomainEvent], list[Callable[[Any], None]]] = defaultdict(list)
        self._subs: list[Subscription] = []
        self.published = 0
        self.handler_errors = 0

    def on(self, etype: type[E], handler: Callable[[E], None]) -> None:
        self._handlers[etype].append(handler)

    def queue(
        self, *types: type[DomainEvent], maxsize: int = 10_000, overflow: str = "drop-oldest"
    ) -> Subscription:
        sub = Subscription(types or (DomainEvent,), maxsize, overflow)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, ev: DomainEvent) -> None:
        self.published += 1
        # Queues first: an inline handler may publish in turn (the ACD answers a CallEnded
        # with an OfferCancelled), and queue consumers must see cause before consequence.
        for sub in self._subs:
            if isinstance(ev, sub.types):
                sub._put(ev)
        for h in self._handlers.get(type(ev), ()):
            try:
                h(ev)
            except Exception:
                self.handler_errors += 1
                log.exception("bus handler failed", extra={"event": type(ev).__name__})
