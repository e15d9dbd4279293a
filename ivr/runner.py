"""Runs a flow on an AGI session: answer, CTI_CALL_ID first, the flow, CallQueued, CTI_NEXT queue.

What it executes: play (barge-in), menu, collect (sensitive digits masked in ``IvrStep``), lookup (by
ANI; by digits when the lookup has ``find_customer_by_account``), hours (its clock), branch (queue
figures from the optional ``queue_figures`` provider, else unknown: those conditions are false),
set, say (on a session with ``say_digits``/``say_number``), queue, hangup, goto and transfer to a
flow (the call goes on in that flow, with its variables and customer).  Not yet: callback (its
request), voicemail (the recording) and transfer to a number: a flow that reaches one sends the
caller to the fallback queue, logged with the call id, as for any other failure.

A hangup (or a Redirect, which looks the same on the AGI wire) ends the run quietly after an
``IvrStep(node="hangup")``.  Any other failure is logged with the call id and the caller is sent
to the fallback queue: a failure never leaves a caller in silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from cti import dialplan
from cti.agi.errors import AgiHangup
from cti.bus import Bus
from cti.callerid import clean_caller
from cti.domain import CallQueued, IvrEntered, IvrStep
from ivr.engine import (
    MASK,
    Command,
    DigitsInput,
    Enqueue,
    GetDigits,
    GetQueueFigures,
    GetTime,
    GotoFlow,
    Hangup,
    Input,
    IvrState,
    Lookup,
    LookupResult,
    Play,
    PlayDone,
    QueueFigures,
    Say,
    TimeIs,
    start,
    step,
)
from ivr.flow import Flow
from ivr.registry import FlowRegistry

log = logging.getLogger(__name__)

# where a caller goes when the IVR fails: queue "support", skill "support", normal priority
DEFAULT_FALLBACK = Enqueue("support", ("support",), 0)


class CustomerLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def value_tier(self) -> str | None: ...


class CustomerLookup(Protocol):
    async def find_customer_by_phone(self, raw: str) -> CustomerLike | None: ...


@runtime_checkable
class SayingSession(Protocol):
    async def say_digits(self, digits: str, escape_digits: str = "") -> str: ...

    async def say_number(self, number: int, escape_digits: str = "") -> str: ...


QueueFiguresFn = Callable[[tuple[str, ...]], Mapping[str, Mapping[str, float]]]
BARGE_IN = "0123456789*#"
MAX_GOTOS = 20  # flow changes in one call: goto/transfer chains between flows are not validated yet


class AgiSessionLike(Protocol):
    env: dict[str, str]

    async def answer(self) -> None: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def stream_file(self, filename: str, escape_digits: str = "") -> str: ...

    async def get_data(self, filename: str, timeout_ms: int, max_digits: int) -> str | None: ...

    async def hangup(self) -> None: ...


class _CallerLeft(Exception):  # not an error: the caller hung up between two commands
    """The session's channel hung up while the runner worked between commands (a CRM lookup, a
    branch): Asterisk still answers one command on a dead channel, so it is checked, not awaited."""


def _gone(session: object) -> bool:
    """The session has seen the caller hang up (``AgiSession.hung_up``; test doubles may lack it)."""
    return bool(getattr(session, "hung_up", False))


def default_call_id(env: dict[str, str]) -> str:
    return env["agi_uniqueid"]


def _caller(env: dict[str, str], key: str) -> str:
    return clean_caller(env.get(key))


def _digits_of(inp: Input) -> str:
    """The digits an input carries, for the node's ``IvrStep``."""
    if isinstance(inp, PlayDone):
        return inp.digits
    if isinstance(inp, DigitsInput):
        return inp.value or ""
    return ""


class _Log(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['call_id'] if self.extra else '?'}] {msg}", kwargs


