"""A sniff asked with no quote, escape or comment finds what DuckDB's full sniff finds, in files
holding none of those characters (``connectors/files/sniffs.py`` relies on it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepanalyze_jupyter.connectors.files import sniffs

_COLUMNS = ", ".join(f'"{name}"' for name in sniffs.DIALECT)
#: Values of every kind DuckDB's sniff tells apart, of none of the characters it may quote,
#: escape or comment with; some hold a delimiter, so that a file may sniff as another one.
_VALUES = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "true", "FALSE", "2024-01-31", "2024-01-31 12:00", "12:30", "007", "1e5"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\"'\\#\r\n"), max_size=12),
)


def _outcome(path: Path, options: str = "") -> Any:
    """What DuckDB's sniff of ``path`` finds, or the words it refuses the file with."""
    given = f", {options}" if options else ""
    try:
        with duckdb.connect() as connection:
            return connection.execute(f"SELECT {_COLUMNS} FROM sniff_csv('{path}'{given})").fetchall()
    except duckdb.Error as error:
        return str(error)


def _full_and_narrow(path: Path) -> tuple[Any, Any]:
    with duckdb.connect() as connection:
        full = connection.execute(f"SELECT {_COLUMNS} FROM sniff_csv('{path}')").fetchall()
        narrow = connection.execute(
            f"SELECT {_COLUMNS} FROM sniff_csv('{path}', quote = '', escape = '', comment = '')"
        ).fetchall()
    return full, narrow


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    delimiter=st.sampled_from([",", "|", ";", "\t", " "]),
    newline=st.sampled_from(["\n", "\r\n"]),
    width=st.integers(1, 5),
    rows=st.lists(st.lists(_VALUES, min_size=1, max_size=6), min_size=0, max_size=30),
    header=st.booleans(),
    last_line_break=st.booleans(),
)
def test_a_file_without_quotes_escapes_or_comments_sniffs_alike_with_none_of_them(
    tmp_path_factory: pytest.TempPathFactory,
    delimiter: str,
    newline: str,
    width: int,
    rows: list[list[str]],
    header: bool,
    last_line_break: bool,
) -> None:
    lines = [delimiter.join(f"c{index}" for index in range(width))] if header else []
    lines += [delimiter.join((row * width)[:width]) for row in rows]
    text = newline.join(lines) + (newline if last_line_break and lines else "")
    data = text.encode()
    assert not any(char in data for char in sniffs.UNUSED)
    path = tmp_path_factory.mktemp("sniff") / "f.csv"
    path.write_bytes(data)
    assert _outcome(path) == _outcome(path, "quote = '', escape = '', comment = ''")


def test_a_file_holding_any_of_them_is_sniffed_in_full(tmp_path: Path) -> None:
    """``a;'b;c'`` is one quoted column to the full sniff; the narrow one would not see the quote."""
    path = tmp_path / "f.csv"
    path.write_bytes(b"a;b\n1;'x;y'\n2;'z;w'\n")
    full, narrow = _full_and_narrow(path)
    assert full != narrow
    with duckdb.connect() as connection:
        sniffed = sniffs.sniff(connection, str(path), [path.read_bytes()])
    assert sniffed is not None
    assert tuple(sniffed.values()) == full[0]


@pytest.mark.parametrize("last", ["1;2;3", "5;y;", "1"])
def test_a_row_of_another_width_after_the_first_lines_is_sniffed_in_full(tmp_path: Path, last: str) -> None:
    """DuckDB's full sniff refuses a file whose row after its first 2048 lines has another width,
    where the sniff with no quote, escape or comment finds a dialect: such a file is sniffed in full."""
    path = tmp_path / "f.csv"
    path.write_bytes(("a;b\n" + "".join(f"{i};x\n" for i in range(2047)) + last + "\n").encode())
    assert not any(char in path.read_bytes() for char in sniffs.UNUSED)
    full = _outcome(path)
    assert isinstance(full, str)  # refused
    assert full != _outcome(path, "quote = '', escape = '', comment = ''")
    with duckdb.connect() as connection:
        assert sniffs.sniff(connection, str(path), [path.read_bytes()]) is None
