"""The IVR runner over real FastAGI: our FastAgiServer on loopback, the test playing Asterisk 22.

For every node type the runner executes, the caller hangs up at that node the ways Asterisk reports it
(the ``HANGUP`` notice before ``200 result=-1`` on a media command, the notice alone between commands,
EOF), and the session must end at once: no command beyond the one Asterisk allows on a dead channel,
the server's active count back to 0, no task left.  Invalid input at every input node takes the
documented exits.  Flows are written in the current TOML format into tmp_path.

What the runner publishes on a hang-up: an ``IvrStep`` for the node where the caller left (unless its
step is already out), then ``IvrStep(node="hangup")``; a hang-up noticed between commands (during a CRM
lookup, after a reply) is found by the session's flag at once, and a caller who left is never queued.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cti.agi.protocol import format_env
from cti.agi.server import FastAgiServer
from cti.agi.session import AgiSession
from cti.bus import Bus
from cti.domain import CallQueued, DomainEvent, IvrEntered, IvrStep
from ivr.engine import MASK
from ivr.flow import load_flows
from ivr.runner import IvrRunner

ROOT = Path(__file__).resolve().parents[1]
ENV = {"agi_network": "yes", "agi_network_script": "ivr/t", "agi_request": "agi://127.0.0.1/ivr/t",
       "agi_channel": "PJSIP/trunk-00000001", "agi_uniqueid": "1700000000.7", "agi_callerid": "5551234",
       "agi_calleridname": "Grace", "agi_extension": "5551000", "agi_accountcode": ""}
# Wednesday 2026-01-07 10:00 in Paris: open hours
OPEN_AT = datetime(2026, 1, 7, 9, 0, tzinfo=UTC).timestamp()
DEAD = b"511 Command Not Permitted on a dead channel or intercepted by a hangup handler\n"
DEAD_OK = (b"SET VARIABLE", b"GET VARIABLE", b"GET FULL VARIABLE", b"VERBOSE", b"NOOP", b"HANGUP")
MEDIA = (b"STREAM FILE", b"GET DATA", b"SAY DIGITS", b"SAY NUMBER", b"ANSWER")
QUEUE = '[nodes.q]\ntype = "queue"\nqueue = "sales"\nskills = ["sales"]\n'


# -- Asterisk's side -------------------------------------------------------------------------------

@dataclass
class Asterisk:
    """One call's FastAGI connection as Asterisk 22 speaks it.

    ``digits``: the GET DATA answers in order (None = timeout).  ``hang``: (verb, n, mode): the caller
    hangs up at the n-th command starting with verb (1-based); mode ``media``: ``HANGUP`` notice then
    ``200 result=-1`` (STREAM FILE / GET DATA / SAY interrupted); ``after``: the command completes, then
    the ``HANGUP`` notice (the caller left while the runner works between commands); ``eof``: the
    connection closes instead of a reply; ``after_eof``: the reply, the notice, then EOF.  On a dead
    channel Asterisk answers SET/GET VARIABLE, VERBOSE, NOOP, HANGUP and 511 to the rest.
    """

    digits: list[str | None] = field(default_factory=list)
    hang: tuple[bytes, int, str] | None = None
    commands: list[bytes] = field(default_factory=list)
    after_hangup: list[bytes] = field(default_factory=list)
    dead: bool = False
    server_closed_after: float | None = None  # seconds from the hang-up to the server's EOF
    _hung_at: float = 0.0
    _w: asyncio.StreamWriter | None = None

    def hang_now(self, eof: bool) -> None:
        """The caller hangs up now (between commands: the notice, then EOF when asked)."""
        assert self._w is not None
        self._mark_dead()
        self._w.write(b"HANGUP\n")
        if eof:
            self._w.close()

    def _mark_dead(self) -> None:
        self.dead = True
        self._hung_at = asyncio.get_running_loop().time()

    def _reply(self, line: bytes) -> bytes:
        if line.startswith(b"ANSWER"):
            return b"200 result=0\n"
        if line.startswith(b"STREAM FILE"):
            return b"200 result=0 endpos=8000\n"
        if line.startswith(b"GET DATA"):
            d = self.digits.pop(0) if self.digits else None
            return b"200 result= (timeout)\n" if d is None else f"200 result={d}\n".encode()
        if line.startswith((b"SAY DIGITS", b"SAY NUMBER")):
            return b"200 result=0\n"
        return b"200 result=1\n"  # SET VARIABLE, HANGUP, VERBOSE ...

    async def call(self, port: int, script: str = "ivr/t") -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        self._w = w
        loop = asyncio.get_running_loop()
        w.write(format_env({**ENV, "agi_network_script": script, "agi_request": f"agi://127.0.0.1/{script}"}))
        counts: dict[bytes, int] = {}
        try:
            while True:
                line = await asyncio.wait_for(r.readline(), 5)
                if not line:  # the server closed: the session is over
                    if self.dead:
                        self.server_closed_after = loop.time() - self._hung_at
                    break
                self.commands.append(line)
                if self.dead:
                    self.after_hangup.append(line)
                    w.write(b"200 result=1\n" if line.startswith(DEAD_OK) else DEAD)
                    continue
                verb = next((v for v in (*MEDIA, *DEAD_OK) if line.startswith(v)), line.split(b" ")[0])
                counts[verb] = counts.get(verb, 0) + 1
                if self.hang and line.startswith(self.hang[0]) and counts[verb] == self.hang[1]:
                    mode = self.hang[2]
                    self._mark_dead()
                    if mode == "media":
                        w.write(b"HANGUP\n200 result=-1 endpos=1200\n" if verb == b"STREAM FILE"
                                else b"HANGUP\n200 result=-1\n")
                    elif mode == "eof":
                        w.close()
                        break
                    else:
                        w.write(self._reply(line) + b"HANGUP\n")
                        if mode == "after_eof":
                            w.close()
                            break
                    continue
                w.write(self._reply(line))
                if line.startswith(b"HANGUP"):  # the flow hung up: the notice, then Asterisk closes
                    self._mark_dead()
                    w.write(b"HANGUP\n")
                    w.close()
                    break
        except (ConnectionError, RuntimeError):
            pass
        finally:
            if not w.is_closing():
                w.close()


# -- our side --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Customer:
    id: int
    value_tier: str
    account_no: str = "123456"


class Crm:
    """The customer lookup; ``during``: run while a lookup is in flight (the caller hangs up there)."""

    def __init__(self, during: Callable[[], Awaitable[None]] | None = None) -> None:
        self.during = during
        self.asked: list[str] = []

    async def find_customer_by_phone(self, raw: str) -> Customer | None:
        self.asked.append(raw)
        if self.during:
            await self.during()
        return Customer(42, "gold") if raw == "5551234" else None

    async def find_customer_by_account(self, raw: str) -> Customer | None:
        self.asked.append(raw)
        return Customer(43, "silver") if raw == "123456" else None


@dataclass
class Outcome:
    events: list[DomainEvent]
    ast: Asterisk
    results: list[object]
    log: str

    @property
    def steps(self) -> list[IvrStep]:
        return [e for e in self.events if isinstance(e, IvrStep)]

    @property
    def nodes(self) -> list[str]:
        return [s.node for s in self.steps]

    @property
    def queued(self) -> list[CallQueued]:
        return [e for e in self.events if isinstance(e, CallQueued)]

    @property
    def verbs(self) -> list[str]:
        return [c.decode().rstrip("\n") for c in self.ast.commands]


def write_flows(tmp_path: Path, flows: dict[str, str]) -> Path:
    d = tmp_path / "ivr"
    d.mkdir(exist_ok=True)
    for name, text in flows.items():
        (d / f"{name}.toml").write_text(text)
    return d


async def drive(tmp_path: Path, flows: dict[str, str], ast: Asterisk, crm: Crm | None = None,
                figures: dict[str, dict[str, float]] | None = None, caplog: pytest.LogCaptureFixture | None = None,
                flow: str = "t") -> Outcome:
    bus = Bus()
    events: list[DomainEvent] = []
    for t in (IvrEntered, IvrStep, CallQueued):
        bus.on(t, events.append)
    runner = IvrRunner(load_flows(write_flows(tmp_path, flows)), bus, crm or Crm(), clock=lambda: OPEN_AT,
                       new_cti_call_id=lambda: "cti-1",
                       queue_figures=(lambda qs: {q: figures.get(q, {}) for q in qs}) if figures else None)
    results: list[object] = []

    async def handler(s: AgiSession) -> None:
        results.append(await runner.run(s, s.environment.script.removeprefix("ivr/")))

    async with FastAgiServer(port=0, close_wait=0.3, command_timeout=3.0) as srv:
        srv.route("ivr/", handler)
        await asyncio.wait_for(ast.call(srv.port, f"ivr/{flow}"), 8)
        for _ in range(200):  # the session ends at once: well within 2 s
            if srv.active == 0 and not srv._tasks:
                break
            await asyncio.sleep(0.01)
        assert srv.active == 0 and not srv._tasks, "the session did not end"
        assert srv.errors == 0
    assert len(results) == 1, results
    text = caplog.text if caplog else ""
    return Outcome(events, ast, results, text)


def assert_quiet_end(o: Outcome, left_at: str, allowed_after: int = 1) -> None:
    """The caller hung up at ``left_at``: the run ended, at most the one command Asterisk allows after
    the hang-up, no CallQueued, the last IvrStep is the runner's ``hangup``, the log names the node."""
    assert o.results == [None]
    assert len(o.ast.after_hangup) <= allowed_after, o.ast.after_hangup
    assert not o.queued
    assert o.nodes[-1] == "hangup", o.nodes
    assert o.nodes.count("hangup") == 1
    assert f"caller left the IVR at {left_at}" in o.log, o.log
    if o.ast.server_closed_after is not None:
        assert o.ast.server_closed_after < 1.0


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="ivr.runner")
    return caplog


