"""manager.conf users and eventfilter in the simulator (Asterisk 22 semantics), with the project's
own asterisk/manager.conf as the contract."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from cti.ami.protocol import AmiParser, Message, format_message
from simulator import AsteriskSim, Caller, SimConfig
from simulator.manager_conf import EventFilter, FilterError, Filters, load_manager_conf, parse_manager_conf
from simulator.record import ScriptedAgi, Transcript, contract_script

MANAGER_CONF = Path(__file__).resolve().parent.parent / "asterisk" / "manager.conf"
VARSET = ("VarSet", ("Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: Local/a@b-00000001;1\r\n"
                     "Variable: CTI_NEXT\r\nValue: queue\r\n\r\n"))
NEWCHANNEL = ("Newchannel", ("Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/100-00000002\r\n"
                             "Exten: 5551000\r\n\r\n"))
CEL = ("CEL", "Event: CEL\r\nPrivilege: call,all\r\nEventName: HANGUP\r\nChannel: Local/a@b-00000001;2\r\n\r\n")


def allows(*lines: tuple[str, str], event: tuple[str, str]) -> bool:
    return Filters.build(lines).allows(*event)


def test_legacy_include_and_exclude() -> None:
    assert allows(event=CEL)  # no filters: everything
    assert not allows(("eventfilter", "!Event: CEL"), event=CEL)
    assert allows(("eventfilter", "!Event: CEL"), event=VARSET)
    # include only: an event must match one of them
    assert allows(("eventfilter", "Variable: CTI_"), event=VARSET)
    assert not allows(("eventfilter", "Variable: CTI_"), event=NEWCHANNEL)
    assert allows(("eventfilter", "Variable: CTI_"), ("eventfilter", "^Event: Newchannel"), event=NEWCHANNEL)
    # include and exclude: match an include, and no exclude
    both = (("eventfilter", "Channel: Local/"), ("eventfilter", "!EventName: HANGUP"))
    assert allows(*both, event=VARSET)
    assert not allows(*both, event=CEL)
    assert not allows(*both, event=NEWCHANNEL)
    # the regex is searched in the whole text, headers and all (POSIX ERE-like)
    assert allows(("eventfilter", "Privilege: (call|dialplan),all"), event=VARSET)


def test_advanced_filters() -> None:
    name_only = ("eventfilter(name(VarSet),method(none))", "")
    assert allows(name_only, event=VARSET) and not allows(name_only, event=NEWCHANNEL)
    hdr = "eventfilter(action(include),name(VarSet),header(Variable),method(starts_with))"
    assert allows((hdr, "CTI_"), event=VARSET)
    assert not allows((hdr, "DIAL"), event=VARSET)
    exact = "eventfilter(action(exclude),name(Newchannel),header(Exten),method(exact))"
    assert not allows((exact, "5551000"), event=NEWCHANNEL)
    assert allows((exact, "555100"), event=NEWCHANNEL)
    assert allows((exact, "5551000"), event=VARSET)  # another event name: the filter does not apply
    # '!' still means exclude, unless action() says otherwise
    assert not allows(("eventfilter(header(Channel),method(ends_with))", "!;2"), event=CEL)
    assert allows(("eventfilter(action(include),header(Channel),method(contains))", "!@b-"), event=VARSET)
    assert not allows(("eventfilter(action(include),header(Channel),method(contains))", "!@b-"), event=NEWCHANNEL)
    f = EventFilter.parse("eventfilter(action(include),header(Channel),method(contains))", "!@b-")
    assert not f.exclude and f.pattern == "@b-" and f.header == "Channel:"
    for crit, pat in (("eventfilter(action(inlude))", "x"), ("eventfilter(nme(VarSet))", "x"),
                      ("eventfilter(name(VarSet),method(regex))", ""), ("eventfilter(name(VarSet)", "x"),
                      ("eventfilter(method(none))", ""), ("eventfilter", ""), ("eventfilter(name(X))", "y")):
        with pytest.raises(FilterError) as e:
            EventFilter.parse(crit, pat)
        assert e.value.kind == "format", crit
    with pytest.raises(FilterError) as e:
        EventFilter.parse("eventfilter", "Event: (")
    assert e.value.kind == "compile"


def test_project_manager_conf_is_loaded() -> None:
    users = load_manager_conf(MANAGER_CONF)
    assert list(users) == ["ctilp"]
    u = users["ctilp"]
    assert u.read == {"call", "dialplan", "user", "agent", "reporting"}
    assert u.write == {"call", "originate", "reporting"}
    assert u.writetimeout_ms == 100
    assert ("eventfilter(action(include),name(Hangup))", "") in u.eventfilters
    f = u.filters()
    assert not f.exclude and len(f.include) == len(u.eventfilters) == 8
    soft = "Event: SoftHangupRequest\r\nPrivilege: call,all\r\nChannel: PJSIP/t-1\r\nCause: {}\r\n"
    assert f.allows("SoftHangupRequest", soft.format(4))  # AST_SOFTHANGUP_SHUTDOWN: a shutdown
    assert not f.allows("SoftHangupRequest", soft.format(16))  # the end of every pbx run
    conf = parse_manager_conf("[general]\nenabled=yes\n[t](!)\nread=all\n[x]\nsecret = a\\;b ; comment\n"
                              "read = all\nwrite = system,call\neventfilter(name(VarSet),method(none)) =\n")
    assert list(conf) == ["x"] and conf["x"].secret == "a;b" and "security" in conf["x"].read
    assert conf["x"].eventfilters == (("eventfilter(name(VarSet),method(none))", ""),)


class Client:
    def __init__(self) -> None:
        self.p = AmiParser()
        self.msgs: list[Message] = []
        self.task: asyncio.Task[None] | None = None

    async def open(self, port: int, user: str, secret: str) -> Client:
        self.r, self.w = await asyncio.open_connection("127.0.0.1", port)
        self.task = asyncio.ensure_future(self._read())
        m = await self.act(("Action", "Login"), ("Username", user), ("Secret", secret))
        assert m.get("Message") == "Authentication accepted", m
        return self

    async def _read(self) -> None:
        while True:
            data = await self.r.read(65536)
            if not data:
                return
            self.msgs += [m for m in self.p.feed(data) if isinstance(m, Message)]

    async def until(self, pred, timeout: float = 10.0) -> Message:  # type: ignore[no-untyped-def]
        async def loop() -> Message:
            seen = 0
            while True:
                for m in self.msgs[seen:]:
                    if pred(m):
                        return m
                seen = len(self.msgs)
                await asyncio.sleep(0.005)
        return await asyncio.wait_for(loop(), timeout)

    async def act(self, *h: tuple[str, str]) -> Message:
        n = len(self.msgs)
        self.w.write(format_message(h))
        return await self.until(lambda m: m.get("Response") is not None and self.msgs.index(m) >= n)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.w.close()


async def test_manager_conf_filters_drop_cel_and_friends() -> None:
    script = contract_script("cid-1", "Local/1004@agent-phones", 5)

    agi = ScriptedAgi(Transcript(), script)
    port = await agi.start()
    plain = ("secret", frozenset({"call", "dialplan", "user", "agent", "reporting"}),
             frozenset({"call", "originate", "reporting"}))
    cfg = SimConfig.from_manager_conf(str(MANAGER_CONF), agi_port=port, time_factor=0.05)
    cfg = dataclasses.replace(cfg, users={**cfg.users, "plain": plain})
    assert cfg.cel
    async with AsteriskSim(cfg) as sim:
        filtered = await Client().open(sim.ami_port, "ctilp", "change-me")
        unfiltered = await Client().open(sim.ami_port, "plain", "secret")
        lid = await sim.place_call(Caller("5551234", "Grace"))
        chan = sim.record[lid].channel
        await unfiltered.until(lambda m: m.get("Event") == "MusicOnHoldStart")
        r = await filtered.act(("Action", "Redirect"), ("Channel", chan), ("Context", "cti-agent"),
                               ("Exten", "1004"), ("Priority", "1"))
        assert r.get("Message") == "Redirect successful"
        await unfiltered.until(lambda m: m.get("Event") == "BridgeEnter" and m.get("Channel") == chan)
        await filtered.act(("Action", "Hangup"), ("Channel", chan[:-1] + "2"), ("Cause", "16"))
        for c in (filtered, unfiltered):
            await c.until(lambda m: m.get("Event") == "Hangup" and m.get("Channel") == chan)
        await sim.wait_ended(lid, 5)
        await asyncio.sleep(0.1)
        counts = {}
        for label, c in (("filtered", filtered), ("unfiltered", unfiltered)):
            per_call = [m for m in c.msgs if m.get("Event") and lid in (m.get("Linkedid"), m.get("LinkedID"))]
            names = Counter(m.get("Event") for m in c.msgs if m.get("Event"))
            counts[label] = (len(per_call), names)
            print(f"{label}: {len(per_call)} events for the call, {sum(names.values())} in all; "
                  f"CEL {names['CEL']}, DeviceStateChange {names['DeviceStateChange']}, "
                  f"NewConnectedLine {names['NewConnectedLine']}")
        (n_f, names_f), (n_u, names_u) = counts["filtered"], counts["unfiltered"]
        # what cti/calls.py reads (SoftHangupRequest only with Cause 4: a shutdown, not in this call)
        wanted = {"Newchannel", "Newexten", "Hangup", "UserEvent", "BridgeEnter", "HangupRequest", "BridgeLeave"}
        assert set(names_f) == wanted
        for ev in ("CEL", "VarSet", "DeviceStateChange", "NewConnectedLine"):
            assert names_f[ev] == 0 and names_u[ev] > 0, ev
        assert n_f < n_u / 2
        assert {k: v for k, v in names_u.items() if k in wanted} == names_f  # none of those is lost
        # the Filter action needs 'system': refused for ctilp, as in v3-05
        r = await filtered.act(("Action", "Filter"), ("Operation", "Add"), ("Filter", "Event: UserEvent"))
        assert (r.get("Response"), r.get("Message")) == ("Error", "Permission denied")
        filtered.close()
        unfiltered.close()
    await agi.stop()


async def test_filter_action_for_a_system_user() -> None:
    admin = ("secret", frozenset({"call", "dialplan", "user", "system"}), frozenset({"system", "call"}))
    async with AsteriskSim(SimConfig(users={"admin": admin}, agi_port=1, time_factor=0.05)) as sim:
        c = await Client().open(sim.ami_port, "admin", "secret")
        r = await c.act(("Action", "Filter"), ("Operation", "Add"), ("Filter", "Event: ("))
        assert r.get("Message") == "Filter did not compile.  Check the syntax of the filter given."
        r = await c.act(("Action", "Filter"), ("Operation", "Add"), ("MatchCriteria", "name(Foo"), ("Filter", "x"))
        assert r.get("Message") == "Filter was formatted incorrectly.  Check the syntax of the filter given."
        r = await c.act(("Action", "Filter"), ("Operation", "Del"), ("Filter", "x"))
        assert r.get("Message") == "Unknown operation"
        r = await c.act(("Action", "Filter"), ("Operation", "Add"), ("MatchCriteria", "name(UserEvent),method(none)"))
        assert (r.get("Response"), r.get("Message")) == ("Success", "Success")
        n = len(c.msgs)
        await sim.place_call(Caller("5551234", "Grace", patience_s=0.5))
        await asyncio.sleep(0.5)
        got = {m.get("Event") for m in c.msgs[n:] if m.get("Event")}
        assert got == {"UserEvent"}, got  # the include filter lets only UserEvent through
        c.close()
