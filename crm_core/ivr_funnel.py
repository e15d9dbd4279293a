"""The IVR funnel (pure): from each call's IVR steps, how many callers reached each node, left at each
node (hung up there), and took each option (the keys pressed there; sensitive values arrive masked).

A call counts once per node it reached, however often it passed through (menu retries); its options
count every time. The node a caller left at is the last node before the runner's ``hangup`` step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HANGUP = "hangup"  # the runner's step when the caller hangs up in the IVR


@dataclass(slots=True)
class NodeFigures:
    reached: int = 0
    left: int = 0
    options: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class IvrFunnel:
    calls: int = 0
    hung_up: int = 0  # calls that ended in the IVR with the caller's hang-up
    nodes: dict[str, NodeFigures] = field(default_factory=dict)

    def add_path(self, steps: Sequence[tuple[str, str]]) -> None:
        """One call's IVR steps, in order: ``(node, digits)``."""
        if not steps:
            return
        self.calls += 1
        seen: set[str] = set()
        for node, digits in steps:
            if node == HANGUP:
                continue
            figures = self.nodes.setdefault(node, NodeFigures())
            if node not in seen:
                seen.add(node)
                figures.reached += 1
            if digits:
                figures.options[digits] += 1
        if steps[-1][0] == HANGUP:
            self.hung_up += 1
            before = [n for n, _ in steps if n != HANGUP]
            if before:
                self.nodes[before[-1]].left += 1

    def rows(self) -> list[dict[str, Any]]:
        """Per node, most reached first: ``node``, ``reached``, ``left``, ``options`` (key -> count)."""
        ordered = sorted(self.nodes.items(), key=lambda kv: (-kv[1].reached, kv[0]))
        return [{"node": n, "reached": f.reached, "left": f.left, "options": dict(f.options.most_common())}
                for n, f in ordered]
