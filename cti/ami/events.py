"""Typed AMI events: frozen dataclasses for the events the backend uses, a raw fallback.

``typed(msg)`` turns a parsed :class:`~cti.ami.protocol.Message` into the dataclass of its
event name (``Hangup`` -> :class:`Hangup`), or into :class:`RawEvent` for any other event.
Conversion is lazy: the reader parses headers only; an event becomes typed when a
subscriber asks for it, so the hundreds of VarSet events of a call cost nothing more.

Field names are the headers in snake case (``CallerIDNum`` -> ``caller_id_num``).  Every
channel event carries the channel snapshot (:class:`ChannelFields`); ``Dest*`` headers of
dial events are in ``dest_*`` fields.  Missing headers are empty strings; numbers that
Asterisk may leave empty (``Cause``) are ``int`` with 0 for "none".  No I/O here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cti.ami.protocol import Message

__all__ = [
    "AmiEvent", "RawEvent", "ChannelFields", "Newchannel", "Newexten", "Newstate", "Hangup",
    "VarSet", "UserEvent", "DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave",
    "CoreShowChannel", "MixMonitorMute", "FullyBooted", "typed", "EVENT_TYPES",
]


def _h(header: str) -> Any:
    return field(default="", metadata={"h": header})


def _hi(header: str) -> Any:
    return field(default=0, metadata={"h": header, "int": True})


@dataclass(frozen=True, slots=True)
class AmiEvent:
    """Base of every typed event; ``raw`` keeps the message (all headers, wire order)."""

    NAME: ClassVar[str] = ""
    raw: Message = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.raw.name


@dataclass(frozen=True, slots=True)
class RawEvent(AmiEvent):
    """An event we have no class for: read its headers through ``raw``."""


@dataclass(frozen=True, slots=True)
class ChannelFields(AmiEvent):
    channel: str = _h("Channel")
    channel_state_desc: str = _h("ChannelStateDesc")
    caller_id_num: str = _h("CallerIDNum")
    caller_id_name: str = _h("CallerIDName")
    connected_line_num: str = _h("ConnectedLineNum")
    context: str = _h("Context")
    exten: str = _h("Exten")
    priority: str = _h("Priority")
    uniqueid: str = _h("Uniqueid")
    linkedid: str = _h("Linkedid")

    @property
    def is_call_origin(self) -> bool:
        """The channel whose uniqueid names the call (the caller)."""
        return bool(self.uniqueid) and self.uniqueid == self.linkedid


@dataclass(frozen=True, slots=True)
class Newchannel(ChannelFields):
    NAME = "Newchannel"


@dataclass(frozen=True, slots=True)
class Newstate(ChannelFields):
    NAME = "Newstate"


@dataclass(frozen=True, slots=True)
class Newexten(ChannelFields):
    NAME = "Newexten"
    application: str = _h("Application")
    app_data: str = _h("AppData")


@dataclass(frozen=True, slots=True)
class Hangup(ChannelFields):
    NAME = "Hangup"
    cause: int = _hi("Cause")
    cause_txt: str = _h("Cause-txt")


@dataclass(frozen=True, slots=True)
class VarSet(ChannelFields):
    NAME = "VarSet"
    variable: str = _h("Variable")
    value: str = _h("Value")


@dataclass(frozen=True, slots=True)
class UserEvent(ChannelFields):
    """``UserEvent(Name,Key: value,...)``: the user keys stay in ``raw`` (``raw.get("CallId")``)."""

    NAME = "UserEvent"
    user_event: str = _h("UserEvent")


@dataclass(frozen=True, slots=True)
class DialBegin(ChannelFields):
    NAME = "DialBegin"
    dest_channel: str = _h("DestChannel")
    dest_uniqueid: str = _h("DestUniqueid")
    dial_string: str = _h("DialString")


@dataclass(frozen=True, slots=True)
class DialEnd(ChannelFields):
    NAME = "DialEnd"
    dest_channel: str = _h("DestChannel")
    dest_uniqueid: str = _h("DestUniqueid")
    dial_status: str = _h("DialStatus")


@dataclass(frozen=True, slots=True)
class BridgeEnter(ChannelFields):
    NAME = "BridgeEnter"
    bridge_uniqueid: str = _h("BridgeUniqueid")
    bridge_num_channels: int = _hi("BridgeNumChannels")


@dataclass(frozen=True, slots=True)
class BridgeLeave(ChannelFields):
    NAME = "BridgeLeave"
    bridge_uniqueid: str = _h("BridgeUniqueid")
    bridge_num_channels: int = _hi("BridgeNumChannels")


@dataclass(frozen=True, slots=True)
class CoreShowChannel(ChannelFields):
    NAME = "CoreShowChannel"
    application: str = _h("Application")
    application_data: str = _h("ApplicationData")
    duration: str = _h("Duration")
    bridge_id: str = _h("BridgeId")


@dataclass(frozen=True, slots=True)
class MixMonitorMute(ChannelFields):
    NAME = "MixMonitorMute"
    direction: str = _h("Direction")
    state: str = _h("State")


@dataclass(frozen=True, slots=True)
class FullyBooted(AmiEvent):
    NAME = "FullyBooted"
    status: str = _h("Status")
    uptime: int = _hi("Uptime")


EVENT_TYPES: dict[str, type[AmiEvent]] = {
    cls.NAME: cls
    for cls in (Newchannel, Newstate, Newexten, Hangup, VarSet, UserEvent, DialBegin, DialEnd,
                BridgeEnter, BridgeLeave, CoreShowChannel, MixMonitorMute, FullyBooted)
}

# (field name, header, is int) per class, computed once
_PLAN: dict[type[AmiEvent], tuple[tuple[str, str, bool], ...]] = {
    cls: tuple((f.name, f.metadata["h"].lower(), bool(f.metadata.get("int")))
               for f in dataclasses.fields(cls) if "h" in f.metadata)
    for cls in EVENT_TYPES.values()
}


def typed(msg: Message) -> AmiEvent:
    """The typed event for ``msg`` (``RawEvent`` when we have no class for its name)."""
    cls = EVENT_TYPES.get(msg.name)
    if cls is None:
        return RawEvent(msg)
    headers = msg.index()
    kw: dict[str, Any] = {}
    for name, header, is_int in _PLAN[cls]:
        v = headers.get(header, "")
        if is_int:
            try:
                kw[name] = int(v) if v else 0
            except ValueError:
                kw[name] = 0
        else:
            kw[name] = v
    return cls(msg, **kw)