class IvrRunner:
    def __init__(
        self,
        flows: Mapping[str, Flow] | FlowRegistry,
        bus: Bus,
        lookup: CustomerLookup,
        clock: Callable[[], float] = time.time,
        *,
        call_id_for: Callable[[dict[str, str]], str] = default_call_id,
        hangup_exc: tuple[type[BaseException], ...] = (AgiHangup,),
        fallback: Enqueue = DEFAULT_FALLBACK,
        new_cti_call_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        queue_figures: QueueFiguresFn | None = None,
    ) -> None:
        self._queue_figures = queue_figures
        self._flows = flows
        self._bus = bus
        self._lookup = lookup
        self._clock = clock
        self._call_id_for = call_id_for
        self._hangup_exc = hangup_exc
        self._left_exc: tuple[type[BaseException], ...] = (*hangup_exc, _CallerLeft)
        self._fallback = fallback
        self._new_id = new_cti_call_id

    @property
    def flows(self) -> Mapping[str, Flow]:
        """The flows a session starting now takes (a registry's current version, or the fixed dict)."""
        f = self._flows
        return f.current.flows if isinstance(f, FlowRegistry) else f

    async def run(self, session: AgiSessionLike, flow_name: str, call_id: str | None = None) -> IvrState | None:
        """Run ``flow_name`` on the session; returns the final state (None after a hangup/error).
        ``call_id``: the call's id when the caller knows it (else ``call_id_for(env)``).

        The flows are taken once, here: a reload of the registry meanwhile does not change this
        call's flows (nor those it goes on to by goto/transfer)."""
        flows = self.flows
        env = session.env
        call_id = call_id or self._call_id_for(env)
        lg = _Log(log, {"call_id": call_id})
        cti_call_id = self._new_id()
        state: IvrState | None = None
        last_step = ""  # the node of the last IvrStep published
        self._bus.publish(IvrEntered(
            call_id, cti_call_id, env.get("agi_uniqueid", ""), env.get("agi_channel", ""),
            _caller(env, "agi_callerid"), _caller(env, "agi_calleridname"), env.get("agi_extension", ""),
            self._clock()))
        try:
            await session.answer()
            await session.set_variable(dialplan.VAR_CALL_ID, cti_call_id)
            flow = flows.get(flow_name)
            if flow is None:
                raise LookupError(f"unknown IVR flow {flow_name!r}")
            lg.info("IVR %s for %r", flow_name, _caller(env, "agi_callerid") or "anonymous")
            state, cmd = start(flow, {"ani": _caller(env, "agi_callerid")})
            gotos = 0
            while True:
                if _gone(session):
                    raise _CallerLeft
                if isinstance(cmd, GotoFlow):
                    gotos += 1
                    nxt = flows.get(cmd.flow)
                    if nxt is None or gotos > MAX_GOTOS:
                        raise LookupError(f"cannot go to IVR flow {cmd.flow!r} from {flow.name!r}")
                    self._step(call_id, state.node, "")
                    last_step = state.node
                    lg.info("IVR %s goes on in flow %s", flow.name, cmd.flow)
                    keep = state
                    flow = nxt
                    state, cmd = start(flow, dict(keep.vars))
                    state = replace(state, customer_id=keep.customer_id, tier=keep.tier,
                                    customer=keep.customer, sensitive=keep.sensitive, path=(*keep.path, *state.path))
                    continue
                if isinstance(cmd, Enqueue):
                    self._step(call_id, state.node, "")
                    last_step = state.node
                    await self._enqueue(session, call_id, cti_call_id, cmd, state)
                    return state
                if isinstance(cmd, Hangup):
                    if cmd.prompt:
                        await session.stream_file(cmd.prompt, "")
                    self._step(call_id, state.node, "")
                    await session.hangup()
                    return state
                inp = await self._execute(session, cmd, env, lg)
                sensitive = isinstance(cmd, GetDigits) and cmd.sensitive
                self._step(call_id, state.node, MASK if sensitive and _digits_of(inp) else _digits_of(inp))
                last_step = state.node
                if _gone(session):  # left while this node ran (between commands): it is the node left
                    raise _CallerLeft
                state, cmd = step(flow, state, inp)
        except asyncio.CancelledError:
            raise
        except self._left_exc:
            left = state.node if state else ""
            lg.info("caller left the IVR%s", f" at {left}" if left else "")
            if left and left != last_step:  # the node where the caller left, on the call's timeline
                self._step(call_id, left, "")
            self._step(call_id, "hangup", "")
            return None
        except Exception:  # noqa: BLE001  logged with its traceback, the caller goes to the fallback queue (STYLE 6)
            lg.exception("IVR %s failed; sending the caller to queue %s", flow_name, self._fallback.queue)
            await self._safe_fallback(session, call_id, cti_call_id, state)
            return None

    async def _execute(self, session: AgiSessionLike, cmd: Command, env: dict[str, str], lg: _Log) -> Input:
        if isinstance(cmd, Play):
            keys = BARGE_IN if cmd.barge_in else ""
            for p in (cmd.prompt, *cmd.more):
                got = await session.stream_file(p, keys)
                if got:
                    return PlayDone(got)
            return PlayDone("")
        if isinstance(cmd, GetDigits):
            for p in cmd.prelude:
                await session.stream_file(p, "")
            return DigitsInput(await session.get_data(cmd.prompt, cmd.timeout_ms, cmd.max_digits))
        if isinstance(cmd, GetTime):
            return TimeIs(self._clock())
        if isinstance(cmd, GetQueueFigures):
            return QueueFigures(self._queue_figures(cmd.queues) if self._queue_figures else {})
        if isinstance(cmd, Say) and isinstance(session, SayingSession):
            if cmd.say_as == "number" and cmd.value.isdigit():
                return PlayDone(await session.say_number(int(cmd.value), ""))
            return PlayDone(await session.say_digits(cmd.value, "") if cmd.value.isdigit() else "")
        if isinstance(cmd, Lookup):
            raw = _caller(env, "agi_callerid") if cmd.by == "ani" else cmd.value
            finder: Callable[[str], Awaitable[CustomerLike | None]] | None = (
                self._lookup.find_customer_by_phone if cmd.by == "ani"
                else getattr(self._lookup, "find_customer_by_account", None))
            if not raw or finder is None:
                return LookupResult()
            try:
                cust = await finder(raw)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001  logged with its traceback; the flow goes on for an unknown caller
                lg.exception("CRM lookup of %r failed; continuing as unknown caller", raw)
                return LookupResult()
            if cust is None:
                return LookupResult()
            fields = tuple((k, str(v)) for k in ("account_no", "account_manager", "churn_risk", "name")
                           if (v := getattr(cust, k, None)) not in (None, ""))
            return LookupResult(cust.id, cust.value_tier, fields=fields)
        raise TypeError(f"no executor for {cmd!r}")

    def _step(self, call_id: str, node: str, digits: str) -> None:
        self._bus.publish(IvrStep(call_id, node, digits, self._clock()))

    async def _enqueue(
        self, session: AgiSessionLike, call_id: str, cti_call_id: str, cmd: Enqueue, state: IvrState | None
    ) -> None:
        env = session.env
        # CTI_NEXT first: Asterisk answers SET VARIABLE even on a dead channel, so a caller who left
        # is found by the session's hang-up flag, and is never queued
        await session.set_variable(dialplan.VAR_NEXT, dialplan.NEXT_QUEUE)
        if _gone(session):
            raise _CallerLeft
        self._bus.publish(
            CallQueued(
                call_id=call_id, cti_call_id=cti_call_id, channel=env.get("agi_channel", ""),
                queue=cmd.queue, skills=cmd.skills, priority=cmd.priority,
                caller_num=_caller(env, "agi_callerid"), caller_name=_caller(env, "agi_calleridname"),
                customer_id=state.customer_id if state else None,
                ivr_path=state.path if state else (), ivr_choice=state.choice if state else "",
                at=self._clock(),
            )
        )

    async def _safe_fallback(
        self, session: AgiSessionLike, call_id: str, cti_call_id: str, state: IvrState | None
    ) -> None:
        try:
            if _gone(session):
                raise _CallerLeft
            await self._enqueue(session, call_id, cti_call_id, self._fallback, state)
        except asyncio.CancelledError:
            raise
        except self._left_exc:
            self._step(call_id, "hangup", "")
        except Exception:
            log.exception("[%s] IVR fallback failed", call_id)
