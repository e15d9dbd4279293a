"""Declarative IVR flows: TOML files under ``config/ivr/``, validated as a graph at load (pure).

A flow file::

    start = "greeting"
    [nodes.greeting]
    kind = "play"          # play | menu | lookup | queue | hangup
    prompt = "hello-world"
    next = "menu"
    [nodes.menu]
    kind = "menu"
    prompt = "beep"
    timeout_ms = 3000
    max_digits = 1
    retries = 2            # failed attempts (timeout/invalid) allowed before on_fail
    on_timeout = "support"
    on_invalid = "menu"
    on_fail = "support"    # optional, defaults to on_timeout
    [nodes.menu.options.1]
    goto = "sales"         # shorthand: options = { "1" = "sales" }

Every error is a :class:`FlowError` naming the file, the key path and the reason.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.errors import FlowError

_DIGITS = re.compile(r"^[0-9*#]+$")
_NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class PlayNode:
    name: str
    prompt: str
    next: str


@dataclass(frozen=True, slots=True)
class MenuNode:
    name: str
    prompt: str
    options: Mapping[str, str]
    on_timeout: str
    on_invalid: str
    on_fail: str
    timeout_ms: int = 3000
    max_digits: int = 1
    retries: int = 2


@dataclass(frozen=True, slots=True)
class LookupNode:
    name: str
    next: str
    if_tier: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class QueueNode:
    name: str
    queue: str
    skills: tuple[str, ...]
    priority: int = 0


@dataclass(frozen=True, slots=True)
class HangupNode:
    name: str
    prompt: str | None = None


Node = PlayNode | MenuNode | LookupNode | QueueNode | HangupNode
TERMINAL = (QueueNode, HangupNode)


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    start: str
    nodes: Mapping[str, Node]
    source: str

    def node(self, name: str) -> Node:
        return self.nodes[name]


def edges(node: Node) -> list[tuple[str, str]]:
    """(key path below the node, target) for every outgoing edge."""
    if isinstance(node, PlayNode):
        return [("next", node.next)]
    if isinstance(node, LookupNode):
        return [("next", node.next)] + [(f"if_tier.{k}", v) for k, v in node.if_tier.items()]
    if isinstance(node, MenuNode):
        out = [(f"options.{d}.goto", t) for d, t in node.options.items()]
        return [*out, ("on_timeout", node.on_timeout), ("on_invalid", node.on_invalid), ("on_fail", node.on_fail)]
    return []


_KEYS: dict[str, set[str]] = {
    "play": {"kind", "prompt", "next"},
    "menu": {"kind", "prompt", "timeout_ms", "max_digits", "options", "on_timeout", "on_invalid", "on_fail", "retries"},
    "lookup": {"kind", "next", "if_tier"},
    "queue": {"kind", "queue", "skills", "priority"},
    "hangup": {"kind", "prompt"},
}


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, reason: str) -> FlowError:
        return FlowError(self.source, key, reason)

    def str_(self, d: Mapping[str, Any], key: str, path: str, required: bool = True) -> str | None:
        v = d.get(key)
        if v is None:
            if required:
                raise self.fail(f"{path}.{key}", "missing")
            return None
        if not isinstance(v, str) or not v:
            raise self.fail(f"{path}.{key}", "must be a non-empty string")
        return v

    def int_(self, d: Mapping[str, Any], key: str, path: str, default: int, lo: int, hi: int) -> int:
        v = d.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise self.fail(f"{path}.{key}", f"must be an integer in {lo}..{hi}")
        return v


def _parse_node(r: _Reader, name: str, d: Any) -> Node:
    path = f"nodes.{name}"
    if not _NODE_NAME.match(name):
        raise r.fail(path, "bad node name")
    if not isinstance(d, dict):
        raise r.fail(path, "must be a table")
    kind = d.get("kind")
    if kind not in _KEYS:
        raise r.fail(f"{path}.kind", f"unknown node kind {kind!r} (expected one of {', '.join(_KEYS)})")
    for k in d:
        if k not in _KEYS[kind]:
            raise r.fail(f"{path}.{k}", f"unknown key for a {kind} node")
    if kind == "play":
        prompt = r.str_(d, "prompt", path)
        nxt = r.str_(d, "next", path)
        assert prompt is not None and nxt is not None
        return PlayNode(name, prompt, nxt)
    if kind == "hangup":
        return HangupNode(name, r.str_(d, "prompt", path, required=False))
    if kind == "lookup":
        nxt = r.str_(d, "next", path)
        assert nxt is not None
        tiers = d.get("if_tier", {})
        if not isinstance(tiers, dict) or not all(isinstance(v, str) and v for v in tiers.values()):
            raise r.fail(f"{path}.if_tier", "must be a table of tier = node name")
        return LookupNode(name, nxt, dict(tiers))
    if kind == "queue":
        queue = r.str_(d, "queue", path)
        assert queue is not None
        skills = d.get("skills")
        if not skills:
            raise r.fail(f"{path}.skills", "a queue node needs at least one skill")
        if not isinstance(skills, list) or not all(isinstance(s, str) and s for s in skills):
            raise r.fail(f"{path}.skills", "must be a list of skill names")
        return QueueNode(name, queue, tuple(skills), r.int_(d, "priority", path, 0, -1000, 1000))
    # menu
    prompt = r.str_(d, "prompt", path)
    max_digits = r.int_(d, "max_digits", path, 1, 1, 32)
    opts = d.get("options")
    if not isinstance(opts, dict) or not opts:
        raise r.fail(f"{path}.options", "a menu needs at least one option")
    options: dict[str, str] = {}
    for digit, target in opts.items():
        okey = f"{path}.options.{digit}"
        if not _DIGITS.match(digit) or len(digit) > max_digits:
            raise r.fail(okey, f"bad digit key {digit!r} (0-9, *, #; at most {max_digits} long)")
        if isinstance(target, dict):
            t = r.str_(target, "goto", okey)
        elif isinstance(target, str) and target:
            t = target
        else:
            raise r.fail(okey, "must be a node name or a table with goto")
        assert t is not None
        options[digit] = t
    on_timeout = r.str_(d, "on_timeout", path)
    on_invalid = r.str_(d, "on_invalid", path)
    assert prompt is not None and on_timeout is not None and on_invalid is not None
    on_fail = r.str_(d, "on_fail", path, required=False) or on_timeout
    return MenuNode(
        name, prompt, options, on_timeout, on_invalid, on_fail,
        timeout_ms=r.int_(d, "timeout_ms", path, 3000, 100, 120_000),
        max_digits=max_digits, retries=r.int_(d, "retries", path, 2, 0, 20),
    )


def parse_flow(
    data: Mapping[str, Any], source: str, name: str | None = None,
    known_prompts: Collection[str] | None = None,
) -> Flow:
    r = _Reader(source)
    for k in data:
        if k not in ("start", "nodes", "name"):
            raise r.fail(k, "unknown top-level key")
    nodes_raw = data.get("nodes")
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        raise r.fail("nodes", "missing or empty")
    nodes = {n: _parse_node(r, n, d) for n, d in nodes_raw.items()}
    start = data.get("start")
    if not isinstance(start, str) or not start:
        raise r.fail("start", "missing")
    if start not in nodes:
        raise r.fail("start", f"unknown node {start!r}")
    flow = Flow(name or Path(source).stem, start, nodes, source)
    validate(flow, known_prompts)
    return flow


def validate(flow: Flow, known_prompts: Collection[str] | None = None) -> None:
    """Graph checks: targets exist, prompts known, every node reachable, no loop without an exit."""
    src = flow.source
    for n, node in flow.nodes.items():
        for key, target in edges(node):
            if target not in flow.nodes:
                raise FlowError(src, f"nodes.{n}.{key}", f"unknown node {target!r}")
        prompt = getattr(node, "prompt", None)
        if known_prompts is not None and prompt is not None and prompt not in known_prompts:
            raise FlowError(src, f"nodes.{n}.prompt", f"missing prompt {prompt!r}")
    seen = {flow.start}
    todo = [flow.start]
    while todo:
        for _, t in edges(flow.nodes[todo.pop()]):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    for n in flow.nodes:
        if n not in seen:
            raise FlowError(src, f"nodes.{n}", f"unreachable from start {flow.start!r}")
    # every node must be able to reach a terminal node (queue or hangup)
    can_exit = {n for n, node in flow.nodes.items() if isinstance(node, TERMINAL)}
    changed = True
    while changed:
        changed = False
        for n, node in flow.nodes.items():
            if n not in can_exit and any(t in can_exit for _, t in edges(node)):
                can_exit.add(n)
                changed = True
    for n in flow.nodes:
        if n not in can_exit:
            raise FlowError(src, f"nodes.{n}", "loop without an exit: no queue or hangup node is reachable")
    # a cycle through play/lookup nodes only never ends (menus bound loops with their retries)
    _check_unbounded_cycles(flow)


def _check_unbounded_cycles(flow: Flow) -> None:
    plain = {n for n, node in flow.nodes.items() if isinstance(node, (PlayNode, LookupNode))}
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        color[n] = 1
        stack.append(n)
        for key, t in edges(flow.nodes[n]):
            if t not in plain:
                continue
            if color.get(t) == 1:
                cycle = [*stack[stack.index(t):], t]
                raise FlowError(
                    flow.source, f"nodes.{n}.{key}", "loop without an exit: " + " -> ".join(cycle)
                )
            if t not in color:
                visit(t)
        stack.pop()
        color[n] = 2

    for n in sorted(plain):
        if n not in color:
            visit(n)


def load_flow(path: str | Path, known_prompts: Collection[str] | None = None) -> Flow:
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise FlowError(str(p), "", f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FlowError(str(p), "", f"invalid TOML: {exc}") from exc
    return parse_flow(data, str(p), p.stem, known_prompts)


def load_flows(directory: str | Path, known_prompts: Collection[str] | None = None) -> dict[str, Flow]:
    """Every ``*.toml`` in the directory, keyed by file stem (``main.toml`` -> ``ivr/main``).
    A missing directory, or one without flows, is an error: every caller would otherwise
    reach the IVR's fallback."""
    d = Path(directory)
    if not d.is_dir():
        raise FlowError(str(d), "", "IVR flows directory not found (ivr.flows_dir)")
    files = sorted(d.glob("*.toml"))
    if not files:
        raise FlowError(str(d), "", "no IVR flow (*.toml) in the directory (ivr.flows_dir)")
    return {p.stem: load_flow(p, known_prompts) for p in files}
