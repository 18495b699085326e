"""A TCP proxy on loopback that cuts connections after a number of bytes, on request.

It relays every connection to a target service both ways. Once armed with
``arm(after, times)``, the next ``times`` connections that have sent ``after`` bytes to
the client are closed right there, mid-response, as a network drop would; connections
opened later are relayed whole again. It runs its own event loop on a daemon thread, so
a test can drive a blocking client through it.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

__all__ = ["CuttingProxy"]

_PIECE = 1 << 16


class CuttingProxy:
    """Relay ``127.0.0.1:<port>`` to ``host:port``, cutting connections when armed."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cutting-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        #: The relays of the connections open now (each a task of the proxy's loop).
        self._relays: set[asyncio.Task[None]] = set()
        self._after = 0
        self._cuts_left = 0
        self.port = 0
        #: Connections cut so far.
        self.cuts = 0
        #: Connections relayed so far.
        self.connections = 0

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._server is not None:  # closed on its own loop: a relay ending meanwhile wakes it too
            asyncio.run_coroutine_threadsafe(self._shut(self._server), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def arm(self, after: int, times: int = 1) -> None:
        """Cut the next ``times`` connections once each has sent ``after`` bytes to its client."""
        self._loop.call_soon_threadsafe(self._set, after, times)

    def _set(self, after: int, times: int) -> None:
        self._after, self._cuts_left = after, times

    async def _shut(self, server: asyncio.Server) -> None:
        """Stop accepting, end the connections still relayed (a client's idle keep-alive ones), and
        wait until their sockets are closed: Python 3.11's ``wait_closed`` does not wait for them."""
        server.close()
        for relay in list(self._relays):
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        await server.wait_closed()
        for _ in range(2):  # the aborted transports close their sockets in the loop's next rounds
            await asyncio.sleep(0)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        relay = asyncio.current_task()
        if relay is not None:
            self._relays.add(relay)
            relay.add_done_callback(self._relays.discard)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.transport.abort()
            return
        except asyncio.CancelledError:  # the proxy shuts while the service is being reached
            client_writer.transport.abort()
            raise
        try:
            await asyncio.gather(
                _pipe(client_reader, upstream_writer), self._answer(upstream_reader, client_writer)
            )
        except OSError:
            pass
        finally:
            upstream_writer.transport.abort()
            client_writer.transport.abort()

    async def _answer(self, upstream: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        """Relay the service's bytes to the client, cutting the connection when armed."""
        sent = 0
        while piece := await upstream.read(_PIECE):
            if self._cuts_left and sent + len(piece) >= self._after:
                self._cuts_left -= 1
                self.cuts += 1
                client.write(piece[: self._after - sent])
                await client.drain()
                client.close()  # the client sees the response end short, as on a dropped link
                return
            client.write(piece)
            await client.drain()
            sent += len(piece)
        client.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while piece := await reader.read(_PIECE):
        writer.write(piece)
        await writer.drain()
    writer.close()
