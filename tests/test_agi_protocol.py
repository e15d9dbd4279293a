"""Bytes in, events out: the FastAGI parser on real transcripts, split frames and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti.agi.errors import AgiInjectionError, AgiProtocolError
from cti.agi.protocol import (
    AgiParser,
    Environment,
    HangupNotice,
    Reply,
    format_command,
    parse_reply_line,
    split_command,
)

TRACES = Path(__file__).parent / "fixtures" / "traces"


def asterisk_side(path: Path) -> list[bytes]:
    """The bytes Asterisk sent on each FastAGI connection of a transcript."""
    conns: dict[str, bytearray] = {}
    conn = "1"
    for line in path.read_text("ascii").split("\n"):
        if line.startswith("# conn "):
            conn = line.split()[2].rstrip(":")
        elif line.startswith("<< "):
            _, _, text = line[3:].partition(" ")
            conns.setdefault(conn, bytearray()).extend(text.encode() + b"\n")
    return [bytes(c) for c in conns.values()]


@pytest.mark.parametrize("name", sorted(p.name for p in TRACES.glob("*.agi.txt")))
def test_every_agi_trace_parses_split_anywhere(name: str) -> None:
    for data in asterisk_side(TRACES / name):
        whole = AgiParser().feed(data)
        assert isinstance(whole[0], Environment)
        assert whole[0].get("agi_network") == "yes"
        assert isinstance(whole[-1], HangupNotice)  # F3: every session ends with HANGUP
        for cut in range(0, len(data), 3):
            p = AgiParser()
            assert p.feed(data[:cut]) + p.feed(data[cut:]) == whole


def test_environment_accountcode_and_args() -> None:
    env_bytes = (b"agi_network: yes\nagi_network_script: ivr/main?lang=fr&x=1\n"
                 b"agi_accountcode: \nagi_arg_1: one\nagi_arg_2: two words\n\n")
    (env,) = AgiParser().feed(env_bytes)
    assert isinstance(env, Environment)
    assert env.get("agi_accountcode") == ""
    assert env.script == "ivr/main" and env.query == {"lang": "fr", "x": "1"}
    assert env.args == ["one", "two words"]


def test_reply_forms() -> None:
    assert parse_reply_line("200 result= (timeout)") == Reply(200, "", "timeout", {}, "result= (timeout)")
    r = parse_reply_line("200 result=-1 endpos=24160")
    assert r.result_int == -1 and r.endpos == 24160
    assert parse_reply_line("200 result=1 (a value)").data == "a value"
    assert parse_reply_line("511 Command Not Permitted on a dead channel or intercept routine").code == 511


def test_multiline_520_and_hangup_between() -> None:
    p = AgiParser()
    p.feed(b"agi_network: yes\n\n")
    out = p.feed(b"520-Invalid command syntax.  Proper usage follows:\n")
    assert out == []
    out = p.feed(b" Usage: WAIT FOR DIGIT <replaceable>timeout</replaceable>\n520 End of proper usage.\nHANGUP\n")
    assert isinstance(out[0], Reply) and out[0].code == 520 and len(out[0].usage) == 2
    assert isinstance(out[1], HangupNotice)


@pytest.mark.parametrize("bad", [b"garbage without colon\n", b"\x00\x01\x02: x\n", b"\n"])
def test_malformed_environment_refused(bad: bytes) -> None:
    with pytest.raises(AgiProtocolError):
        AgiParser().feed(bad)


def test_oversized_refused() -> None:
    with pytest.raises(AgiProtocolError):
        AgiParser(max_line=64).feed(b"agi_x: " + b"y" * 100)
    with pytest.raises(AgiProtocolError):
        AgiParser(max_env_lines=3).feed(b"agi_a: 1\n" * 5)


def test_quoting_roundtrip_and_injection() -> None:
    for arg in ["plain", "two words", 'say "hi"', "back\\slash", ""]:
        line = format_command("SET VARIABLE", "X", arg).decode().rstrip("\n")
        assert split_command(line) == ["SET", "VARIABLE", "X", arg]
    for evil in ["a\nHANGUP", "b\r", "c\0"]:
        with pytest.raises(AgiInjectionError):
            format_command("SET VARIABLE", "X", evil)
