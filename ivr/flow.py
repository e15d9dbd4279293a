"""Declarative IVR flows: one TOML file a flow under ``config/ivr/``, validated as a graph at load (pure
but for reading the file and, when sound directories are given, looking for the prompts).

A flow file (every node type and its fields: ``ivr/schema.py``)::

    start = "greeting"
    [nodes.greeting]
    type = "play"                # play menu collect lookup hours branch set queue callback
    prompts = ["hello-world"]    # voicemail transfer say hangup goto
    barge_in = true
    next = "who"
    [nodes.who]
    type = "lookup"
    by = "ani"
    found = "tier"
    not_found = "menu"
    several = "menu"
    [nodes.menu]
    type = "menu"
    prompt = "main-menu"
    options = { "1" = "billing", "2" = "support" }
    retries = 2
    fallback = "support"

The 1.0 format (``kind`` for ``type``, ``prompt`` on play, ``next``/``if_tier`` on lookup,
``on_timeout``/``on_invalid``/``on_fail`` on menu) still loads.

Every problem is a :class:`FlowError` naming the file, the node id and the field; a file with problems
raises :class:`FlowErrors` holding all of them.  The checks: fields (type, range, regex, time zone,
hours), exits naming existing nodes, every node reachable from ``start``, every node able to reach an
end (queue, hangup, transfer, goto, callback), no cycle of nodes none of which waits for the caller's
keys, prompts present in the sound directories when some are given, goto/transfer flows known.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.errors import FlowError, FlowErrors
from ivr.nodes import (
    TERMINAL,
    BranchNode,
    CallbackNode,
    CollectNode,
    Condition,
    GotoNode,
    HangupNode,
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
    edges,
    prompts,
    waits_for_input,
)
from ivr.schema import parse_node

__all__ = [
    "TERMINAL", "BranchNode", "CallbackNode", "CollectNode", "Condition", "Flow", "GotoNode", "HangupNode",
    "HoursNode", "LookupNode", "MenuNode", "Node", "PlayNode", "QueueNode", "SayNode", "SetNode",
    "TransferNode", "VoicemailNode", "check_file", "edges", "load_flow", "load_flows", "parse_flow",
    "prompt_finder", "validate",
]

# the file extensions Asterisk plays a prompt from
SOUND_FORMATS = ("wav", "WAV", "wav16", "gsm", "ulaw", "alaw", "sln", "sln16", "sln48", "g722", "g729",
                 "ogg", "siren7", "siren14")


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    start: str
    nodes: Mapping[str, Node]
    source: str

    def node(self, name: str) -> Node:
        return self.nodes[name]


def prompt_finder(sounds_dirs: Sequence[str | Path]) -> Collection[str]:
    """The prompts a set of sound directories holds (``foo`` for ``foo.wav``, ``digits/1`` for
    ``digits/1.gsm`` ...), to pass as ``known_prompts``."""
    found: set[str] = set()
    for d in sounds_dirs:
        root = Path(d)
        if not root.is_dir():
            continue
        for p in root.rglob("*"):
            if p.is_file() and p.suffix[1:] in SOUND_FORMATS:
                found.add(p.relative_to(root).with_suffix("").as_posix())
    return found


def parse_flow(
    data: Mapping[str, Any], source: str, name: str | None = None,
    known_prompts: Collection[str] | None = None, known_flows: Collection[str] | None = None,
) -> Flow:
    """Build and validate a flow; raises :class:`FlowErrors` with every problem found."""
    errors = [FlowError(source, k, "unknown top-level key") for k in data
              if k not in ("start", "nodes", "name", "description")]
    nodes_raw = data.get("nodes")
    nodes: dict[str, Node] = {}
    broken: set[str] = set()
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        errors.append(FlowError(source, "nodes", "missing or empty"))
    else:
        for n, d in nodes_raw.items():
            node = parse_node(source, n, d, errors)
            if node is None:
                broken.add(n)
            else:
                nodes[n] = node
    start = data.get("start")
    if not isinstance(start, str) or not start:
        errors.append(FlowError(source, "start", "missing" if start is None else "must be a node id"))
        start = None
    elif start not in nodes and start not in broken:
        errors.append(FlowError(source, "start", f"unknown node {start!r}"))
        start = None
    flow = Flow(name or Path(source).stem, start or "", nodes, source)
    errors += validate(flow, known_prompts, known_flows, broken=broken, check_graph=start is not None)
    if errors:
        raise FlowErrors(errors)
    return flow


def validate(
    flow: Flow, known_prompts: Collection[str] | None = None, known_flows: Collection[str] | None = None,
    *, broken: Collection[str] = (), check_graph: bool = True,
) -> list[FlowError]:
    """The graph checks; ``broken``: nodes that could not be built (their exits are unknown, so
    they count as reaching everything)."""
    src = flow.source
    errs: list[FlowError] = []
    for n, node in flow.nodes.items():
        for fld, target in edges(node):
            if target not in flow.nodes and target not in broken:
                errs.append(FlowError(src, fld, f"unknown node {target!r}", node=n))
        if known_prompts is not None:
            for fld, p in prompts(node):
                if p not in known_prompts:
                    errs.append(FlowError(src, fld, f"prompt {p!r} not found in the sound directories", node=n))
        target_flow = node.flow if isinstance(node, (GotoNode, TransferNode)) else None
        if known_flows is not None and target_flow is not None and target_flow not in known_flows:
            errs.append(FlowError(src, "flow", f"unknown flow {target_flow!r} (no {target_flow}.toml beside "
                                               "this file)", node=n))
    if not check_graph or broken:
        return errs  # a node that could not be built hides its exits: reachability would mislead
    succ = {n: [t for _, t in edges(node) if t in flow.nodes] for n, node in flow.nodes.items()}
    seen, todo = {flow.start}, [flow.start]
    while todo:
        for t in succ[todo.pop()]:
            if t not in seen:
                seen.add(t)
                todo.append(t)
    errs += [FlowError(src, "", f"unreachable from start {flow.start!r}", node=n)
             for n in flow.nodes if n not in seen]
    can_end = {n for n, node in flow.nodes.items() if isinstance(node, TERMINAL)}
    changed = True
    while changed:
        changed = False
        for n in flow.nodes:
            if n not in can_end and any(t in can_end for t in succ[n]):
                can_end.add(n)
                changed = True
    errs += [FlowError(src, "", "no way out: no queue, hangup, transfer, goto or callback node is reachable",
                       node=n) for n in flow.nodes if n not in can_end]
    errs += _silent_cycles(flow, succ)
    return errs


def _silent_cycles(flow: Flow, succ: Mapping[str, Iterable[str]]) -> list[FlowError]:
    """Cycles of nodes none of which waits for the caller's keys: the call would spin forever."""
    plain = {n for n, node in flow.nodes.items() if not waits_for_input(node)}
    color: dict[str, int] = {}
    stack: list[str] = []
    found: list[FlowError] = []

    def visit(n: str) -> None:
        color[n] = 1
        stack.append(n)
        for fld, t in edges(flow.nodes[n]):
            if t not in plain:
                continue
            if color.get(t) == 1:
                cycle = [*stack[stack.index(t):], t]
                found.append(FlowError(flow.source, fld, "loop that never waits for input: " + " -> ".join(cycle),
                                       node=n))
            elif t not in color:
                visit(t)
        stack.pop()
        color[n] = 2

    for n in sorted(plain):
        if n not in color:
            visit(n)
    return found


