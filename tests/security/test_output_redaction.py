"""Output redaction in a terminal IPython (stdout and stderr wrapped), and its documented limits.

The kernel side (every output message masked before it leaves) is proven by
test_kernel_notebook.py; here the same net under a shell without a kernel, and what it
does not catch: values under 6 characters, and secrets transformed before printing.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass

from IPython.core.interactiveshell import InteractiveShell

from deepanalyze_jupyter.notebook.extension import get_session
from deepanalyze_jupyter.redaction import MASK, MIN_REDACTED_LENGTH
from deepanalyze_jupyter.session import Session
from tests.security.conftest import EXTENSION, Planted


@dataclass
class Terminal:
    """A shell whose stdout and stderr were captured before the extension wrapped them."""

    ipython: InteractiveShell
    session: Session
    out: io.StringIO
    err: io.StringIO


@contextmanager
def _terminal(ipython: InteractiveShell) -> Iterator[Terminal]:
    """Capture stdout and stderr, then load the extension, which wraps them.

    A context manager used inside the test, not a fixture: pytest puts its own capture
    back between a fixture's setup and the test.
    """
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        ipython.reset(new_session=True)
        ipython.extension_manager.load_extension(EXTENSION)
        session = get_session(ipython)
        assert session is not None
        try:
            yield Terminal(ipython, session, out, err)
        finally:
            ipython.extension_manager.unload_extension(EXTENSION)


def test_printed_shown_and_raised_secrets_are_masked(ipython: InteractiveShell, planted: Planted) -> None:
    with _terminal(ipython) as terminal:
        _print_secrets(terminal, planted)
    printed = re.sub(r"\x1b\[[0-9;]*m", "", terminal.out.getvalue() + terminal.err.getvalue())
    assert f"password: {MASK}" in printed
    assert f"sig: {MASK}" in printed
    assert f"RuntimeError: {MASK}" in printed
    planted.book.check("terminal output redaction", printed)


def _print_secrets(terminal: Terminal, planted: Planted) -> None:
    session = terminal.session
    session.add("pg", "postgresql", secrets={"password": planted.password}, **planted.pg_options())
    session.add(
        "signed",
        "azure_blob",
        container=planted.container,
        secrets={"connection_string": planted.sas_connection_string},
    )
    code = (
        "import sys\n"
        "from deepanalyze_jupyter.notebook.extension import get_session\n"
        "registry = get_session(get_ipython()).registry\n"
        "password = registry.get_config('pg', decrypt=True).secrets['password'].reveal()\n"
        "signed = registry.get_config('signed', decrypt=True).secrets['connection_string'].reveal()\n"
        "print('password:', password)\n"
        "print('sig:', signed.rsplit('sig=', 1)[1], file=sys.stderr)\n"
        "import pandas as pd\n"
        "display(pd.DataFrame({'secret': [password]}))\n"
    )
    assert terminal.ipython.run_cell(code, store_history=True).success
    failed = terminal.ipython.run_cell("raise RuntimeError(password)", store_history=True)
    assert isinstance(failed.error_in_exec, RuntimeError)


def test_short_and_transformed_secrets_are_not_caught(ipython: InteractiveShell) -> None:
    """The documented limits of the net (README, "Security model")."""
    short, long_enough = "ab12!", "ab12!x"
    assert len(short) == MIN_REDACTED_LENGTH - 1
    code = "print('a', 'ab12!', 'ab12!x', 'transformed-secret-42'[::-1], 'transformed-' + '\\nsecret-42')"
    with _terminal(ipython) as terminal:
        terminal.session.redactor.add("limits", [short, long_enough, "transformed-secret-42"])
        assert terminal.ipython.run_cell(code).success
    printed = terminal.out.getvalue()
    assert f"a ab12! {MASK} 24-terces-demrofsnart transformed-\nsecret-42\n" in printed
