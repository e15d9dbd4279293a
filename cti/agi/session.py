"""AgiSession: typed FastAGI commands over one connection.

``HANGUP`` may arrive at any time, also between a command and its reply; the session
notes it and still waits for the reply.  ``200 result=-1`` on a media command, a ``511``
or EOF raise :class:`AgiHangup`.  After a hangup at most one more command is sent
(``SET VARIABLE`` / ``GET VARIABLE`` still work on a dead channel); any further command
raises at once without touching the wire.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn, Protocol

from cti.agi.errors import AgiCommandError, AgiDeadChannel, AgiHangup, AgiTimeout
from cti.agi.protocol import Environment, Reply, format_command

log = logging.getLogger(__name__)


class ReplyChannel(Protocol):
    """What a session needs of its connection (the server's ``AgiConnection`` owns all of this state)."""

    @property
    def hangup_notice(self) -> bool:
        """Asterisk sent ``HANGUP`` (it may come at any time, also between a command and its reply)."""

    @property
    def eof(self) -> bool:
        """Asterisk closed the connection (EOF, reset or a protocol error): nothing more will come."""

    def send(self, line: bytes) -> None:
        """Write one command line."""

    def take(self) -> Reply | None:
        """The next reply already received, if any."""

    def wait(self, timeout: float) -> asyncio.Future[object]:
        """A future for the next reply: a :class:`Reply`, ``None`` (EOF) or a timeout marker."""

    def peername(self) -> object:
        """The transport's ``peername``."""


class AgiSession:
    """The commands of one FastAGI call, over a :class:`ReplyChannel` (the server's connection)."""

    def __init__(self, conn: ReplyChannel, env: Environment, *, command_timeout: float = 60.0) -> None:
        self._conn = conn
        self.environment = env
        self.env = env.as_dict()
        self.command_timeout = command_timeout
        self._hung_up = False  # a command's reply said so (result=-1 on media, 511, EOF)
        self._commands_after_hangup = 0
        self.commands_sent = 0
        self._stale = 0  # replies still owed to commands that timed out

    @property
    def hung_up(self) -> bool:
        """The channel is gone or left the AGI: Asterisk's ``HANGUP`` notice, or a reply that said so."""
        return self._hung_up or self._conn.hangup_notice

    @property
    def eof(self) -> bool:
        """The connection is closed: no command can be sent any more."""
        return self._conn.eof

    # -- core -------------------------------------------------------------------------

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def peer(self) -> tuple[str, int] | None:
        """``(host, port)`` the connection came from (the Asterisk server), if known."""
        peer = self._conn.peername()
        if isinstance(peer, tuple) and len(peer) >= 2:
            return str(peer[0]), int(peer[1])
        return None

    async def command(self, verb: str, *args: object, timeout: float | None = None) -> Reply:
        """Send one command and return its reply (typed errors for 510/511/520/hangup)."""
        return await self._exchange(verb, format_command(verb, *args), timeout, False)

    async def _exchange(self, verb: str, line: bytes, timeout: float | None, media: bool) -> Reply:
        """Write ``line``, wait for its reply; with ``media``, ``result=-1`` is a hangup."""
        if self.hung_up:
            if self._commands_after_hangup >= 1:
                raise AgiHangup("channel hung up; no more commands")
            self._commands_after_hangup += 1
        if self.eof:
            raise AgiHangup("connection closed")
        conn = self._conn
        conn.send(line)
        self.commands_sent += 1
        while True:
            reply = conn.take()
            if reply is None:
                try:
                    got = await conn.wait(timeout or self.command_timeout)
                except asyncio.CancelledError:
                    self._stale += 1  # the handler gave up on it; its reply is still owed
                    raise
                if not isinstance(got, Reply):
                    self._no_reply(verb, got, timeout)
                reply = got
            if not self._stale:
                break
            self._stale -= 1  # the late reply of a command that timed out: not this one's
        if reply.code == 200:
            if media and reply.result == "-1":
                self._hung_up = True
                raise AgiHangup(f"{verb} interrupted: hangup or redirect")
            return reply
        if reply.code == 511:
            self._hung_up = True
            raise AgiDeadChannel(reply.text)
        raise AgiCommandError(reply.code, reply.text)

    def _no_reply(self, verb: str, what: object, timeout: float | None) -> NoReturn:
        if what is None:
            self._hung_up = True
            raise AgiHangup("connection closed by Asterisk")
        self._stale += 1  # its reply may still come: the next command must not take it as its own
        raise AgiTimeout(f"no reply to {verb} within {timeout or self.command_timeout}s")

    async def _media(self, verb: str, *args: object, timeout: float | None = None) -> Reply:
        return await self._exchange(verb, format_command(verb, *args), timeout, True)

    # -- typed commands ---------------------------------------------------------------

    async def answer(self) -> None:
        await self._exchange("ANSWER", b"ANSWER\n", None, True)

    async def hangup(self, channel: str | None = None) -> None:
        line = format_command("HANGUP", channel) if channel else b"HANGUP\n"
        await self._exchange("HANGUP", line, None, False)
        self._hung_up = True

    async def stream_file(self, filename: str, escape_digits: str = "", offset: int | None = None) -> str:
        """Play a file; return the digit that interrupted it, or ''."""
        line = (format_command("STREAM FILE", filename, escape_digits) if offset is None
                else format_command("STREAM FILE", filename, escape_digits, offset))
        r = await self._exchange("STREAM FILE", line, None, True)
        return _digit(r.result)

    async def control_stream_file(self, filename: str, escape_digits: str = "", skip_ms: int = 3000,
                                  ffchar: str = "#", rewchr: str = "*", pausechr: str = "") -> str:
        args: list[object] = [filename, escape_digits, skip_ms, ffchar, rewchr]
        if pausechr:
            args.append(pausechr)
        r = await self._media("CONTROL STREAM FILE", *args)
        return chr(r.result_int) if r.result_int > 0 else ""

    async def get_data(self, filename: str, timeout_ms: int, max_digits: int) -> str | None:
        """Digits as a string; ``None`` when nothing was pressed before the timeout."""
        r = await self._exchange("GET DATA", format_command("GET DATA", filename, timeout_ms, max_digits),
                                 timeout_ms / 1000 + self.command_timeout, True)
        if r.data == "timeout" and r.result == "":
            return None
        return r.result

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        r = await self._media("WAIT FOR DIGIT", timeout_ms, timeout=timeout_ms / 1000 + self.command_timeout)
        return chr(r.result_int) if r.result_int > 0 else None

    async def say_digits(self, digits: str, escape_digits: str = "") -> str:
        if not digits.isdigit():
            raise ValueError("SAY DIGITS takes digits only")
        r = await self._media("SAY DIGITS", digits, escape_digits)
        return chr(r.result_int) if r.result_int > 0 else ""

    async def say_number(self, number: int, escape_digits: str = "") -> str:
        r = await self._media("SAY NUMBER", int(number), escape_digits)
        return chr(r.result_int) if r.result_int > 0 else ""

    async def set_variable(self, name: str, value: str) -> None:
        await self._exchange("SET VARIABLE", format_command("SET VARIABLE", name, value), None, False)

    async def get_variable(self, name: str) -> str | None:
        r = await self.command("GET VARIABLE", name)
        return r.data if r.result == "1" else None

    async def get_full_variable(self, expr: str, channel: str | None = None) -> str | None:
        args = (expr, channel) if channel else (expr,)
        r = await self.command("GET FULL VARIABLE", *args)
        return r.data if r.result == "1" else None

    async def exec(self, application: str, *options: str, timeout: float | None = None) -> str:
        """``EXEC app "opt1,opt2"``; returns the application's result.  ``timeout``: how long the
        application may run (a Dial or a Queue runs for as long as the call), default
        ``command_timeout``."""
        r = await self.command("EXEC", application, ",".join(options), timeout=timeout)
        if r.result == "-2":
            raise AgiCommandError(200, f"application {application} not found")
        return r.result

    async def set_music(self, on: bool, moh_class: str = "default") -> None:
        await self.command("SET MUSIC", "on" if on else "off", moh_class)

    async def record_file(self, filename: str, fmt: str = "wav", escape_digits: str = "#",
                          timeout_ms: int = -1, beep: bool = True, silence_s: int | None = None) -> Reply:
        args: list[object] = [filename, fmt, escape_digits, timeout_ms]
        if beep:
            args.append("beep")
        if silence_s is not None:
            args.append(f"s={silence_s}")
        # the recording may last timeout_ms (-1: until the escape digit or hangup)
        limit = None if timeout_ms < 0 else timeout_ms / 1000 + self.command_timeout
        return await self._media("RECORD FILE", *args, timeout=limit)

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, level)

    async def channel_status(self) -> int:
        r = await self.command("CHANNEL STATUS")
        return r.result_int

    async def noop(self, text: str = "") -> None:
        await self.command("NOOP", *((text,) if text else ()))


def _digit(result: str) -> str:
    """The digit a media command reports (its ASCII code), or '' for none."""
    if result == "0" or result == "":
        return ""
    try:
        n = int(result)
    except ValueError:
        return ""
    return chr(n) if n > 0 else ""
