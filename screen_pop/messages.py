"""Websocket message types of the agent desktop and the supervisor feed (pure: no I/O).

Every frame is one JSON object with a ``"type"`` key.

server -> agent: ``hello``, ``links``, ``pop``, ``call_answered``, ``call_ended``, ``state``, ``pong``,
``error``
server -> supervisor: ``hello`` (agent_id null), ``links``, ``state`` (every agent), ``stats``, ``error``

``links`` holds every Asterisk server's AMI link state (``cti.ami.link.LinkState``), sent
after ``hello`` and on every update: to supervisors in full (address, user, attempts), to
agents without the address, user or count, and only when that view changes.
agent -> server: ``ready``, ``not_ready``, ``disposition``, ``ping``

:func:`parse_client` turns raw text into a client message or raises
:class:`~screen_pop.errors.MessageError`; :func:`parse_server` does the same for the
server's frames (used by the agent bot).  ``to_json()`` gives the dict to send.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from cti.domain import AgentStateChanged, CallAnswered, CallEnded, CallOffered
from screen_pop.errors import MessageError

MAX_FRAME_CHARS = 16_384
MAX_REASON = 64
MAX_NOTES = 2_000
MAX_ID = 200
DISPOSITION_CODES: tuple[str, ...] = ("resolved", "callback", "complaint", "sale", "other")

__all__ = [
    "DISPOSITION_CODES",
    "MAX_FRAME_CHARS",
    "CallAnsweredMsg",
    "CallEndedMsg",
    "ClientMessage",
    "DispositionMsg",
    "ErrorMsg",
    "Hello",
    "LinksMsg",
    "NotReady",
    "Ping",
    "Pong",
    "Pop",
    "Ready",
    "ServerMessage",
    "StateMsg",
    "StatsMsg",
    "encode",
    "parse_client",
    "parse_server",
]


# -- field helpers ---------------------------------------------------------------------


def _str(d: Mapping[str, Any], key: str, *, max_len: int = MAX_ID, required: bool = True,
         default: str = "") -> str:
    if key not in d:
        if required:
            raise MessageError("missing-field", f"missing field {key!r}")
        return default
    v = d[key]
    if not isinstance(v, str):
        raise MessageError("bad-field", f"field {key!r} must be a string")
    if len(v) > max_len:
        raise MessageError("bad-field", f"field {key!r} is longer than {max_len} characters")
    return v


def _opt_str(d: Mapping[str, Any], key: str, *, max_len: int = MAX_ID) -> str | None:
    if d.get(key) is None:
        return None
    return _str(d, key, max_len=max_len)


def _num(d: Mapping[str, Any], key: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise MessageError("bad-field", f"field {key!r} must be a finite number")
    return float(v)


def _int(d: Mapping[str, Any], key: str) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise MessageError("bad-field", f"field {key!r} must be an integer")
    return v


def _opt_dict(d: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise MessageError("bad-field", f"field {key!r} must be an object or null")
    return v


# -- server -> client ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    TYPE: ClassVar[str] = "hello"
    agent_id: str | None
    state: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "agent_id": self.agent_id, "state": self.state}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Hello:
        return cls(_opt_str(d, "agent_id"), _str(d, "state"))


@dataclass(frozen=True, slots=True)
class Pop:
    TYPE: ClassVar[str] = "pop"
    call_id: str
    cti_call_id: str
    offer_no: int
    caller_num: str
    caller_name: str
    queue: str
    ivr_choice: str
    customer: dict[str, Any] | None
    offered_at: float

    @classmethod
    def from_event(cls, ev: CallOffered, customer: dict[str, Any] | None) -> Pop:
        return cls(ev.call_id, ev.cti_call_id, ev.offer_no, ev.caller_num, ev.caller_name, ev.queue,
                   ev.ivr_choice, customer, ev.at)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.TYPE, "call_id": self.call_id, "cti_call_id": self.cti_call_id,
            "offer_no": self.offer_no, "caller_num": self.caller_num, "caller_name": self.caller_name,
            "queue": self.queue, "ivr_choice": self.ivr_choice, "customer": self.customer,
            "offered_at": self.offered_at,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Pop:
        return cls(
            _str(d, "call_id"), _str(d, "cti_call_id", required=False), _int(d, "offer_no"),
            _str(d, "caller_num", required=False), _str(d, "caller_name", required=False),
            _str(d, "queue", required=False), _str(d, "ivr_choice", required=False),
            _opt_dict(d, "customer"), _num(d, "offered_at"),
        )


@dataclass(frozen=True, slots=True)
class CallAnsweredMsg:
    TYPE: ClassVar[str] = "call_answered"
    call_id: str
    agent_id: str
    wait_s: float
    at: float

    @classmethod
    def from_event(cls, ev: CallAnswered) -> CallAnsweredMsg:
        return cls(ev.call_id, ev.agent_id, ev.wait_s, ev.at)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "call_id": self.call_id, "agent_id": self.agent_id,
                "wait_s": self.wait_s, "at": self.at}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CallAnsweredMsg:
        return cls(_str(d, "call_id"), _str(d, "agent_id"), _num(d, "wait_s"), _num(d, "at"))


@dataclass(frozen=True, slots=True)
class CallEndedMsg:
    TYPE: ClassVar[str] = "call_ended"
    call_id: str
    cause: int
    cause_txt: str
    hangup_side: str
    reason: str
    at: float

    @classmethod
    def from_event(cls, ev: CallEnded) -> CallEndedMsg:
        return cls(ev.call_id, ev.cause, ev.cause_txt, ev.hangup_side, ev.reason, ev.at)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "call_id": self.call_id, "cause": self.cause,
                "cause_txt": self.cause_txt, "hangup_side": self.hangup_side, "reason": self.reason,
                "at": self.at}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CallEndedMsg:
        return cls(_str(d, "call_id"), _int(d, "cause"), _str(d, "cause_txt", required=False),
                   _str(d, "hangup_side", required=False), _str(d, "reason", required=False),
                   _num(d, "at"))


@dataclass(frozen=True, slots=True)
class StateMsg:
    TYPE: ClassVar[str] = "state"
    agent_id: str
    state: str
    reason: str
    call_id: str | None
    at: float

    @classmethod
    def from_event(cls, ev: AgentStateChanged) -> StateMsg:
        return cls(ev.agent_id, ev.state, ev.reason, ev.call_id, ev.at)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "agent_id": self.agent_id, "state": self.state,
                "reason": self.reason, "call_id": self.call_id, "at": self.at}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StateMsg:
        return cls(_str(d, "agent_id"), _str(d, "state"), _str(d, "reason", required=False),
                   _opt_str(d, "call_id"), _num(d, "at"))


@dataclass(frozen=True, slots=True)
class StatsMsg:
    """The ACD's ``snapshot()`` for the supervisor feed."""

    TYPE: ClassVar[str] = "stats"
    snapshot: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "snapshot": self.snapshot}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StatsMsg:
        return cls(_opt_dict(d, "snapshot") or {})


