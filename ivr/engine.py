"""The IVR stepper (pure): ``step(flow, state, input) -> (state, Command)``.

Begin with ``start(flow, vars)``; carry out each Command and feed its result back:

================  ==========================================  ===================
Command           answer with                                 node types
================  ==========================================  ===================
Play              PlayDone(digits)                            play
GetDigits         DigitsInput(value)   (None = timeout)       menu, collect, callback
Lookup            LookupResult(customer_id, tier, ...)        lookup
GetTime           TimeIs(epoch seconds)                       hours (injected time)
GetQueueFigures   QueueFigures(figures)                       branch on queue.*
Say               PlayDone(digits)                            say
Record            Recorded(path)                              voicemail
Enqueue           nothing: terminal                           queue
RequestCallback   nothing: terminal                           callback (accepted)
Transfer          nothing: terminal                           transfer (number)
GotoFlow          nothing: the runner starts that flow        goto, transfer (flow)
Hangup            nothing: terminal                           hangup
================  ==========================================  ===================

``set`` and ``branch`` (on call/customer variables) need nothing from outside: the stepper passes
through them on its own.  A ``collect`` node's digits go into ``vars[var]``; with ``sensitive = true``
its name is in ``state.sensitive`` and ``masked()`` hides it wherever it is logged or stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from ivr.errors import StepError
from ivr.flow import (
    TERMINAL,
    BranchNode,
    CallbackNode,
    CollectNode,
    Condition,
    Flow,
    GotoNode,
    HoursNode,
    LookupNode,
    MenuNode,
    Node,
    PlayNode,
    QueueNode,
    SayNode,
    SetNode,
    TransferNode,
    VoicemailNode,
)

MASK = "***"
MAX_PASSES = 1000  # set/branch hops in one step: validation forbids silent loops, this is a backstop

# -- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    prompt: str
    barge_in: bool = False
    more: tuple[str, ...] = ()  # further prompts of the same node


@dataclass(frozen=True, slots=True)
class GetDigits:
    prompt: str
    timeout_ms: int
    max_digits: int
    prelude: tuple[str, ...] = ()  # played first (an invalid/no-input prompt)
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class Lookup:
    by: str = "ani"
    value: str = ""  # the digits, for by = "digits"


@dataclass(frozen=True, slots=True)
class GetTime:
    pass


@dataclass(frozen=True, slots=True)
class GetQueueFigures:
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Say:
    value: str
    say_as: str = "digits"


@dataclass(frozen=True, slots=True)
class Record:
    prompt: str
    max_s: int


@dataclass(frozen=True, slots=True)
class Enqueue:
    queue: str
    skills: tuple[str, ...]
    priority: int
    min_levels: tuple[tuple[str, int], ...] = ()
    preferred_agent: str | None = None  # an agent id (account_manager resolved from the customer)


@dataclass(frozen=True, slots=True)
class RequestCallback:
    queue: str
    number: str
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    number: str


@dataclass(frozen=True, slots=True)
class GotoFlow:
    flow: str


@dataclass(frozen=True, slots=True)
class Hangup:
    prompt: str | None = None


Command = (Play | GetDigits | Lookup | GetTime | GetQueueFigures | Say | Record | Enqueue | RequestCallback
           | Transfer | GotoFlow | Hangup)

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
    several: bool = False
    fields: tuple[tuple[str, str], ...] = ()  # churn_risk, account_manager, account_no ...


@dataclass(frozen=True, slots=True)
class TimeIs:
    epoch: float


@dataclass(frozen=True, slots=True)
class QueueFigures:
    figures: Mapping[str, Mapping[str, float]]  # queue -> {ewt_s, waiting, agents_ready}


@dataclass(frozen=True, slots=True)
class Recorded:
    path: str = ""


Input = PlayDone | DigitsInput | LookupResult | TimeIs | QueueFigures | Recorded

# -- state ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IvrState:
    node: str
    path: tuple[str, ...] = ()
    attempts: tuple[tuple[str, int], ...] = ()  # (node, failed attempts)
    choice: str = ""  # the last valid menu choice
    customer_id: int | None = None
    tier: str | None = None
    done: bool = False
    last_digits: str = field(default="")  # digits of the last completed node (masked when sensitive)
    vars: tuple[tuple[str, str], ...] = ()  # call variables (set, collect; "ani" from the runner)
    customer: tuple[tuple[str, str], ...] = ()  # the identified customer's fields
    sensitive: frozenset[str] = frozenset()  # call variables never to log or store
    figures: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    phase: str = ""  # within a node: callback "offer" / "confirm"
    recording: str = ""

    def attempts_at(self, node: str) -> int:
        return dict(self.attempts).get(node, 0)

    def var(self, name: str) -> str | None:
        return dict(self.vars).get(name)

    def masked(self) -> dict[str, str]:
        return {k: MASK if k in self.sensitive else v for k, v in self.vars}


def _with_var(st: IvrState, name: str, value: str) -> IvrState:
    return replace(st, vars=(*((k, v) for k, v in st.vars if k != name), (name, value)))


def _fail(st: IvrState, node: str) -> tuple[IvrState, int]:
    failed = st.attempts_at(node) + 1
    return replace(st, attempts=(*((n, c) for n, c in st.attempts if n != node), (node, failed))), failed


def _lookup_value(st: IvrState, var: str) -> str | float | None:
    space, _, rest = var.partition(".")
    if space == "call":
        return st.var(rest)
    if space == "customer":
        if rest == "id":
            return None if st.customer_id is None else str(st.customer_id)
        if rest == "tier":
            return st.tier
        return dict(st.customer).get(rest)
    qname, _, fig = rest.partition(".")
    return dict(dict(st.figures).get(qname, ())).get(fig)


def _holds(c: Condition, v: str | float | None) -> bool:
    if c.op == "set":
        return v not in (None, "")
    if c.op == "unset":
        return v in (None, "")
    if v is None:
        return False  # a condition on a value nobody knows is false
    if c.op in ("eq", "ne"):
        same = str(v) == c.value or (_num(v) is not None and _num(v) == _num(c.value))
        return same if c.op == "eq" else not same
    if c.op in ("in", "not_in"):
        inside = isinstance(c.value, tuple) and str(v) in c.value
        return inside if c.op == "in" else not inside
    a, b = _num(v), c.value
    if a is None or not isinstance(b, float):
        return False
    return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[c.op]


def _num(v: object) -> float | None:
    try:
        return float(v) if isinstance(v, (str, int, float)) else None
    except ValueError:
        return None


def _queues_needed(node: BranchNode, st: IvrState) -> tuple[str, ...]:
    have = dict(st.figures)
    need = {c.var.split(".")[1] for c in node.when if c.var.startswith("queue.")}
    return tuple(sorted(q for q in need if q not in have))


def _enqueue(node: QueueNode, st: IvrState) -> Enqueue:
    pref = node.preferred_agent
    if pref == "account_manager":
        pref = dict(st.customer).get("account_manager") or None
    return Enqueue(node.queue, node.skills, node.priority, tuple(sorted(node.min_levels.items())), pref)


def command_for(node: Node, st: IvrState) -> Command | None:
    """The command a node gives on entry; None for set/branch (passed through by the stepper)."""
    if isinstance(node, PlayNode):
        return Play(node.prompts[0], node.barge_in, node.prompts[1:])
    if isinstance(node, MenuNode):
        return GetDigits(node.prompt, node.timeout_ms, node.max_digits)
    if isinstance(node, CollectNode):
        return GetDigits(node.prompt, node.timeout_ms, node.max_digits, sensitive=node.sensitive)
    if isinstance(node, LookupNode):
        return Lookup(node.by, (st.var(node.var) or "") if node.var else "")
    if isinstance(node, HoursNode):
        return GetTime()
    if isinstance(node, BranchNode):
        need = _queues_needed(node, st)
        return GetQueueFigures(need) if need else None
    if isinstance(node, SetNode):
        return None
    if isinstance(node, QueueNode):
        return _enqueue(node, st)
    if isinstance(node, CallbackNode):
        return GetDigits(node.prompt, node.timeout_ms, 1)
    if isinstance(node, VoicemailNode):
        return Record(node.prompt, node.max_s)
    if isinstance(node, TransferNode):
        return GotoFlow(node.flow) if node.flow else Transfer(node.number or "")
    if isinstance(node, SayNode):
        return Say(st.var(node.var) or "", node.say_as)
    if isinstance(node, GotoNode):
        return GotoFlow(node.flow)
    return Hangup(node.prompt)


def _pass_through(flow: Flow, st: IvrState, node: Node) -> str | None:
    """The exit a set/branch node takes at once (None: it needs a command first)."""
    if isinstance(node, SetNode):
        return node.next
    if isinstance(node, BranchNode) and not _queues_needed(node, st):
        return next((c.next for c in node.when if _holds(c, _lookup_value(st, c.var))), node.default)
    return None


def _enter(flow: Flow, state: IvrState, target: str) -> tuple[IvrState, Command]:
    st = state
    for _ in range(MAX_PASSES):
        node = flow.nodes[target]
        st = replace(st, node=target, path=(*st.path, target), done=isinstance(node, TERMINAL), phase="")
        if isinstance(node, SetNode):
            for k, v in node.vars.items():
                st = _with_var(st, k, v)
        if isinstance(node, CallbackNode):
            st = replace(st, done=False, phase="offer")
        nxt = _pass_through(flow, st, node)
        if nxt is None:
            cmd = command_for(node, st)
            assert cmd is not None
            return st, cmd
        target = nxt
    raise StepError(flow.name, target, f"more than {MAX_PASSES} set/branch nodes in a row")


def start(flow: Flow, vars: Mapping[str, str] | None = None) -> tuple[IvrState, Command]:
    """The first command; ``vars``: call variables known from the start (the runner gives ``ani``)."""
    return _enter(flow, IvrState(node=flow.start, vars=tuple((vars or {}).items())), flow.start)


def _menu(flow: Flow, node: MenuNode, st: IvrState, digits: str | None) -> tuple[IvrState, Command]:
    if digits and digits in node.options:
        return _enter(flow, replace(st, choice=digits, last_digits=digits), node.options[digits])
    st, failed = _fail(replace(st, last_digits=digits or ""), node.name)
    if failed > node.retries:
        return _enter(flow, st, node.fallback)
    exit_ = node.on_invalid if digits else node.on_timeout
    if exit_:
        return _enter(flow, st, exit_)
    again = node.invalid_prompt if digits else node.no_input_prompt
    st = replace(st, path=(*st.path, node.name))
    return st, GetDigits(node.prompt, node.timeout_ms, node.max_digits, (again,) if again else ())


def _collect(flow: Flow, node: CollectNode, st: IvrState, digits: str | None) -> tuple[IvrState, Command]:
    value = (digits or "").rstrip(node.terminator) if node.terminator else digits or ""
    ok = node.min_digits <= len(value) <= node.max_digits and value.isascii()
    if ok and node.pattern is not None:
        ok = re.fullmatch(node.pattern, value) is not None
    shown = MASK if node.sensitive and value else value
    st = replace(st, last_digits=shown)
    if ok:
        st = _with_var(st, node.var, value)
        if node.sensitive:
            st = replace(st, sensitive=st.sensitive | {node.var})
        return _enter(flow, st, node.next)
    st, failed = _fail(st, node.name)
    if failed > node.retries:
        return _enter(flow, st, node.fallback)
    st = replace(st, path=(*st.path, node.name))
    pre = (node.invalid_prompt,) if node.invalid_prompt and value else ()
    return st, GetDigits(node.prompt, node.timeout_ms, node.max_digits, pre, node.sensitive)


def _callback(flow: Flow, node: CallbackNode, st: IvrState, digits: str | None) -> tuple[IvrState, Command]:
    number = st.var("callback_number") or st.var("ani") or ""
    if st.phase == "offer":
        if digits != "1":
            return _enter(flow, replace(st, last_digits=digits or ""), node.declined)
        if not number:  # nothing to confirm: ask for the number
            return replace(st, phase="confirm", last_digits="1"), GetDigits(node.confirm_prompt, node.timeout_ms, 20)
        return (replace(st, phase="confirm", last_digits="1"),
                GetDigits(node.confirm_prompt, node.timeout_ms, 20, sensitive=False))
    # confirm: 1 = the number said is right; another number (4+ digits) replaces it
    if digits == "1" and number:
        return replace(st, done=True, last_digits="1"), RequestCallback(node.queue, number, node.done_prompt)
    if digits and len(digits) >= 4 and digits.isdigit():
        st = _with_var(replace(st, done=True, last_digits=digits), "callback_number", digits)
        return st, RequestCallback(node.queue, digits, node.done_prompt)
    st, failed = _fail(st, node.name)
    if failed > 2:
        return _enter(flow, st, node.declined)
    return st, GetDigits(node.confirm_prompt, node.timeout_ms, 20)


def _hours_exit(node: HoursNode, epoch: float) -> str:
    local = datetime.fromtimestamp(epoch, ZoneInfo(node.timezone))
    if local.date() in node.holidays:
        return node.holiday
    minute = local.hour * 60 + local.minute
    spans = node.week.get(local.weekday(), ())
    return node.open if any(a <= minute < b for a, b in spans) else node.closed


def step(flow: Flow, state: IvrState, inp: Input) -> tuple[IvrState, Command]:
    if state.done:
        raise StepError(flow.name, state.node, "the flow has ended")
    node = flow.nodes[state.node]
    st = state
    if isinstance(node, (PlayNode, SayNode)) and isinstance(inp, PlayDone):
        return _enter(flow, replace(st, last_digits=inp.digits), node.next)
    if isinstance(node, MenuNode) and isinstance(inp, DigitsInput):
        return _menu(flow, node, st, inp.value)
    if isinstance(node, CollectNode) and isinstance(inp, DigitsInput):
        return _collect(flow, node, st, inp.value)
    if isinstance(node, CallbackNode) and isinstance(inp, DigitsInput):
        return _callback(flow, node, st, inp.value)
    if isinstance(node, LookupNode) and isinstance(inp, LookupResult):
        st = replace(st, customer_id=inp.customer_id, tier=inp.tier, customer=inp.fields, last_digits="")
        if inp.several:
            return _enter(flow, st, node.several)
        if inp.customer_id is None:
            return _enter(flow, st, node.not_found)
        return _enter(flow, st, node.if_tier.get(inp.tier or "", node.found))
    if isinstance(node, HoursNode) and isinstance(inp, TimeIs):
        return _enter(flow, replace(st, last_digits=""), _hours_exit(node, inp.epoch))
    if isinstance(node, BranchNode) and isinstance(inp, QueueFigures):
        got = dict(st.figures)
        for q in _queues_needed(node, st):
            got[q] = tuple(sorted(inp.figures.get(q, {}).items()))
        st = replace(st, figures=tuple(sorted(got.items())), path=st.path[:-1])
        return _enter(flow, st, node.name)
    if isinstance(node, VoicemailNode) and isinstance(inp, Recorded):
        return _enter(flow, replace(st, recording=inp.path, last_digits=""), node.next)
    raise StepError(flow.name, state.node, f"input {type(inp).__name__} does not fit a {type(node).__name__}")
