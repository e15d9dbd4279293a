"""The node types of a flow (frozen dataclasses) and what the graph checks need of each:
its exits (:func:`edges`), its prompts (:func:`prompts`) and whether it waits for the caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True, slots=True)
class PlayNode:
    name: str
    prompts: tuple[str, ...]
    next: str
    barge_in: bool = False  # a digit stops the prompts (and is kept as the node's digits)


@dataclass(frozen=True, slots=True)
class MenuNode:
    name: str
    prompt: str
    options: Mapping[str, str]  # digits -> node
    fallback: str  # after ``retries`` failed attempts
    timeout_ms: int = 3000
    max_digits: int = 1
    retries: int = 2
    invalid_prompt: str | None = None
    no_input_prompt: str | None = None
    on_timeout: str | None = None  # the 1.0 format's exits; without them the menu asks again
    on_invalid: str | None = None


@dataclass(frozen=True, slots=True)
class CollectNode:
    name: str
    prompt: str
    var: str  # the call variable the digits go into
    next: str
    fallback: str
    min_digits: int = 1
    max_digits: int = 16
    terminator: str = "#"
    pattern: str | None = None
    retries: int = 2
    timeout_ms: int = 5000
    sensitive: bool = False
    invalid_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class LookupNode:
    name: str
    found: str
    not_found: str
    several: str
    by: str = "ani"  # ani | digits
    var: str | None = None  # with by = "digits": the call variable holding them
    if_tier: Mapping[str, str] = field(default_factory=dict)  # 1.0 format: tier -> node


@dataclass(frozen=True, slots=True)
class HoursNode:
    name: str
    timezone: str
    week: Mapping[int, tuple[tuple[int, int], ...]]  # weekday (0 = Monday) -> (from, to) minutes
    holidays: frozenset[date]
    open: str
    closed: str
    holiday: str


@dataclass(frozen=True, slots=True)
class Condition:
    var: str  # call.X | customer.X | queue.NAME.X
    op: str
    value: str | float | tuple[str, ...] | None
    next: str


@dataclass(frozen=True, slots=True)
class BranchNode:
    name: str
    when: tuple[Condition, ...]
    default: str


@dataclass(frozen=True, slots=True)
class SetNode:
    name: str
    vars: Mapping[str, str]
    next: str


@dataclass(frozen=True, slots=True)
class QueueNode:
    name: str
    queue: str
    skills: tuple[str, ...]
    priority: int = 0
    min_levels: Mapping[str, int] = field(default_factory=dict)
    preferred_agent: str | None = None  # an agent id, or "account_manager" (the customer's)


@dataclass(frozen=True, slots=True)
class CallbackNode:
    name: str
    queue: str
    prompt: str  # the offer: 1 = call me back
    confirm_prompt: str  # your number is ...: 1 = yes, or key another number then #
    declined: str
    done_prompt: str | None = None
    timeout_ms: int = 5000


@dataclass(frozen=True, slots=True)
class VoicemailNode:
    name: str
    prompt: str
    next: str
    max_s: int = 120


@dataclass(frozen=True, slots=True)
class TransferNode:
    name: str
    number: str | None = None
    flow: str | None = None


@dataclass(frozen=True, slots=True)
class SayNode:
    name: str
    var: str
    next: str
    say_as: str = "digits"  # digits | number


@dataclass(frozen=True, slots=True)
class HangupNode:
    name: str
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class GotoNode:
    name: str
    flow: str


Node = (PlayNode | MenuNode | CollectNode | LookupNode | HoursNode | BranchNode | SetNode | QueueNode
        | CallbackNode | VoicemailNode | TransferNode | SayNode | HangupNode | GotoNode)

TYPE_OF: dict[type, str] = {
    PlayNode: "play", MenuNode: "menu", CollectNode: "collect", LookupNode: "lookup", HoursNode: "hours",
    BranchNode: "branch", SetNode: "set", QueueNode: "queue", CallbackNode: "callback",
    VoicemailNode: "voicemail", TransferNode: "transfer", SayNode: "say", HangupNode: "hangup", GotoNode: "goto",
}
# nodes that end the flow (or leave it): every node must be able to reach one
TERMINAL = (QueueNode, HangupNode, TransferNode, GotoNode, CallbackNode)


def edges(node: Node) -> list[tuple[str, str]]:
    """(field, target) for every exit of the node."""
    if isinstance(node, (PlayNode, SetNode, SayNode, VoicemailNode)):
        return [("next", node.next)]
    if isinstance(node, MenuNode):
        out = [(f"options.{d}", t) for d, t in node.options.items()]
        out += [(k, t) for k, t in (("on_timeout", node.on_timeout), ("on_invalid", node.on_invalid)) if t]
        return [*out, ("fallback", node.fallback)]
    if isinstance(node, CollectNode):
        return [("next", node.next), ("fallback", node.fallback)]
    if isinstance(node, LookupNode):
        out = [("found", node.found), ("not_found", node.not_found), ("several", node.several)]
        return out + [(f"if_tier.{k}", v) for k, v in node.if_tier.items()]
    if isinstance(node, HoursNode):
        return [("open", node.open), ("closed", node.closed), ("holiday", node.holiday)]
    if isinstance(node, BranchNode):
        return [(f"when.{i}.next", c.next) for i, c in enumerate(node.when)] + [("default", node.default)]
    if isinstance(node, CallbackNode):
        return [("declined", node.declined)]
    return []


def prompts(node: Node) -> list[tuple[str, str]]:
    """(field, prompt) for every sound file the node plays."""
    if isinstance(node, PlayNode):
        return [(f"prompts.{i}" if len(node.prompts) > 1 else "prompts", p) for i, p in enumerate(node.prompts)]
    names = ("prompt", "invalid_prompt", "no_input_prompt", "confirm_prompt", "done_prompt")
    out = []
    for n in names:
        v = getattr(node, n, None)
        if isinstance(v, str) and v:
            out.append((n, v))
    return out


def waits_for_input(node: Node) -> bool:
    """True for a node that reads the caller's keys (a loop through one is the caller's choice)."""
    if isinstance(node, PlayNode):
        return node.barge_in
    return isinstance(node, (MenuNode, CollectNode, CallbackNode))