# -- hang-up at each node type ---------------------------------------------------------------------

PLAY = 'start = "n"\n[nodes.n]\ntype = "play"\nprompts = ["hello-world", "beep"]\nbarge_in = true\nnext = "q"\n' + QUEUE
MENU = ('start = "n"\n[nodes.n]\ntype = "menu"\nprompt = "beep"\noptions = { "1" = "q" }\nretries = 1\n'
        'invalid_prompt = "invalid"\nno_input_prompt = "silence"\nfallback = "q"\n' + QUEUE)
COLLECT = ('start = "n"\n[nodes.n]\ntype = "collect"\nprompt = "beep"\nvar = "acct"\nmin_digits = 6\n'
           'max_digits = 8\npattern = "[1-9][0-9]{5,7}"\nretries = 2\ninvalid_prompt = "invalid"\n'
           'sensitive = true\nnext = "q"\nfallback = "f"\n' + QUEUE
           + '[nodes.f]\ntype = "queue"\nqueue = "support"\nskills = ["support"]\n')
INTRO = '[nodes.intro]\ntype = "play"\nprompts = ["hello-world"]\nnext = "n"\n'
AFTER = '[nodes.p2]\ntype = "play"\nprompts = ["beep"]\nnext = "q"\n' + QUEUE
LOOKUP = 'start = "n"\n[nodes.n]\ntype = "lookup"\nby = "ani"\nfound = "p2"\nnot_found = "p2"\n' + AFTER
HOURS = ('start = "n"\n[nodes.n]\ntype = "hours"\ntimezone = "Europe/Paris"\nopen = "p2"\nclosed = "p2"\n'
         '[nodes.n.week]\nwed = ["08:00-20:00"]\n' + AFTER)
