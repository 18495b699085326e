"""A refused literal secret leaves no trace in the shell's input history, memory or file."""

from __future__ import annotations

import io
import sqlite3
from contextlib import closing, redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest
from IPython.core.interactiveshell import InteractiveShell

from deepanalyze_jupyter.notebook.history import scrub_text
from deepanalyze_jupyter.redaction import MASK
from deepanalyze_jupyter.session import Session

from .conftest import EXTENSION, run, usage_error

SECRET = "hunter2-Very-Secret"


def history_copies(shell: InteractiveShell, history_file: Path) -> list[str]:
    """Every copy of the inputs the shell keeps: lists, variables, cache and file rows.

    Only this history session's rows of the file: the shell is shared by the tests, and an
    earlier test may type the secret into a cell on purpose.
    """
    manager = shell.history_manager
    manager.writeout_cache()
    copies = [*shell.user_ns["In"], *shell.user_ns["_ih"], *manager.input_hist_raw]
    copies += [
        value for name, value in shell.user_ns.items() if name.startswith("_i") and isinstance(value, str)
    ]
    copies += [manager._i00, manager._i, manager._ii, manager._iii]
    copies += [text for entry in manager.db_input_cache for text in entry[1:]]
    with closing(sqlite3.connect(history_file)) as connection, connection:
        rows = connection.execute(
            "SELECT source, source_raw FROM history WHERE session = ?", (manager.session_number,)
        ).fetchall()
    copies += [text for row in rows for text in row]
    return copies


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        (f"%datasource add w --type fakesql --host ok --password {SECRET}", "--password ********"),
        (f"%datasource add w --type fakesql --host ok --password='{SECRET}'", "--password='********'"),
        (f'%datasource add w --type fakesql --host ok --password "it\'s-{SECRET}"', '--password "********"'),
        (f"%datasource add w --type fakesql --host ok \\\n    --password {SECRET}", "--password ********"),
        (
            f"%datasource add w --type fakesql --host ok --dsn postgresql://bob:{SECRET}@db/sales",
            "--dsn postgresql://bob:********@db/sales",
        ),
        (f"%datasource ls w 'https://acct.blob.core.windows.net/c?sv=1&sig={SECRET}'", "sig=********"),
        (f"%%dsquery w --password {SECRET}\nSELECT 1", "--password ********"),
    ],
)
def test_a_refused_line_is_scrubbed_everywhere(
    shell: InteractiveShell, session: Session, history_file: Path, line: str, masked: str
) -> None:
    run(shell, "x = 1")
    message = usage_error(shell, line)
    run(shell, "y = 2")  # shifts _i/_ii/_iii and flushes the line to the file
    assert "refused" in message
    assert SECRET not in message
    assert session.registry.source_ids == []
    copies = history_copies(shell, history_file)
    assert not [copy for copy in copies if SECRET in copy]
    assert any(masked in copy for copy in copies)
    assert MASK in shell.user_ns["_i"]


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        # Read as libpq reads a DSN: a percent-encoded key of a URI is still the password.
        (
            f'%datasource add w --type fakesql --host ok --dsn "postgresql://u@h/db?%70assword={SECRET}"',
            "--dsn ",
        ),
        (f"%datasource add w --type fakesql --host ok --dsn 'host=h password = {SECRET}'", "--dsn "),
        # Read as the storage service reads a query: %73ig is sig.
        (f"%datasource ls w 'https://acct.blob.core.windows.net/c?sv=1&%73ig={SECRET}'", "%datasource ls w "),
        (f"%datasource add w --type fakesql --host ok --dsn 'h?sv=1&SIG={SECRET}'", "--dsn "),
        # A secret typed where a name is expected.
        (f"%datasource add w --type fakesql --host ok --password-env {SECRET}", "--password-env ********"),
        (f"%datasource add w --type fakesql --host ok --password env:{SECRET}", "--password env:********"),
        (
            f"%datasource add w --type fakesql --host ok --password-env 'a {SECRET}'",
            "--password-env '********'",
        ),
        (f"%datasource add w --type fakesql --host ok --prompt {SECRET}", "--prompt ********"),
        (f"%datasource update known --unset {SECRET}", "--unset ********"),
    ],
)
def test_a_secret_in_another_spelling_or_place_is_refused_and_scrubbed(
    shell: InteractiveShell, session: Session, history_file: Path, line: str, masked: str
) -> None:
    run(shell, "%datasource add known --type fakesql --host ok --no-test")
    message = usage_error(shell, line)
    run(shell, "y = 2")
    assert "refused" in message
    assert SECRET not in message
    assert session.registry.source_ids == ["known"]
    copies = history_copies(shell, history_file)
    assert not [copy for copy in copies if SECRET in copy]
    assert not [copy for copy in copies if "%70assword" in copy or "%73ig" in copy]
    assert any(masked in copy and MASK in copy for copy in copies)


def test_earlier_inputs_are_kept(shell: InteractiveShell, history_file: Path) -> None:
    run(shell, "kept = 'an ordinary cell'")
    usage_error(shell, f"%datasource add w --type fakesql --host ok --password {SECRET}")
    assert "kept = 'an ordinary cell'" in history_copies(shell, history_file)


