"""Errors of the IVR.

Exception tree::

    FlowError            root of everything ivr raises; one problem of a flow file: file, node, field, reason
    ├── FlowErrors       every problem found in one file (``.errors``), raised by the loader
    └── StepError        the engine was driven with an input that does not fit the current node

``FlowError.line()`` (also its ``str``) is the one-line form ``cti ivr check`` prints:
``FILE: node ID: FIELD: REASON`` for a node's problem, ``FILE: FIELD: REASON`` for a top-level key
(``start``, ``nodes``...) and ``FILE: REASON`` for the file itself (unreadable, invalid TOML).
"""

from __future__ import annotations

from collections.abc import Sequence


class FlowError(Exception):
    def __init__(self, file: str, key: str, reason: str, *, node: str = "") -> None:
        self.file = file
        self.node = node
        self.field = key
        self.reason = reason
        super().__init__(self.line())

    @property
    def key(self) -> str:
        """The key path in the file (``nodes.ID.FIELD``, ``start``, or "" for the file itself)."""
        if self.node:
            return f"nodes.{self.node}.{self.field}" if self.field else f"nodes.{self.node}"
        return self.field

    def line(self) -> str:
        parts = [self.file]
        if self.node:
            parts.append(f"node {self.node}")
        if self.field:
            parts.append(self.field)
        return ": ".join([*parts, self.reason])

    def __str__(self) -> str:
        return self.line()


class FlowErrors(FlowError):
    """All the problems of one flow file; the first one is this error's own file/node/field/reason."""

    def __init__(self, errors: Sequence[FlowError]) -> None:
        if not errors:
            raise ValueError("FlowErrors needs at least one error")
        self.errors = tuple(errors)
        first = errors[0]
        super().__init__(first.file, first.field, first.reason, node=first.node)

    def __str__(self) -> str:
        more = len(self.errors) - 1
        return self.line() + (f" (and {more} more: run `cti ivr check`)" if more else "")


class StepError(FlowError):
    def __init__(self, flow: str, node: str, reason: str) -> None:
        super().__init__(flow, "", reason, node=node)
