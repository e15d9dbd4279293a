"""Domain events: the only way components talk to each other.

Every event is a frozen dataclass published on :class:`cti.bus.Bus`.  ``call_id`` is
the call's key everywhere: the Linkedid of the caller's channel (the caller's own
uniqueid), prefixed by the Asterisk server name when several servers are configured
(``"<server>/<linkedid>"``).  ``at`` is wall-clock time (``time.time()``) so figures
such as pop latency can be measured across processes.

Who publishes what:

* ``cti.calls`` (the call tracker, from AMI): CallArrived, CallHeld, CallAtAgent,
  DialResult, CallBridged, CallEnded, AmiOutage.
* ``ivr``: IvrStep, CallQueued.
* ``acd``: CallOffered, CallAnswered, CallAbandoned, AgentStateChanged, OfferCancelled.
* ``screen_pop``: Disposition (agent closes the call).
* ``recordings``: RecordingReady.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """Base class; ``at`` is epoch seconds."""


# -- from the call tracker (AMI) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallArrived(DomainEvent):
    call_id: str
    channel: str
    uniqueid: str
    caller_num: str
    caller_name: str
    dnis: str
    at: float


@dataclass(frozen=True, slots=True)
class CallHeld(DomainEvent):
    """The caller reached ``[cti-hold]`` (Newexten): only now may the ACD redirect it."""

    call_id: str
    channel: str
    at: float


@dataclass(frozen=True, slots=True)
class CallLeftContract(DomainEvent):
    """The caller moved from a context of the contract to one outside it (another AMI client's
    Redirect, a site's transfer): the ACD stops routing it until it comes back to ``[cti-hold]``."""

    call_id: str
    context: str
    exten: str
    at: float


@dataclass(frozen=True, slots=True)
class CallAtAgent(DomainEvent):
    """The caller reached ``[cti-agent],<agent>`` after a Redirect."""

    call_id: str
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class DialResult(DomainEvent):
    """``UserEvent CtiDialResult``: an unanswered offer (NOANSWER, BUSY, NODEVICE ...)."""

    call_id: str
    agent_id: str
    dial_status: str
    cti_call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallBridged(DomainEvent):
    """The caller entered a bridge with another party for the first time: the call is answered.

    ``agent_id`` is our agent when the caller was bridged from ``[cti-agent],<agent>`` (our
    offer), else ``""`` (another AMI client's Redirect, a transfer, a dialplan of the site);
    ``answered_by`` is the bridged peer's channel either way.
    """

    call_id: str
    agent_id: str
    bridge_id: str
    at: float
    answered_by: str = ""


@dataclass(frozen=True, slots=True)
class CallEnded(DomainEvent):
    """The caller's channel hung up (``Hangup`` event); nothing of the call remains."""

    call_id: str
    cause: int
    cause_txt: str
    # who ended it, from the caller's channel: "caller", "agent" (the party bridged with the
    # caller, ours or not), "system" (our dialplan, an AMI Hangup, a shutdown) or "unknown"
    hangup_side: str
    reason: str  # "hangup", SHUTDOWN, or RESYNC_GONE when found gone after a reconnect
    # when it ended; for a call not seen ending (an AMI outage), the last time it was seen alive
    at: float
    # the AMI link was down since the caller last reached an agent: a bridge may have been missed
    gap: bool = False
    # not seen ending: it ended between these two times (the AMI outage, as the call saw it)
    outage_from: float | None = None
    outage_to: float | None = None


# CallEnded.reason of a call found gone after an AMI reconnect: it ended while the link was
# down, so its cause, hangup side and (if it was ringing an agent) its outcome are unknown.
RESYNC_GONE = "resync-gone"
# CallEnded.reason of a call ended by an Asterisk shutdown or restart (hangup_side "system").
SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class AmiOutage(DomainEvent):
    """The AMI link to ``server`` was down from ``down_at`` to ``up_at``: published at the
    resynchronisation after the reconnect, before the calls found gone."""

    server: str
    down_at: float
    up_at: float
    at: float
    restart: bool = False  # Asterisk shut down or restarted meanwhile: its calls died with it


# -- from the IVR ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IvrEntered(DomainEvent):
    """The IVR's FastAGI session began: the call as the session sees it (its arrival, even when the
    AMI link is down and the tracker cannot see it)."""

    call_id: str
    cti_call_id: str
    uniqueid: str
    channel: str
    caller_num: str
    caller_name: str
    dnis: str
    at: float


@dataclass(frozen=True, slots=True)
class IvrStep(DomainEvent):
    call_id: str
    node: str
    digits: str
    at: float


@dataclass(frozen=True, slots=True)
class CallQueued(DomainEvent):
    call_id: str
    cti_call_id: str
    channel: str
    queue: str
    skills: tuple[str, ...]
    priority: int
    caller_num: str
    caller_name: str
    customer_id: int | None
    ivr_path: tuple[str, ...]
    ivr_choice: str
    at: float


# -- from the ACD ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallOffered(DomainEvent):
    """The ACD confirmed the offer (offer AGI) and the agent's phone is about to ring."""

    call_id: str
    cti_call_id: str
    agent_id: str
    offer_no: int
    queue: str
    caller_num: str
    caller_name: str
    customer_id: int | None
    ivr_choice: str
    record_file: str
    at: float


@dataclass(frozen=True, slots=True)
class OfferCancelled(DomainEvent):
    call_id: str
    agent_id: str
    reason: str  # "NOANSWER", "BUSY", "NODEVICE", "hangup", ...
    at: float


@dataclass(frozen=True, slots=True)
class CallAnswered(DomainEvent):
    call_id: str
    agent_id: str
    wait_s: float
    at: float


@dataclass(frozen=True, slots=True)
class CallAbandoned(DomainEvent):
    call_id: str
    queue: str
    wait_s: float
    where: str  # "ivr" or "queue"
    at: float


@dataclass(frozen=True, slots=True)
class AgentStateChanged(DomainEvent):
    agent_id: str
    state: str  # logged_out, ready, not_ready, reserved, ringing, on_call, wrap_up
    reason: str
    call_id: str | None
    at: float


# -- from the web edge -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Disposition(DomainEvent):
    call_id: str
    agent_id: str
    code: str
    notes: str
    at: float


# -- from recordings -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingReady(DomainEvent):
    call_id: str
    path: str
    duration_s: float
    at: float
    meta: dict[str, Any] = field(default_factory=dict)


# -- from the IVR ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IvrFlowsReloaded(DomainEvent):
    """The IVR took a new version of its flows (``ivr.registry.FlowRegistry.reload``): new calls
    run it, calls in progress finish on the version they started with.  ``flows``: every flow of
    the new version; ``added``/``removed``/``changed``: the names that differ from the old one."""

    version: int
    old_version: int
    flows: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    by: str
    at: float