_LINK_FIELDS = (("server", str), ("up", bool), ("state", str), ("reason", str), ("since", float))
MAX_LINKS = 64


@dataclass(frozen=True, slots=True)
class LinksMsg:
    """The AMI link of every Asterisk server: ``links`` is a list of ``LinkState.to_json()``
    (supervisors) or ``LinkState.public()`` (agents)."""

    TYPE: ClassVar[str] = "links"
    links: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "links": list(self.links)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LinksMsg:
        raw = d.get("links")
        if not isinstance(raw, list) or len(raw) > MAX_LINKS:
            raise MessageError("bad-field", f"field 'links' must be a list of at most {MAX_LINKS} objects")
        out: list[dict[str, Any]] = []
        for item in raw:
            if not isinstance(item, dict):
                raise MessageError("bad-field", "field 'links' must hold objects")
            for key, kind in _LINK_FIELDS:
                if kind is bool:
                    if not isinstance(item.get(key), bool):
                        raise MessageError("bad-field", f"links: field {key!r} must be a boolean")
                elif kind is float:
                    _num(item, key)
                else:
                    _str(item, key, max_len=MAX_FRAME_CHARS)
            out.append(dict(item))
        return cls(tuple(out))


@dataclass(frozen=True, slots=True)
class Pong:
    TYPE: ClassVar[str] = "pong"
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "at": self.at}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Pong:
        return cls(_num(d, "at"))