BRANCH_Q = ('start = "intro"\n' + INTRO + '[nodes.n]\ntype = "branch"\ndefault = "p2"\n[[nodes.n.when]]\n'
            'var = "queue.sales.ewt_s"\nop = "gt"\nvalue = 300\nnext = "q"\n' + AFTER)
BRANCH = ('start = "intro"\n' + INTRO + '[nodes.n]\ntype = "branch"\ndefault = "p2"\n[[nodes.n.when]]\n'
          'var = "customer.tier"\nop = "eq"\nvalue = "platinum"\nnext = "q"\n' + AFTER)
SET = 'start = "intro"\n' + INTRO + '[nodes.n]\ntype = "set"\nvars = { lang = "fr" }\nnext = "p2"\n' + AFTER
SAY = ('start = "s"\n[nodes.s]\ntype = "set"\nvars = { acct = "1234" }\nnext = "n"\n'
       '[nodes.n]\ntype = "say"\nvar = "acct"\nnext = "q"\n' + QUEUE)
HANGUP = 'start = "n"\n[nodes.n]\ntype = "hangup"\nprompt = "vm-goodbye"\n'
GOTO = 'start = "intro"\n' + INTRO + '[nodes.n]\ntype = "goto"\nflow = "other"\n'
TRANSFER_FLOW = 'start = "intro"\n' + INTRO + '[nodes.n]\ntype = "transfer"\nflow = "other"\n'
OTHER = 'start = "o"\n[nodes.o]\ntype = "play"\nprompts = ["beep"]\nnext = "q"\n' + QUEUE
CALLBACK = ('start = "n"\n[nodes.n]\ntype = "callback"\nqueue = "support"\nprompt = "offer"\n'
            'confirm_prompt = "confirm"\ndone_prompt = "vm-goodbye"\ndeclined = "q"\n' + QUEUE)


