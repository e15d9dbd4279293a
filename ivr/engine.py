"""The IVR stepper (pure): ``step(flow, state, input) -> (state, Command)``.

Begin with ``start(flow)``; carry out each Command and feed its result back:

=============  ============================================
Command        answer with
=============  ============================================
Play           PlayDone(digits)
GetDigits      DigitsInput(value)   (None = timeout)
Lookup         LookupResult(customer_id, tier)
Enqueue        nothing: terminal
Hangup         nothing: terminal
=============  ============================================
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ivr.errors import StepError
from ivr.flow import Flow, HangupNode, LookupNode, MenuNode, Node, PlayNode, QueueNode

# -- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    prompt: str


@dataclass(frozen=True, slots=True)
class GetDigits:
    prompt: str
    timeout_ms: int
    max_digits: int


@dataclass(frozen=True, slots=True)
class Lookup:
    pass


@dataclass(frozen=True, slots=True)
class Enqueue:
    queue: str
    skills: tuple[str, ...]
    priority: int


@dataclass(frozen=True, slots=True)
class Hangup:
    prompt: str | None = None


Command = Play | GetDigits | Lookup | Enqueue | Hangup

# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlayDone:
    digits: str = ""


@dataclass(frozen=True, slots=True)
class DigitsInput:
    value: str | None  # None = timeout


@dataclass(frozen=True, slots=True)
class LookupResult:
    customer_id: int | None = None
    tier: str | None = None


Input = PlayDone | DigitsInput | LookupResult

# -- state ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IvrState:
    node: str
    path: tuple[str, ...] = ()
    attempts: tuple[tuple[str, int], ...] = ()  # (menu node, failed attempts)
    choice: str = ""  # the last valid menu choice
    customer_id: int | None = None
    tier: str | None = None
    done: bool = False
    last_digits: str = field(default="")  # digits of the last completed node

    def attempts_at(self, node: str) -> int:
        return dict(self.attempts).get(node, 0)


def command_for(node: Node) -> Command:
    if isinstance(node, PlayNode):
        return Play(node.prompt)
    if isinstance(node, MenuNode):
        return GetDigits(node.prompt, node.timeout_ms, node.max_digits)
    if isinstance(node, LookupNode):
        return Lookup()
    if isinstance(node, QueueNode):
        return Enqueue(node.queue, node.skills, node.priority)
    return Hangup(node.prompt)


def _enter(flow: Flow, state: IvrState, target: str) -> tuple[IvrState, Command]:
    node = flow.nodes[target]
    st = replace(state, node=target, path=(*state.path, target), done=isinstance(node, (QueueNode, HangupNode)))
    return st, command_for(node)


def start(flow: Flow) -> tuple[IvrState, Command]:
    return _enter(flow, IvrState(node=flow.start), flow.start)


def step(flow: Flow, state: IvrState, inp: Input) -> tuple[IvrState, Command]:
    if state.done:
        raise StepError(flow.name, state.node, "the flow has ended")
    node = flow.nodes[state.node]
    if isinstance(node, PlayNode) and isinstance(inp, PlayDone):
        return _enter(flow, replace(state, last_digits=inp.digits), node.next)
    if isinstance(node, LookupNode) and isinstance(inp, LookupResult):
        st = replace(state, customer_id=inp.customer_id, tier=inp.tier, last_digits="")
        target = node.if_tier.get(inp.tier, node.next) if inp.tier is not None else node.next
        return _enter(flow, st, target)
    if isinstance(node, MenuNode) and isinstance(inp, DigitsInput):
        digits = inp.value
        if digits and digits in node.options:
            st = replace(state, choice=digits, last_digits=digits)
            return _enter(flow, st, node.options[digits])
        failed = state.attempts_at(node.name) + 1
        attempts = (*((n, c) for n, c in state.attempts if n != node.name), (node.name, failed))
        st = replace(state, attempts=attempts, last_digits=digits or "")
        if failed > node.retries:
            target = node.on_fail
        elif digits:
            target = node.on_invalid
        else:
            target = node.on_timeout
        return _enter(flow, st, target)
    raise StepError(flow.name, state.node, f"input {type(inp).__name__} does not fit a {type(node).__name__}")
