"""An interrupt during a slow connection handshake closes the half-open connection at once."""

from __future__ import annotations

import _thread
import contextlib
import gc
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from deepanalyze_jupyter import Session
from tests.connectors.postgresql.postgres import source_options
from tests.services import PostgresServer


class SlowProxy:
    """A TCP proxy to the server that holds the server's answers back for ``delay`` seconds."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self._upstream = upstream
        self._delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.client_closed = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            client, _ = self._listener.accept()
            server = socket.create_connection(self._upstream)
            self._sockets += [client, server]
            threading.Thread(target=self._to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client), daemon=True).start()

    def _to_server(self, client: socket.socket, server: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                server.sendall(data)
        self.client_closed.set()

    def _to_client(self, server: socket.socket, client: socket.socket) -> None:
        time.sleep(self._delay)
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                client.sendall(data)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


@pytest.fixture
def slow_proxy(pg_server: PostgresServer) -> Iterator[SlowProxy]:
    proxy = SlowProxy((pg_server.host, pg_server.port), delay=30)
    yield proxy
    proxy.close()


@pytest.mark.usefixtures("ctrl_c")
def test_an_interrupted_connect_closes_its_connection_without_garbage_collection(
    pg_server: PostgresServer, slow_proxy: SlowProxy
) -> None:
    options = source_options(pg_server, host="127.0.0.1", port=slow_proxy.port)
    with Session() as session:
        gc.disable()
        try:
            interrupt = threading.Timer(0.5, _thread.interrupt_main)  # Ctrl-C mid-handshake
            interrupt.start()
            try:
                session.add("slow", "postgresql", secrets={"password": pg_server.password}, **options)
            except KeyboardInterrupt:
                kept = sys.exc_info()  # as a kernel keeps the last traceback
            else:
                raise AssertionError("the connection was not interrupted")
            finally:
                interrupt.cancel()
            assert slow_proxy.client_closed.wait(2), "the half-open connection is still open"
        finally:
            gc.enable()
        assert kept[0] is KeyboardInterrupt
        assert "slow" not in session.registry
