"""Fidelity of the simulator against the real Asterisk 22 v3 transcripts in fixtures/traces/."""

from __future__ import annotations

import asyncio
import difflib
import re
from pathlib import Path

import pytest

from simulator import scenarios

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
         "v3-04-caller-hangs-up-in-ivr", "v3-05-privileges", "v3-06-redirect-during-ivr"]


_RUNS: dict[str, tuple[str, str]] = {}


async def run(name: str) -> tuple[str, str]:
    """Each scenario is simulated once per test session; -> (ami, agi) transcripts."""
    if name not in _RUNS:
        _RUNS[name] = await scenarios.run(name, time_factor=0.05)
    return _RUNS[name]


@pytest.mark.parametrize("name", NAMES)
async def test_scenario_matches_real_asterisk(name: str) -> None:
    ami, agi = await run(name)
    real = summary((TRACES / f"{name}.ami.txt").read_text())
    cand = summary(ami)
    sm = difflib.SequenceMatcher(a=[r[0] for r in real], b=[c[0] for c in cand], autojunk=False)
    assert sm.ratio() >= 0.9, "\n".join(difflib.unified_diff([r[0] for r in real], [c[0] for c in cand], lineterm=""))
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for r, c in zip(real[i1:i2], cand[j1:j2], strict=True):
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


def cel_calls(text: str) -> dict[str, list[dict[str, str]]]:
    """CEL events per call (LinkedID), in order of the calls' first CEL."""
    calls: dict[str, list[dict[str, str]]] = {}
    for h in events(text):
        d = dict(h)
        if d.get("Event") == "CEL":
            d["_keys"] = ",".join(k for k, _ in h)
            calls.setdefault(d["LinkedID"], []).append(d)
    return calls


def cel_role(chan: str) -> str:
    return re.sub(r"-[0-9a-f]{8};", ";", chan)


def cel_item(d: dict[str, str]) -> tuple[str, ...]:
    data = re.sub(r"agi://[^/]+/", "agi://H/", UUID.sub("<uuid>", d["AppData"]))
    extra = re.sub(r'"bridge_id":"[^"]*"', '"bridge_id":"<uuid>"', d["Extra"])
    return (d["EventName"], d["Application"], data, d["Context"], d["Exten"], extra,
            "peer" if d["Peer"] else "", d["CallerIDnum"], d["CallerIDname"], d["CallerIDani"])


@pytest.mark.parametrize("name", NAMES)
async def test_cel_events_match_real_asterisk(name: str) -> None:
    """Per call: the CEL EventName sequence, the header set and order of every CEL, and per
    channel the CEL events with their Application/AppData/Context/Exten/Extra/CallerID fields."""
    ami, _ = await run(name)
    real, cand = cel_calls((TRACES / f"{name}.ami.txt").read_text()), cel_calls(ami)
    assert len(real) == len(cand)
    def seq(xs: list[dict[str, str]]) -> list[str]:
        return [f"{x['EventName']}[{cel_role(x['Channel'])}]" for x in xs]

    def per(xs: list[dict[str, str]], chan: str) -> list[object]:
        return [cel_item(x) for x in xs if cel_role(x["Channel"]) == chan and x["EventName"] != "LINKEDID_END"]

    for (rl, r), (cl, c) in zip(real.items(), cand.items(), strict=True):
        rs, cs = seq(r), seq(c)
        print(f"{name}: call {rl} / {cl}: {len(r)} / {len(c)} CEL events")
        assert sorted(rs) == sorted(cs) or sorted(x for x in rs if "LINKEDID_END" not in x) == sorted(
            x for x in cs if "LINKEDID_END" not in x), "\n".join(difflib.unified_diff(rs, cs, lineterm=""))
        assert difflib.SequenceMatcher(a=rs, b=cs, autojunk=False).ratio() >= 0.85, \
            "\n".join(difflib.unified_diff(rs, cs, lineterm=""))
        # exactly one LINKEDID_END, the call's last CEL
        assert [x["EventName"] for x in c].count("LINKEDID_END") == 1 and c[-1]["EventName"] == "LINKEDID_END"
        assert {x["_keys"] for x in c} == {x["_keys"] for x in r}
        for chan in {cel_role(x["Channel"]) for x in r}:
            assert per(r, chan) == per(c, chan), chan


async def test_busy_agent_matches_the_real_busy_dial() -> None:
    """A busy agent phone (v2-06-busy's Dial, the same under v3): DialEnd BUSY, the agent's
    Local ;1 hung up with cause 0 and its ;2 with 17 "User busy", CtiDialResult and, when the
    caller leaves, CtiCallEnd carry BUSY."""
    from simulator import AsteriskSim, Caller, SimConfig
    from simulator.actors import AgentPhone
    from simulator.record import AmiRecorder, ScriptedAgi, Transcript, contract_script

    real = [dict(h) for h in events((TRACES / "v2-06-busy.ami.txt").read_text())]

    def shape(msgs: list[dict[str, str]]) -> list[tuple[str, ...]]:
        out = []
        for m in msgs:
            ev, ch = m.get("Event", ""), m.get("Channel", "")
            if ev == "DialEnd" and m.get("DialStatus") != "ANSWER":
                out.append((ev, m["DialStatus"]))
            elif ev == "Hangup" and "agent-phones" in ch:
                out.append((ev, ch[-2:], m["Cause"], m["Cause-txt"]))
            elif ev == "UserEvent":
                out.append((ev, m["UserEvent"], m.get("DialStatus", "")))
        return out

    agi = ScriptedAgi(Transcript(), contract_script("cid-busy", "Local/1003@agent-phones", 5))
    port = await agi.start()
    async with AsteriskSim(SimConfig(agi_port=port, time_factor=0.05, phones=(AgentPhone("1003", "busy"),))) as sim:
        ami = AmiRecorder(Transcript())
        await ami.connect("127.0.0.1", sim.ami_port)
        await ami.action([("Action", "Login"), ("Username", "ctilp"), ("Secret", "secret")])
        lid = await sim.place_call(Caller("5553456", "Ivan"))
        ch = await sim.wait_in_app(lid)
        sim.redirect(ch, "cti-agent", "1003", 1)
        await ami.wait_for(lambda m: m.get("UserEvent") == "CtiDialResult")
        await sim.wait_in_app(lid)
        sim.request_hangup(sim.find(ch.name[:-1] + "2") or ch, 16)
        await ami.wait_for(lambda m: m.get("UserEvent") == "CtiCallEnd")
        await asyncio.sleep(0.05)
        await ami.close()
    await agi.stop()
    assert shape(ami.messages) == shape(real)
