"""The ACD's FastAGI handlers: ``hold`` (short announce) and ``offer/<agent>``.

The offer AGI runs at the top of ``[cti-agent]``: it reads ``CTI_CALL_ID``, asks the
distributor whether the offer is still wanted, and sets the agent's device, ring timeout
and recording file.  A stale offer sets nothing, so the dialplan raises ``NODEVICE`` and
sends the caller back to hold.
"""

from __future__ import annotations

import logging
from typing import Protocol

from acd.model import OfferDecision
from cti import dialplan as dp
from cti.agi.session import AgiSession

log = logging.getLogger(__name__)


class OfferDecider(Protocol):
    def decide_offer(self, agent_id: str, cti_call_id: str, channel: str) -> OfferDecision | None: ...


class HoldHandler:
    def __init__(self, prompt: str = dp.HOLD_PROMPT) -> None:
        self.prompt = prompt

    async def __call__(self, session: AgiSession) -> None:
        await session.stream_file(self.prompt, "")


class OfferHandler:
    def __init__(self, decider: OfferDecider) -> None:
        self.decider = decider
        self.good = 0
        self.stale = 0

    async def __call__(self, session: AgiSession) -> None:
        agent_id = session.environment.script[len(dp.SCRIPT_OFFER_PREFIX):]
        cti_call_id = await session.get_variable(dp.VAR_CALL_ID) or ""
        decision = self.decider.decide_offer(agent_id, cti_call_id, session.channel)
        if decision is None:
            self.stale += 1
            log.info("stale offer", extra={"agent": agent_id, "uniqueid": session.uniqueid})
            return
        self.good += 1
        await session.set_variable(dp.VAR_AGENT_DEVICE, decision.device)
        await session.set_variable(dp.VAR_RING_TIMEOUT, str(decision.ring_timeout_s))
        if decision.record_file:
            await session.set_variable(dp.VAR_RECORD_FILE, decision.record_file)
