"""Fidelity of the simulator against the real Asterisk 22 v3 transcripts in fixtures/traces/."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from cti.sim import scenarios

TRACES = Path(__file__).parent / "fixtures" / "traces"
LINE = re.compile(r"^(>>|<<|>~|<~) (\d+\.\d{3})(?: (.*))?$")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EXACT = ("Context", "Exten", "Priority", "Application", "ChannelStateDesc", "Cause", "DialStatus", "UserEvent")


def events(text: str) -> list[list[tuple[str, str]]]:
    out, cur = [], []
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        m = LINE.match(raw)
        if m is None or m.group(1) != "<<":
            continue
        t = m.group(3) or ""
        if t:
            k, _, v = t.partition(": ")
            cur.append((k, v))
        elif cur:
            out.append(cur)
            cur = []
    return out


def norm(h: list[tuple[str, str]]) -> tuple[str, frozenset[str], tuple[str, ...]] | None:
    d = dict(h)
    name = d.get("Event")
    if name in (None, "CEL", "DeviceStateChange") or "Linkedid" not in d:
        return None
    key = name
    if name == "VarSet":
        key += f"({d['Variable']})"
    chan = re.sub(r"-[0-9a-f]{8};", ";", d.get("Channel", ""))
    vals = tuple(f"{k}={d[k]}" for k in EXACT if k in d)
    if name == "VarSet" and d["Variable"].startswith("CTI_"):
        vals += (UUID.sub("<uuid>", d["Value"]),)
    if name == "Newexten":
        vals += (re.sub(r"agi://[^/]+/", "agi://H/", UUID.sub("<uuid>", d["AppData"])),)
    return f"{key}[{chan}]", frozenset(k for k, _ in h), vals


def summary(text: str) -> list[tuple[str, frozenset[str], tuple[str, ...]]]:
    return [n for n in map(norm, events(text)) if n is not None]


NAMES = ["v3-01-answered-recorded", "v3-02-ring-no-answer-then-answered", "v3-03-stale-offer",
         "v3-04-caller-hangs-up-in-ivr", "v3-06-redirect-during-ivr"]


@pytest.mark.parametrize("name", NAMES)
async def test_scenario_matches_real_asterisk(name: str) -> None:
    ami, agi = await scenarios.run(name, time_factor=0.05)
    real = summary((TRACES / f"{name}.ami.txt").read_text())
    cand = summary(ami)
    sm = difflib.SequenceMatcher(a=[r[0] for r in real], b=[c[0] for c in cand], autojunk=False)
    assert sm.ratio() >= 0.9, "\n".join(difflib.unified_diff([r[0] for r in real], [c[0] for c in cand], lineterm=""))
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for r, c in zip(real[i1:i2], cand[j1:j2]):
                assert r[1] == c[1], (r[0], r[1] ^ c[1])
                if not r[0].startswith("VarSet(BRIDGEPEER") and "ANSWEREDTIME" not in r[0] and "DIALEDTIME" not in r[0]:
                    assert r[2] == c[2], (r[0], r[2], c[2])
    # the caller's dialplan path is exactly the real one
    path = lambda s: [x[2] for x in s if x[0].startswith("Newexten[") and x[0].endswith(";1]")]  # noqa: E731
    assert path(real) == path(cand)
    ue = lambda s: [x[2] for x in s if x[0].startswith("UserEvent")]  # noqa: E731
    assert ue(real) == ue(cand)
    # FastAGI: same sessions, same reply forms, HANGUP lines where Asterisk puts them
    agi_lines = lambda t: [re.sub(r"\d+", "N", UUID.sub("<uuid>", m.group(3) or ""))  # noqa: E731
                           for m in map(LINE.match, t.splitlines()) if m and m.group(1) == "<<"
                           and not (m.group(3) or "").startswith(("agi_", ))]
    assert agi_lines((TRACES / f"{name}.agi.txt").read_text()) == agi_lines(agi)
