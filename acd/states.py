"""The agent state machine as a transition table (pure).

``transition(state, event) -> new_state``; anything not in the table raises
:class:`acd.errors.InvalidTransition`.
"""

from __future__ import annotations

import enum

from acd.errors import AcdError, InvalidTransition, UnknownAgent
from acd.model import AgentState

__all__ = ["TRANSITIONS", "AcdError", "AgentEvent", "InvalidTransition", "UnknownAgent", "transition"]


class AgentEvent(enum.StrEnum):
    LOGIN = "login"
    LOGOUT = "logout"
    SET_READY = "set_ready"
    SET_NOT_READY = "set_not_ready"
    RESERVE = "reserve"  # the ACD picked the agent for a call
    OFFER = "offer"  # the offer AGI confirmed: the phone rings
    ANSWER = "answer"  # bridged with the caller
    RELEASE = "release"  # offer withdrawn (stale, redirect failed, caller left)
    NO_ANSWER = "no_answer"  # RONA / busy / unavailable
    CALL_END = "call_end"
    WRAP_DONE = "wrap_done"  # wrap-up timer or disposition


S = AgentState
E = AgentEvent

TRANSITIONS: dict[tuple[AgentState, AgentEvent], AgentState] = {
    (S.LOGGED_OUT, E.LOGIN): S.NOT_READY,
    (S.READY, E.LOGOUT): S.LOGGED_OUT,
    (S.NOT_READY, E.LOGOUT): S.LOGGED_OUT,
    (S.WRAP_UP, E.LOGOUT): S.LOGGED_OUT,
    (S.RESERVED, E.LOGOUT): S.LOGGED_OUT,  # the pending offer becomes stale
    (S.READY, E.SET_READY): S.READY,
    (S.NOT_READY, E.SET_READY): S.READY,
    (S.WRAP_UP, E.SET_READY): S.READY,
    (S.READY, E.SET_NOT_READY): S.NOT_READY,
    (S.NOT_READY, E.SET_NOT_READY): S.NOT_READY,
    (S.WRAP_UP, E.SET_NOT_READY): S.NOT_READY,
    (S.RESERVED, E.SET_NOT_READY): S.NOT_READY,  # the pending offer becomes stale
    (S.READY, E.RESERVE): S.RESERVED,
    (S.RESERVED, E.OFFER): S.RINGING,
    (S.RESERVED, E.RELEASE): S.READY,
    (S.RINGING, E.RELEASE): S.READY,
    (S.RINGING, E.ANSWER): S.ON_CALL,
    (S.RESERVED, E.ANSWER): S.ON_CALL,  # bridged before we saw the offer confirmed
    (S.RINGING, E.NO_ANSWER): S.NOT_READY,
    (S.RESERVED, E.NO_ANSWER): S.NOT_READY,
    (S.ON_CALL, E.CALL_END): S.WRAP_UP,
    (S.WRAP_UP, E.WRAP_DONE): S.READY,
}


def transition(state: AgentState, event: AgentEvent) -> AgentState:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state.value, event.value) from None


def allowed(state: AgentState, event: AgentEvent) -> bool:
    return (state, event) in TRANSITIONS
