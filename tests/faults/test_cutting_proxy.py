"""The fault tests' proxy itself: stopping it leaves no socket of the connections it relayed."""

from __future__ import annotations

import gc
import socket

from tests.faults.cutting_proxy import CuttingProxy


def test_a_connection_still_relayed_when_the_proxy_stops_is_closed_with_it() -> None:
    # An idle keep-alive connection of a client, open when the test ends: on Python 3.11 the
    # server's wait_closed() did not wait for it, and its transports were left to the collector
    # (ResourceWarning: unclosed transport, raised in whichever test came next).
    with socket.create_server(("127.0.0.1", 0)) as target:
        with CuttingProxy("127.0.0.1", target.getsockname()[1]) as proxy:
            client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
            accepted, _ = target.accept()
        with client, accepted:
            accepted.settimeout(10)
            assert accepted.recv(1) == b""  # the proxy closed its side towards the service
            assert client.recv(1) == b""  # and towards the client
            gc.collect()  # an unclosed transport would warn here, failing the test
