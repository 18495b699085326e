"""A real IPython shell (with its history in an SQLite file) and the extension loaded in it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from deepanalyze_jupyter.notebook.extension import get_session
from deepanalyze_jupyter.session import Session

from .fakes import FakeFiles, FakeSql

EXTENSION = "deepanalyze_jupyter"


@dataclass
class Ran:
    """What running one cell gave: its value, its printed text and its error."""

    result: Any
    out: str
    err: str
    error: BaseException | None

    @property
    def text(self) -> str:
        """Everything the cell printed."""
        return self.out + self.err


def run(shell: InteractiveShell, code: str) -> Ran:
    """Run ``code`` as a cell (stored in the history, as a user's would be)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        result = shell.run_cell(code, store_history=True)
    return Ran(
        result.result, out.getvalue(), err.getvalue(), result.error_in_exec or result.error_before_exec
    )


def usage_error(shell: InteractiveShell, code: str) -> str:
    """Run ``code``, check it failed with a one-line UsageError, and return that line."""
    ran = run(shell, code)
    assert type(ran.error).__name__ == "UsageError", (code, ran.error, ran.text)
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1, (code, ran.err)
    assert lines[0].startswith("UsageError: "), lines
    assert "Traceback" not in ran.text
    return lines[0].removeprefix("UsageError: ")


@pytest.fixture(scope="session")
def ipython(tmp_path_factory: pytest.TempPathFactory) -> InteractiveShell:
    """One real shell for these tests, keeping its history in a file of its own (closed at exit)."""
    directory = tmp_path_factory.mktemp("ipython")
    config = Config()
    config.HistoryManager.hist_file = str(directory / "history.sqlite")
    return InteractiveShell(config=config, ipython_dir=str(directory))


@pytest.fixture
def shell(ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    """The shell with the extension loaded (a fresh session) and the fake types known."""
    ipython.reset(new_session=True)
    ipython.extension_manager.load_extension(EXTENSION)
    session = get_session(ipython)
    assert session is not None
    session.registry.register_connector_class(FakeSql)
    session.registry.register_connector_class(FakeFiles)
    yield ipython
    ipython.extension_manager.unload_extension(EXTENSION)
    ipython.config.pop("DataSourceMagics", None)  # %config settings outlive the magics


@pytest.fixture
def session(shell: InteractiveShell) -> Session:
    """The session the extension made for the shell."""
    made = get_session(shell)
    assert made is not None
    return made


@pytest.fixture
def history_file(ipython: InteractiveShell) -> Path:
    """The shell's SQLite history file."""
    return Path(ipython.history_manager.hist_file)
