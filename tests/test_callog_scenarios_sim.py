"""The real-Asterisk call-log scenarios (tests/real_asterisk) on the built-in simulator.

The same lab configuration (queues, agents, IVR flow), the same callers and agent phones, the same
expected rows field by field, their times against the PBX's own events (here as they arrive on an
observer's AMI connection: the simulator does not stamp its events).  The backend runs in-process
(``callcenter.app.CtiApp``) beside ``simulator.AsteriskSim``, its AMI link through the proxy the
outage scenario cuts; agent bots log in over HTTP and hold their websockets.

``core restart now`` runs last, as on the real PBX: ``AsteriskSim.shutdown(restart=True)`` hangs every
call up (``SoftHangupRequest`` Cause 4), closes every AMI connection (the observer's and, through the
proxy, the backend's: both connect again) and listens again after ``SimConfig.restart_s``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from callcenter.app import CtiApp
from callcenter.settings import load_settings
from simulator.actors import AgentPhone
from simulator.actors import Caller as SimCaller
from simulator.core import AsteriskSim, SimConfig
from simulator.manager_conf import AmiUser, load_manager_conf, perms
from tests.real_asterisk.harness import (
    OBSERVER_SECRET,
    OBSERVER_USER,
    AgentDesk,
    Observer,
    ProxyThread,
    free_port,
    wait_until,
)
from tests.real_asterisk.scenarios import (
    AGENT_TALK_S,
    AGENTS,
    DIGITS_AT_S,
    SCENARIOS,
    Caller,
    Lab,
    OutageResult,
    Scenario,
    password,
    run_not_ours,
    run_outage,
    run_restart,
    run_scenario,
    summary,
    write_config,
)

MANAGER_CONF = Path(__file__).resolve().parent.parent / "asterisk" / "manager.conf"
SECRET = "labsecret"
TIME_FACTOR = 0.25  # wall seconds per simulated second
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


def lab_phones() -> tuple[AgentPhone, ...]:
    """The lab's [agent-phones]: answer after 1 s and talk 3 s; 1003 never answers; 1008 is busy."""
    def phone(ext: str) -> AgentPhone:
        if ext == "1003":
            return AgentPhone(ext, "never")
        if ext == "1008":
            return AgentPhone(ext, "busy")
        if ext == "1009":  # plays speech (~30 s): the caller hangs up first
            return AgentPhone(ext, "answer", ring_s=1.0, talk_s=30.0)
        return AgentPhone(ext, "answer", ring_s=1.0, talk_s=AGENT_TALK_S)
    return tuple(phone(e) for e in AGENTS)


