"""Each kind of reference, resolved only inside a connector's connect, against the real PostgreSQL."""

from __future__ import annotations

import getpass
import threading
import time
from pathlib import Path

import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import CredentialError
from deepanalyze_jupyter.redaction import MASK
from deepanalyze_jupyter.registry import DataSourceRegistry
from tests.services import PostgresServer

from .conftest import MemoryKeyring, Places, pg_options

QUERY = "SELECT 41 + 1 AS answer"


def _saved(server: PostgresServer, reference: str, environment: pytest.MonkeyPatch) -> None:
    """Save source ``pg`` (added with the real password) with ``reference`` for its password."""
    environment.setenv("SAVED_PG_PASSWORD", server.password)
    with Session() as session:
        session.add("pg", "postgresql", secrets={"password": server.password}, **pg_options(server))
        session.save("pg", references={"password": reference})


def _answer(session: Session) -> list[int]:
    return session.query("pg", QUERY)["answer"].tolist()


def _asks(monkeypatch: pytest.MonkeyPatch, answer: str) -> list[str]:
    """Make the hidden prompt answer ``answer``; returns the prompts shown."""
    asked: list[str] = []

    def prompt(text: str = "", stream: object = None) -> str:
        asked.append(text)
        return answer

    monkeypatch.setattr(getpass, "getpass", prompt)
    return asked


def test_env_reference_is_read_at_connect(
    places: Places, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved(pg_server, "env:SAVED_PG_PASSWORD", monkeypatch)
    monkeypatch.delenv("SAVED_PG_PASSWORD")
    with Session() as session:
        lines = session.load()
        assert lines == [
            f"pg: loaded from {places.user_file}; not usable until set: "
            "password (the environment variable named in the file is not set)"
        ]
        status = session.saved_sources()["status"].tolist()
        assert status == [
            "in this kernel; not usable until set: "
            "password (the environment variable named in the file is not set)"
        ]
        with pytest.raises(CredentialError) as missing:
            session.query("pg", QUERY)
        assert str(missing.value) == (
            "pg: password (env:<not set>): the environment variable is not set in this kernel; "
            "set it and try again"
        )
        monkeypatch.setenv("SAVED_PG_PASSWORD", pg_server.password)
        assert _answer(session) == [42]
        assert session.redactor.redact(pg_server.password) == MASK


def test_prompt_reference_asks_once_at_first_use(
    places: Places, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved(pg_server, "prompt", monkeypatch)
    asked = _asks(monkeypatch, pg_server.password)
    with Session() as session:
        session.load()
        assert asked == []  # loading asks nothing
        assert _answer(session) == [42]
        session.registry.clear_cache()
        session.run(session.registry.disconnect("pg"))
        assert _answer(session) == [42]  # connects again without asking again
        assert asked == ["password for pg: "]
        assert session.redactor.redact(pg_server.password) == MASK


def test_prompt_that_cannot_be_answered_gives_one_line(
    places: Places, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved(pg_server, "prompt", monkeypatch)

    def no_input(text: str = "", stream: object = None) -> str:
        raise EOFError

    monkeypatch.setattr(getpass, "getpass", no_input)
    with Session() as session:
        session.load()
        with pytest.raises(CredentialError, match=r"^pg: password \(prompt\): cannot prompt here"):
            session.query("pg", QUERY)
        assert session.registry.status("pg").startswith("error: password (prompt): cannot prompt here")


def test_keyring_reference_reads_the_keyring(
    places: Places, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    _saved(pg_server, "keyring:deepanalyze-test/analyst", monkeypatch)
    with Session() as session:
        session.load()
        with pytest.raises(CredentialError, match="there is no such entry in the keyring"):
            session.query("pg", QUERY)
        memory_keyring.set_password("deepanalyze-test", "analyst", pg_server.password)
        assert _answer(session) == [42]
        assert session.saved_sources()["status"].tolist() == ["in this kernel; ready"]


@pytest.mark.usefixtures("no_keyring")
def test_keyring_reference_without_a_backend_says_what_to_use(
    places: Places, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved(pg_server, "keyring:deepanalyze-test/analyst", monkeypatch)
    with Session() as session:
        (line,) = session.load()
        assert line.endswith(
            "not usable until set: password (no keyring backend is available on this "
            "machine (as on a headless Linux server); use an env: reference instead)"
        )
        with pytest.raises(CredentialError) as refused:
            session.query("pg", QUERY)
        assert str(refused.value) == (
            "pg: password (keyring:deepanalyze-test/analyst): no keyring backend is available on this "
            "machine (as on a headless Linux server); use an env: reference instead"
        )


def test_none_reference_lets_libpq_find_the_password(
    places: Places, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _saved(pg_server, "none", monkeypatch)
    assert "secrets" in places.user_file.read_text()
    with Session() as session:
        session.load()
        with pytest.raises(Exception, match="password"):  # no password anywhere yet
            session.query("pg", QUERY)
        pgpass = tmp_path / "pgpass"
        pgpass.write_text(f"*:*:*:{pg_server.user}:{pg_server.password}\n")
        pgpass.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(pgpass))
        assert _answer(session) == [42]


def test_a_waiting_prompt_does_not_hold_up_other_sources(
    places: Places, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, shop_db: Path
) -> None:
    _saved(pg_server, "prompt", monkeypatch)
    answer_now = threading.Event()

    def slow_prompt(text: str = "", stream: object = None) -> str:
        answer_now.wait(30)
        return pg_server.password

    monkeypatch.setattr(getpass, "getpass", slow_prompt)
    with Session() as session:
        session.load()
        session.add("shop", "sqlite", path=str(shop_db))
        answers: list[list[int]] = []
        waiting = threading.Thread(target=lambda: answers.append(_answer(session)))
        waiting.start()
        try:
            started = time.monotonic()
            counted = session.query("shop", "SELECT count(*) AS n FROM orders")["n"].tolist()
            elapsed = time.monotonic() - started
        finally:
            answer_now.set()
            waiting.join(60)
        assert counted == [2]
        assert elapsed < 10
        assert answers == [[42]]


@pytest.mark.usefixtures("memory_keyring")
def test_connector_entry_points_still_load_once_keyring_is_imported(third_party: str) -> None:
    # Before Python 3.12 keyring imports the importlib_metadata backport, whose finder then hands
    # out its own EntryPoint objects from importlib.metadata.entry_points().
    import keyring  # noqa: F401

    registry = DataSourceRegistry()
    assert registry.connector_class("thirdparty").__module__ == third_party


def test_a_password_pasted_after_env_is_never_shown(
    places: Places, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pasted = "PastedAfterEnv7c1e"  # a password written where a variable's name belongs
    _saved(pg_server, f"env:{pasted}", monkeypatch)
    with Session() as session:
        shown = list(session.load())
        listed = session.saved_sources()
        shown += [str(value) for value in listed.to_numpy().ravel()]
        shown.append(repr(session.registry.secret_sources("pg")))
        with pytest.raises(CredentialError) as missing:
            session.query("pg", QUERY)
        shown.append(str(missing.value))
    assert [text for text in shown if pasted in text] == []
    assert listed["secrets"].tolist() == ["password=env:<not set>"]