@dataclass(frozen=True, slots=True)
class ErrorMsg:
    """``code`` is a stable id (``bad-json``, ``unknown-type``, ``invalid-transition`` ...)."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    ref: str | None = None  # the ``type`` of the client frame that failed, when known

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "code": self.code, "message": self.message, "ref": self.ref}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ErrorMsg:
        return cls(_str(d, "code"), _str(d, "message", max_len=MAX_FRAME_CHARS), _opt_str(d, "ref"))


# -- client -> server ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    TYPE: ClassVar[str] = "ready"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Ready:
        return cls()


@dataclass(frozen=True, slots=True)
class NotReady:
    TYPE: ClassVar[str] = "not_ready"
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "reason": self.reason}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NotReady:
        return cls(_str(d, "reason", max_len=MAX_REASON, required=False).strip())


@dataclass(frozen=True, slots=True)
class DispositionMsg:
    TYPE: ClassVar[str] = "disposition"
    call_id: str
    code: str
    notes: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "call_id": self.call_id, "code": self.code, "notes": self.notes}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DispositionMsg:
        call_id = _str(d, "call_id")
        if not call_id:
            raise MessageError("bad-field", "field 'call_id' must not be empty")
        code = _str(d, "code")
        if code not in DISPOSITION_CODES:
            raise MessageError("bad-field", f"unknown disposition code {code!r}")
        return cls(call_id, code, _str(d, "notes", max_len=MAX_NOTES, required=False))


@dataclass(frozen=True, slots=True)
class Ping:
    TYPE: ClassVar[str] = "ping"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Ping:
        return cls()


ClientMessage: TypeAlias = Ready | NotReady | DispositionMsg | Ping
ServerMessage: TypeAlias = (
    Hello | LinksMsg | Pop | CallAnsweredMsg | CallEndedMsg | StateMsg | StatsMsg | Pong | ErrorMsg
)

_CLIENT: dict[str, Any] = {c.TYPE: c for c in (Ready, NotReady, DispositionMsg, Ping)}
_SERVER: dict[str, Any] = {
    c.TYPE: c for c in (Hello, LinksMsg, Pop, CallAnsweredMsg, CallEndedMsg, StateMsg, StatsMsg, Pong, ErrorMsg)
}


def _load(raw: str | bytes) -> dict[str, Any]:
    if len(raw) > MAX_FRAME_CHARS:
        raise MessageError("too-large", f"frame longer than {MAX_FRAME_CHARS} characters")
    try:
        d = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MessageError("bad-json", "frame is not valid JSON") from None
    if not isinstance(d, dict):
        raise MessageError("bad-json", "frame must be a JSON object")
    return d


def _parse(raw: str | bytes, table: dict[str, Any]) -> Any:
    d = _load(raw)
    t = d.get("type")
    if not isinstance(t, str):
        raise MessageError("missing-type", "frame has no string 'type'")
    cls = table.get(t)
    if cls is None:
        raise MessageError("unknown-type", f"unknown message type {t[:40]!r}")
    return cls.from_json(d)


def parse_client(raw: str | bytes) -> ClientMessage:
    """A frame from an agent, validated; raises MessageError."""
    msg: ClientMessage = _parse(raw, _CLIENT)
    return msg


def parse_server(raw: str | bytes) -> ServerMessage:
    """A frame from the server, validated; raises MessageError."""
    msg: ServerMessage = _parse(raw, _SERVER)
    return msg


def encode(msg: ServerMessage | ClientMessage) -> str:
    """The frame's text; anything not JSON-native (in a snapshot) becomes a string."""
    return json.dumps(msg.to_json(), separators=(",", ":"), default=str)
