"""Sources files in temporary places, and a keyring held in memory."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from deepanalyze_jupyter import Session
from tests.core.test_registry import third_party  # noqa: F401 - a fixture of the tests here too

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps its entries in a dict (for tests)."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)


@dataclass
class Places:
    """Where the user file and the project file of a test are."""

    config_dir: Path
    project_dir: Path

    @property
    def user_file(self) -> Path:
        return self.config_dir / "deepanalyze" / "sources.toml"

    @property
    def project_file(self) -> Path:
        return self.project_dir / ".deepanalyze-sources.toml"

    def written(self) -> list[Path]:
        """Every file written under both places."""
        return [
            path
            for base in (self.config_dir, self.project_dir)
            for path in base.rglob("*")
            if path.is_file() and not path.name.endswith(".db")
        ]


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Places:
    """The user file under a temporary JUPYTER_CONFIG_DIR; the project file in the working directory."""
    found = Places(tmp_path / "config", tmp_path / "project")
    found.project_dir.mkdir()
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(found.config_dir))
    monkeypatch.chdir(found.project_dir)
    return found


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    """A real SQLite database with one table."""
    path = tmp_path / "shop.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER, region TEXT)")
        connection.execute("INSERT INTO orders VALUES (1, 'EU'), (2, 'US')")
        connection.commit()
    return path


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as made:
        yield made


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """A keyring backend in memory, installed for the test."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """No keyring backend at all, as on a headless Linux server."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]
    yield
    keyring.set_keyring(previous)


def pg_options(server: object, **extra: object) -> dict[str, object]:
    """Options of a source on the test server (its password not among them)."""
    return {
        "host": server.host,  # type: ignore[attr-defined]
        "port": server.port,  # type: ignore[attr-defined]
        "dbname": server.dbname,  # type: ignore[attr-defined]
        "user": server.user,  # type: ignore[attr-defined]
        **extra,
    }


def environment_without(*names: str) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in names}


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document in ``path``."""
    return tomllib.loads(path.read_text(encoding="utf-8"))
