"""A result the magics cut shows one note, the magic's own, and no warning of the Python API."""

from __future__ import annotations

import sqlite3
import warnings
from contextlib import closing
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell

from deepanalyze_jupyter import ResultTruncated

from .conftest import run


def test_a_cut_result_shows_the_magics_note_once(shell: InteractiveShell, tmp_path: Path) -> None:
    database = tmp_path / "numbers.db"
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE numbers (n INTEGER)")
        connection.executemany("INSERT INTO numbers VALUES (?)", [(n,) for n in range(10)])
        connection.commit()
    (tmp_path / "numbers.csv").write_text("n\n" + "".join(f"{n}\n" for n in range(10)))
    assert run(shell, f"%datasource add db --type sqlite --path {database}").error is None
    assert run(shell, f"%datasource add folder --type local --path {tmp_path}").error is None
    run(shell, "%config DataSourceMagics.autolimit = 3")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cells = [
            run(shell, "%%dsquery db\nSELECT n FROM numbers"),
            run(shell, "%datasource read folder numbers.csv"),
        ]
    for ran in cells:
        assert ran.error is None, ran.text
        assert len(ran.result) == 3
        assert ran.out.count("Showing the first 3 rows") == 1
        assert "ResultTruncated" not in ran.text
    assert not [warning for warning in caught if issubclass(warning.category, ResultTruncated)]
