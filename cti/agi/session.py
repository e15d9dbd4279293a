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

from cti.agi.errors import AgiCommandError, AgiDeadChannel, AgiHangup, AgiTimeout
from cti.agi.protocol import AgiParser, Environment, HangupNotice, Reply, format_command

log = logging.getLogger(__name__)

READ_CHUNK = 4096


class AgiSession:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: AgiParser,
        env: Environment,
        *,
        command_timeout: float = 60.0,
        pending: list[Reply | HangupNotice] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = parser
        self.environment = env
        self.env = env.as_dict()
        self.command_timeout = command_timeout
        self._pending: list[Reply | HangupNotice] = list(pending or [])
        self.hung_up = False
        self._commands_after_hangup = 0
        self.eof = False
        self.commands_sent = 0

    # -- core -------------------------------------------------------------------------

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "")

    async def _next(self) -> Reply | HangupNotice | None:
        while not self._pending:
            if self.eof:
                return None
            try:
                data = await self._reader.read(READ_CHUNK)
            except (ConnectionError, OSError):
                data = b""  # a reset is a hangup like any other EOF
            if not data:
                self.eof = True
                return None
            for ev in self._parser.feed(data):
                if isinstance(ev, Environment):
                    continue
                self._pending.append(ev)
        return self._pending.pop(0)

    async def command(self, verb: str, *args: object, timeout: float | None = None) -> Reply:
        """Send one command and return its reply (typed errors for 510/511/520/hangup)."""
        if self.hung_up:
            if self._commands_after_hangup >= 1:
                raise AgiHangup("channel hung up; no more commands")
            self._commands_after_hangup += 1
        if self.eof:
            raise AgiHangup("connection closed")
        line = format_command(verb, *args)
        self._writer.write(line)
        self.commands_sent += 1
        try:
            async with asyncio.timeout(timeout or self.command_timeout):  # no extra task, unlike wait_for
                reply = await self._await_reply()
        except TimeoutError:
            raise AgiTimeout(f"no reply to {verb} within {timeout or self.command_timeout}s") from None
        if reply.code == 200:
            return reply
        if reply.code == 511:
            self.hung_up = True
            raise AgiDeadChannel(reply.text)
        raise AgiCommandError(reply.code, reply.text)

    async def _await_reply(self) -> Reply:
        while True:
            ev = await self._next()
            if ev is None:
                self.hung_up = True
                raise AgiHangup("connection closed by Asterisk")
            if isinstance(ev, HangupNotice):
                self.hung_up = True
                continue
            return ev

    async def _media(self, verb: str, *args: object, timeout: float | None = None) -> Reply:
        r = await self.command(verb, *args, timeout=timeout)
        if r.result == "-1":
            self.hung_up = True
            raise AgiHangup(f"{verb} interrupted: hangup or redirect")
        return r

    # -- typed commands ---------------------------------------------------------------

    async def answer(self) -> None:
        await self._media("ANSWER")

    async def hangup(self, channel: str | None = None) -> None:
        args = (channel,) if channel else ()
        await self.command("HANGUP", *args)
        self.hung_up = True

    async def stream_file(self, filename: str, escape_digits: str = "", offset: int | None = None) -> str:
        """Play a file; return the digit that interrupted it, or ''."""
        args: list[object] = [filename, escape_digits]
        if offset is not None:
            args.append(offset)
        r = await self._media("STREAM FILE", *args)
        return chr(r.result_int) if r.result_int > 0 else ""

    async def control_stream_file(self, filename: str, escape_digits: str = "", skip_ms: int = 3000,
                                  ffchar: str = "#", rewchr: str = "*", pausechr: str = "") -> str:
        args: list[object] = [filename, escape_digits, skip_ms, ffchar, rewchr]
        if pausechr:
            args.append(pausechr)
        r = await self._media("CONTROL STREAM FILE", *args)
        return chr(r.result_int) if r.result_int > 0 else ""

    async def get_data(self, filename: str, timeout_ms: int, max_digits: int) -> str | None:
        """Digits as a string; ``None`` when nothing was pressed before the timeout."""
        r = await self._media("GET DATA", filename, timeout_ms, max_digits,
                              timeout=timeout_ms / 1000 + self.command_timeout)
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
        await self.command("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        r = await self.command("GET VARIABLE", name)
        return r.data if r.result == "1" else None

    async def get_full_variable(self, expr: str, channel: str | None = None) -> str | None:
        args = (expr, channel) if channel else (expr,)
        r = await self.command("GET FULL VARIABLE", *args)
        return r.data if r.result == "1" else None

    async def exec(self, application: str, *options: str) -> str:
        """``EXEC app "opt1,opt2"``; returns the application's result."""
        r = await self.command("EXEC", application, ",".join(options))
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
        return await self._media("RECORD FILE", *args)

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, level)

    async def channel_status(self) -> int:
        r = await self.command("CHANNEL STATUS")
        return r.result_int

    async def noop(self, text: str = "") -> None:
        await self.command("NOOP", *((text,) if text else ()))
