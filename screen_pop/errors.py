"""Errors of the web edge.

Exception tree::

    ScreenPopError           root of everything screen_pop raises
    └── MessageError         a frame from a client that is not a valid message (remote error);
                             answered with an ``error`` frame, the socket stays open

HTTP failures (401, 403, 429) are aiohttp ``HTTPException`` responses built in
:mod:`screen_pop.auth`; errors of the ACD (anything with an ``error_id``) become ``error``
frames in :mod:`screen_pop.hub`.
"""

from __future__ import annotations


class ScreenPopError(Exception):
    error_id = "screen-pop-error"


class MessageError(ScreenPopError):
    """A malformed or unknown client frame."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message
