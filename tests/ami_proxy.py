"""A loopback TCP proxy between an AMI client and the simulator, for wire-level tests.

Subclasses implement ``relay(client_reader, client_writer, up_reader, up_writer)``; the
base opens the listening socket, the upstream connection per client, and closes both.
"""

from __future__ import annotations

import asyncio


class AmiProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            await self.relay(cr, cw, ur, uw)
        finally:
            cw.close()
            uw.close()

    async def relay(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter,
                    ur: asyncio.StreamReader, uw: asyncio.StreamWriter) -> None:
        raise NotImplementedError
