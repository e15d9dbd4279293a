"""Simulated callers and agent phones: what runs on the far (``;2``) half of their Local channels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Step = tuple[str, str]  # (application, data) as it shows in Newexten

Behaviour = Literal["answer", "never", "busy", "unreachable"]


@dataclass(frozen=True)
class Caller:
    """A caller: ``Local/<exten>@callers``, whose ``;2`` half presses digits and may give up.

    * ``digits_plan``: ``(delay_s, digit)`` pairs, each delay counted from the previous step.
    * ``patience_s``: hang up this long after answer unless an agent has been reached (abandon).
    * ``talk_s``: once bridged to an agent, hang up after this long (None: wait for the agent).
    * ``playback``: send speech (the traces' ``Local/talk@callers``).
    """

    number: str
    name: str = ""
    digits_plan: tuple[tuple[float, str], ...] = ()
    patience_s: float | None = None
    talk_s: float | None = None
    playback: bool = False
    exten: str | None = None

    @property
    def local_exten(self) -> str:
        if self.exten:
            return self.exten
        if self.playback:
            return "talk"
        if self.digits_plan:
            return "digits"
        if self.patience_s is not None:
            return "abandon"
        return "wait"

    @property
    def callerid(self) -> str:
        return f"{self.name} <{self.number}>" if self.name else self.number

    def program(self) -> list[Step]:
        steps: list[Step] = [("Answer", "")]
        if self.playback:
            steps.append(("Playback", "demo-congrats"))
        used = 0.0
        for delay, digit in self.digits_plan:
            steps.append(("Wait", _num(delay)))
            steps.append(("SendDTMF", digit))
            used += delay
        if self.patience_s is not None:
            steps.append(("Wait", _num(max(0.0, self.patience_s - used))))
            steps.append(("Hangup", ""))
        else:
            steps.append(("Wait", "120"))
        return steps


@dataclass(frozen=True)
class AgentPhone:
    """An agent's phone ``Local/<ext>@agent-phones``.

    ``behaviour``: ``answer`` (after ``ring_s``), ``never`` (rings until Dial gives up), ``busy``
    (``Busy(5)``) or ``unreachable`` (Dial gets CHANUNAVAIL, no channel). After answering the
    phone talks ``talk_s`` and then hangs up if ``hangs_up`` (else its dialplan simply ends).
    """

    ext: str
    behaviour: Behaviour = "answer"
    ring_s: float = 0.0
    talk_s: float = 60.0
    hangs_up: bool = True

    def program(self) -> list[Step] | None:
        if self.behaviour == "unreachable":
            return None
        if self.behaviour == "busy":
            return [("Busy", "5")]
        if self.behaviour == "never":
            return [("Wait", "30")]
        steps: list[Step] = []
        if self.ring_s > 0:
            steps.append(("Wait", _num(self.ring_s)))
        steps += [("Answer", ""), ("Wait", _num(self.talk_s))]
        if self.hangs_up:
            steps.append(("Hangup", ""))
        return steps


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def default_phones() -> tuple[AgentPhone, ...]:
    """The ``[agent-phones]`` of the traces: 1001 answers and hangs up after 4 s, 1002 never
    answers, 1003 is busy, 1004 answers and stays."""
    return (AgentPhone("1001", "answer", talk_s=4), AgentPhone("1002", "never"),
            AgentPhone("1003", "busy"), AgentPhone("1004", "answer", talk_s=60, hangs_up=False))


@dataclass
class CallRecord:
    """The simulator's ground truth for one call (``sim.record[linkedid]``)."""

    linkedid: str
    caller: Caller
    channel: str
    arrived: float  # time.time()
    ended: float | None = None
    cause: int | None = None
    answered_by: str | None = None  # agent ext
    abandoned: bool = False
    ivr_digits: str = ""
    offers: list[tuple[str, str]] = field(default_factory=list)  # (agent ext, DIALSTATUS)
    call_id: str = ""
    shutdown: bool = False  # ended by an Asterisk shutdown or restart
    foreign: list[str] = field(default_factory=list)  # what other AMI clients did to it ("voicemail,2005")
