"""The session: a sync facade over the registry, usable from scripts and from a running loop."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import threading
import traceback
import warnings
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from deepanalyze_jupyter import ResultTruncated
from deepanalyze_jupyter.errors import AuthenticationFailed, DataSourceError, DataSourceNotFound
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


def test_work_running_when_the_session_closes_says_so(session: Session) -> None:
    started = threading.Event()
    outcome: list[BaseException] = []

    async def long_work() -> None:
        started.set()
        await asyncio.sleep(60)

    def run() -> None:
        try:
            session.run(long_work())
        except BaseException as error:  # what the caller sees, whatever it is
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    started.wait()
    session.close()
    thread.join()
    assert len(outcome) == 1
    assert isinstance(outcome[0], RuntimeError), repr(outcome[0])
    assert "this session is closed" in str(outcome[0])


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


@pytest.fixture
def numbers(tmp_path: Path) -> Path:
    """A folder with a SQLite database and a CSV file of ten numbers each."""
    with closing(sqlite3.connect(tmp_path / "numbers.db")) as connection:
        connection.execute("CREATE TABLE numbers (n INTEGER)")
        connection.executemany("INSERT INTO numbers VALUES (?)", [(n,) for n in range(10)])
        connection.commit()
    (tmp_path / "numbers.csv").write_text("n\n" + "".join(f"{n}\n" for n in range(10)))
    return tmp_path


def test_a_result_cut_at_the_default_limit_warns_how_to_get_every_row(numbers: Path) -> None:
    with Session(default_row_limit=4) as session:
        session.add("db", "sqlite", path=str(numbers / "numbers.db"))
        session.add("folder", "local", path=str(numbers))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            queried = session.query("db", "SELECT n FROM numbers")
            read = session.read("folder", "numbers.csv")
        assert {warning.category for warning in caught} == {ResultTruncated}
        assert (len(queried), len(read)) == (4, 4)
        assert [str(warning.message) for warning in caught] == [
            f"{source}: the result was cut at the default limit of 4 rows; pass limit=None to fetch "
            "every row (or limit=N for another limit)"
            for source in ("db", "folder")
        ]
        assert {warning.filename for warning in caught} == {__file__}  # the caller's line
        assert len(session.query("db", "SELECT n FROM numbers", limit=None)) == 10
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(session.query("db", "SELECT n FROM numbers", limit=4)) == 4  # a limit asked for
            assert len(session.query("db", "SELECT n FROM numbers WHERE n < 4")) == 4  # nothing cut
            assert len(session.read("folder", "numbers.csv", limit=2)) == 2


def shown(error: BaseException) -> tuple[list[str], str]:
    """The files of the frames a traceback of ``error`` shows, and its whole text."""
    files = [Path(frame.filename).name for frame in traceback.extract_tb(error.__traceback__)]
    return files, "".join(traceback.format_exception(error))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda session: session.query("db", "SELECT * FROM missing"), "db: no such table: missing"),
        (lambda session: session.query("gone", "SELECT 1"), "gone: database file .* does not exist"),
        (lambda session: session.list_items("nope"), r"nope: no such data source \(known: db, gone\)"),
    ],
)
def test_an_error_of_the_python_api_shows_from_the_callers_line(
    numbers: Path, call: Any, message: str
) -> None:
    with Session() as session:
        session.add("db", "sqlite", path=str(numbers / "numbers.db"))
        session.add("gone", "sqlite", path=str(numbers / "gone.db"), test=False)
        with pytest.raises(DataSourceError, match=f"^{message}$") as caught:
            call(session)
    files, text = shown(caught.value)
    # the test's line (the lambda's), then the method called and the one that raised
    assert files == ["test_session.py", "test_session.py", "session.py", "session.py"], text
    assert text.count("Traceback") == 1  # no library error chained before it
    assert text.rstrip().splitlines()[-1].endswith(f"{type(caught.value).__name__}: {caught.value}")


def test_an_unexpected_error_keeps_its_own_frames_but_not_the_bridge() -> None:
    async def broken() -> None:
        await asyncio.sleep(0)
        raise ValueError("a bug")

    with Session() as session, pytest.raises(ValueError, match="a bug") as caught:
        session.run(broken())
    files, text = shown(caught.value)
    assert files == ["test_session.py", "session.py", "test_session.py"], text
    assert "runner.py" not in text
    assert "concurrent" not in text
