"""The call-log scenarios, shared by the real-Asterisk suite and its simulator twin: the lab's
configuration (queues, agents, IVR flow), what each caller does, which agents are ready, and the
call-log row each call must leave, field by field, its times checked against the PBX's own events.

The row semantics are those of ``cti/calls.py``, ``acd/calllog.py`` and ``crm_core/store_calls.py``:
``agent_id`` is who answered; ``wait_s`` = (answered, else ended) - queued; ``talk_s`` = ended -
answered; a call not seen ending (an AMI outage) ends at the last time it was seen alive, with the
outage window in ``outage_from``/``outage_to``; a restart ends calls ``shutdown``/``system``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crm_core.call_invariant import call_row_problems
from crm_core.dto import CallDTO
from crm_core.store import Store
from tests.real_asterisk.harness import AgentDesk, Observer, ProxyThread, Seen, wait_until

TOLERANCE_S = 0.050  # row times against the PBX's own event times
DNIS = "5551000"
DIGITS_AT_S = 1.5  # [callers] answers, waits this long, then presses its digits (SendDTMF, ~0.25 s a digit)
AGENT_TALK_S = 3.0  # [agent-phones] 1001-1099: answer after 1 s, talk 3 s, hang up

# queue -> ring timeout (s); a queue per scenario, and who is ready decides who is offered the call
QUEUES = {"ans": 15, "hold": 15, "ring": 60, "rona": 2, "busy": 15, "rona1": 2, "talk": 15, "load": 15}
MENU = {"1": "ans", "2": "hold", "3": "ring", "4": "rona", "5": "busy", "6": "rona1", "7": "talk", "8": "load"}
# extension -> skills; 1003 never answers, 1008 is busy, 1009 answers and plays ~30 s of speech,
# the others answer after 1 s and talk 3 s
AGENTS = {"1001": ("ans",), "1002": ("ans",), "1003": ("ring", "rona", "rona1"), "1004": ("rona",),
          "1005": ("busy",), "1008": ("busy",), "1009": ("talk",), "1010": ("load",), "1011": ("load",),
          "1012": ("load",), "1013": ("load",)}
LOAD_AGENTS = ("1010", "1011", "1012", "1013")
WRAP_UP_S = 0.5

# "9": a long prompt (demo-congrats, ~30 s) before the hold queue: a caller who leaves hangs up in the IVR
FLOW_TOML = """# the lab's IVR: one menu, a queue per scenario
start = "lookup"

[nodes.lookup]
kind = "lookup"
next = "menu"

[nodes.menu]
kind = "menu"
prompt = "beep"
timeout_ms = 8000
max_digits = 1
retries = 0
on_timeout = "q_hold"
on_invalid = "q_hold"
on_fail = "q_hold"

[nodes.info]
kind = "play"
prompt = "demo-congrats"
next = "q_hold"

[nodes.menu.options.9]
goto = "info"
""" + "".join(f'\n[nodes.menu.options.{d}]\ngoto = "q_{q}"\n' for d, q in MENU.items()) + "".join(
    f'\n[nodes.q_{q}]\nkind = "queue"\nqueue = "{q}"\nskills = ["{q}"]\npriority = 0\n' for q in QUEUES)


def password(agent: str) -> str:
    return f"lab-pass-{agent}"


def write_config(root: Path, *, ami_port: int, agi_port: int, http_port: int, db_url: str,
                 secret: str = "labsecret") -> Path:
    """The lab's ``cti.toml`` (and its IVR flow) under ``root``; returns the toml's path."""
    flows = root / "ivr"
    flows.mkdir(parents=True, exist_ok=True)
    (flows / "main.toml").write_text(FLOW_TOML)
    base = f"http://127.0.0.1:{http_port}"
    queues = "".join(f'\n[queues.{q}]\nskills = ["{q}"]\nring_timeout_s = {ring}\nwrap_up_s = {WRAP_UP_S}\n'
                     f"record = false\nmax_wait_s = 900\n" for q, ring in QUEUES.items())
    agents = "".join(
        f'\n[[agents]]\nid = "{a}"\nname = "Lab agent {a}"\nskills = {{ {", ".join(f"{s} = 5" for s in sk)} }}\n'
        f'password = "{password(a)}"\n' for a, sk in AGENTS.items())
    text = f"""# written by tests/real_asterisk (a lab configuration)