def test_the_refused_line_inside_a_longer_cell_keeps_the_rest(
    shell: InteractiveShell, history_file: Path
) -> None:
    cell = f"before = 1\n%datasource add w --type fakesql --host ok --password {SECRET}\nafter = 2"
    usage_error(shell, cell)
    raw = shell.history_manager.input_hist_raw[-1]
    assert raw == "before = 1\n%datasource add w --type fakesql --host ok --password ********\nafter = 2"


def test_scrub_text_masks_the_forms_a_value_takes_in_stored_input() -> None:
    line = "add w --password 'it\\'s'"
    parsed = f"get_ipython().run_line_magic('datasource', {line!r})"
    assert "it" not in scrub_text(parsed, [("it's", MASK)], line=line).replace("get_ipython", "")


def test_scrub_text_leaves_short_values_outside_the_line_alone() -> None:
    assert scrub_text("ab = 1", [("ab", MASK)]) == "ab = 1"
    assert (
        scrub_text("add --password ab", [("ab", MASK)], line="add --password ab") == "add --password ********"
    )


def test_a_terminal_prompt_history_is_scrubbed(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = f"%datasource add w --type fakesql --host ok --password {SECRET}"
    prompt_history = SimpleNamespace(_loaded_strings=[line, "x = 1"])
    monkeypatch.setattr(shell, "pt_app", SimpleNamespace(history=prompt_history), raising=False)
    usage_error(shell, line)
    assert prompt_history._loaded_strings == [line.replace(SECRET, MASK), "x = 1"]


def test_an_unset_variable_name_is_neither_repeated_nor_kept(
    shell: InteractiveShell, history_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = "Hunter2VerySecretPassword"  # a secret that could be a variable's name
    monkeypatch.delenv(typed, raising=False)
    message = usage_error(
        shell, f"%datasource add w --type fakesql --host ok --no-test --password-env {typed}"
    )
    run(shell, "y = 2")
    assert "is not set in the kernel's environment" in message
    assert typed not in message
    assert not [copy for copy in history_copies(shell, history_file) if typed in copy]


def test_a_refused_line_is_scrubbed_from_the_logstart_file(shell: InteractiveShell, tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    run(shell, f"%logstart {log}")
    try:
        usage_error(shell, f"%datasource add w --type fakesql --host ok --password {SECRET}")
        run(shell, "after = 1")
        shell.logger.logfile.flush()
        text = log.read_text(encoding="utf-8")
    finally:
        run(shell, "%logstop")
    assert SECRET not in text
    assert "--password ********" in text
    assert "after = 1" in text


def test_displayed_secrets_are_masked_in_the_logstart_file_and_the_history_database(
    shell: InteractiveShell, session: Session, tmp_path: Path, history_file: Path
) -> None:
    """``%logstart -o`` and ``db_log_output`` keep what cells display: masked, as the output is."""
    session.add("w", "fakesql", host="ok", secrets={"password": SECRET}, test=False)
    log = tmp_path / "session.log"
    manager = shell.history_manager
    assert manager is not None
    run(shell, f"%logstart -o {log}")
    manager.db_log_output = True
    try:
        run(shell, f"'shown: ' + {SECRET!r}")
        number = shell.execution_count - 1
        shell.logger.logfile.flush()
        manager.writeout_cache()
        text = log.read_text(encoding="utf-8")
    finally:
        manager.db_log_output = False
        run(shell, "%logstop")
    assert "#[Out]# 'shown: ********'" in text
    assert SECRET not in text
    with closing(sqlite3.connect(history_file)) as connection:
        outputs = [row[0] for row in connection.execute("SELECT output FROM output_history")]
    assert "'shown: ********'" in outputs
    assert not any(SECRET in output for output in outputs)
    assert SECRET not in manager.output_hist_reprs.get(number, "")


#: Prints what ``%debug`` then ``p line`` shows: the magic line among the locals of the frames
#: of the last error.
PRINT_LINES_OF_LAST_ERROR = """\
import sys as _sys
_tb = _sys.last_traceback
while _tb is not None:
    if isinstance(_tb.tb_frame.f_locals.get("line"), str):
        print("line:", _tb.tb_frame.f_locals["line"])
    _tb = _tb.tb_next
"""


@pytest.mark.parametrize(
    "line",
    [
        f"%datasource add w --type postgresql --host h --password {SECRET}",
        f"%datasource add w --type postgresql --dsn 'postgresql://u:{SECRET}@h/db'",
        f"%%dsquery w --password {SECRET}\nSELECT 1",
    ],
)
def test_a_refused_secret_is_masked_in_what_the_frames_of_the_error_show(
    ipython: InteractiveShell, line: str
) -> None:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):  # the extension wraps these streams
        ipython.reset(new_session=True)
        ipython.extension_manager.load_extension(EXTENSION)
        try:
            assert type(ipython.run_cell(line, store_history=True).error_in_exec).__name__ == "UsageError"
            ipython.run_cell(PRINT_LINES_OF_LAST_ERROR, store_history=True)
        finally:
            ipython.extension_manager.unload_extension(EXTENSION)
    printed = out.getvalue() + err.getvalue()
    assert "line: " in printed
    assert SECRET not in printed
