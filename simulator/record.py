"""Small wire recorders in the traces' transcript format (for fidelity tests and by hand)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable

from cti.ami.protocol import format_message


class Transcript:
    def __init__(self, t0: float | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        self.lines: list[str] = []
        self.conn: int | None = None

    def now(self) -> str:
        return f"{time.monotonic() - self.t0:.3f}"

    def comment(self, text: str) -> None:
        self.lines.append(f"# {text}")

    def switch(self, conn: int) -> None:
        if conn != self.conn:
            self.conn = conn
            self.lines.append(f"# conn {conn}")

    def line(self, d: str, text: str, conn: int = 1) -> None:
        self.switch(conn)
        self.lines.append(f"{d} {self.now()} {text}" if text else f"{d} {self.now()}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class AmiRecorder:
    """An AMI client that records both directions."""

    def __init__(self, t: Transcript) -> None:
        self.t = t
        self.buf = b""
        self.messages: list[dict[str, str]] = []
        self.new = asyncio.Event()

    async def connect(self, host: str, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        cur: dict[str, str] = {}
        while True:
            data = await self.reader.read(65536)
            if not data:
                self.t.comment("conn 1: EOF")
                return
            self.buf += data
            while b"\r\n" in self.buf:
                raw, self.buf = self.buf.split(b"\r\n", 1)
                text = raw.decode()
                self.t.line("<<", text)
                if text:
                    k, _, v = text.partition(": ")
                    cur.setdefault(k, v)
                elif cur:
                    self.messages.append(cur)
                    cur = {}
                    self.new.set()

    async def action(self, headers: list[tuple[str, str]]) -> None:
        data = format_message(headers)
        for line in data.decode().split("\r\n")[:-1]:
            self.t.line(">>", line)
        self.writer.write(data)
        await self.writer.drain()

    def mark(self) -> int:
        """Index for ``wait_for(after=...)``: only messages received from now on."""
        return len(self.messages)

    async def wait_for(self, pred: Callable[[dict[str, str]], bool], timeout: float = 10.0,
                       after: int = 0) -> dict[str, str]:
        seen = after
        async def loop() -> dict[str, str]:
            nonlocal seen
            while True:
                while seen < len(self.messages):
                    m = self.messages[seen]
                    seen += 1
                    if pred(m):
                        return m
                self.new.clear()
                await self.new.wait()
        return await asyncio.wait_for(loop(), timeout)

    async def act(self, headers: list[tuple[str, str]], timeout: float = 10.0) -> dict[str, str]:
        """Send an action (with an ActionID) and wait for its response."""
        aid = dict(headers).get("ActionID")
        start = self.mark()
        await self.action(headers)
        return await self.wait_for(lambda m: "Response" in m and m.get("ActionID") == aid, timeout, start)

    async def close(self) -> None:
        self.task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class AgiConn:
    def __init__(self, t: Transcript, conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.t, self.conn, self.reader, self.writer = t, conn, reader, writer
        self.env: dict[str, str] = {}
        self.closed = False
        self.eof = False
        self.hangups = 0

    async def readline(self) -> str | None:
        raw = await self.reader.readline()
        if not raw:
            if not self.eof:
                self.eof = True
                self.t.switch(self.conn)
                self.t.comment(f"conn {self.conn}: EOF from asterisk (socket closed) at {self.t.now()}")
            return None
        text = raw.decode().rstrip("\n")
        self.t.line("<<", text, self.conn)
        self.hangups += text == "HANGUP"
        return text

    async def read_env(self) -> None:
        while True:
            line = await self.readline()
            if not line:
                return
            k, _, v = line.partition(": ")
            self.env[k] = v

    async def cmd(self, line: str) -> str | None:
        while not self.closed and (self.hangups or b"\n" in getattr(self.reader, "_buffer", b"")):
            # lines already here (HANGUP) are read before sending more; after a HANGUP, wait for the close
            try:
                got = await asyncio.wait_for(self.readline(), 0.05)
            except TimeoutError:
                self.hangups = 0  # dead mode: Asterisk stays for more commands
                break
            if got is None:
                self.closed = True
        if self.closed:
            self.t.switch(self.conn)
            self.t.comment(f"conn {self.conn}: (recorder) not sending '{line}': asterisk already closed")
            return None
        self.t.line(">>", line, self.conn)
        try:
            self.writer.write(line.encode() + b"\n")
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.closed = True
            return None
        while True:
            got = await self.readline()
            if got is None:
                self.closed = True
                return None
            if got == "HANGUP":
                continue
            if got.startswith("520-"):
                continue
            return got

    async def finish(self) -> None:
        if not self.closed:
            self.t.switch(self.conn)
            self.t.comment(f"conn {self.conn}: (recorder) shutdown(SHUT_WR) sent at {self.t.now()}")
            with contextlib.suppress(OSError):
                self.writer.write_eof()
        while await self.readline() is not None:
            pass
        self.writer.close()


AgiScript = Callable[[AgiConn], Awaitable[None]]


def contract_script(call_id: str | None = None, device: str = "Local/1001@agent-phones", ring: int = 5,
                    record_file: str | None = None, ivr: tuple[str, ...] = ("SET VARIABLE CTI_NEXT queue",)
                    ) -> AgiScript:
    """A FastAGI side that plays the v3 contract plainly: the IVR answers, sets ``CTI_CALL_ID``
    (``call_id``, default ``cid-<uniqueid>``) and runs ``ivr``; hold beeps; every offer sets
    ``device``, ``ring`` and, when given, ``record_file``."""

    async def script(c: AgiConn) -> None:
        s = c.env.get("agi_network_script", "")
        if s == "ivr/main":
            cid = call_id or "cid-" + c.env.get("agi_uniqueid", "")
            for line in ("ANSWER", f"SET VARIABLE CTI_CALL_ID {cid}", *ivr):
                await c.cmd(line)
        elif s == "hold":
            await c.cmd('STREAM FILE beep ""')
        elif s.startswith("offer/"):
            await c.cmd(f"SET VARIABLE CTI_AGENT_DEVICE {device}")
            await c.cmd(f"SET VARIABLE CTI_RING_TIMEOUT {ring}")
            if record_file:
                await c.cmd(f"SET VARIABLE CTI_RECORD_FILE {record_file}")

    return script


class ScriptedAgi:
    """A tiny FastAGI server: ``scripts(conn)`` picks what to send by ``agi_network_script``."""

    def __init__(self, t: Transcript, script: AgiScript) -> None:
        self.t, self.script = t, script
        self.n = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._conn, host, port, reuse_address=True)
        sock: socket.socket = self.server.sockets[0]
        return int(sock.getsockname()[1])

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.n += 1
        c = AgiConn(self.t, self.n, reader, writer)
        self.t.switch(self.n)
        self.t.comment(f"conn {self.n} open: FastAGI")
        await c.read_env()
        await self.script(c)
        await c.finish()

    async def stop(self) -> None:
        self.server.close()
