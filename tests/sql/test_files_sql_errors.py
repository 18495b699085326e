"""A CSV value DuckDB cannot convert, deep in one of many files: the one line says which file and what."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepanalyze_jupyter import QueryError, Session
from tests.sql.test_batched_edges import _blob, _local

_STORES = ["local", pytest.param("blob", marks=[pytest.mark.integration, pytest.mark.azurite])]


def _lake(request: pytest.FixtureRequest, session: Session, tmp_path: Path, files: dict[str, str]) -> Session:
    """``session`` with source ``lake`` holding ``files``, in a local folder or a blob container."""
    if request.param == "local":
        _local(session, tmp_path / "lake", dict(files))
    else:
        _blob(request, session, files)
    return session


def _one_line_error(session: Session, sql: str) -> str:
    """The message of the error ``sql`` fails with on source ``lake``, checked to be one line."""
    with pytest.raises(QueryError) as raised:
        session.query("lake", sql)
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.fixture(params=_STORES)
def bad_value(request: pytest.FixtureRequest, session: Session, tmp_path: Path) -> Session:
    rows = "a,b\n" + "1,2\n" * 30_000  # past DuckDB's type-sniffing sample
    files = {f"c/d{day}.csv": rows for day in range(3)}
    files["c/d3.csv"] = rows + "x,2\n"
    return _lake(request, session, tmp_path, files)


def test_a_csv_value_that_does_not_convert_names_its_file_and_value(bad_value: Session) -> None:
    message = _one_line_error(bad_value, "SELECT sum(a) FROM read_csv('c/*.csv')")
    assert message.startswith("lake: Conversion Error: CSV Error on Line: 30002 of 'c/d3.csv': ")
    assert """Could not convert string "x" to 'BIGINT'""" in message


@pytest.fixture(params=_STORES)
def long_line(request: pytest.FixtureRequest, session: Session, tmp_path: Path) -> Session:
    files = {"long.csv": "id,text\n1," + "x" * 3_000_000 + "\n2,short\n"}  # over DuckDB's 2 MB line
    return _lake(request, session, tmp_path, files)


def test_a_csv_line_over_duckdbs_longest_says_so_and_which_max_line_size_reads_it(long_line: Session) -> None:
    message = _one_line_error(long_line, "SELECT id FROM 'long.csv'")
    assert message.startswith("lake: Invalid Input Error: CSV Error on Line: 1 of 'long.csv': ")
    assert "Maximum line size of 2000000 bytes exceeded" in message
    size = int(message.rpartition("max_line_size=")[2])
    read = f"SELECT id, length(text) AS n FROM read_csv('long.csv', max_line_size={size})"
    frame = long_line.query("lake", read)
    assert frame["n"].tolist() == [3_000_000, 5]


@pytest.mark.parametrize(
    ("data", "sql", "reason"),
    [
        (b"\x00\x01binary\xff\xfe", "SELECT * FROM read_csv('x.csv')", "This file is not utf-8 encoded."),
        (
            b'a,b\n1,2\n"unterminated,3\n4,5,6,7\n',
            "SELECT * FROM read_csv('x.csv', strict_mode=true, columns={'a': 'INT', 'b': 'INT'})",
            "It was not possible to automatically detect the CSV parsing dialect",
        ),
    ],
    ids=["not utf-8", "no dialect"],
)
def test_a_csv_that_cannot_be_read_says_why_in_its_one_line(
    session: Session, tmp_path: Path, data: bytes, sql: str, reason: str
) -> None:
    _local(session, tmp_path / "lake", {"x.csv": data})
    message = _one_line_error(session, sql)
    assert message.startswith("lake: Invalid Input Error: ")
    assert message.endswith(reason)
    assert ".:" not in message