@dataclass(frozen=True)
class Case:
    id: str
    flows: dict[str, str]
    hang: tuple[bytes, int, str] | None
    left_at: str          # the node the runner's log names
    before: list[str]     # the IvrSteps published before ``hangup``
    digits: tuple[str | None, ...] = ()
    lookup_hangs: bool = False
    after: int = 1        # commands Asterisk still gets after the hang-up


CASES = [
    Case("play-first-prompt", {"t": PLAY}, (b"STREAM FILE", 1, "media"), "n", ["n"]),
    Case("play-second-prompt", {"t": PLAY}, (b"STREAM FILE", 2, "media"), "n", ["n"]),
    Case("play-eof", {"t": PLAY}, (b"STREAM FILE", 1, "eof"), "n", ["n"], after=0),
    Case("menu", {"t": MENU}, (b"GET DATA", 1, "media"), "n", ["n"]),
    Case("menu-retry", {"t": MENU}, (b"GET DATA", 2, "media"), "n", ["n"], digits=("7",)),
    Case("menu-retry-prompt-eof", {"t": MENU}, (b"STREAM FILE", 1, "eof"), "n", ["n"], digits=("7",), after=0),
    Case("collect", {"t": COLLECT}, (b"GET DATA", 1, "media"), "n", ["n"]),
    Case("collect-eof", {"t": COLLECT}, (b"GET DATA", 1, "eof"), "n", ["n"], after=0),
    # left while the runner worked between commands: found at once, no command after the hang-up
    Case("lookup", {"t": LOOKUP}, None, "n", ["n"], lookup_hangs=True, after=0),
    Case("hours", {"t": HOURS}, (b"SET VARIABLE", 1, "after"), "n", ["n"], after=0),
    Case("hours-eof", {"t": HOURS}, (b"SET VARIABLE", 1, "after_eof"), "n", ["n"], after=0),
    Case("branch-queue-figures", {"t": BRANCH_Q}, (b"STREAM FILE", 1, "after"), "intro", ["intro"], after=0),
    Case("branch", {"t": BRANCH}, (b"STREAM FILE", 1, "after"), "intro", ["intro"], after=0),
    Case("set", {"t": SET}, (b"STREAM FILE", 1, "after"), "intro", ["intro"], after=0),
    Case("say", {"t": SAY}, (b"SAY DIGITS", 1, "media"), "n", ["n"]),
    Case("hangup-prompt", {"t": HANGUP}, (b"STREAM FILE", 1, "media"), "n", ["n"]),
    Case("goto", {"t": GOTO, "other": OTHER}, (b"STREAM FILE", 1, "after"), "intro", ["intro"], after=0),
    Case("goto-eof", {"t": GOTO, "other": OTHER}, (b"STREAM FILE", 1, "after_eof"), "intro", ["intro"], after=0),
    Case("transfer-flow", {"t": TRANSFER_FLOW, "other": OTHER}, (b"STREAM FILE", 1, "after"), "intro",
         ["intro"], after=0),
    Case("callback-offer", {"t": CALLBACK}, (b"GET DATA", 1, "media"), "n", ["n"]),
    Case("callback-confirm", {"t": CALLBACK}, (b"GET DATA", 2, "media"), "n", ["n"], digits=("1",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_hangup_at_node_ends_the_session(tmp_path: Path, logs: pytest.LogCaptureFixture, case: Case) -> None:
    ast = Asterisk(digits=list(case.digits), hang=case.hang)
    crm = None
    if case.lookup_hangs:
        async def during() -> None:  # the caller hangs up while the CRM answers
            ast.hang_now(eof=False)
            await asyncio.sleep(0.05)
        crm = Crm(during)
    o = await drive(tmp_path, case.flows, ast, crm, figures={"sales": {"ewt_s": 10.0}}, caplog=logs)
    assert_quiet_end(o, case.left_at, case.after)
    assert o.nodes[:-1] == case.before
    if case.after:  # the one command Asterisk allows after the hang-up got its dead-channel answer
        assert all(c.startswith(MEDIA) for c in o.ast.after_hangup)


async def test_hangup_at_lookup_with_eof(tmp_path: Path, logs: pytest.LogCaptureFixture) -> None:
    ast = Asterisk()

    async def during() -> None:
        ast.hang_now(eof=True)
        await asyncio.sleep(0.05)

    o = await drive(tmp_path, {"t": LOOKUP}, ast, Crm(during), caplog=logs)
    assert_quiet_end(o, "n", 0)
    assert o.nodes == ["n", "hangup"]


async def test_hangup_node_without_prompt_ends_normally(tmp_path: Path) -> None:
    o = await drive(tmp_path, {"t": 'start = "n"\n[nodes.n]\ntype = "hangup"\n'}, Asterisk())
    assert o.verbs == ["ANSWER", "SET VARIABLE CTI_CALL_ID cti-1", "HANGUP"]
    assert o.nodes == ["n"] and not o.queued and o.results != [None]


async def test_hangup_at_queue_notice(tmp_path: Path, logs: pytest.LogCaptureFixture) -> None:
    """The notice with the CTI_NEXT reply: SET VARIABLE works on a dead channel, so the runner looks
    at the session's hang-up flag before queueing: a caller who left is never queued."""
    o = await drive(tmp_path, {"t": 'start = "q"\n' + QUEUE}, Asterisk(hang=(b"SET VARIABLE", 2, "after")),
                    caplog=logs)
    assert_quiet_end(o, "q", 0)
    assert o.nodes == ["q", "hangup"] and not o.queued
    assert o.ast.after_hangup == []


async def test_hangup_at_queue_eof(tmp_path: Path, logs: pytest.LogCaptureFixture) -> None:
    """EOF instead of the CTI_NEXT reply: CTI_NEXT goes first, so no CallQueued for a caller who left."""
    o = await drive(tmp_path, {"t": 'start = "q"\n' + QUEUE}, Asterisk(hang=(b"SET VARIABLE", 2, "eof")), caplog=logs)
    assert o.results == [None] and o.nodes == ["q", "hangup"]
    assert not o.queued
    assert "caller left the IVR at q" in o.log


async def test_a_hangup_during_the_lookup_before_a_queue_queues_nobody(tmp_path: Path) -> None:
    """The hang-up comes while the CRM answers (between commands): the runner checks the session's
    flag after the node, so it sends nothing more and queues nobody."""
    ast = Asterisk()

    async def during() -> None:
        ast.hang_now(eof=False)
        await asyncio.sleep(0.05)

    flow = 'start = "n"\n[nodes.n]\ntype = "lookup"\nby = "ani"\nfound = "q"\nnot_found = "q"\n' + QUEUE
    o = await drive(tmp_path, {"t": flow}, ast, Crm(during))
    assert o.nodes == ["n", "hangup"] and not o.queued
    assert o.ast.after_hangup == []


# -- not yet executed: the fallback queue ------------------------------------------------------------

VOICEMAIL = ('start = "intro"\n' + INTRO + '[nodes.n]\ntype = "voicemail"\nprompt = "vm-intro"\nnext = "bye"\n'
             + '[nodes.bye]\ntype = "hangup"\n')
TRANSFER_NUMBER = 'start = "intro"\n' + INTRO + '[nodes.n]\ntype = "transfer"\nnumber = "+33123456789"\n'


@pytest.mark.parametrize("flows,digits", [
    ({"t": VOICEMAIL}, ()),
    ({"t": TRANSFER_NUMBER}, ()),
    ({"t": CALLBACK}, ("1", "1")),          # accepted, number confirmed
    ({"t": CALLBACK}, ("1", "5559876")),    # accepted, another number
], ids=["voicemail", "transfer-number", "callback-confirmed", "callback-new-number"])
async def test_unimplemented_nodes_go_to_the_fallback_queue(tmp_path: Path, flows: dict[str, str],
                                                            digits: tuple[str, ...]) -> None:
    o = await drive(tmp_path, flows, Asterisk(digits=list(digits)))
    assert o.results == [None]
    assert [q.queue for q in o.queued] == ["support"] and o.queued[0].skills == ("support",)
    assert o.verbs[-1] == "SET VARIABLE CTI_NEXT queue"
    assert "hangup" not in o.nodes


async def test_a_caller_who_left_before_the_voicemail_is_not_sent_to_the_fallback(tmp_path: Path) -> None:
    """The caller left during the intro's reply: the runner sees it before voicemail (which would go to
    the fallback queue), so nobody is queued and the timeline ends at the intro, then hangup."""
    o = await drive(tmp_path, {"t": VOICEMAIL}, Asterisk(hang=(b"STREAM FILE", 1, "after")))
    assert o.results == [None] and not o.queued
    assert o.nodes == ["intro", "hangup"]
    assert o.ast.after_hangup == []


async def test_hangup_step_names_the_node_left(tmp_path: Path) -> None:
    """The timeline names the node where the caller left (an IvrStep for it, then ``hangup``)."""
    o = await drive(tmp_path, {"t": MENU}, Asterisk(hang=(b"GET DATA", 1, "media")))
    assert [s.node for s in o.steps] == ["n", "hangup"]


# -- invalid input at each input node --------------------------------------------------------------

async def test_menu_wrong_digit_retries_then_fallback(tmp_path: Path) -> None:
    o = await drive(tmp_path, {"t": MENU}, Asterisk(digits=["7", "8"]))
    assert o.verbs[2:] == ["GET DATA beep 3000 1", 'STREAM FILE invalid ""', "GET DATA beep 3000 1",
                           "SET VARIABLE CTI_NEXT queue"]
    assert [(s.node, s.digits) for s in o.steps] == [("n", "7"), ("n", "8"), ("q", "")]
    assert o.queued[0].queue == "sales" and o.queued[0].ivr_choice == ""


async def test_menu_no_input_retries_then_fallback(tmp_path: Path) -> None:
    o = await drive(tmp_path, {"t": MENU}, Asterisk(digits=[None, None]))
    assert o.verbs[2:] == ["GET DATA beep 3000 1", 'STREAM FILE silence ""', "GET DATA beep 3000 1",
                           "SET VARIABLE CTI_NEXT queue"]
    assert o.queued[0].ivr_path == ("n", "n", "q")


async def test_menu_wrong_then_right(tmp_path: Path) -> None:
    o = await drive(tmp_path, {"t": MENU}, Asterisk(digits=["9", "1"]))
    assert o.queued[0].ivr_choice == "1"


async def test_menu_legacy_exits(tmp_path: Path) -> None:
    """1.0 format: on_timeout / on_invalid are taken at once (no retry)."""
    flow = ('start = "n"\n[nodes.n]\nkind = "menu"\nprompt = "beep"\non_timeout = "t"\non_invalid = "i"\n'
            'on_fail = "q"\n[nodes.n.options.1]\ngoto = "q"\n' + QUEUE
            + '[nodes.t]\ntype = "queue"\nqueue = "timeout"\nskills = ["x"]\n'
            + '[nodes.i]\ntype = "queue"\nqueue = "invalid"\nskills = ["x"]\n')
    a = await drive(tmp_path, {"t": flow}, Asterisk(digits=[None]))
    b = await drive(tmp_path, {"t": flow}, Asterisk(digits=["5"]))
    assert a.queued[0].queue == "timeout" and b.queued[0].queue == "invalid"


@pytest.mark.parametrize("digits,why", [
    (["123", "45", "1"], "too short"),
    (["0123456", "0999999", "0000000"], "pattern mismatch"),
    ([None, None, None], "timeout"),
    (["12", None, "0123456"], "mixed"),
])
async def test_collect_invalid_retries_then_fallback(tmp_path: Path, digits: list[str | None], why: str) -> None:
    o = await drive(tmp_path, {"t": COLLECT}, Asterisk(digits=list(digits)))
    gets = [v for v in o.verbs if v.startswith("GET DATA")]
    assert gets == ["GET DATA beep 5000 8"] * 3, why
    # the invalid prompt before a retry only when something (wrong) was keyed
    invalid = sum(1 for v in o.verbs if v == 'STREAM FILE invalid ""')
    assert invalid == sum(1 for d in digits[:2] if d), why
    assert o.queued[0].queue == "support" and o.queued[0].ivr_path == ("n", "n", "n", "f")


async def test_collect_valid_after_retry_and_masked(tmp_path: Path) -> None:
    o = await drive(tmp_path, {"t": COLLECT}, Asterisk(digits=["0999999", "1234567"]))
    assert o.queued[0].queue == "sales"
    assert [(s.node, s.digits) for s in o.steps] == [("n", MASK), ("n", MASK), ("q", "")]
    for d in ("0999999", "1234567"):
        assert not any(d in repr(e) for e in o.events), d


async def test_sensitive_collect_timeout_and_hangup_show_no_digits(tmp_path: Path) -> None:
    o = await drive(tmp_path, {"t": COLLECT}, Asterisk(digits=[None, "99"], hang=(b"GET DATA", 3, "media")))
    assert [(s.node, s.digits) for s in o.steps] == [("n", ""), ("n", MASK), ("hangup", "")]
    assert not any("99" in s.digits for s in o.steps)


async def test_collect_by_digits_lookup(tmp_path: Path) -> None:
    flow = ('start = "n"\n[nodes.n]\ntype = "collect"\nprompt = "beep"\nvar = "acct"\nmin_digits = 6\n'
            'sensitive = true\nnext = "l"\nfallback = "q"\n[nodes.l]\ntype = "lookup"\nby = "digits"\n'
            'var = "acct"\nfound = "q"\nnot_found = "q"\n' + QUEUE)
    crm = Crm()
    o = await drive(tmp_path, {"t": flow}, Asterisk(digits=["123456"]), crm)
    assert crm.asked == ["123456"] and o.queued[0].customer_id == 43
    assert not any("123456" in repr(e) for e in o.events)


@pytest.mark.parametrize("digits,verbs_after_offer", [
    (["2"], []),                                  # declined at the offer
    ([None], []),                                 # no answer to the offer: declined
    (["1", "5", None, "12"], ["confirm"] * 3),    # confirm: short, timeout, short: declined after 3
], ids=["declined", "offer-timeout", "confirm-invalid"])
async def test_callback_invalid_takes_declined(tmp_path: Path, digits: list[str | None],
                                               verbs_after_offer: list[str]) -> None:
    o = await drive(tmp_path, {"t": CALLBACK}, Asterisk(digits=list(digits)))
    prompts = [v.split(" ")[2] for v in o.verbs if v.startswith("GET DATA")]
    assert prompts == ["offer", *verbs_after_offer]
    assert [q.queue for q in o.queued] == ["sales"] and o.queued[0].ivr_path[-1] == "q"


# -- every node type, end to end, over the wire ---------------------------------------------------

async def test_telecom_flow_over_fastagi(tmp_path: Path) -> None:
    text = (ROOT / "config" / "ivr" / "telecom.toml").read_text()
    o = await drive(tmp_path, {"telecom": text}, Asterisk(digits=["2", "1"]),
                    figures={"technical": {"ewt_s": 30.0}}, flow="telecom")
    assert [q.queue for q in o.queued] == ["technical"]
    assert o.nodes == ["hours", "greeting", "identify", "main_menu", "tech_menu", "tech_busy", "technical"]


# -- the benchmark runs ------------------------------------------------------------------------------

def test_bench_ivr_quick_prints_its_lines() -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "ivr", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    for metric in ("ivr_node_overhead_p50_ms", "ivr_node_overhead_p99_ms", "ivr_sessions_lost",
                   "ivr_cpu_ms_per_session"):
        assert re.search(rf"^{metric} cti [\d.]+", out, re.M), out
    assert re.search(r"^ivr_sessions_lost cti 0$", out, re.M), out
    assert re.search(r"^goal ivr_node_overhead_p99_ms cti<1 (met|not_met)", out, re.M), out
