"""The CRM call-log writer: every domain event of a call, written through a :class:`CallLogStore`.

It subscribes with ``overflow="block"`` so nothing is ever dropped.  Each event becomes a short
list of store operations (:class:`CallLogOp`).  The writer takes every event waiting in its queue
(up to ``max_batch``) and writes their operations in order in **one transaction**, so under load
a commit carries hundreds of events instead of one.  A failing batch is retried with backoff; if
it still fails, its operations are written one by one (each retried), so one bad operation costs
only itself: it is logged with the call id, counted in ``failures``, and the writer carries on.

What a row says:

* ``agent_id`` is the agent who answered (an offer that rang unanswered leaves none; a call
  ringing an agent across an AMI outage, outcome ``unknown``, keeps the agent it rang);
  ``answered_by`` the party bridged with the caller, ours or not (a call bridged by another AMI
  client or a transfer is ``answered`` with its ``answered_at`` and ``talk_s``, and no agent).
* ``outcome`` ``redirected``: another AMI client (or the site's dialplan) moved the caller out of
  the contract and it ended there unanswered (back in ``[cti-hold]``, it is ours again).
* ``outcome`` ``system``: ended unanswered by an Asterisk shutdown/restart (``end_reason``
  ``shutdown``, ``hangup_side`` ``system``); an answered call so ended stays ``answered``.
* A call not seen ending (an AMI outage) ends at the last time it was seen alive (by the AMI
  link or by its FastAGI sessions), with ``outage_from``/``outage_to``: the window it ended in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

from crm_core.store_calls import CallLogOp
from cti.bus import Bus
from cti.domain import (
    RESYNC_GONE,
    SHUTDOWN,
    AmiOutage,
    CallAbandoned,
    CallAnswered,
    CallArrived,
    CallAtAgent,
    CallBridged,
    CallEnded,
    CallHeld,
    CallLeftContract,
    CallOffered,
    CallQueued,
    DialResult,
    Disposition,
    DomainEvent,
    IvrEntered,
    IvrStep,
    OfferCancelled,
    RecordingReady,
)

log = logging.getLogger(__name__)


class CallLogStore(Protocol):
    async def call_log_batch(self, ops: Sequence[CallLogOp]) -> None:
        """Apply the operations in order, in one transaction (all or nothing)."""


@dataclass(slots=True)
class _Track:
    queued: bool = False
    answered: bool = False
    offers: int = 0
    offer_open: bool = False  # offered, and no OfferCancelled since
    bridged: bool = False  # CallBridged seen
    offered_agent: str | None = None  # the agent of the last offer
    away: bool = False  # moved out of the contract by someone else, and not back in [cti-hold]
    last_seen: float | None = None  # the last event that shows the caller alive
    first_seen: float | None = None  # the first (FastAGI may see a call before AMI does: an outage)


# events that may come after the call's CallEnded: they must not start a new track
_AFTER_END = (Disposition, RecordingReady, CallEnded, OfferCancelled, CallAbandoned)
# events that show the caller's channel alive at their time (AMI or FastAGI on that channel)
_ALIVE = (CallArrived, IvrEntered, IvrStep, CallQueued, CallHeld, CallAtAgent, CallLeftContract, CallOffered,
          DialResult, CallBridged, CallAnswered)


def _outcome(track: _Track, ev: CallEnded, reason: str) -> str:
    if track.answered:
        return "answered"
    if reason == SHUTDOWN:
        return "system"  # an Asterisk shutdown or restart ended it: not the caller's doing
    if (reason == RESYNC_GONE or ev.gap) and track.offer_open:
        return "unknown"  # ringing an agent across an AMI outage: a missed bridge is possible
    if track.away:
        return "redirected"  # sent out of the contract by someone else, and ended there unanswered
    return "abandoned" if track.queued else "ivr_hangup"


# how long after a reconnect a call log closed as gone (by the app, not the tracker) still belongs
# to that reconnect's outage
_OUTAGE_NEWS_S = 300.0


def _kind(ev: DomainEvent) -> str:
    name = type(ev).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def split_call_id(call_id: str, default: str = "default") -> tuple[str, str]:
    """``"<server>/<linkedid>"`` -> (server, linkedid); a bare linkedid is on server ``default``
    (the only one configured)."""
    server, sep, linkedid = call_id.rpartition("/")
    return (server, linkedid) if sep and server else (default, call_id)


class CallLogWriter:
    def __init__(
        self, bus: Bus, store: CallLogStore, *, attempts: int = 4, backoff_s: float = 0.05,
        max_batch: int = 500, server: str = "default",
    ) -> None:
        self._server = server  # the server of call ids without one (a single Asterisk)
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
        self.batches = 0  # transactions committed
        self.max_batch = max_batch
        self._seq = 0
        self._outages: dict[str, AmiOutage] = {}  # server -> its last AMI outage

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

    async def __aenter__(self) -> Self:
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
            batch = [await self._sub.get()]
            while len(batch) < self.max_batch and not self._sub.empty():
                batch.append(self._sub.get_nowait())
            self._inflight = len(batch)
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("call log: unexpected failure on a batch of %d events", len(batch))
            finally:
                self._inflight = 0
                self._done += len(batch)
                async with self._progress:
                    self._progress.notify_all()

    async def _write(self, batch: list[DomainEvent]) -> None:
        ops: list[CallLogOp] = []
        for ev in batch:
            if isinstance(ev, AmiOutage):
                self._outages[ev.server] = ev
                continue
            call_id: str | None = getattr(ev, "call_id", None)
            if call_id is not None:  # AgentStateChanged without a call: not part of any call log
                ops.extend(self._ops(call_id, ev))
        if not ops:
            return
        if await self._retry(ops, f"a batch of {len(ops)} operations", quiet=len(ops) > 1):
            return
        for op in ops:  # isolate the operation that fails
            await self._retry([op], f"{op.op} of call {op.call_id}")

    async def _retry(self, ops: list[CallLogOp], what: str, quiet: bool = False) -> bool:
        delay = self._backoff_s
        for attempt in range(1, self._attempts + 1):
            try:
                await self._store.call_log_batch(ops)
                self.batches += 1
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  any store failure is retried, then logged; the writer lives on
                if attempt == self._attempts:
                    if quiet:
                        log.warning("call log: %s failed %d times, writing them one by one: %s",
                                    what, attempt, exc)
                    else:
                        self.failures += 1
                        log.error("call log: giving up writing %s after %d attempts: %s", what, attempt, exc,
                                  extra={"call_id": ops[0].call_id})
                    return False
                log.warning("call log: writing %s failed (attempt %d): %s", what, attempt, exc)
                await asyncio.sleep(delay)
                delay *= 2
        return False

    def _ops(self, call_id: str, ev: DomainEvent) -> list[CallLogOp]:
        ops: list[CallLogOp] = []
        at: float = getattr(ev, "at", 0.0)
        data = {k: v for k, v in dataclasses.asdict(ev).items() if k not in ("call_id", "at")}
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
        kind = _kind(ev)
        self._seq += 1
        dedup = f"{kind}:{at!r}:{self._seq}"
        track = self._calls.get(call_id)

        def op(name: str, **fields: Any) -> None:
            ops.append(CallLogOp(name, call_id, fields))

        if isinstance(ev, CallArrived):
            track = self._calls.setdefault(call_id, _Track())
            server, linkedid = split_call_id(call_id, self._server)
            # adopted after an AMI outage, its IVR (FastAGI) may have seen it first: it arrived then
            arrived = ev.at if track.first_seen is None else min(ev.at, track.first_seen)
            op("arrived", uniqueid=ev.uniqueid, linkedid=linkedid, channel=ev.channel,
               caller_num=ev.caller_num, caller_name=ev.caller_name, dnis=ev.dnis, at=arrived, server=server)
        elif isinstance(ev, IvrEntered):  # the FastAGI side of the arrival: fills what AMI has not written
            track = self._calls.setdefault(call_id, _Track())
            server, linkedid = split_call_id(call_id, self._server)
            op("arrived", uniqueid=ev.uniqueid or None, linkedid=linkedid, channel=ev.channel or None,
               caller_num=ev.caller_num, caller_name=ev.caller_name, dnis=ev.dnis or None, at=ev.at, server=server)
            op("update", cti_call_id=ev.cti_call_id)
        if track is None:
            track = _Track()
            if not isinstance(ev, _AFTER_END):
                self._calls[call_id] = track
        if isinstance(ev, _ALIVE):
            track.last_seen = at if track.last_seen is None else max(track.last_seen, at)
            track.first_seen = at if track.first_seen is None else min(track.first_seen, at)
        if isinstance(ev, CallQueued):
            track.queued = True
            op("update", cti_call_id=ev.cti_call_id, customer_id=ev.customer_id,
               ivr_path="/".join(ev.ivr_path), ivr_choice=ev.ivr_choice, queue=ev.queue,
               skills=",".join(ev.skills), queued_at=ev.at)
        elif isinstance(ev, CallOffered):
            track.offers += 1
            track.offer_open = True
            track.offered_agent = ev.agent_id  # the row's agent_id is who answered, not who rang
            op("update", offered_at=ev.at, offers=track.offers)
        elif isinstance(ev, CallAnswered):
            if not track.answered:
                op("update", answered_at=ev.at, agent_id=ev.agent_id)
            else:
                op("update", agent_id=ev.agent_id)
            track.answered = True
        elif isinstance(ev, CallBridged):
            if not track.bridged:  # the tracker's first bridge of the caller: who answered, and when
                fields: dict[str, Any] = {"answered_by": ev.answered_by or None}
                if not track.answered:
                    fields["answered_at"] = ev.at
                if ev.agent_id:
                    fields["agent_id"] = ev.agent_id
                op("update", **fields)
            track.answered = track.bridged = True
        elif isinstance(ev, OfferCancelled):
            track.offer_open = False
        elif isinstance(ev, CallLeftContract):
            track.away = True
        elif isinstance(ev, CallHeld):
            track.away = False
        elif isinstance(ev, Disposition):
            op("update", disposition=ev.code, notes=ev.notes)
        op("event", kind=kind, at=at, data=data, dedup_key=dedup)
        if isinstance(ev, CallEnded):
            self._calls.pop(call_id, None)
            reason, side = ev.reason, ev.hangup_side
            outage: AmiOutage | None = None
            if ev.outage_to is None and ev.reason == RESYNC_GONE:  # closed at a reconnect, unseen by the tracker
                outage = self._outages.get(split_call_id(call_id, self._server)[0])
                if outage is not None and not 0.0 <= ev.at - outage.up_at <= _OUTAGE_NEWS_S:
                    outage = None
                if outage is not None and outage.restart:
                    reason, side = SHUTDOWN, "system"  # Asterisk restarted during the outage
            outcome = _outcome(track, ev, reason)
            extra: dict[str, Any] = {}
            if outcome == "unknown" and track.offered_agent:
                extra["agent_id"] = track.offered_agent  # it may have answered while the link was down
            end_at: float | None = ev.at
            if ev.outage_to is not None or ev.reason == RESYNC_GONE:  # not seen ending
                end_at, extra["outage_from"], extra["outage_to"] = _unseen_end(track, ev, outage)
            op("end", at=end_at, outcome=outcome, hangup_cause=ev.cause, hangup_side=side, end_reason=reason,
               **extra)
        return ops


def _unseen_end(track: _Track, ev: CallEnded, outage: AmiOutage | None) -> tuple[float | None, float | None, float]:
    """(ended_at, outage_from, outage_to) of a call not seen ending: the last time it was seen alive
    (by the tracker, or by its FastAGI sessions), never the reconnect.  ``None`` when nothing of it
    was seen here (a row left open by an earlier run): the store takes the row's last milestone."""
    if ev.outage_to is not None:  # the tracker's: it knows when it last saw the call
        seen: list[float] = [ev.at]
        upper = ev.outage_to
    else:  # a call log left open that the tracker never saw: the app closes it at the reconnect
        seen = []
        upper = outage.up_at if outage is not None else ev.at
    if track.last_seen is not None:
        seen.append(track.last_seen)
    end_at = min(max(seen), upper) if seen else None
    return end_at, end_at, upper