def _read(p: Path) -> dict[str, Any]:
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise FlowErrors([FlowError(str(p), "", f"cannot read: {exc.strerror or exc}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise FlowErrors([FlowError(str(p), "", f"invalid TOML: {exc}")]) from exc


def _siblings(p: Path) -> set[str]:
    return {q.stem for q in p.parent.glob("*.toml")} if p.parent.is_dir() else set()


def load_flow(path: str | Path, known_prompts: Collection[str] | None = None,
              known_flows: Collection[str] | None = None) -> Flow:
    """One flow file; ``goto``/``transfer`` flows are checked against the ``*.toml`` beside it
    unless ``known_flows`` is given."""
    p = Path(path)
    data = _read(p)
    return parse_flow(data, str(p), p.stem, known_prompts, _siblings(p) if known_flows is None else known_flows)


def check_file(path: str | Path, sounds_dirs: Sequence[str | Path] = ()) -> list[FlowError]:
    """Every problem of one flow file (empty when it is good)."""
    known = prompt_finder(sounds_dirs) if sounds_dirs else None
    try:
        load_flow(path, known)
    except FlowErrors as exc:
        return list(exc.errors)
    return []


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
    stems = {p.stem for p in files}
    return {p.stem: load_flow(p, known_prompts, stems) for p in files}
