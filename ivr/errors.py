"""Errors of the IVR.

Exception tree::

    FlowError            root of everything ivr raises; a bad flow file names file, key path, reason
    └── StepError        the engine was driven with an input that does not fit the current node
"""

from __future__ import annotations


class FlowError(Exception):
    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}" if key else f"{file}: {reason}")
        self.file = file
        self.key = key
        self.reason = reason


class StepError(FlowError):
    def __init__(self, flow: str, node: str, reason: str) -> None:
        super().__init__(flow, f"nodes.{node}", reason)
