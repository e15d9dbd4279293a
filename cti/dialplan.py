"""Every context name and ``CTI_*`` channel variable of the dialplan contract (v3).

``asterisk/extensions_cti.conf`` implements the contract; ``tests/test_dialplan.py``
checks that file against these names, so the two never drift apart.
"""

from __future__ import annotations

CTX_INBOUND = "cti-inbound"
CTX_HOLD = "cti-hold"
CTX_AGENT = "cti-agent"
CTX_END = "cti-end"

# Priorities in the v3 contract (see asterisk/extensions_cti.conf).
PRIO_INBOUND_AGI = 5
PRIO_AGENT_OFFER_AGI = 4
PRIO_AGENT_DIAL = 7
PRIO_AGENT_NODEV = 11

VAR_CALL_ID = "CTI_CALL_ID"
VAR_NEXT = "CTI_NEXT"
VAR_AGENT_DEVICE = "CTI_AGENT_DEVICE"
VAR_RING_TIMEOUT = "CTI_RING_TIMEOUT"
VAR_RECORD_FILE = "CTI_RECORD_FILE"
ALL_VARS = (VAR_CALL_ID, VAR_NEXT, VAR_AGENT_DEVICE, VAR_RING_TIMEOUT, VAR_RECORD_FILE)

NEXT_QUEUE = "queue"

# FastAGI scripts (agi_network_script).
SCRIPT_IVR_PREFIX = "ivr/"
SCRIPT_HOLD = "hold"
SCRIPT_OFFER_PREFIX = "offer/"

# UserEvents raised by the dialplan.
UE_DIAL_RESULT = "CtiDialResult"
UE_CALL_END = "CtiCallEnd"
DIAL_NODEVICE = "NODEVICE"

DEFAULT_RING_TIMEOUT = 15
MOH_CLASS = "default"
MOH_SECONDS = 20
HOLD_PROMPT = "beep"


def agent_device(agent_ext: str, phones_context: str = "agent-phones") -> str:
    """The Dial string of an agent's phone as the offer AGI sets it."""
    return f"Local/{agent_ext}@{phones_context}"


def record_file(cti_call_id: str, offer_no: int) -> str:
    """One file per offer (a reused name is overwritten by Asterisk, v3-02)."""
    return f"cti-{cti_call_id}-{offer_no}.wav"
