"""Runs a flow on an AGI session: answer, CTI_CALL_ID first, the flow, CallQueued, CTI_NEXT queue.

A hangup (or a Redirect, which looks the same on the AGI wire) ends the run quietly after an
``IvrStep(node="hangup")``.  Any other failure is logged with the call id and the caller is sent
to the fallback queue: a failure never leaves a caller in silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from cti import dialplan
from cti.agi.errors import AgiHangup
from cti.bus import Bus
from cti.callerid import clean_caller
from cti.domain import CallQueued, IvrEntered, IvrStep
from ivr.engine import (
    Command,
    DigitsInput,
    Enqueue,
    GetDigits,
    Hangup,
    Input,
    IvrState,
    Lookup,
    LookupResult,
    Play,
    PlayDone,
    start,
    step,
)
from ivr.flow import Flow

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


class AgiSessionLike(Protocol):
    env: dict[str, str]

    async def answer(self) -> None: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def stream_file(self, filename: str, escape_digits: str = "") -> str: ...

    async def get_data(self, filename: str, timeout_ms: int, max_digits: int) -> str | None: ...

    async def hangup(self) -> None: ...


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
        flows: dict[str, Flow],
        bus: Bus,
        lookup: CustomerLookup,
        clock: Callable[[], float] = time.time,
        *,
        call_id_for: Callable[[dict[str, str]], str] = default_call_id,
        hangup_exc: tuple[type[BaseException], ...] = (AgiHangup,),
        fallback: Enqueue = DEFAULT_FALLBACK,
        new_cti_call_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._flows = flows
        self._bus = bus
        self._lookup = lookup
        self._clock = clock
        self._call_id_for = call_id_for
        self._hangup_exc = hangup_exc
        self._fallback = fallback
        self._new_id = new_cti_call_id

    async def run(self, session: AgiSessionLike, flow_name: str, call_id: str | None = None) -> IvrState | None:
        """Run ``flow_name`` on the session; returns the final state (None after a hangup/error).
        ``call_id``: the call's id when the caller knows it (else ``call_id_for(env)``)."""
        env = session.env
        call_id = call_id or self._call_id_for(env)
        lg = _Log(log, {"call_id": call_id})
        cti_call_id = self._new_id()
        state: IvrState | None = None
        self._bus.publish(IvrEntered(
            call_id, cti_call_id, env.get("agi_uniqueid", ""), env.get("agi_channel", ""),
            _caller(env, "agi_callerid"), _caller(env, "agi_calleridname"), env.get("agi_extension", ""),
            self._clock()))
        try:
            await session.answer()
            await session.set_variable(dialplan.VAR_CALL_ID, cti_call_id)
            flow = self._flows.get(flow_name)
            if flow is None:
                raise LookupError(f"unknown IVR flow {flow_name!r}")
            lg.info("IVR %s for %r", flow_name, _caller(env, "agi_callerid") or "anonymous")
            state, cmd = start(flow)
            while True:
                if isinstance(cmd, Enqueue):
                    self._step(call_id, state.node, "")
                    await self._enqueue(session, call_id, cti_call_id, cmd, state)
                    return state
                if isinstance(cmd, Hangup):
                    if cmd.prompt:
                        await session.stream_file(cmd.prompt, "")
                    self._step(call_id, state.node, "")
                    await session.hangup()
                    return state
                inp = await self._execute(session, cmd, env, lg)
                self._step(call_id, state.node, _digits_of(inp))
                state, cmd = step(flow, state, inp)
        except asyncio.CancelledError:
            raise
        except self._hangup_exc:
            lg.info("caller left the IVR%s", f" at {state.node}" if state else "")
            self._step(call_id, "hangup", "")
            return None
        except Exception:  # noqa: BLE001  logged with its traceback, the caller goes to the fallback queue (STYLE 6)
            lg.exception("IVR %s failed; sending the caller to queue %s", flow_name, self._fallback.queue)
            await self._safe_fallback(session, call_id, cti_call_id, state)
            return None

    async def _execute(self, session: AgiSessionLike, cmd: Command, env: dict[str, str], lg: _Log) -> Input:
        if isinstance(cmd, Play):
            return PlayDone(await session.stream_file(cmd.prompt, ""))
        if isinstance(cmd, GetDigits):
            return DigitsInput(await session.get_data(cmd.prompt, cmd.timeout_ms, cmd.max_digits))
        if isinstance(cmd, Lookup):
            raw = _caller(env, "agi_callerid")
            if not raw:
                return LookupResult()
            try:
                cust = await self._lookup.find_customer_by_phone(raw)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001  logged with its traceback; the flow goes on for an unknown caller
                lg.exception("CRM lookup of %r failed; continuing as unknown caller", raw)
                return LookupResult()
            return LookupResult(cust.id, cust.value_tier) if cust is not None else LookupResult()
        raise TypeError(f"no executor for {cmd!r}")

    def _step(self, call_id: str, node: str, digits: str) -> None:
        self._bus.publish(IvrStep(call_id, node, digits, self._clock()))

    async def _enqueue(
        self, session: AgiSessionLike, call_id: str, cti_call_id: str, cmd: Enqueue, state: IvrState | None
    ) -> None:
        env = session.env
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
        await session.set_variable(dialplan.VAR_NEXT, dialplan.NEXT_QUEUE)

    async def _safe_fallback(
        self, session: AgiSessionLike, call_id: str, cti_call_id: str, state: IvrState | None
    ) -> None:
        try:
            await self._enqueue(session, call_id, cti_call_id, self._fallback, state)
        except asyncio.CancelledError:
            raise
        except self._hangup_exc:
            self._step(call_id, "hangup", "")
        except Exception:
            log.exception("[%s] IVR fallback failed", call_id)