class SimLab(Lab):
    """The simulator and the backend (in-process) with the lab's configuration."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.http_port = free_port()
        self.db_url = f"sqlite+aiosqlite:///{root / 'cti.db'}"
        self.app: CtiApp | None = None
        self.sim: AsteriskSim | None = None
        self.proxy: ProxyThread | None = None
        self._restart: asyncio.Task[None] | None = None
        self._obs_logins = 0

    async def start(self) -> None:
        config = write_config(self.root / "cti", ami_port=5038, agi_port=4573, http_port=self.http_port,
                              db_url=self.db_url, secret=SECRET)
        settings = load_settings(config)
        self.app = app = CtiApp(settings)
        await app.start(agi_port=0)
        assert app.agi is not None and app.store is not None
        ctilp = load_manager_conf(MANAGER_CONF)["ctilp"]  # the contract's user: classes and eventfilters
        users = {"ctilp": dataclasses.replace(ctilp, secret=SECRET),
                 OBSERVER_USER: AmiUser(OBSERVER_SECRET, perms("all"), frozenset({"call", "originate", "reporting"}))}
        self.sim = AsteriskSim(SimConfig(agi_port=app.agi.port, time_factor=TIME_FACTOR, phones=lab_phones(),
                                         users=users))
        await self.sim.__aenter__()
        self.proxy = ProxyThread(self.sim.ami_port)
        await self.proxy.start()
        self.obs = Observer("127.0.0.1", self.sim.ami_port)
        await self.obs.start()
        await app.connect_ami(port=self.proxy.port)
        self.store = app.store
        self.desk = AgentDesk(f"http://127.0.0.1:{app.http_port}", {a: password(a) for a in AGENTS})
        await self.desk.start()

    async def stop(self) -> None:
        if getattr(self, "desk", None) is not None:
            await self.desk.stop()
        if getattr(self, "obs", None) is not None:
            await self.obs.stop()
        if self.app is not None:
            for link in self.app.links.values():
                if link.client is not None:
                    await link.client.stop()
        if self.proxy is not None:
            await self.proxy.stop()
        if self.sim is not None:
            await self.sim.__aexit__(None, None, None)
        if self.app is not None:
            await self.app.stop()

    async def place(self, digits: str, after_digits_s: float | None, caller: Caller) -> str:
        assert self.sim is not None
        self.calls_placed += 1
        patience = talk = None
        if after_digits_s is not None:  # the lab's caller hangs up then, bridged or not; the simulator's
            patience = DIGITS_AT_S + after_digits_s  # gives up waiting then, or talks talk_s once bridged
            talk = max(0.5, after_digits_s - 1.5)
        return await self.sim.place_call(SimCaller(caller.number, caller.name, digits_plan=((DIGITS_AT_S, digits),),
                                                   patience_s=patience, talk_s=talk))

    async def place_foreign(self) -> str:
        """An AMI Originate of a caller into ``agent-phones,1001`` (not the contract); the simulator
        ignores ``ChannelId``, so the call is found by its channel."""
        since = len(self.obs.events)
        who = self.caller("internal")
        await self.obs.client.send_action("Originate", [
            ("Channel", "Local/1@callers"), ("Context", "agent-phones"), ("Exten", "1001"), ("Priority", 1),
            ("CallerID", f"{who.name} <{who.number}>"), ("Async", "true")], check=True)

        def found() -> str | None:
            for e in self.obs.events[since:]:
                ch = e.msg.get("Channel") or ""
                if e.msg.name == "Newchannel" and re.fullmatch(r"Local/1@callers-\w+;1", ch):
                    return e.msg.get("Uniqueid")
            return None

        await wait_until(lambda: found() is not None, 5, "the foreign call's channel")
        uid = found()
        assert uid is not None
        return uid

    def relogin_ref(self, after: float) -> float | None:
        """The simulator sends no SuccessfulAuth: the upstream link the proxy made (the login follows
        on loopback within a millisecond)."""
        assert self.proxy is not None
        linked = [t for t in self.proxy.proxy.linked if t >= after]
        return linked[0] if linked else None

    async def restart_pbx(self) -> str:
        """``core restart now``: the simulator's shutdown, run beside the scenario (it returns once
        AMI listens again)."""
        assert self.sim is not None
        self._obs_logins = self.obs.client.connects
        self._restart = asyncio.ensure_future(self.sim.shutdown(restart=True))
        await asyncio.sleep(0)
        return "AsteriskSim.shutdown(restart=True)"

    async def wait_booted(self, timeout: float) -> None:
        """The restart over (AMI listening again) and the observer, whose connection it closed,
        logged in again (its client reconnects by itself)."""
        assert self._restart is not None
        await asyncio.wait_for(asyncio.shield(self._restart), timeout)
        await wait_until(lambda: self.obs.client.connected and self.obs.client.connects > self._obs_logins, timeout,
                         "the observer's AMI link made again")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim_lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimLab]:
    """One simulator and backend for the module's scenarios, run one after the other (as on the real PBX)."""
    lab = SimLab(tmp_path_factory.mktemp("sim-lab"))
    try:
        await lab.start()
        yield lab
    finally:
        await lab.stop()


_OUTAGE: dict[str, OutageResult] = {}


async def outage(lab: SimLab) -> OutageResult:
    if "res" not in _OUTAGE:
        _OUTAGE["res"] = await run_outage(lab)
    return _OUTAGE["res"]


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_call_log_row_on_the_simulator(sim_lab: SimLab, sc: Scenario) -> None:
    check = await run_scenario(sim_lab, sc)
    assert not check.problems, str(check)


async def test_a_call_that_never_enters_the_contract_leaves_no_row_on_the_simulator(sim_lab: SimLab) -> None:
    problems = await run_not_ours(sim_lab)
    assert not problems, problems


async def test_calls_ending_inside_an_ami_outage_on_the_simulator(sim_lab: SimLab) -> None:
    res = await outage(sim_lab)
    problems = {k: res.others(k) + (res.arrival(k) if k != "inside" else []) for k in res.checks}
    assert not any(problems.values()), problems


async def test_a_call_that_lived_inside_the_outage_keeps_its_arrival_on_the_simulator(sim_lab: SimLab) -> None:
    res = await outage(sim_lab)
    assert not res.arrival("inside"), res.arrival("inside")


async def test_core_restart_now_under_load_on_the_simulator(sim_lab: SimLab) -> None:
    """Calls in the IVR, in hold, ringing and talking at the restart end as the system's doing
    (``shutdown``/``system``; outcome ``system`` unanswered, ``answered`` stays), none abandoned."""
    res = await run_restart(sim_lab)
    print(res.line, *(f"{c} {c.deltas_ms}" for c in res.checks), sep="\n")  # shown with -s / on failure
    assert not any(c.problems for c in res.checks), res.line + "\n" + summary(res.checks)
    # one row per call that entered the contract in this module, none for the foreign one
    assert await sim_lab.store.count_calls() == sim_lab.calls_placed
