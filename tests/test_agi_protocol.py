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


def _reference_reply(line: str) -> Reply:
    """The regex-only parse the fast paths must agree with."""
    import re
    code_s, _, rest = line.partition(" ")
    if code_s != "200":
        return parse_reply_line(line)
    m = re.match(r"^result=(\S*)(?:\s+\((.*)\))?((?:\s+\w+=\S*)*)\s*$", rest)
    if not m:
        raise AgiProtocolError(line)
    extra = dict(part.partition("=")[::2] for part in m.group(3).split())
    return Reply(200, m.group(1), m.group(2), extra, rest)


REPLY_LINES = [
    "200 result=0", "200 result=1", "200 result=-1", "200 result=", "200 result=49",
    "200 result= (timeout)", "200 result=1 (a value)", "200 result=1 ()", "200 result=1 (a) (b)",
    "200 result=1 (a) b=c)", "200 result=0 endpos=11234", "200 result=-1 endpos=48160",
    "200 result=0 endpos=", "200 result=0 a_b=1", "200 result=0 a=b=c", "200 result=1 (x) endpos=5",
    "200 result=0 endpos=1 other=2", "200 result=0  endpos=1", "200 result=0 ", "200 result=0\tendpos=3",
    "200 result=0 (unterminated", "200 result=0 =x", "200 result=0 k-y=1", "200 result=0 (a)x",
    "200 result=0 x", "200 result=é", "200 result=1 (é)", "200 resultat=1", "200 ",
]


@pytest.mark.parametrize("line", REPLY_LINES)
def test_fast_reply_parse_agrees_with_the_regex(line: str) -> None:
    try:
        want: Reply | type[Exception] = _reference_reply(line)
    except AgiProtocolError:
        want = AgiProtocolError
    for got_fn in (lambda: parse_reply_line(line),
                   lambda: AgiParser(max_line=100).feed(b"agi_a: 1\n\n" + line.encode() + b"\n")[1]):
        if want is AgiProtocolError:
            with pytest.raises(AgiProtocolError):
                got_fn()
        else:
            assert got_fn() == want


ENV_BLOCKS = [
    b"agi_network: yes\nagi_accountcode:\nagi_x: \nagi_y: a: b\nagi_: v\n\n",
    b"agi_network: yes\r\nagi_request: agi://h/ivr\r\n\r\n",  # CRLF: stripped
    b"agi_network: yes\nagi_calleridname: J\xc3\xa9r\xc3\xb4me\n\n",  # UTF-8
    b"agi_network: yes\nagi_calleridname: J\xe9r\xf4me\n\n",  # not UTF-8: latin-1
    b"agi_network: yes\nagi_caf\xc3\xa9: 1\n\n",  # a non-ASCII key (isalnum)
    b"agi_network: yes\nHANGUP\nagi_x: 1\n\n200 result=0\n",
    b"agi_network: yes\nagi_v: tab\there\x00nul\n\nHANGUP\n",
]
BAD_ENV_BLOCKS = [
    b"agi_network:yes\n\n", b"agi_a:b: c\n\n", b"xagi_a: 1\n\n", b"agi_a: 1\nagi-b: 2\n\n",
    b" agi_a: 1\n\n", b"agi_a: 1\n \n\n", b"\n", b"agi_a: 1\nagi_b\n\n",
]


@pytest.mark.parametrize("data", ENV_BLOCKS)
def test_whole_environment_block_agrees_with_line_by_line(data: bytes) -> None:
    whole = AgiParser().feed(data)
    p = AgiParser()
    bytewise = [ev for i in range(len(data)) for ev in p.feed(data[i:i + 1])]
    assert whole == bytewise
    assert any(isinstance(ev, Environment) for ev in whole)


@pytest.mark.parametrize("data", BAD_ENV_BLOCKS)
def test_bad_environment_refused_whole_and_bytewise(data: bytes) -> None:
    with pytest.raises(AgiProtocolError):
        AgiParser().feed(data)
    p = AgiParser()
    with pytest.raises(AgiProtocolError):
        for i in range(len(data)):
            p.feed(data[i:i + 1])


def test_format_command_args_of_every_kind() -> None:
    class Name(str):
        pass

    assert format_command("ANSWER") == b"ANSWER\n"
    assert format_command("GET DATA", "cti/menu", 3000, 6) == b"GET DATA cti/menu 3000 6\n"
    assert format_command("X", -1, True, 1.5, Name("a b"), "") == b'X -1 True 1.5 "a b" ""\n'
    assert format_command("X", "tab\there") == b'X "tab\there"\n'
    with pytest.raises(AgiInjectionError):
        format_command("X", Name("a\nb"))
    with pytest.raises(AgiInjectionError):
        format_command("BAD\nVERB")


def test_command_lines_asterisk_would_split_are_refused() -> None:
    from cti.agi.errors import AgiInjectionError
    from cti.agi.protocol import MAX_COMMAND_LINE, format_command

    ok = format_command("SET VARIABLE", "X", "a" * (MAX_COMMAND_LINE - 20))
    assert len(ok) < MAX_COMMAND_LINE
    with pytest.raises(AgiInjectionError):
        format_command("SET VARIABLE", "X", "a" * MAX_COMMAND_LINE)
