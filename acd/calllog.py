"""The CRM call-log writer: every domain event of a call, written through a :class:`CallLogStore`.

It subscribes with ``overflow="block"`` so nothing is ever dropped.  Each event becomes a short
list of store operations, run in order; a failing operation is retried with backoff and, past the
last attempt, logged with the call id (the writer carries on with the next event).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cti.bus import Bus
from cti.domain import (
    CallAnswered,
    CallArrived,
    CallBridged,
    CallEnded,
    CallOffered,
    CallQueued,
    Disposition,
    DomainEvent,
    RecordingReady,
)

log = logging.getLogger(__name__)

Op = Callable[[], Awaitable[Any]]


class CallLogStore(Protocol):
    async def call_arrived(
        self, call_id: str, *, uniqueid: str, linkedid: str, channel: str, caller_num: str,
        caller_name: str, dnis: str, at: float, server: str = "default",
    ) -> Any: ...

    async def call_update(self, call_id: str, **fields: Any) -> Any: ...

    async def call_event(
        self, call_id: str, kind: str, at: float, data: dict[str, Any], dedup_key: str | None = None
    ) -> bool: ...

    async def call_end(
        self, call_id: str, *, at: float, outcome: str, hangup_cause: int, hangup_side: str,
        end_reason: str, **fields: Any,
    ) -> Any: ...


@dataclass(slots=True)
class _Track:
    queued: bool = False
    answered: bool = False
    offers: int = 0


def _kind(ev: DomainEvent) -> str:
    name = type(ev).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def split_call_id(call_id: str) -> tuple[str, str]:
    """``"<server>/<linkedid>"`` -> (server, linkedid); a bare linkedid is on server "default"."""
    server, sep, linkedid = call_id.rpartition("/")
    return (server, linkedid) if sep and server else ("default", call_id)


class CallLogWriter:
    def __init__(
        self, bus: Bus, store: CallLogStore, *, attempts: int = 4, backoff_s: float = 0.05
    ) -> None:
        self._store = store
        self._bus = bus
        self._sub = bus.queue(maxsize=10_000, overflow="block")
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._calls: dict[str, _Track] = {}
        self._done = 0
        self._inflight = 0
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0  # operations given up after the last attempt
        self._seq = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is None:
            return
        await self.drain()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        self._bus.unsubscribe(self._sub)

    async def __aenter__(self) -> CallLogWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def drain(self) -> None:
        """Wait until every event published so far has been written (or given up)."""
        if self._task is None and self._sub.qsize():
            raise RuntimeError("CallLogWriter.drain() before start()")
        target = self._done + self._inflight + self._sub.qsize()
        async with self._progress:
            await self._progress.wait_for(lambda: self._done >= target)

    async def _run(self) -> None:
        while True:
            ev = await self._sub.get()
            self._inflight = 1
            try:
                await self._write(ev)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("call log: unexpected failure on %s", type(ev).__name__)
            finally:
                self._inflight = 0
                self._done += 1
                async with self._progress:
                    self._progress.notify_all()

    async def _write(self, ev: DomainEvent) -> None:
        call_id: str | None = getattr(ev, "call_id", None)
        if call_id is None:
            return  # AgentStateChanged without a call: not part of any call log
        for op in self._ops(call_id, ev):
            await self._retry(call_id, type(ev).__name__, op)

    async def _retry(self, call_id: str, what: str, op: Op) -> None:
        delay = self._backoff_s
        for attempt in range(1, self._attempts + 1):
            try:
                await op()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == self._attempts:
                    self.failures += 1
                    log.error("call %s: giving up writing %s after %d attempts: %s", call_id, what, attempt, exc)
                    return
                log.warning("call %s: writing %s failed (attempt %d): %s", call_id, what, attempt, exc)
                await asyncio.sleep(delay)
                delay *= 2

    def _ops(self, call_id: str, ev: DomainEvent) -> list[Op]:
        st = self._store
        ops: list[Op] = []
        at: float = getattr(ev, "at", 0.0)
        data = {k: v for k, v in dataclasses.asdict(ev).items() if k not in ("call_id", "at")}
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
        kind = _kind(ev)
        self._seq += 1
        dedup = f"{kind}:{at!r}:{self._seq}"
        track = self._calls.get(call_id)
        if isinstance(ev, CallArrived):
            track = self._calls.setdefault(call_id, _Track())
            server, linkedid = split_call_id(call_id)
            ops.append(lambda: st.call_arrived(
                call_id, uniqueid=ev.uniqueid, linkedid=linkedid, channel=ev.channel,
                caller_num=ev.caller_num, caller_name=ev.caller_name, dnis=ev.dnis, at=ev.at, server=server,
            ))
        if track is None:
            track = _Track()
            if not isinstance(ev, (Disposition, RecordingReady, CallEnded)):  # may come after the end
                self._calls[call_id] = track
        event_op: Op = lambda: st.call_event(call_id, kind, at, data, dedup)  # noqa: E731
        if isinstance(ev, CallQueued):
            track.queued = True
            ops.append(lambda: st.call_update(
                call_id, cti_call_id=ev.cti_call_id, customer_id=ev.customer_id,
                ivr_path="/".join(ev.ivr_path), ivr_choice=ev.ivr_choice, queue=ev.queue,
                skills=",".join(ev.skills), queued_at=ev.at,
            ))
        elif isinstance(ev, CallOffered):
            track.offers += 1
            n = track.offers
            ops.append(lambda: st.call_update(call_id, offered_at=ev.at, agent_id=ev.agent_id, offers=n))
        elif isinstance(ev, CallAnswered):
            track.answered = True
            ops.append(lambda: st.call_update(call_id, answered_at=ev.at, agent_id=ev.agent_id))
        elif isinstance(ev, CallBridged):
            track.answered = True
        elif isinstance(ev, Disposition):
            ops.append(lambda: st.call_update(call_id, disposition=ev.code, notes=ev.notes))
        ops.append(event_op)
        if isinstance(ev, CallEnded):
            outcome = "answered" if track.answered else "abandoned" if track.queued else "ivr_hangup"
            self._calls.pop(call_id, None)
            ops.append(lambda: st.call_end(
                call_id, at=ev.at, outcome=outcome, hangup_cause=ev.cause,
                hangup_side=ev.hangup_side, end_reason=ev.reason,
            ))
        return ops
