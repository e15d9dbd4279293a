"""Fidelity of the simulator's background traffic, soft-hangup flags and restart against real
Asterisk 22 captures (tests/fixtures/site-traces/, see its README): the same flows, driven the same
way (the least-privilege ``ctilp`` records; a second client, ``admin``, acts)."""

from __future__ import annotations

import asyncio
import difflib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator import AsteriskSim, SimConfig, site
from simulator.record import AgiConn, AmiRecorder, ScriptedAgi, Transcript
from tests.test_sim_fidelity import LINE, events, norm

TRACES = Path(__file__).parent / "fixtures" / "site-traces"
TF = 0.05
ADMIN = ("secret", frozenset({"system", "call", "dialplan", "user", "agent", "reporting"}),
         frozenset({"system", "call", "originate", "reporting"}))
Msg = dict[str, str]


def is_ev(name: str, **kw: str) -> Callable[[Msg], bool]:
    return lambda m: m.get("Event") == name and all(m.get(k) == v for k, v in kw.items())


def agi_script(name: str) -> Callable[[AgiConn], object]:
    async def script(c: AgiConn) -> None:
        s = c.env.get("agi_network_script", "")
        if s == "ivr/main":
            if name == "sh-agi-hangup":
                for line in ("ANSWER", "SET VARIABLE CTI_CALL_ID x-1", "HANGUP", "NOOP"):
                    await c.cmd(line)
                return
            for line in ("ANSWER", f"SET VARIABLE CTI_CALL_ID {uuid.uuid4()}", "SET VARIABLE CTI_NEXT queue"):
                await c.cmd(line)
        elif s == "hold":
            await c.cmd('STREAM FILE beep ""')
        elif s.startswith("offer/"):
            await c.cmd("GET VARIABLE CTI_CALL_ID")
            await c.cmd(f"SET VARIABLE CTI_AGENT_DEVICE Local/{s[6:]}@agent-phones")
            await c.cmd("SET VARIABLE CTI_RING_TIMEOUT 15")
    return script


async def login(t: Transcript, port: int, user: str) -> AmiRecorder:
    r = AmiRecorder(t)
    await r.connect("127.0.0.1", port)
    await r.act([("Action", "Login"), ("ActionID", f"{user}-1"), ("Username", user), ("Secret", "secret")])
    return r


async def drive(name: str) -> tuple[str, str, list[Msg]]:
    """-> (ctilp's AMI transcript, the FastAGI transcript, admin's messages) of scenario ``name``."""
    t_ami = Transcript()
    t_agi, t_adm = Transcript(t_ami.t0), Transcript(t_ami.t0)
    agi = ScriptedAgi(t_agi, agi_script(name))  # type: ignore[arg-type]
    port = await agi.start()
    users = {**SimConfig().users, "admin": ADMIN}
    async with AsteriskSim(SimConfig(agi_port=port, time_factor=TF, users=users, restart_s=1.0)) as sim:
        far = sim.far  # the lab's programs for the extensions the flows use
        far.expect("Local/quick@callers", site.caller(1))
        for ext, prog in (("2001", site.caller()), ("2002", site.phone(1, 2)), ("2004", site.caller())):
            far.expect(f"Local/{ext}@{site.PHONES}", prog)
        ami, adm = await login(t_ami, sim.ami_port, "ctilp"), await login(t_adm, sim.ami_port, "admin")
        n = iter(range(100))

        async def act(action: str, *h: tuple[str, str]) -> None:
            await adm.act([("Action", action), ("ActionID", f"a-{next(n)}"), *h])

        async def originate(r: AmiRecorder, channel: str, ctx: str, exten: str, cid: str) -> str:
            mark = ami.mark()
            await r.action([("Action", "Originate"), ("ActionID", f"o-{next(n)}"), ("Channel", channel),
                            ("Context", ctx), ("Exten", exten), ("Priority", "1"), ("CallerID", cid),
                            ("Async", "true")])
            return (await ami.wait_for(is_ev("OriginateResponse"), 10, mark))["Channel"]

        async def sleep(s: float) -> None:
            await asyncio.sleep(s * TF)

        if name.startswith("bg-internal"):
            ch = await originate(adm, "Local/2001@internal-phones", "internal", "2002", "Ext 2001 <2001>")
        elif name.startswith("bg-queue"):
            who = "quick" if name.endswith("abandon") else "wait"
            ch = await originate(adm, f"Local/{who}@callers", "queue-test", "2002", "Queue Caller <5550001>")
        elif name in ("bg-redirect-vm", "bg-redirect-ext", "sh-ami-hangup"):
            ch = await originate(ami, "Local/wait@callers", "cti-inbound", "5551000", "Olivia <5557001>")
            await ami.wait_for(is_ev("MusicOnHoldStart", Channel=ch), 10)
            await sleep(1.0)
            mark = ami.mark()
            if name == "bg-redirect-vm":
                await act("Redirect", ("Channel", ch), ("Context", "voicemail"), ("Exten", "2005"), ("Priority", "1"))
                await ami.wait_for(is_ev("Newexten", Channel=ch, Application="Wait"), 10, mark)
                await sleep(2.0)
                mark = ami.mark()
                await act("Redirect", ("Channel", ch), ("Context", "cti-hold"), ("Exten", "s"), ("Priority", "1"))
                await ami.wait_for(is_ev("MusicOnHoldStart", Channel=ch), 10, mark)
                await sleep(1.0)
                await act("Hangup", ("Channel", ch[:-1] + "2"), ("Cause", "16"))
            elif name == "bg-redirect-ext":
                await act("Redirect", ("Channel", ch), ("Context", "internal"), ("Exten", "2002"), ("Priority", "1"))
            else:
                await act("Hangup", ("Channel", ch))
        elif name == "sh-agi-hangup":
            ch = await originate(ami, "Local/wait@callers", "cti-inbound", "5551000", "Olivia <5557001>")
        else:  # sh-restart
            ch = await originate(ami, "Local/wait@callers", "cti-inbound", "5551000", "Olivia <5557001>")
            await ami.wait_for(is_ev("MusicOnHoldStart", Channel=ch), 10)
            mark = ami.mark()
            ch2 = await originate(ami, "Local/wait@callers", "cti-inbound", "5551000", "Peggy <5557002>")
            await ami.wait_for(is_ev("MusicOnHoldStart", Channel=ch2), 10, mark)
            await act("Redirect", ("Channel", ch2), ("Context", "cti-agent"), ("Exten", "1004"), ("Priority", "1"))
            await ami.wait_for(is_ev("BridgeEnter", Channel=ch2), 10, mark)
            mark = ami.mark()
            await originate(adm, "Local/2001@internal-phones", "internal", "2004", "Ext 2001 <2001>")
            await ami.wait_for(lambda m: m.get("Event") == "BridgeEnter"
                               and m.get("Channel", "").startswith("Local/2001@"), 10, mark)
            await sleep(1.0)
            await sim.shutdown(restart=True)
            again = await login(t_adm, sim.ami_port, "admin")
            await again.close()
        if name != "sh-restart":
            await ami.wait_for(is_ev("Hangup", Channel=ch), 10)
            await asyncio.sleep(0.05)
        messages = adm.messages
        for r in (ami, adm):
            await r.close()
    await agi.stop()
    return t_ami.text(), t_agi.text(), messages


