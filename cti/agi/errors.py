"""Errors of the FastAGI layer.

Exception tree::

    AgiError                    root of everything cti.agi raises
    ├── AgiHangup               the channel hung up (HANGUP notice, ``200 result=-1``, EOF)
    │   └── AgiDeadChannel      a command answered ``511`` (dead channel)
    ├── AgiProtocolError        the peer sent something that is not AGI (local parse failure)
    │   └── AgiInjectionError   we refused to send an argument with a line break or NUL
    ├── AgiCommandError         a command answered an error code (510, 520, ...): ``.code``, ``.text``
    └── AgiTimeout              the peer did not answer in time

``200 result=-1`` means hung up *or redirected*: callers cannot tell which, so both raise
:class:`AgiHangup`; the AMI events say what happened.
"""

from __future__ import annotations


class AgiError(Exception):
    """Root of the FastAGI errors."""


class AgiHangup(AgiError):
    """The channel went away (hangup or redirect) during the session."""


class AgiDeadChannel(AgiHangup):
    """A command was refused because the channel is dead (511)."""


class AgiProtocolError(AgiError):
    """The peer broke the AGI protocol (bad line, oversized buffer, ...)."""


class AgiInjectionError(AgiProtocolError):
    """An argument would have broken the AGI line framing."""


class AgiCommandError(AgiError):
    """An AGI command answered with an error code."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"AGI command failed: {code} {text}")
        self.code = code
        self.text = text


class AgiTimeout(AgiError):
    """No reply from the peer within the allowed time."""
