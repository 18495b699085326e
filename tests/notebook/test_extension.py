"""The IPython extension in a real shell: load, load again, unload."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import deepanalyze_jupyter
from deepanalyze_jupyter.notebook.extension import get_session
from deepanalyze_jupyter.session import Session
from tests.core.conftest import PASSWORD
from tests.core.fakes import FakeService, fake_connector_class

EXTENSION = "deepanalyze_jupyter"


@pytest.fixture(scope="module")
def ipython(tmp_path_factory: pytest.TempPathFactory) -> InteractiveShell:
    """A real shell of its own (not the global singleton), with an in-memory history."""
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    return InteractiveShell(config=config, ipython_dir=str(tmp_path_factory.mktemp("ipython")))  # type: ignore[no-untyped-call]


@pytest.fixture
def shell(ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    """The shell, left without the extension whatever the test did."""
    assert get_session(ipython) is None
    yield ipython
    extensions = ipython.extension_manager
    assert extensions is not None
    if EXTENSION in extensions.loaded:
        extensions.unload_extension(EXTENSION)
    else:
        deepanalyze_jupyter.unload_ipython_extension(ipython)


def run_line(shell: InteractiveShell, line: str) -> None:
    result = shell.run_cell(line, store_history=False)  # type: ignore[no-untyped-call]
    result.raise_error()


def line_magics(shell: InteractiveShell) -> set[str]:
    return set(shell.magics_manager.magics["line"])


def test_load_ext_registers_the_magics_and_a_session(shell: InteractiveShell) -> None:
    assert "datasource" not in line_magics(shell)
    run_line(shell, f"%load_ext {EXTENSION}")
    session = get_session(shell)
    assert isinstance(session, Session)
    assert not session.closed
    assert "datasource" in line_magics(shell)
    assert shell.extension_manager is not None
    assert EXTENSION in shell.extension_manager.loaded


def test_loading_twice_keeps_the_same_session(shell: InteractiveShell) -> None:
    run_line(shell, f"%load_ext {EXTENSION}")
    session = get_session(shell)
    run_line(shell, f"%load_ext {EXTENSION}")
    deepanalyze_jupyter.load_ipython_extension(shell)
    assert get_session(shell) is session
    assert "datasource" in line_magics(shell)


def test_unload_disconnects_every_source_and_stops_the_loop(shell: InteractiveShell) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    service = FakeService()
    run_line(shell, f"%load_ext {EXTENSION}")
    session = get_session(shell)
    assert session is not None
    session.registry.register_connector_class(fake_connector_class(service))
    session.add("a", "fake", host="h", secrets={"password": PASSWORD})
    session.add("b", "fake", host="h")
    thread = session.runner._thread
    assert thread is not None
    assert thread.is_alive()

    run_line(shell, f"%unload_ext {EXTENSION}")

    assert sorted(service.disconnects) == ["a", "b"]
    assert service.open_connections() == 0
    assert not thread.is_alive()
    assert session.closed
    assert get_session(shell) is None
    assert "datasource" not in line_magics(shell)
    assert (sys.stdout, sys.stderr) == (stdout, stderr)  # the output wrappers are gone too


def test_loading_after_an_unload_makes_a_new_session(shell: InteractiveShell) -> None:
    run_line(shell, f"%load_ext {EXTENSION}")
    first = get_session(shell)
    run_line(shell, f"%unload_ext {EXTENSION}")
    run_line(shell, f"%load_ext {EXTENSION}")
    second = get_session(shell)
    assert second is not None
    assert second is not first
    assert not second.closed


def test_unloading_what_was_never_loaded_is_harmless(shell: InteractiveShell) -> None:
    deepanalyze_jupyter.unload_ipython_extension(shell)
    assert get_session(shell) is None


def test_the_session_lives_on_the_shell_not_in_a_module(shell: InteractiveShell, tmp_path: Path) -> None:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    other = InteractiveShell(config=config, ipython_dir=str(tmp_path))  # type: ignore[no-untyped-call]
    try:
        deepanalyze_jupyter.load_ipython_extension(shell)
        deepanalyze_jupyter.load_ipython_extension(other)
        assert get_session(shell) is not get_session(other)
    finally:
        deepanalyze_jupyter.unload_ipython_extension(other)


def test_current_session_is_the_session_the_magics_use(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    session = deepanalyze_jupyter.current_session()  # loads the extension on first use
    assert session is get_session(shell)
    assert "datasource" in shell.magics_manager.magics["line"]
    assert deepanalyze_jupyter.current_session() is session


def test_current_session_outside_ipython_says_what_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    with pytest.raises(RuntimeError, match=r"deepanalyze_jupyter\.Session\(\)"):
        deepanalyze_jupyter.current_session()
