"""Typed AMI events: every event of every real transcript converts; bounded subscriber queues."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from cti.ami.client import AmiClient
from cti.ami.events import EVENT_TYPES, BridgeEnter, CoreShowChannel, Hangup, RawEvent, typed
from cti.ami.protocol import Message
from tests.test_calls_tracker import events_of

TRACES = sorted(p.name for p in (Path(__file__).parent / "fixtures" / "traces").glob("v3-*.ami.txt"))


@pytest.mark.parametrize("name", TRACES)
def test_every_event_of_the_trace_converts_to_its_class(name: str) -> None:
    seen: Counter[str] = Counter()
    for msg in events_of(name):
        if not msg.is_event:
            continue
        ev = typed(msg)
        cls = EVENT_TYPES.get(msg.name)
        assert type(ev) is (cls or RawEvent) and ev.raw is msg and ev.name == msg.name
        seen[type(ev).__name__] += 1
        assert type(ev).FIELDS or isinstance(ev, RawEvent)
        for f in type(ev).FIELDS:
            wire = next((v for k, v in msg.headers if k.lower() == f.header.lower()), "")
            value = getattr(ev, f.name)
            assert value == (int(wire) if isinstance(value, int) and wire else (0 if isinstance(value, int) else wire))
    assert seen["Hangup"] and seen["Newexten"] and seen["RawEvent"]


def test_fields_of_a_real_bridge_enter_and_hangup() -> None:
    msgs = events_of("v3-01-answered-recorded.ami.txt")
    be = next(typed(m) for m in msgs if m.name == "BridgeEnter")
    assert isinstance(be, BridgeEnter) and be.bridge_uniqueid and be.bridge_num_channels == 1
    hang = [typed(m) for m in msgs if m.name == "Hangup"]
    assert all(isinstance(h, Hangup) and h.cause == 16 and h.cause_txt == "Normal Clearing" for h in hang)
    assert sum(h.is_call_origin for h in hang if isinstance(h, Hangup)) == 1
    csc = typed(Message((("Event", "CoreShowChannel"), ("Channel", "X"), ("BridgeId", "b"), ("Cause", "x"))))
    assert isinstance(csc, CoreShowChannel) and csc.bridge_id == "b" and csc.caller_id_num == ""


EVENT = ("Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: Local/s@cti-inbound-00000001;1\r\n"
         "Uniqueid: 1.{i}\r\nLinkedid: 1.0\r\nVariable: X\r\nValue: {i}\r\n\r\n")


async def _blaster(n: int) -> tuple[asyncio.AbstractServer, int]:
    """A peer speaking AMI: banner, accepts Login, then sends ``n`` events and a Hangup."""

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"Asterisk Call Manager/11.0.0\r\n")
        head = await r.readuntil(b"\r\n\r\n")
        aid = next(line.split(": ", 1)[1] for line in head.decode().split("\r\n") if line.startswith("ActionID"))
        w.write(f"Response: Success\r\nActionID: {aid}\r\nMessage: Authentication accepted\r\n\r\n".encode())
        w.write("".join(EVENT.format(i=i) for i in range(n)).encode())
        w.write(b"Event: Hangup\r\nChannel: C\r\nUniqueid: 1.0\r\nLinkedid: 1.0\r\nCause: 16\r\n\r\n")
        await w.drain()
        while await r.read(4096):  # answer nothing more; keep the link until the client leaves
            pass

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


async def test_a_slow_subscriber_loses_its_oldest_events_not_the_link() -> None:
    srv, port = await _blaster(5000)
    async with srv:
        c = AmiClient("127.0.0.1", port, "u", "s", ping_interval=30)
        slow = c.subscribe(maxsize=100)  # never read while the burst arrives
        hangups = c.subscribe("Hangup", maxsize=10)
        inline = 0

        def count(_: Message) -> None:
            nonlocal inline
            inline += 1

        c.add_listener(count)
        async with c:
            h = await asyncio.wait_for(hangups.get(), 5)
            assert isinstance(h, Hangup) and h.cause == 16 and h.is_call_origin
            assert inline == 5001 and c.connected
            assert slow.qsize() == 100 and slow.dropped == 4901 and slow.delivered == 5001
            last = [slow.get_nowait() for _ in range(100)][-1]
            assert isinstance(last, Hangup)  # the newest were kept
            assert hangups.dropped == 0 and hangups.delivered == 1
            c.unsubscribe(slow)


def test_typed_events_are_read_only_views_with_value_semantics() -> None:
    text = "Event: Hangup\r\nChannel: SIP/a-1\r\nUniqueid: 1.5\r\nLinkedid: 1.5\r\nCause: x16\r\n"
    a, b = typed(Message(text=text)), typed(Message(text=text))
    assert isinstance(a, Hangup) and a.cause == 0 and a.cause_txt == "" and a.channel == "SIP/a-1"
    assert a == b and hash(a) == hash(b) and "uniqueid='1.5'" in repr(a)
    assert a != typed(Message(text=text.replace("1.5", "1.6")))
    with pytest.raises(AttributeError):
        a.channel = "other"  # type: ignore[misc]
    assert [f.name for f in Hangup.FIELDS][-2:] == ["cause", "cause_txt"]


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_message_get_reads_the_text_like_the_header_index(eol: str) -> None:
    lines = ["Event: CEL", "Privilege: call,all", "UniqueID: 1.2", "LinkedID: 1.0", "AppData: a: b",
             "Extra: {\"x\":1}", "AppData: second", "Empty:", "Tail: end"]
    text = eol.join(lines)
    fast, slow = Message(text=text), Message(text=text)
    slow.index()
    for name in ("Event", "UniqueID", "uniqueid", "Uniqueid", "AppData", "Extra", "Empty", "Tail", "Missing"):
        assert fast.get(name) == slow.get(name), name
    assert fast.get("AppData") == "a: b" and fast.get("Tail") == "end" and fast.get("Missing", "d") == "d"
