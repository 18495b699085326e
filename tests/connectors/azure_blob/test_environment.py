"""What a blob source takes from the process's environment: a proxy it names, and nothing else.

Told to read the environment, aiohttp reads the proxy variables and ``~/.netrc`` again for
every request, and sends the ``~/.netrc`` login of the storage host (or its ``default``
line) with each request, which a source signed with a key or connection string refuses.
So the source reads the proxy variables itself, once, and never ``~/.netrc``, with a proxy
named or not.
"""

from __future__ import annotations

import netrc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from deepanalyze_jupyter import Session
from tests.conftest import blob_lake
from tests.faults.cutting_proxy import CuttingProxy
from tests.services import AzuriteServer

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def two_blobs(azurite: AzuriteServer, blob_container: str) -> str:
    azurite.upload(blob_container, {"a.csv": b"id\n1\n", "b.csv": b"id\n2\n"})
    return blob_container


@pytest.fixture
def session(azurite: AzuriteServer, two_blobs: str) -> Iterator[Session]:
    """A source signed with the connection string; it connects on its first use."""
    with blob_lake(azurite, two_blobs, test=False) as made:
        yield made


@pytest.fixture
def environment(session: Session) -> Iterator[pytest.MonkeyPatch]:
    """The environment, with no proxy named; undone before the container is deleted."""
    with pytest.MonkeyPatch.context() as patch:
        for name in _PROXY_VARIABLES:
            patch.delenv(name, raising=False)
            patch.delenv(name.upper(), raising=False)
        yield patch


@pytest.fixture
def netrc_default(tmp_path: Path, environment: pytest.MonkeyPatch) -> None:
    """A ``~/.netrc`` (``NETRC``) whose ``default`` line logs in to every host."""
    login = tmp_path / "netrc"
    login.write_text("default login someone password not-for-azure\n")
    login.chmod(0o600)
    environment.setenv("NETRC", str(login))


@pytest.fixture
def netrc_reads(environment: pytest.MonkeyPatch) -> list[Any]:
    """Each read of a ``.netrc`` file from now on (the file named, or ``None``)."""
    reads: list[Any] = []

    class CountedNetrc(netrc.netrc):
        def __init__(self, file: str | None = None) -> None:
            reads.append(file)
            super().__init__(file)

    environment.setattr(netrc, "netrc", CountedNetrc)
    return reads


def _ids(session: Session) -> list[int]:
    return sorted(session.read("lake", "*.csv")["id"])


def test_a_netrc_default_login_does_not_break_a_source_signed_with_a_key(
    session: Session, netrc_default: None
) -> None:
    assert _ids(session) == [1, 2]


def test_with_no_proxy_named_no_request_reads_netrc(session: Session, netrc_reads: list[Any]) -> None:
    assert _ids(session) == [1, 2]
    assert netrc_reads == []


def test_a_proxy_named_in_the_environment_carries_the_requests_and_netrc_stays_unread(
    azurite: AzuriteServer,
    session: Session,
    environment: pytest.MonkeyPatch,
    netrc_default: None,
    netrc_reads: list[Any],
) -> None:
    endpoint = urlsplit(azurite.blob_endpoint)
    with CuttingProxy(endpoint.hostname or "127.0.0.1", endpoint.port or 80) as proxy:
        environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        try:
            assert _ids(session) == [1, 2]
        finally:
            session.close()
        assert proxy.connections >= 1
    assert netrc_reads == []


@pytest.mark.parametrize(
    ("named", "through_proxy"),
    [({"http_proxy": "{proxy}"}, True), ({"HTTP_PROXY": "{proxy}", "NO_PROXY": "{host}"}, False)],
    ids=["lowercase", "no_proxy-bypass"],
)
def test_the_environment_s_proxy_variables_are_honoured_in_either_case(
    azurite: AzuriteServer,
    session: Session,
    environment: pytest.MonkeyPatch,
    named: dict[str, str],
    through_proxy: bool,
) -> None:
    endpoint = urlsplit(azurite.blob_endpoint)
    host = endpoint.hostname or "127.0.0.1"
    with CuttingProxy(host, endpoint.port or 80) as proxy:
        for name, value in named.items():
            environment.setenv(name, value.format(proxy=f"http://127.0.0.1:{proxy.port}", host=host))
        try:
            assert _ids(session) == [1, 2]
        finally:
            session.close()
        assert (proxy.connections >= 1) is through_proxy


@pytest.mark.parametrize(
    ("bypassed", "through_proxy"), [(False, True), (True, False)], ids=["proxy", "no_proxy"]
)
def test_a_source_signed_with_an_account_key_takes_the_proxy_too(
    azurite: AzuriteServer,
    two_blobs: str,
    environment: pytest.MonkeyPatch,
    bypassed: bool,
    through_proxy: bool,
) -> None:
    endpoint = urlsplit(azurite.blob_endpoint)
    host = endpoint.hostname or "127.0.0.1"
    with CuttingProxy(host, endpoint.port or 80) as proxy:
        environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        if bypassed:
            environment.setenv("NO_PROXY", host)
        with Session() as keyed:
            keyed.add("lake", "azure_blob", **azurite.keyed_source(two_blobs))
            assert _ids(keyed) == [1, 2]
        assert (proxy.connections >= 1) is through_proxy
