"""Typed AMI events: read-only classes for the events the backend uses, a raw fallback.

``typed(msg)`` wraps a parsed :class:`~cti.ami.protocol.Message` in the class of its event
name (``Hangup`` -> :class:`Hangup`), or in :class:`RawEvent` for any other event.  A typed
event is a view: making one costs one small object, and each field reads its header from the
message's text only when asked (``Message.get``: a substring search, no header dict), so the
hundreds of VarSet events of a call cost almost nothing more than untyped ones.

Field names are the headers in snake case (``CallerIDNum`` -> ``caller_id_num``).  Every
channel event carries the channel snapshot (:class:`ChannelFields`); ``Dest*`` headers of
dial events are in ``dest_*`` fields.  Missing headers are empty strings; numbers that
Asterisk may leave empty (``Cause``) are ``int`` with 0 for "none".  No I/O here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from cti.ami.protocol import Message

__all__ = [
    "EVENT_TYPES",
    "AmiEvent",
    "BridgeEnter",
    "BridgeLeave",
    "ChannelFields",
    "CoreShowChannel",
    "DialBegin",
    "DialEnd",
    "FullyBooted",
    "Hangup",
    "MixMonitorMute",
    "Newchannel",
    "Newexten",
    "Newstate",
    "RawEvent",
    "UserEvent",
    "VarSet",
    "typed",
]


class _Header:
    """A typed event's field: the first value of one header, read from the message when asked."""

    __slots__ = ("header", "is_int", "name")

    def __init__(self, header: str, is_int: bool = False) -> None:
        self.header, self.is_int, self.name = header, is_int, ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: AmiEvent | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        v = obj.raw.get(self.header) or ""
        if self.is_int:
            try:
                return int(v) if v else 0
            except ValueError:
                return 0
        return v


def _h(header: str) -> Any:
    return _Header(header)


def _hi(header: str) -> Any:
    return _Header(header, True)


class AmiEvent:
    """Base of every typed event: a read-only view of ``raw`` (the message, all headers in wire
    order).  Making one costs a single object; each field reads its header only when asked."""

    __slots__ = ("raw",)
    raw: Message
    NAME: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[_Header, ...]] = ()

    def __init__(self, raw: Message) -> None:
        object.__setattr__(self, "raw", raw)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        seen: dict[str, _Header] = {}
        for klass in reversed(cls.__mro__):
            for v in vars(klass).values():
                if isinstance(v, _Header):
                    seen[v.name] = v
        cls.FIELDS = tuple(seen.values())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    @property
    def name(self) -> str:
        return self.raw.name

    def fields(self) -> dict[str, Any]:
        """Field name -> value."""
        return {f.name: f.__get__(self) for f in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiEvent) or type(other) is not type(self):
            return False
        return self.fields() == other.fields() if self.FIELDS else self.raw == other.raw

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.fields().values())) if self.FIELDS else (type(self), self.raw))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.fields().items())
        return f"{type(self).__name__}({inner or repr(self.raw)})"


class RawEvent(AmiEvent):
    """An event we have no class for: read its headers through ``raw``."""

    __slots__ = ()


class ChannelFields(AmiEvent):
    __slots__ = ()
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


class Newchannel(ChannelFields):
    __slots__ = ()
    NAME = "Newchannel"


class Newstate(ChannelFields):
    __slots__ = ()
    NAME = "Newstate"


class Newexten(ChannelFields):
    __slots__ = ()
    NAME = "Newexten"
    application: str = _h("Application")
    app_data: str = _h("AppData")


class Hangup(ChannelFields):
    __slots__ = ()
    NAME = "Hangup"
    cause: int = _hi("Cause")
    cause_txt: str = _h("Cause-txt")


class VarSet(ChannelFields):
    __slots__ = ()
    NAME = "VarSet"
    variable: str = _h("Variable")
    value: str = _h("Value")


class UserEvent(ChannelFields):
    __slots__ = ()
    """``UserEvent(Name,Key: value,...)``: the user keys stay in ``raw`` (``raw.get("CallId")``)."""

    NAME = "UserEvent"
    user_event: str = _h("UserEvent")


class DialBegin(ChannelFields):
    __slots__ = ()
    NAME = "DialBegin"
    dest_channel: str = _h("DestChannel")
    dest_uniqueid: str = _h("DestUniqueid")
    dial_string: str = _h("DialString")


class DialEnd(ChannelFields):
    __slots__ = ()
    NAME = "DialEnd"
    dest_channel: str = _h("DestChannel")
    dest_uniqueid: str = _h("DestUniqueid")
    dial_status: str = _h("DialStatus")


class BridgeEnter(ChannelFields):
    __slots__ = ()
    NAME = "BridgeEnter"
    bridge_uniqueid: str = _h("BridgeUniqueid")
    bridge_num_channels: int = _hi("BridgeNumChannels")


class BridgeLeave(ChannelFields):
    __slots__ = ()
    NAME = "BridgeLeave"
    bridge_uniqueid: str = _h("BridgeUniqueid")
    bridge_num_channels: int = _hi("BridgeNumChannels")


class CoreShowChannel(ChannelFields):
    __slots__ = ()
    NAME = "CoreShowChannel"
    application: str = _h("Application")
    application_data: str = _h("ApplicationData")
    duration: str = _h("Duration")
    bridge_id: str = _h("BridgeId")


class MixMonitorMute(ChannelFields):
    __slots__ = ()
    NAME = "MixMonitorMute"
    direction: str = _h("Direction")
    state: str = _h("State")


class FullyBooted(AmiEvent):
    __slots__ = ()
    NAME = "FullyBooted"
    status: str = _h("Status")
    uptime: int = _hi("Uptime")


EVENT_TYPES: dict[str, type[AmiEvent]] = {
    cls.NAME: cls
    for cls in (Newchannel, Newstate, Newexten, Hangup, VarSet, UserEvent, DialBegin, DialEnd,
                BridgeEnter, BridgeLeave, CoreShowChannel, MixMonitorMute, FullyBooted)
}


def typed(msg: Message, name: str | None = None) -> AmiEvent:
    """The typed event for ``msg`` (``RawEvent`` when we have no class for its name);
    ``name``: its event name when the caller has it already."""
    return EVENT_TYPES.get(msg.name if name is None else name, RawEvent)(msg)
