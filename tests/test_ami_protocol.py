"""Bytes in, messages out: the AMI framing on real transcripts, split frames and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cti.ami.protocol import (
    AmiFramingError,
    AmiInjectionError,
    AmiParser,
    Banner,
    Message,
    format_action,
)

TRACES = Path(__file__).parent / "fixtures" / "traces"
LINE = re.compile(r"^(>>|<<) (\d+\.\d{3})(?: (.*))?$")


def rx_stream(path: Path) -> dict[str, bytes]:
    """Rebuild the bytes Asterisk sent, per connection."""
    out: dict[str, bytearray] = {}
    conn = "1"
    for line in path.read_text("ascii").split("\n"):
        if line.startswith("# conn "):
            conn = line.split()[2].rstrip(":")
            continue
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, line
        if m.group(1) == "<<":
            out.setdefault(conn, bytearray()).extend((m.group(3) or "").encode() + b"\r\n")
    return {k: bytes(v) for k, v in out.items()}


def parse_all(data: bytes, chunk: int | None = None) -> list[Banner | Message]:
    p = AmiParser()
    if chunk is None:
        return p.feed(data)
    out: list[Banner | Message] = []
    for i in range(0, len(data), chunk):
        out += p.feed(data[i : i + chunk])
    return out


def test_banner_then_messages() -> None:
    msgs = parse_all(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: a1\r\n"
                     b"Message: Authentication accepted\r\n\r\n")
    assert msgs[0] == Banner("Asterisk Call Manager/11.0.0")
    assert isinstance(msgs[1], Message) and msgs[1].is_response
    assert msgs[1].action_id == "a1"


def test_values_with_colon_space_empty_and_repeats() -> None:
    p = AmiParser(expect_banner=False)
    (m,) = p.feed(b"Event: X\r\nRequestType: Action: NoSuchAction\r\nAccountCode: \r\n"
                  b"Variable: a=1\r\nVariable: b=2\r\n\r\n")
    assert isinstance(m, Message)
    assert m["RequestType"] == "Action: NoSuchAction"
    assert m["AccountCode"] == ""
    assert m.get_all("variable") == ["a=1", "b=2"]


def test_bare_lf_accepted() -> None:
    p = AmiParser(expect_banner=False)
    (m,) = p.feed(b"Event: Hangup\nCause: 16\n\n")
    assert isinstance(m, Message) and m["Cause"] == "16"


@pytest.mark.parametrize("name", sorted(p.name for p in TRACES.glob("*.ami.txt")))
def test_every_trace_parses_and_split_anywhere_gives_same(name: str) -> None:
    for data in rx_stream(TRACES / name).values():
        whole = parse_all(data)
        assert isinstance(whole[0], Banner)
        assert all(isinstance(m, Message) for m in whole[1:])
        # the number of messages equals the number of blank-line terminators
        assert len(whole) - 1 == data.count(b"\r\n\r\n")
        for chunk in (1, 7, 1000):
            assert parse_all(data, chunk) == whole


def test_split_at_every_offset_small_trace() -> None:
    data = rx_stream(TRACES / "v3-04-caller-hangs-up-in-ivr.ami.txt")["1"][:6000]
    whole = parse_all(data)
    for cut in range(len(data)):
        p = AmiParser()
        assert p.feed(data[:cut]) + p.feed(data[cut:]) == whole


def _boundaries(data: bytes) -> list[int]:
    """Offsets where each message (the banner line first) starts, and the end."""
    starts = [0, data.index(b"\r\n") + 2]
    i = starts[-1]
    while (j := data.find(b"\r\n\r\n", i)) != -1:
        i = j + 4
        starts.append(i)
    return starts


@pytest.mark.parametrize("name", sorted(p.name for p in TRACES.glob("v3-*.ami.txt")))
def test_v3_trace_split_at_every_byte_offset(name: str) -> None:
    """Every byte offset of every v3 trace: a split there yields the same messages.

    The parser's state at a message boundary is "nothing buffered", so a cut inside
    message j is checked by feeding messages j and j+1 in two pieces to a parser that
    is at that boundary (the banner case included), which keeps the check linear.
    """
    for data in rx_stream(TRACES / name).values():
        whole = parse_all(data)
        starts = _boundaries(data)
        assert len(starts) - 1 == len(whole)
        for j in range(len(whole)):
            lo, hi = starts[j], starts[min(j + 2, len(whole))]
            expect = whole[j : j + 2]
            for cut in range(lo, starts[j + 1]):
                p = AmiParser(expect_banner=(j == 0))
                got = p.feed(data[lo:cut]) + p.feed(data[cut:hi])
                assert got == expect, (name, cut)


def test_oversized_line_refused() -> None:
    p = AmiParser(expect_banner=False, max_line=100)
    with pytest.raises(AmiFramingError):
        p.feed(b"Event: " + b"x" * 200)


def test_bad_banner_refused() -> None:
    with pytest.raises(AmiFramingError):
        AmiParser().feed(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("evil", ["a\r\nAction: Command", "x\n", "nul\0", "\r\n\r\nAction: Command"])
def test_injection_refused(evil: str) -> None:
    with pytest.raises(AmiInjectionError):
        format_action("Setvar", "1", {"Variable": "X", "Value": evil})


def test_format_action_roundtrip() -> None:
    raw = format_action("Originate", "o-1", {"Channel": "Local/1@x", "Async": True,
                                             "Variable": ["A=1", "B=2"]})
    (m,) = AmiParser(expect_banner=False).feed(raw)
    assert isinstance(m, Message)
    assert m.is_action and m.name == "Originate" and m["Async"] == "true"
    assert m.get_all("Variable") == ["A=1", "B=2"]


def test_a_repeated_header_gives_its_first_value_before_and_after_the_index() -> None:
    msg = AmiParser(expect_banner=False).feed(b"Variable: a=1\r\nVariable: b=2\r\n\r\n")[0]
    assert msg.get("Variable") == "a=1"  # cut from the text
    assert msg.get_all("Variable") == ["a=1", "b=2"]
    msg.index()
    assert msg.get("Variable") == "a=1"  # from the header dict
    assert msg.get("variable") == "a=1"


@given(st.lists(st.sampled_from([b"Event: A\r\nX: 1\r\n\r\n", b"Event: B\n\n", b"\r\n", b"\n",
                                 b"Response: Success\r\nMessage: m\r\n\r\n"]), min_size=1, max_size=12),
       st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=40))
def test_any_read_sizes_give_the_messages_of_one_read(parts: list[bytes], sizes: list[int]) -> None:
    """The parser resumes its search between reads: reads of any size, terminators split across them,
    give exactly the messages of one whole read."""
    data = b"".join(parts)
    whole = AmiParser(expect_banner=False).feed(data)
    p, got, i, k = AmiParser(expect_banner=False), [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        got += p.feed(data[i:i + n])
        i, k = i + n, k + 1
    assert got == whole and p.buffered == 0


def test_a_message_trickled_a_byte_at_a_time_parses_once_complete() -> None:
    data = b"A: b\r\n" * 21845 + b"\r\n"  # 128 KB: linear scanning (bench: ami_trickle_128kb_s)
    p = AmiParser(expect_banner=False, max_headers=30_000)
    out = [m for i in range(len(data)) for m in p.feed(data[i:i + 1])]
    assert len(out) == 1 and isinstance(out[0], Message) and out[0].get("A") == "b"
