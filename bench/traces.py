"""Realistic wire data taken from the recorded Asterisk 22 transcripts.

The transcripts (``tests/fixtures/traces/*.txt``) hold one line per wire line:
``<dir> <seconds> <line>``, ``<<`` for what Asterisk sent.  We keep what Asterisk sent,
byte for byte (trailing spaces included), and re-terminate it the way Asterisk does:
CRLF on AMI, LF on FastAGI.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

TRACES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "traces"

# two complete queue calls: IVR, hold, offer, ring-no-answer, answer, recording, hangup
AMI_TRACES = ("v3-01-answered-recorded.ami.txt", "v3-02-ring-no-answer-then-answered.ami.txt")
AGI_TRACE = "v3-01-answered-recorded.agi.txt"

_LINE = re.compile(r"^<< [0-9.]+(?: (.*))?$")


def _asterisk_messages(path: Path) -> list[list[str]]:
    """What Asterisk sent, split into blank-line-terminated blocks."""
    blocks: list[list[str]] = []
    cur: list[str] = []
    with path.open(encoding="utf-8", newline="\n") as f:
        for raw in f:
            m = _LINE.match(raw.rstrip("\n"))
            if m is None:
                continue
            body = m.group(1)
            if not body:
                if cur:
                    blocks.append(cur)
                cur = []
            else:
                cur.append(body)
    return blocks


def ami_events() -> list[bytes]:
    """Every event of the queue-call transcripts, CRLF-framed, in wire order."""
    out: list[bytes] = []
    for name in AMI_TRACES:
        out.extend(("\r\n".join(block) + "\r\n\r\n").encode()
                   for block in _asterisk_messages(TRACES / name) if block[0].startswith("Event: "))
    return out


def ami_mix(events: list[bytes]) -> Counter[str]:
    return Counter(e.split(b"\r\n", 1)[0][7:].decode() for e in events)


def agi_environment() -> bytes:
    """The first FastAGI environment block (``agi_*`` lines + blank line), LF-framed."""
    for block in _asterisk_messages(TRACES / AGI_TRACE):
        if block[0].startswith("agi_"):
            return ("\n".join(block) + "\n\n").encode()
    raise ValueError(f"no agi environment in {AGI_TRACE}")
