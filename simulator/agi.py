"""The simulator's FastAGI *client* side: Asterisk's res_agi as seen on the wire.

Environment block in Asterisk 22's key order, replies in the forms of the traces (F4), the
``HANGUP`` rules of F1-F3: with ``AGIEXITONHANGUP=yes`` an interruption gives ``200 result=-1``,
``HANGUP``, ``HANGUP`` and a close; without it one ``HANGUP`` and "dead" mode (511 for media
commands) until the server closes; every session ends with ``HANGUP`` after the server's close.

``FastAgiClient`` is what the dialplan's ``AGI()`` runs (it fits ``dialplan.AgiClient``): one
``AgiSession`` per call of the application, on the channel core it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket

from cti.agi.protocol import format_env, split_command

from . import events as ev
from .model import INTERRUPT, Channel, Interrupt, resolve
from .switch import Switch

log = logging.getLogger(__name__)

MAX_LINE = 8192
R511 = b"511 Command Not Permitted on a dead channel or intercept routine\n"
R510 = b"510 Invalid or unknown command\n"
USAGE_WAIT_FOR_DIGIT = (
    "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a DTMF "
    "digit. Returns <literal>-1</literal> on channel failure, <literal>0</literal> if no digit is "
    "received in the timeout, or the numerical value of the ascii of the digit if one is received. "
    "Use <literal>-1</literal> for the <replaceable>timeout</replaceable> value if you desire the "
    "call to block indefinitely."
)
MEDIA = {"STREAM FILE", "CONTROL STREAM FILE", "GET DATA", "WAIT FOR DIGIT", "CHANNEL STATUS",
         "SAY DIGITS", "SAY NUMBER", "RECORD FILE", "SET MUSIC", "ANSWER", "EXEC"}
VERBS = ("CONTROL STREAM FILE", "GET FULL VARIABLE", "CHANNEL STATUS", "WAIT FOR DIGIT",
         "STREAM FILE", "SET VARIABLE", "GET VARIABLE", "SAY DIGITS", "SAY NUMBER", "SET MUSIC",
         "RECORD FILE", "GET DATA", "ANSWER", "VERBOSE", "HANGUP", "EXEC", "NOOP")
_VAR = re.compile(r"\$\{([^}]*)\}")


def usage(text: str) -> bytes:
    return f"520-Invalid command syntax.  Proper usage follows:\n{text}\n520 End of proper usage.\n".encode()


class FastAgiClient:
    """Asterisk's side of FastAGI for every ``AGI(agi://...)`` of the dialplan."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch

    async def run(self, ch: Channel, script: str, request: str) -> str:
        """One session; -> the AGISTATUS value (SUCCESS, HANGUP or FAILURE)."""
        return await AgiSession(self.switch, ch, script, request).run()


