"""The session: a sync facade over the registry, usable from scripts and from a running loop."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import pandas as pd
import pytest

from deepanalyze_jupyter.errors import AuthenticationFailed, DataSourceNotFound
from deepanalyze_jupyter.models import Secret
from deepanalyze_jupyter.redaction import MASK
from deepanalyze_jupyter.session import Session
from tests.core.conftest import NEW_PASSWORD, PASSWORD
from tests.core.fakes import FakeConnector, FakeService


@pytest.fixture
def session(fake_class: type[FakeConnector]) -> Iterator[Session]:
    session = Session(discover=False, default_row_limit=5)
    session.registry.register_connector_class(fake_class)
    yield session
    session.close()


def test_the_sync_api_end_to_end(session: Session, service: FakeService) -> None:
    config = session.add(
        "shop", "fake", name="Shop", secrets={"password": PASSWORD}, host="db.example", port="7"
    )
    assert config.options["port"] == 7
    assert config.secrets == {"password": Secret(MASK)}
    assert session.test("shop") == "fake server at db.example:7"
    assert len(session.query("shop", "SELECT n FROM t WHERE n < :n", {"n": 3})) == 5
    assert len(session.query("shop", "SELECT 1", limit=2)) == 2
    assert session.list_items("shop", "g")["name"].tolist() == ["gamma"]
    assert session.describe("shop", "alpha")["item"].tolist() == ["alpha"]
    assert session.read("shop", ["a.csv", "b.csv"], format="csv")["path"].tolist() == ["a.csv", "b.csv"]
    updated = session.update("shop", secrets={"password": NEW_PASSWORD}, port=8)
    assert updated.options["port"] == 8
    sources = session.sources()
    assert isinstance(sources, pd.DataFrame)
    assert sources[["id", "name", "status"]].to_dict("records") == [
        {"id": "shop", "name": "Shop", "status": "connected"}
    ]
    session.remove("shop")
    assert session.sources().empty
    assert service.passwords_seen == [PASSWORD, NEW_PASSWORD]
    assert service.open_connections() == 0


def test_a_secret_passed_as_an_option_is_kept_secret(session: Session, service: FakeService) -> None:
    config = session.add("shop", "fake", host="db.example", password=PASSWORD)
    assert "password" not in config.options
    assert PASSWORD not in repr(config)
    assert service.passwords_seen == [PASSWORD]


def test_a_refused_source_is_not_added(session: Session, service: FakeService) -> None:
    service.accepted_password = NEW_PASSWORD
    with pytest.raises(AuthenticationFailed, match=r"^shop: password authentication failed$"):
        session.add("shop", "fake", secrets={"password": PASSWORD}, host="h")
    assert session.sources().empty
    with pytest.raises(DataSourceNotFound):
        session.query("shop", "SELECT 1")


def test_add_without_a_test_connects_on_first_use(session: Session, service: FakeService) -> None:
    session.add("shop", "fake", host="h", test=False)
    assert service.connects == []
    session.query("shop", "SELECT 1")
    assert service.connects == ["shop"]


def test_usable_from_a_running_loop(session: Session) -> None:
    """Like a notebook cell: the kernel's loop is running on the calling thread."""

    async def cell() -> int:
        session.add("shop", "fake", host="h")
        return len(session.query("shop", "SELECT 1", limit=3))

    assert asyncio.run(cell()) == 3


def test_close_disconnects_every_source_and_stops_the_loop(fake_class: type[FakeConnector]) -> None:
    service = fake_class.service
    session = Session(discover=False)
    session.registry.register_connector_class(fake_class)
    session.add("a", "fake", host="h")
    session.add("b", "fake", host="h")
    thread = session.runner._thread
    assert thread is not None
    assert thread.is_alive()
    session.close()
    assert sorted(service.disconnects) == ["a", "b"]
    assert service.open_connections() == 0
    assert not thread.is_alive()
    assert session.closed
    assert repr(session) == "<Session closed>"
    session.close()  # twice is harmless


def test_a_closed_session_refuses_work(session: Session) -> None:
    session.close()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="this session is closed"):
        session.run(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_a_session_is_a_context_manager(fake_class: type[FakeConnector]) -> None:
    with Session(discover=False) as session:
        session.registry.register_connector_class(fake_class)
        session.add("a", "fake", host="h")
    assert session.closed
    assert fake_class.service.disconnects == ["a"]


def test_closing_an_unused_session_starts_nothing() -> None:
    session = Session(discover=False)
    session.close()
    assert not session.runner.is_running


def test_nothing_shows_a_secret(session: Session, capsys: pytest.CaptureFixture[str]) -> None:
    session.add("shop", "fake", host="h", secrets={"password": PASSWORD})
    shown = [repr(session), repr(session.registry), session.sources().to_string(), repr(session.credentials)]
    shown += [repr(config) for config in session.registry.list_data_sources()]
    assert repr(session) == "<Session 1 source(s)>"
    assert all(PASSWORD not in text for text in shown)
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err