skills = [{", ".join(f'"{q}"' for q in QUEUES)}]

[ami]
host = "127.0.0.1"
port = {ami_port}
username = "ctilp"
secret = "{secret}"
auth = "plain"
name = "default"

[agi]
bind_host = "127.0.0.1"
port = {agi_port}
max_sessions = 2000
command_timeout_s = 60

[http]
bind_host = "127.0.0.1"
port = {http_port}
public_url = "{base}"
allowed_origins = ["{base}"]

[database]
url = "{db_url}"

[acd]
default_queue = "hold"
wrap_up_s = {WRAP_UP_S}
ring_timeout_s = 15
record = false
{queues}{agents}
[ivr]
flows_dir = "{flows}"
default_flow = "main"

[log]
level = "INFO"
json = true
"""
    path = root / "cti.toml"
    path.write_text(text)
    return path


# -- what a scenario expects ------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    outcome: str
    agent_id: str | None = None
    queue: str | None = None
    offers: int = 0
    hangup_side: str = "caller"
    end_reason: str = "hangup"
    dials: tuple[tuple[str, str], ...] = ()  # the unanswered offers (CtiDialResult: agent, DIALSTATUS)
    answered: bool = False
    choice: str | None = None  # the menu digit, for a call that got queued

    @property
    def ivr_path(self) -> str | None:
        if self.queue is None:
            return None
        return f"lookup/menu/{'info/' if self.choice == '9' else ''}q_{self.queue}"


@dataclass(frozen=True)
class Scenario:
    name: str
    digits: str  # what the caller presses in the menu
    after_digits_s: float | None  # then hangs up this long after (None: stays, the agent ends it)
    ready: tuple[str, ...]  # the agents ready, the first idle longest
    expect: Expect


SCENARIOS = (
    Scenario("answered", "1", None, ("1001",),
             Expect("answered", "1001", "ans", 1, "agent", answered=True, choice="1")),
    Scenario("answered_caller_hangs_up", "7", 3.5, ("1009",),
             Expect("answered", "1009", "talk", 1, "caller", answered=True, choice="7")),
    Scenario("ivr_hangup", "9", 2.0, (), Expect("ivr_hangup")),
    Scenario("abandon_in_hold", "2", 3.0, (), Expect("abandoned", None, "hold", 0, "caller", choice="2")),
    Scenario("abandon_while_agent_rings", "3", 4.0, ("1003",),
             Expect("abandoned", None, "ring", 1, "caller", choice="3")),
    Scenario("ring_no_answer_then_abandon", "6", 5.0, ("1003",),
             Expect("abandoned", None, "rona1", 1, "caller", dials=(("1003", "NOANSWER"),), choice="6")),
    Scenario("ring_no_answer_then_answered_elsewhere", "4", None, ("1003", "1004"),
             Expect("answered", "1004", "rona", 2, "agent", dials=(("1003", "NOANSWER"),), answered=True,
                    choice="4")),
    Scenario("busy_agent_then_answered_elsewhere", "5", None, ("1008", "1005"),
             Expect("answered", "1005", "busy", 2, "agent", dials=(("1008", "BUSY"),), answered=True,
                    choice="5")),
)


# -- the PBX's own account of a call ----------------------------------------------------


@dataclass
class Refs:
    """What the PBX's events say of one call (its caller's uniqueid = the linkedid)."""

    uniqueid: str
    channel: str = ""
    arrived: float | None = None  # Newexten cti-inbound
    queued: float | None = None  # first Newexten cti-hold,s,1 (the IVR queued it just before)
    queue_cmd: float | None = None  # AGIExecStart "SET VARIABLE CTI_NEXT queue": the IVR's queueing, as run
    offered: float | None = None  # last Newexten cti-agent,<agent>,1 before the answer
    at_agent: list[str] = field(default_factory=list)  # the agents it was redirected to
    answered: float | None = None  # the caller shares a bridge with another channel
    answered_by: str | None = None
    ended: float | None = None  # the caller's Hangup
    cause: str | None = None
    cti_call_id: str | None = None  # UserEvent CtiCallEnd CallId
    dials: list[tuple[str, str]] = field(default_factory=list)  # UserEvent CtiDialResult
    shutdown: bool = False  # SoftHangupRequest Cause 4 on one of its channels
    shutdown_at: float | None = None  # ... the first


def refs_of(events: Sequence[Seen], uniqueid: str) -> Refs:
    r = Refs(uniqueid)
    members: dict[str, dict[str, str]] = {}  # bridge -> uniqueid -> channel
    for e in events:
        m, t = e.msg, e.at
        uid = m.get("Uniqueid") or ""
        if m.name == "BridgeEnter" or m.name == "BridgeLeave":
            if m.get("BridgeTechnology") == "holding_bridge":
                continue
            b = members.setdefault(m.get("BridgeUniqueid") or "", {})
            if m.name == "BridgeLeave":
                b.pop(uid, None)
                continue
            b[uid] = m.get("Channel") or ""
            if r.answered is None and uniqueid in b and len(b) > 1:
                r.answered = t
                r.answered_by = next(ch for u, ch in b.items() if u != uniqueid)
            continue
        if m.get("Linkedid") != uniqueid:
            continue
        if m.name == "SoftHangupRequest" and m.get("Cause") == "4":
            r.shutdown = True
            r.shutdown_at = t if r.shutdown_at is None else r.shutdown_at
        if m.name == "UserEvent":
            if m.get("UserEvent") == "CtiCallEnd":
                r.cti_call_id = m.get("CallId") or None
            elif m.get("UserEvent") == "CtiDialResult":
                r.dials.append((m.get("Agent") or "", m.get("DialStatus") or ""))
            continue
        if uid != uniqueid:
            continue
        if m.name == "AGIExecStart" and r.queue_cmd is None and \
                (m.get("Command") or "").upper().startswith("SET VARIABLE CTI_NEXT"):
            r.queue_cmd = t
        if m.name == "Newchannel" or (m.name == "Newexten" and not r.channel):
            r.channel = m.get("Channel") or r.channel
        if m.name == "Newexten" and m.get("Priority") == "1":
            ctx = m.get("Context")
            if ctx == "cti-inbound" and r.arrived is None:
                r.arrived = t
            elif ctx == "cti-hold" and r.queued is None:
                r.queued = t
            elif ctx == "cti-agent":
                r.at_agent.append(m.get("Exten") or "")
                if r.answered is None:
                    r.offered = t
        elif m.name == "Hangup" and r.ended is None:
            r.ended, r.cause = t, m.get("Cause")
    return r


# -- the comparison -----------------------------------------------------------------------


@dataclass
class Check:
    """Expected-vs-got of one row; ``problems`` empty when the row is right."""

    call: str
    problems: list[str] = field(default_factory=list)
    deltas_ms: dict[str, float] = field(default_factory=dict)

    def eq(self, name: str, want: object, got: object) -> None:
        if want != got:
            self.problems.append(f"{name}: expected {want!r}, got {got!r}")

    def near(self, name: str, want: float | None, got: float | None, tol: float = TOLERANCE_S) -> None:
        if want is None or got is None:
            if want is not got:
                self.problems.append(f"{name}: expected {_fmt(want)}, got {_fmt(got)}")
            return
        d = got - want
        self.deltas_ms[name] = round(d * 1000, 1)
        if abs(d) > tol:
            self.problems.append(f"{name}: expected {want:.3f}, got {got:.3f} ({d * 1000:+.0f} ms)")

    def __str__(self) -> str:
        return f"{self.call}: " + ("ok" if not self.problems else "; ".join(self.problems))


def _fmt(x: float | None) -> str:
    return "None" if x is None else f"{x:.3f}"


@dataclass(frozen=True)
class Caller:
    number: str
    name: str


def check_row(row: CallDTO | None, exp: Expect, r: Refs, caller: Caller, *,
              ended_ref: float | None = None, outage: tuple[float, float] | None = None,
              cause: str | None = None, disposition: str | None = "resolved",
              queued_ref: float | None = None) -> Check:
    """``row`` against the scenario and the PBX's events.  ``ended_ref``: the end the row must
    carry when it is not the caller's Hangup (a call not seen ending: the last time seen alive);
    ``outage``: the expected (outage_from, outage_to); ``cause``: the expected hangup_cause when it is
    not the Hangup's; ``queued_ref``: when it was queued, if not the caller's entry into hold (else the IVR's
    ``SET VARIABLE CTI_NEXT queue``, for a call stopped on its way to hold)."""
    c = Check(f"call {r.uniqueid}")
    if row is None:
        c.problems.append("no call-log row")
        return c
    c.problems.extend(f"invariant: {p}" for p in call_row_problems(row))  # the one rule every row keeps
    end = r.ended if ended_ref is None else ended_ref
    queued = queued_ref if queued_ref is not None else r.queued if r.queued is not None else r.queue_cmd
    c.eq("call_id", r.uniqueid, row.call_id)
    c.eq("uniqueid", r.uniqueid, row.uniqueid)
    c.eq("linkedid", r.uniqueid, row.linkedid)
    c.eq("server", "default", row.server)
    c.eq("channel", r.channel, row.channel)
    c.eq("caller_num", caller.number, row.caller_num)
    c.eq("caller_name", caller.name, row.caller_name)
    c.eq("dnis", DNIS, row.dnis)
    # the IVR sets CTI_CALL_ID first (every CtiCallEnd carries it); the row takes it when the IVR begins
    c.eq("cti_call_id", r.cti_call_id, row.cti_call_id)
    c.eq("customer_id", None, row.customer_id)
    c.eq("outcome", exp.outcome, row.outcome)
    c.eq("agent_id", exp.agent_id, row.agent_id)
    c.eq("queue", exp.queue, row.queue)
    c.eq("skills", exp.queue, row.skills)
    c.eq("ivr_path", exp.ivr_path, row.ivr_path)
    c.eq("ivr_choice", exp.choice if exp.queue else None, row.ivr_choice)
    c.eq("offers", exp.offers, row.offers)
    c.eq("hangup_side", exp.hangup_side, row.hangup_side)
    c.eq("end_reason", exp.end_reason, row.end_reason)
    c.eq("hangup_cause", r.cause if cause is None else cause, row.hangup_cause)
    c.eq("answered_by", r.answered_by if exp.answered else None, row.answered_by)
    c.eq("disposition", disposition if exp.answered else None, row.disposition)
    c.near("arrived_at", r.arrived, row.arrived_at)
    c.near("queued_at", queued if exp.queue else None, row.queued_at)
    c.near("offered_at", r.offered if exp.offers else None, row.offered_at)
    c.near("answered_at", r.answered if exp.answered else None, row.answered_at)
    c.near("ended_at", end, row.ended_at)
    if exp.queue and queued is not None and end is not None:
        c.near("wait_s", ((r.answered if exp.answered else None) or end) - queued, row.wait_s)
    else:
        c.eq("wait_s", None, row.wait_s)
    if exp.answered and r.answered is not None and end is not None:
        c.near("talk_s", end - r.answered, row.talk_s)
    else:
        c.eq("talk_s", None, row.talk_s)
    want_from, want_to = outage if outage is not None else (None, None)
    c.near("outage_from", want_from, row.outage_from)
    c.near("outage_to", want_to, row.outage_to)
    # the scenario itself ran as designed (else the row is checked against another story)
    if list(exp.dials) != r.dials:
        c.problems.append(f"scenario: unanswered offers {r.dials}, designed {list(exp.dials)}")
    if exp.agent_id and (not r.at_agent or r.at_agent[-1] != exp.agent_id):
        c.problems.append(f"scenario: offered to {r.at_agent}, designed to end at {exp.agent_id}")
    return c


# -- running scenarios on a PBX ---------------------------------------------------------


class Lab:
    """A PBX (real or simulated) with the backend beside it, as the scenarios drive it."""

    obs: Observer
    desk: AgentDesk
    store: Store
    proxy: ProxyThread | None = None  # between the backend's AMI link and the PBX
    calls_placed: int = 0
    _numbers = itertools.count(5557001)

    def caller(self, tag: str) -> Caller:
        return Caller(str(next(self._numbers)), f"Lab {tag}")

    async def place(self, digits: str, after_digits_s: float | None, caller: Caller) -> str:
        """Start one caller into ``cti-inbound,<DNIS>``; -> its uniqueid (the call's linkedid)."""
        raise NotImplementedError

    async def place_foreign(self) -> str:
        """A call that never enters the contract (an internal call to an agent's phone)."""
        raise NotImplementedError

    async def cut_ami(self) -> float:
        """Cut the backend's AMI link at the proxy; -> when."""
        assert self.proxy is not None
        return await self.proxy.cut()

    async def restore_ami(self) -> float:
        """Let the backend's AMI link through again; -> when."""
        assert self.proxy is not None
        return await self.proxy.restore()

    def relogin_ref(self, after: float) -> float | None:
        """When the backend's AMI link was logged in again after ``after``, by the PBX's account."""
        raise NotImplementedError

    async def restart_pbx(self) -> str:
        """``core restart now``: -> what the PBX said to it.  The calls end, AMI goes, the PBX comes
        back (:meth:`wait_booted`)."""
        raise NotImplementedError

    async def wait_booted(self, timeout: float) -> None:
        """The PBX fully booted again after :meth:`restart_pbx`, AMI answering (the observer back)."""
        raise NotImplementedError

    async def final_row(self, call_id: str, *, disposition: bool, timeout: float = 15) -> CallDTO | None:
        """The row once closed (and disposed, for an answered call): the last one read."""
        row: CallDTO | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = await self.store.get_call(call_id)
            if row is not None and row.ended_at is not None and (row.disposition or not disposition):
                return row
            await asyncio.sleep(0.05)
        return row


async def run_scenario(lab: Lab, sc: Scenario) -> Check:
    await lab.desk.ready_only(sc.ready)
    who = lab.caller(sc.name)
    uid = await lab.place(sc.digits, sc.after_digits_s, who)
    await lab.obs.wait_hangup(uid, 60)
    row = await lab.final_row(uid, disposition=sc.expect.answered)
    check = check_row(row, sc.expect, refs_of(lab.obs.events, uid), who)
    check.call = f"{sc.name} ({uid})"
    # the timeline keeps the IVR's steps, the menu digit among them (the row's IVR columns are set
    # only for a call that got queued)
    steps = [(d.get("node"), d.get("digits")) for kind, _at, d in await lab.store.call_events(uid)
             if kind == "ivr_step"]
    if ("menu", sc.digits) not in steps:
        check.problems.append(f"timeline: no ivr_step menu/{sc.digits} in {steps}")
    if sc.expect.outcome == "ivr_hangup" and (not steps or steps[-1][0] != "hangup"):
        check.problems.append(f"timeline: the IVR steps do not end in a hangup: {steps}")
    return check


async def run_not_ours(lab: Lab) -> list[str]:
    """An internal call to an agent's phone: never in the contract, so no row at all."""
    await lab.desk.ready_only(())
    before = await lab.store.count_calls()
    uid = await lab.place_foreign()
    await lab.obs.wait_hangup(uid, 30)
    await asyncio.sleep(1.0)  # what the backend would write, it writes within ms
    problems = []
    row = await lab.store.get_call(uid)
    if row is not None:
        problems.append(f"a call that never entered the contract has a row: {row}")
    after = await lab.store.count_calls()
    if after != before:
        problems.append(f"call-log rows went from {before} to {after}")
    if lab.obs.entered(uid, "cti-inbound"):
        problems.append("scenario: the foreign call entered cti-inbound")
    return problems


# the columns a row takes from the call's arrival (CallArrived, from AMI)
ARRIVAL_FIELDS = ("uniqueid", "linkedid", "channel", "caller_num", "caller_name", "dnis", "arrived_at")


@dataclass
class OutageResult:
    checks: dict[str, Check]  # by call: hold, ringing, talking (ended inside the outage), inside (lived in it)
    cut_at: float
    restored_at: float
    relogin: float
    ended: dict[str, float]

    def arrival(self, key: str) -> list[str]:
        return [p for p in self.checks[key].problems if p.split(":")[0] in ARRIVAL_FIELDS]

    def others(self, key: str) -> list[str]:
        return [p for p in self.checks[key].problems if p.split(":")[0] not in ARRIVAL_FIELDS]


async def run_outage(lab: Lab) -> OutageResult:
    """Four calls end while the backend's AMI link is cut (a proxy between it and the PBX): one
    waiting in hold, one ringing an agent who never answers, one talking to an agent who hangs up
    after 3 s, and one that arrives, queues and hangs up inside the outage (only its FastAGI
    sessions are seen).  Each row ends at the last time the call was seen alive (the link's loss,
    or for the last one its queueing, the last thing the backend saw of it) and carries the outage
    window, from then to the backend's new login."""
    await lab.desk.ready_only(("1003", "1002"))
    plan = {"hold": ("2", 5.0), "ringing": ("3", 5.0), "talking": ("1", None)}
    who = {k: lab.caller(f"outage {k}") for k in (*plan, "inside")}
    uids = {k: await lab.place(d, after, who[k]) for k, (d, after) in plan.items()}
    obs = lab.obs
    await wait_until(lambda: obs.entered(uids["hold"], "cti-hold") and obs.entered(uids["ringing"], "cti-agent")
                     and obs.bridged(uids["talking"]), 20, "one call in hold, one ringing, one talking")
    # the observer's AMI link may be ahead of the backend's: cut only once the backend has seen the
    # answer too (a bridge made inside the outage is a different story: outcome unknown)
    deadline = time.monotonic() + 10
    while (row := await lab.store.get_call(uids["talking"])) is None or row.answered_at is None:
        assert time.monotonic() < deadline, "the backend never saw the talking call answered"
        await asyncio.sleep(0.02)
    cut_at = await lab.cut_ami()
    uids["inside"] = await lab.place("2", 2.5, who["inside"])
    ends = {k: await obs.wait_hangup(u, 30) for k, u in uids.items()}
    await asyncio.sleep(0.5)
    restored_at = await lab.restore_ami()
    await wait_until(lambda: lab.relogin_ref(restored_at) is not None, 60, "the backend logged in again")
    relogin = lab.relogin_ref(restored_at)
    assert relogin is not None
    expect = {
        "hold": Expect("abandoned", None, "hold", 0, "unknown", "resync-gone", choice="2"),
        "ringing": Expect("unknown", "1003", "ring", 1, "unknown", "resync-gone", choice="3"),
        "talking": Expect("answered", "1002", "ans", 1, "unknown", "resync-gone", answered=True, choice="1"),
        "inside": Expect("abandoned", None, "hold", 0, "unknown", "resync-gone", choice="2"),
    }
    checks = {}
    for k, uid in uids.items():
        row = await lab.final_row(uid, disposition=expect[k].answered)
        r = refs_of(obs.events, uid)
        seen = cut_at if k != "inside" else r.queued  # the last time the backend saw it alive
        c = check_row(row, expect[k], r, who[k], ended_ref=seen, outage=(seen or cut_at, relogin), cause="0")
        c.call = f"outage/{k} ({uid})"
        if r.ended is not None and not cut_at < r.ended < restored_at:
            c.problems.append(f"scenario: it ended at {r.ended:.3f}, outside the cut {cut_at:.3f}..{restored_at:.3f}")
        checks[k] = c
    return OutageResult(checks, cut_at, restored_at, relogin, {k: e.at for k, e in ends.items()})


@dataclass
class RestartResult:
    checks: list[Check]  # one per call, in the order placed
    states: dict[str, str]  # uniqueid -> where it was at the restart: ivr, hold, at-agent, talking
    outcomes: dict[str, int]
    line: str  # for the report


async def run_restart(lab: Lab) -> RestartResult:
    """``core restart now`` under load: 18 callers for the ``load`` queue (four agents), some
    talking, some ringing, some in hold, two in the IVR when the PBX restarts.  Each call still up
    then ends as the system's doing: ``end_reason`` ``shutdown``, ``hangup_side`` ``system``;
    outcome ``system`` when unanswered, an answered call stays ``answered``; none ``abandoned``.  A
    call its agent ended before the restart is an ordinary answered call."""
    await lab.desk.ready_only(LOAD_AGENTS)
    obs = lab.obs
    calls = []
    for _ in range(16):
        who = lab.caller("load")
        calls.append((await lab.place("8", None, who), who))
        await asyncio.sleep(0.2)

    def state(uid: str) -> str:
        if obs.bridged(uid):
            return "talking"
        if obs.entered(uid, "cti-agent"):
            return "at-agent"
        if obs.entered(uid, "cti-hold"):
            return "hold"
        return "ivr" if obs.entered(uid, "cti-inbound") else "new"

    await wait_until(lambda: sum(state(u) == "talking" for u, _ in calls) >= 2
                     and sum(state(u) == "hold" for u, _ in calls) >= 3, 30, "two calls talking, three in hold")
    for _ in range(2):  # two more, in the IVR when the PBX goes down
        who = lab.caller("load")
        calls.append((await lab.place("8", None, who), who))
    await wait_until(lambda: all(state(u) != "new" for u, _ in calls), 5, "every caller in the contract")
    states = {u: state(u) for u, _ in calls}
    restart_at = time.time()
    said = await lab.restart_pbx()
    for uid, _ in calls:
        await obs.wait_hangup(uid, 30)
    t0 = time.monotonic()
    await lab.wait_booted(60)
    booted_s = time.monotonic() - t0
    proxy = lab.proxy.proxy if lab.proxy is not None else None
    await wait_until(lambda: lab.relogin_ref(restart_at) is not None
                     or (proxy is not None and any(t > restart_at for t in proxy.linked)), 60,
                     "the backend's AMI link made again")
    await asyncio.sleep(1.0)
    relogin_at = lab.relogin_ref(restart_at)
    relogin = f"+{relogin_at - restart_at:.2f} s" if relogin_at is not None else "before the observer was back"

    checks: list[Check] = []
    outcomes: dict[str, int] = {}
    races: list[str] = []  # queued by the IVR as the PBX went down, before the PBX ran the IVR's command
    for uid, who in calls:
        r = refs_of(obs.events, uid)
        assert r.ended is not None
        before = r.ended < restart_at  # ended by its agent before the restart: an ordinary answered call
        answered = r.answered is not None and (before or r.answered < r.ended)
        agent = r.at_agent[-1] if answered and r.at_agent else None
        row = await lab.final_row(uid, disposition=answered)
        # queued: it reached hold, or the IVR's CTI_NEXT ran; or, the PBX going down between the
        # IVR's queueing and its command, the row's queueing is within the shutdown (then taken as is)
        queued_ref = None
        queued = r.queued is not None or r.queue_cmd is not None
        if not queued and row is not None and row.queued_at is not None and row.queued_at >= restart_at - 0.2:
            queued, queued_ref = True, row.queued_at
            lag = f"{(row.queued_at - r.shutdown_at) * 1000:+.0f} ms" if r.shutdown_at else "?"
            races.append(f"{uid}: queued {lag} from its SoftHangupRequest 4")
        exp = Expect("answered" if answered else "system", agent, "load" if queued else None, len(r.at_agent),
                     ("agent" if before else "system"), "hangup" if before else "shutdown", answered=answered,
                     choice="8" if queued else None)
        c = check_row(row, exp, r, who, queued_ref=queued_ref)
        c.call = f"restart/{states[uid]} ({uid})"
        if row is not None:
            outcomes[row.outcome] = outcomes.get(row.outcome, 0) + 1
            if row.outcome == "abandoned":
                c.problems.append("abandoned: a restart is the system's doing")
        if not before and not r.shutdown:
            c.problems.append("scenario: no SoftHangupRequest Cause 4 on this call")
        checks.append(c)
    line = (f"restart: {said}; states at the restart {sorted(states.values())}; the PBX up again "
            f"after {booted_s:.2f} s, backend logged in {relogin}; outcomes {outcomes}; queued at the shutdown {races}")
    return RestartResult(checks, states, outcomes, line)


def summary(checks: Sequence[Check]) -> str:
    return "\n".join(str(c) for c in checks)