class AgiSession:
    """One FastAGI connection for one ``AGI()`` call of a channel."""

    def __init__(self, switch: Switch, ch: Channel, script: str, request: str) -> None:
        self.switch, self.ch, self.script, self.request = switch, ch, script, request
        self.dead = False
        self.saw_hangup = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read: asyncio.Task[bytes] | None = None

    def env(self) -> list[tuple[str, str]]:
        ch = self.ch
        return [
            ("agi_network", "yes"), ("agi_network_script", self.script), ("agi_request", self.request),
            ("agi_channel", ch.name), ("agi_language", ch.language), ("agi_type", "Local"),
            ("agi_uniqueid", ch.uniqueid), ("agi_version", "22.10.1"),
            ("agi_callerid", ch.cid_num if ch.cid_num != "<unknown>" else "unknown"),
            ("agi_calleridname", ch.cid_name if ch.cid_name != "<unknown>" else "unknown"),
            ("agi_callingpres", "0"), ("agi_callingani2", "0"), ("agi_callington", "0"),
            ("agi_callingtns", "0"), ("agi_dnid", "unknown"), ("agi_rdnis", "unknown"),
            ("agi_context", ch.context), ("agi_extension", ch.exten),
            ("agi_priority", str(ch.priority)), ("agi_enhanced", "0.0"),
            ("agi_accountcode", ch.accountcode), ("agi_threadid", str(ch.meta["threadid"])),
        ]

    async def _write(self, data: bytes) -> None:
        w = self._writer
        if w is None or w.is_closing():
            return
        with contextlib.suppress(ConnectionError, OSError):
            w.write(data)
            await w.drain()

    def _last(self, data: bytes) -> None:
        """Asterisk's last words on the session: ``data`` and the FIN in one segment (corked, then
        shut down), so that the server reads the close with them, in the same read, and never
        sends another command into a closing socket (which would draw a reset)."""
        w = self._writer
        if w is None or w.is_closing():
            return
        sock = w.get_extra_info("socket")
        cork = getattr(socket, "TCP_CORK", None)
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if sock is not None and cork is not None:
                sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
            w.write(data)
            if w.can_write_eof():
                w.write_eof()

    async def _close(self) -> None:
        if self._read is not None and not self._read.done():
            self._read.cancel()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()

    async def run(self) -> str:
        """Run the session; returns the AGISTATUS value."""
        cfg = self.switch.config
        try:
            self._reader, self._writer = await asyncio.open_connection(
                cfg.agi_host, cfg.agi_port, local_addr=(cfg.agi_source, 0) if cfg.agi_source else None)
        except OSError:
            log.warning("FastAGI %s:%s unreachable for %s", cfg.agi_host, cfg.agi_port, self.ch.name)
            return "FAILURE"
        try:
            await self._write(format_env(self.env()))
            return await self._loop()
        finally:
            await self._close()

    async def _next(self) -> bytes | Interrupt:
        assert self._reader is not None
        if self._read is None:
            self._read = asyncio.ensure_future(self._reader.readline())
        if self.ch.interrupted and not self.saw_hangup:
            return INTERRUPT
        self.ch.wake.clear()
        waiter = asyncio.ensure_future(self.ch.wake.wait())
        try:
            await asyncio.wait({self._read, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._read.done():
            task, self._read = self._read, None
            try:
                return task.result()
            except (ConnectionError, OSError, ValueError):
                return b""
        return INTERRUPT

    async def _loop(self) -> str:
        exit_on_hangup = self.ch.var("AGIEXITONHANGUP").lower() in ("yes", "true", "1")
        while True:
            got = await self._next()
            if got is INTERRUPT:
                self.saw_hangup = True
                if exit_on_hangup:
                    self._last(b"HANGUP\nHANGUP\n")
                    return "HANGUP"
                await asyncio.sleep(self.switch.scale(0.042))
                await self._write(b"HANGUP\n")
                self.dead = True
                continue
            assert isinstance(got, bytes)
            if not got:  # the server closed (or half-closed)
                self._last(b"HANGUP\n")
                return "HANGUP" if self.saw_hangup else "SUCCESS"
            if len(got) > MAX_LINE:
                await self._write(R510)
                continue
            line = got.decode("utf-8", "replace").rstrip("\r\n")
            reply = await self.command(line)
            if exit_on_hangup and self.ch.interrupted and not self.saw_hangup:
                # Asterisk writes the interrupted command's result and both HANGUP lines at once
                self.saw_hangup = True
                self._last(reply + b"HANGUP\nHANGUP\n")
                return "HANGUP"
            await self._write(reply)

    # ------------------------------------------------------------------ commands

    async def command(self, line: str) -> bytes:
        up = line.upper()
        verb = next((v for v in VERBS if up == v or up.startswith(v + " ")), None)
        if verb is None:
            return R510
        args = split_command(line)[len(verb.split()):]
        ch = self.ch
        if self.dead and verb in MEDIA and verb not in ("EXEC",):
            return R511
        if verb == "NOOP":
            return b"200 result=0\n"
        if verb == "VERBOSE":
            return b"200 result=1\n"
        if verb == "SET VARIABLE":
            if len(args) < 2:
                return usage("Usage: SET VARIABLE <variablename> <value>")
            self.switch.set_var(ch, args[0], args[1])
            return b"200 result=1\n"
        if verb == "GET VARIABLE":
            if not args:
                return usage("Usage: GET VARIABLE <variablename>")
            val = resolve(ch, args[0])
            return b"200 result=0\n" if val is None else f"200 result=1 ({val})\n".encode()
        if verb == "GET FULL VARIABLE":
            if not args:
                return usage("Usage: GET FULL VARIABLE <expression> [<channelname>]")
            val = _VAR.sub(lambda m: resolve(ch, m.group(1)) or "", args[0])
            return f"200 result=1 ({val})\n".encode()
        if verb == "HANGUP":  # ast_softhangup(EXPLICIT): no cause is set, so the Hangup shows 0
            target = self.switch.find(args[0]) if args else ch
            if target is None or target.hungup:
                return b"200 result=-1\n"
            target.meta["hangupsource"] = "dialplan/agi"
            self.switch.emit(ev.soft_hangup_request(target, ev.SOFTHANGUP_EXPLICIT))
            self.switch.request_hangup(target, None)
            return b"200 result=1\n"
        if verb == "ANSWER":
            self.switch.answer(ch)
            return b"200 result=0\n"
        if verb == "CHANNEL STATUS":
            return f"200 result={ch.state}\n".encode()
        if verb == "EXEC":
            if self.dead:
                return b"200 result=-2\n"
            return b"200 result=0\n"
        if verb == "SET MUSIC":
            on = bool(args) and args[0].lower() == "on"
            self.switch.emit(ev.moh_start(ch, args[1] if len(args) > 1 else "default") if on else ev.moh_stop(ch))
            return b"200 result=0\n"
        if verb in ("STREAM FILE", "CONTROL STREAM FILE"):
            if len(args) < 2:
                return usage(f"Usage: {verb} <filename> <escape_digits> [<offset>]")
            return await self.stream(args[0], args[1])
        if verb == "GET DATA":
            if not args:
                return usage("Usage: GET DATA <file to be streamed> [<timeout>] [<maxdigits>]")
            return await self.get_data(args)
        if verb == "WAIT FOR DIGIT":
            if not args:
                return usage(USAGE_WAIT_FOR_DIGIT)
            return await self.wait_for_digit(int(args[0]) if args[0].lstrip("-").isdigit() else 0)
        if verb in ("SAY DIGITS", "SAY NUMBER"):
            if len(args) < 2:
                return usage(f"Usage: {verb} <number> <escape_digits>")
            digit, _, intr = await self.play(0.6 * len(args[0]), args[1])
            if intr:
                return b"200 result=-1\n"
            return f"200 result={ord(digit) if digit else 0}\n".encode()
        if verb == "RECORD FILE":
            if len(args) < 4:
                return usage("Usage: RECORD FILE <filename> <format> <escape_digits> <timeout> "
                             "[<offset samples>] [<BEEP>] [<s=silence>]")
            timeout = int(args[3]) / 1000 if args[3].lstrip("-").isdigit() else 0
            digit, played, intr = await self.play(timeout if timeout > 0 else 3600, args[2])
            pos = int(played * 8000)
            if intr:
                return f"200 result=-1 (hangup) endpos={pos}\n".encode()
            if digit:
                return f"200 result={ord(digit)} (dtmf) endpos={pos}\n".encode()
            return f"200 result=0 (timeout) endpos={pos}\n".encode()
        return R510

    async def play(self, seconds: float, escape: str) -> tuple[str | None, float, bool]:
        """Block for ``seconds`` (scaled); -> (escape digit, seconds played, interrupted)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + self.switch.scale(seconds)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None, seconds, False
            digit = await self.ch.wait_digit(remaining)
            played = (loop.time() - start) / max(self.switch.config.time_factor, 1e-9)
            if digit is INTERRUPT:
                return None, min(played, seconds), True
            if isinstance(digit, str) and digit in escape:
                return digit, min(played, seconds), False

    async def stream(self, name: str, escape: str) -> bytes:
        samples = self.switch.sound_samples(name)
        digit, played, intr = await self.play(samples / 8000, escape)
        self.switch.cel(self.ch, "STREAM_END")  # res_agi opens the stream itself: no STREAM_BEGIN
        if intr:
            self.switch.set_var(self.ch, "PLAYBACKSTATUS", "FAILED")
            return f"200 result=-1 endpos={int(played * 8000)}\n".encode()
        self.switch.set_var(self.ch, "PLAYBACKSTATUS", "SUCCESS")
        if digit:
            return f"200 result={ord(digit)} endpos={int(played * 8000)}\n".encode()
        return f"200 result=0 endpos={samples}\n".encode()

    async def get_data(self, args: list[str]) -> bytes:
        timeout = int(args[1]) / 1000 if len(args) > 1 and args[1].isdigit() and int(args[1]) > 0 else 6.0
        maxdigits = int(args[2]) if len(args) > 2 and args[2].isdigit() else 1024
        digits = ""
        samples = self.switch.sound_samples(args[0])
        self.switch.stream_begin(self.ch, args[0])
        digit, _, intr = await self.play(samples / 8000, "0123456789*#")
        self.switch.cel(self.ch, "STREAM_END")
        if intr:
            return b"200 result=-1\n"
        if digit:
            digits += digit
        while len(digits) < maxdigits and not digits.endswith("#"):
            got = await self.ch.wait_digit(self.switch.scale(timeout))
            if got is INTERRUPT:
                return b"200 result=-1\n"
            if got is None:
                return f"200 result={digits} (timeout)\n".encode()
            assert isinstance(got, str)
            digits += got
        return f"200 result={digits.rstrip('#')}\n".encode()

    async def wait_for_digit(self, timeout_ms: int) -> bytes:
        got = await self.ch.wait_digit(None if timeout_ms < 0 else self.switch.scale(timeout_ms / 1000))
        if got is INTERRUPT:
            return b"200 result=-1\n"
        if got is None:
            return b"200 result=0\n"
        assert isinstance(got, str)
        return f"200 result={ord(got)}\n".encode()