Item = tuple[str, frozenset[str], tuple[str, ...]]


def calls(text: str) -> list[list[Item]]:
    """The call events (as test_sim_fidelity's ``norm``) grouped by call (Linkedid), the calls in
    the order they first appear: between calls the order is the threads' race."""
    out: dict[str, list[Item]] = {}
    for h in events(text):
        n = norm(h)
        if n is not None:
            out.setdefault(dict(h)["Linkedid"], []).append(n)
    return list(out.values())


NAMES = ["bg-internal", "bg-queue", "bg-queue-abandon", "bg-redirect-vm", "bg-redirect-ext", "sh-ami-hangup",
         "sh-agi-hangup", "sh-restart"]


@pytest.mark.parametrize("name", NAMES)
async def test_site_scenario_matches_real_asterisk(name: str) -> None:
    """The call events (no CEL, no DeviceStateChange: the lab build has no res_manager_devicestate)
    per channel role, in order; header sets and the exact values wherever the sequences agree; every
    channel's Newexten path and every Hangup cause and SoftHangupRequest flag exactly the real ones."""
    ami, agi, adm = await drive(name)
    real_calls, cand_calls = calls((TRACES / f"{name}.ami.txt").read_text()), calls(ami)
    assert len(real_calls) == len(cand_calls)
    for real, cand in zip(real_calls, cand_calls, strict=True):
        keys_r, keys_c = [r[0] for r in real], [c[0] for c in cand]
        sm = difflib.SequenceMatcher(a=keys_r, b=keys_c, autojunk=False)
        # a restart tears a site call's dialled legs down in either order (README): 0.85 there
        bar = 0.85 if name == "sh-restart" and "internal-phones" in keys_r[0] else 0.9
        assert sm.ratio() >= bar, "\n".join(difflib.unified_diff(keys_r, keys_c, lineterm=""))
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                for r, c in zip(real[i1:i2], cand[j1:j2], strict=True):
                    assert r[1] == c[1], (r[0], r[1] ^ c[1])
                    if "ANSWEREDTIME" not in r[0] and "DIALEDTIME" not in r[0]:
                        assert r[2] == c[2], (r[0], r[2], c[2])
    real = [x for c in real_calls for x in c]
    cand = [x for c in cand_calls for x in c]

    def per_channel(s: list[Item], what: str) -> dict[str, list[object]]:
        out: dict[str, list[object]] = {}
        for key, _, vals in s:
            ev, _, chan = key.partition("[")
            if ev.startswith(what):
                out.setdefault(chan, []).append(vals)
        return out

    for what in ("Newexten", "Hangup[", "SoftHangupRequest", "UserEvent"):
        got, want = per_channel(cand, what.rstrip("[")), per_channel(real, what.rstrip("["))
        if what == "Hangup[" and name == "sh-restart":  # the internal call's legs race (see README)
            got = {k: v for k, v in got.items() if "internal-phones" not in k}
            want = {k: v for k, v in want.items() if "internal-phones" not in k}
        assert got == want, what
    if name == "sh-agi-hangup":
        lines = [m.group(3) or "" for m in map(LINE.match, agi.splitlines()) if m and m.group(1) == "<<"
                 and not (m.group(3) or "").startswith("agi_")]
        assert lines[-3:] == ["200 result=1", "HANGUP", "HANGUP"]
        assert "EOF from asterisk" in agi and "not sending 'NOOP'" in agi
    if name == "sh-restart":
        shut = [m for m in adm if m.get("Event") == "Shutdown"]
        assert shut == [{"Event": "Shutdown", "Privilege": "system,all", "Shutdown": "Cleanly", "Restart": "True"}]
        assert "Shutdown" not in ami and ami.rstrip().endswith("# conn 1: EOF")


def test_the_fixtures_are_the_lab_dialplan() -> None:
    """The site contexts the captures ran with are the ones the simulator runs (site.py)."""
    text = (TRACES / "bg-queue.ami.txt").read_text()
    apps = [dict(h).get("Application") for h in events(text)
            if dict(h).get("Event") == "Newexten" and dict(h).get("Context") == "queue-test"]
    assert apps == [a for a, _ in site.contexts()["queue-test"][:4]]
