"""The rest of the simulated site's dialplan: the contexts a PBX runs besides the CTI contract, for
the background traffic the simulator mixes in. As an Asterisk 22 would load it (it ran so, with the
contract and the traces' ``[callers]``/``[agent-phones]``, to record what the simulator sends)::

    [internal]                      ; extension to extension (another client's Originate, or a phone)
    exten => _X.,1,Dial(Local/${EXTEN}@internal-phones,20)
     same => n,Hangup()
    [queue-test]                    ; another queue of the PBX: hold, then its own agent's phone
    exten => _X.,1,NoOp(Test queue ${EXTEN})
     same => n,Answer()
     same => n,MusicOnHold(default,2)
     same => n,Dial(Local/${EXTEN}@internal-phones,20)
     same => n,Hangup()
    [voicemail]                     ; a mailbox: the greeting, then the message
    exten => _X.,1,Answer()
     same => n,Playback(vm-intro)
     same => n,Wait(10)
     same => n,Hangup()
    [internal-phones]               ; the site's phones (not the agents'): ring, answer, talk, hang up
    exten => 2002,1,Wait(1)         ; e.g.; the simulator gives each call's phone its own program
     same => n,Answer()
     same => n,Wait(2)
     same => n,Hangup()

None of these contexts is the contract's: a call that never enters ``cti-inbound`` is not the
backend's, and one of our callers that a foreign client redirects here keeps its hangup handler.
"""

from __future__ import annotations

from collections.abc import Callable

from .actors import Step
from .model import Channel

DataFn = Callable[[Channel], str]
PHONES = "internal-phones"
INTERNAL, QUEUE, VOICEMAIL = "internal", "queue-test", "voicemail"
QUEUE_HOLD_S = 2


def contexts() -> dict[str, list[tuple[str, DataFn]]]:
    """(application, AppData(channel)) per priority, 1-based, as ``dialplan.contexts``."""
    return {
        INTERNAL: [
            ("Dial", lambda c: f"Local/{c.exten}@{PHONES},20"),
            ("Hangup", lambda c: ""),
        ],
        QUEUE: [
            ("NoOp", lambda c: f"Test queue {c.exten}"),
            ("Answer", lambda c: ""),
            ("MusicOnHold", lambda c: f"default,{QUEUE_HOLD_S}"),
            ("Dial", lambda c: f"Local/{c.exten}@{PHONES},20"),
            ("Hangup", lambda c: ""),
        ],
        VOICEMAIL: [
            ("Answer", lambda c: ""),
            ("Playback", lambda c: "vm-intro"),
            ("Wait", lambda c: "10"),
            ("Hangup", lambda c: ""),
        ],
    }


def phone(ring_s: float = 1.0, talk_s: float = 2.0, answers: bool = True) -> list[Step]:
    """An ``internal-phones`` extension: rings ``ring_s``, answers, talks ``talk_s``, hangs up;
    or, ``answers=False``, rings until the caller gives up."""
    if not answers:
        return [("Wait", "30")]
    steps: list[Step] = [("Wait", _num(ring_s))] if ring_s > 0 else []
    return [*steps, ("Answer", ""), ("Wait", _num(talk_s)), ("Hangup", "")]


def caller(patience_s: float | None = None) -> list[Step]:
    """The far half of a background caller (``Local/<x>@callers`` or a calling phone): picks up,
    then waits for the call to end, or hangs up after ``patience_s``."""
    if patience_s is None:
        return [("Answer", ""), ("Wait", "120")]
    return [("Answer", ""), ("Wait", _num(patience_s)), ("Hangup", "")]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
