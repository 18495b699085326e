"""A real IPython shell with the extension loaded and two embedded sources, for fuzzing the magics.

Every example runs a line (or a cell) through the shell, and its outcome is judged by
:meth:`FuzzShell.judge`: either it worked, or it was refused with one ``UsageError`` line
and the registry is exactly as it was. The count of examples run is shown at the end.
"""

from __future__ import annotations

import getpass
import io
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from deepanalyze_jupyter import DataSourceConfig, Session
from deepanalyze_jupyter.notebook.extension import get_session

EXTENSION = "deepanalyze_jupyter"
_TALLY_KEY = pytest.StashKey[dict[str, int]]()

#: Bounded, reproducible runs for CI: the same examples every time.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: The sources every example starts from.
BASELINE = ("shop", "files")
#: What the files of ``files`` hold: no successful read may show anything else.
AMOUNTS = frozenset({10, 20, 30})


@dataclass
class FuzzShell:
    """The shell, its session, and the record of what the examples gave."""

    ipython: InteractiveShell
    session: Session
    restore: Callable[[], None]
    outcomes: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> list[tuple[str, DataSourceConfig, DataSourceConfig]]:
        """The registry's ids and configs, with secrets masked and decrypted."""
        registry = self.session.registry
        return [
            (sid, registry.get_config(sid), registry.get_config(sid, decrypt=True))
            for sid in registry.source_ids
        ]

    def judge(
        self,
        property_name: str,
        action: Callable[[], Any],
        *,
        refusal: type[Exception] = UsageError,
        prefix: str = "",
    ) -> Any:
        """Run ``action``: it works, or is refused with one ``refusal`` line and no change.

        Returns the action's result (``None`` when refused). After a success that changed
        the registry, the baseline sources are put back for the next example.
        """
        before = self.snapshot()
        out, err = io.StringIO(), io.StringIO()
        message: str | None = None
        result: Any = None
        try:
            with redirect_stdout(out), redirect_stderr(err):
                result = action()
        except refusal as error:
            message = str(error)
        if message is not None:
            assert message.strip(), "an empty error message"
            assert message.startswith(prefix), message
            assert len(message.splitlines()) == 1, f"a message of several lines: {message!r}"
            assert "Traceback" not in message
            assert self.snapshot() == before, f"the registry changed on a refused input: {message}"
            self._count(property_name, "refused")
            return None
        self._count(property_name, "worked")
        if self.snapshot() != before:
            self.restore()
        return result

    def _count(self, property_name: str, outcome: str) -> None:
        key = f"{property_name} {outcome}"
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say how many fuzz examples ran, and how many were refused."""
    tally = config.stash.get(_TALLY_KEY, {})
    if tally:
        total = sum(tally.values())
        refused = sum(count for key, count in tally.items() if key.endswith("refused"))
        terminalreporter.write_line(
            f"fuzz suite: {total} examples run: {refused} refused with one error line of the package, "
            f"{total - refused} worked; no other exception, registry unchanged after every refusal"
        )


@pytest.fixture(scope="session")
def fuzz_shell(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzShell]:
    """The shell with ``shop`` (SQLite) and ``files`` (a local folder) registered, run in a
    temporary working directory so that whatever a line creates stays there."""
    base = tmp_path_factory.mktemp("fuzz")
    database = base / "shop.db"
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT, amount INTEGER)")
        connection.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(1, "EU", 10), (2, "US", 20), (3, "EU", 30)]
        )
    folder = base / "files"
    (folder / "2024").mkdir(parents=True)
    (folder / "2024" / "jan.csv").write_text("id,amount\n1,10\n2,20\n")
    (folder / "2024" / "feb.csv").write_text("id,amount\n3,30\n")
    (folder / "notes.txt").write_text("not a table\n")
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ipython = InteractiveShell(config=config, ipython_dir=str(base / "ipython"))
    ipython.extension_manager.load_extension(EXTENSION)
    session = get_session(ipython)
    assert session is not None

    def restore() -> None:
        for source_id in list(session.registry.source_ids):
            session.remove(source_id)
        session.add("shop", "sqlite", path=str(database))
        session.add("files", "local", path=str(folder))

    restore()
    fuzz = FuzzShell(ipython, session, restore)
    request.config.stash[_TALLY_KEY] = fuzz.outcomes
    cwd = Path.cwd()
    real_getpass = getpass.getpass
    getpass.getpass = lambda prompt="Password: ", stream=None: "typed-at-a-prompt"
    (base / "cwd").mkdir()
    os.chdir(base / "cwd")
    try:
        yield fuzz
    finally:
        os.chdir(cwd)
        getpass.getpass = real_getpass
        ipython.extension_manager.unload_extension(EXTENSION)
