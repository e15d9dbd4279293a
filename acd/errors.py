"""Errors of the ACD.

Exception tree::

    AcdError                 root of everything acd raises
    ├── InvalidTransition    an agent state change the state table forbids
    ├── UnknownAgent         no agent with that id
    └── UnknownCall          no call with that id (e.g. a disposition for a call never seen)
"""

from __future__ import annotations


class AcdError(Exception):
    """Root of the ACD errors; the web edge maps them to HTTP errors."""

    error_id = "acd-error"


class InvalidTransition(AcdError):
    error_id = "invalid-transition"

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"agent event {event!r} is not allowed in state {state!r}")
        self.state = state
        self.event = event


class UnknownAgent(AcdError):
    error_id = "unknown-agent"

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"unknown agent {agent_id!r}")
        self.agent_id = agent_id


class UnknownCall(AcdError):
    error_id = "unknown-call"

    def __init__(self, call_id: str) -> None:
        super().__init__(f"unknown call {call_id!r}")
        self.call_id = call_id
