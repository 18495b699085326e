"""Globs of small CSV files, sniffed once and read as one stream: what DuckDB's own reading gives.

Each case is checked against DuckDB reading the same files from the disk by itself (file
by file, each sniffed), value for value, in order, with the same types; and the case says
whether the files may be read as one stream (they look alike) or must not be.
"""

from __future__ import annotations

import string
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepanalyze_jupyter import QueryError, Session
from deepanalyze_jupyter.connectors.files import sql as files_sql
from tests.conftest import blob_lake

_TEN_ALIKE = {f"d/p{n:02}.csv": f"n,s\n{n},x\n" for n in range(10)}


def _after_ten_files(kind: str, first: str, values: dict[str, str]) -> dict[str, tuple[dict[str, str], bool]]:
    """Cases of ten files of ``first`` numbers (``{n}``: the file's number), then one of each value."""
    ten = {f"d/p{n:02}.csv": f"n,s\n{first.format(n=n)},x\n" for n in range(10)}
    return {
        f"{what} after ten {kind} files": ({**ten, "d/p10.csv": f"n,s\n{value},y\n"}, True)
        for what, value in values.items()
    }


#: name -> (files, whether they are read as one stream; None: as DuckDB's version sniffs them)
def _ten_then(header: str, row: str, later: str) -> dict[str, str]:
    """Ten files of ``header`` and ``row`` (``{n}`` in it: the file's number), then one of
    ``header`` and ``later``."""
    first = {f"d/p{n:02}.csv": f"{header}\n{row.format(n=n)}\n" for n in range(10)}
    return {**first, "d/p10.csv": f"{header}\n{later}\n"}


CASES: dict[str, tuple[dict[str, str], bool | None]] = {
    "alike": ({f"d/p{n}.csv": f"a,b,c\n{n},x{n},{n / 4}\n{n + 1},y,\n" for n in range(5)}, True),
    # On blob storage read while they download, in joined files of some of them each
    "two hundred files": (
        {f"d/p{n:03}.csv": f"id,v,s\n{n},{n}.25,x{n}\n{n + 1000},-{n}.5,y\n" for n in range(200)},
        True,
    ),
    "semicolons": ({"d/p0.csv": "a;b\n1;x\n", "d/p1.csv": "a;b\n2;y\n"}, True),
    "no last line break": ({"d/p0.csv": "a,b\n1,x", "d/p1.csv": "a,b\n2,y", "d/p2.csv": "a,b\n3,z"}, False),
    "windows line breaks": ({"d/p0.csv": "a,b\r\n1,x\r\n", "d/p1.csv": "a,b\r\n2,y\r\n"}, True),
    "windows, no last line break": ({"d/p0.csv": "a,b\r\n1,x\r\n", "d/p1.csv": "a,b\r\n2,y"}, False),
    "a file of its header alone": (
        {"d/p0.csv": "a,b\n1,x\n", "d/p1.csv": "a,b\n", "d/p2.csv": "a,b\n3,z\n"},
        True,
    ),
    "quoted values": ({"d/p0.csv": 'a,b\n1,"x, ""y"""\n', "d/p1.csv": 'a,b\n2,"say ""hi"""\n'}, True),
    "quotes only in a later file": ({"d/p0.csv": "a,b\n1,x\n", "d/p1.csv": 'a,b\n2,"y, z"\n'}, False),
    "escaped quotes only in a later file": (
        {"d/p0.csv": 'a,b\n1,"x, y"\n', "d/p1.csv": 'a,b\n2,"say ""hi"""\n'},
        False,
    ),
    "a wider value later": ({"d/p0.csv": "n,s\n1,x\n2,y\n", "d/p1.csv": "n,s\n2.5,z\n"}, True),
    "an empty column in the first file": ({"d/p0.csv": "n,s\n,x\n,y\n", "d/p1.csv": "n,s\n3,z\n"}, True),
    "the first file of its header alone": ({"d/p0.csv": "n,s\n", "d/p1.csv": "n,s\n3,z\n"}, True),
    # A text column named "n" may hold booleans in a later file, where "n" would be one (no header)
    "text later in a number column": ({"d/p0.csv": "n,s\n1,x\n", "d/p1.csv": "n,s\nmany,y\n"}, False),
    "text later in a number column of a word for a name": (
        {"d/p0.csv": "count,s\n1,x\n", "d/p1.csv": "count,s\nmany,y\n"},
        True,
    ),
    **_after_ten_files(
        "decimal",
        "{n}.5",
        {
            "a whole number": "-5",
            "a trailing point": "5.",
            "a leading point": "-.5",
            "an exponent": "1.5E-3",
            "a huge exponent": "1e400",
            "not a number": "NaN",
            "infinity": "inf",
            "a sign": "+1.5",
            "leading zeros": "00",
            "a number beyond BIGINT": "9223372036854775808",
            "a space after a decimal": "1.5 ",
            "a tab after an exponent": "1e5\t",
            "a space before a decimal": " 1.5",
            "spaces around a whole number": " 7 ",
        },
    ),
    **_after_ten_files(
        "whole-number",
        "{n}",
        {
            "a decimal": "2.5",
            "an exponent": "1e3",
            "a hexadecimal": "0x10",
            "text": "many",
            "a padded number": " 7 ",
            "a sign": "+5",
            "a minus": "-5",
            "a leading zero": "007",
            "zero": "0",
            "the largest number": "9223372036854775807",
            "an empty value": "",
            "a number too large": "99999999999999999999999",
        },
    ),
    **{
        f"a later file {what}": ({**_TEN_ALIKE, "d/p10.csv": text}, True)
        for what, text in [
            ("without its last line break", "n,s\n3,y"),
            ("with another header", "m,s\n3,y\n"),
            ("with quotes", 'n,s\n3,"y"\n'),
            ("of its header alone", "n,s\n"),
        ]
    },
    "a later file shorter than the header": ({**_TEN_ALIKE, "d/p10.csv": "n\n"}, False),
    # DuckDB's sniff takes a whole number with a space after it as BIGINT, not DOUBLE: only before a
    # decimal; each file's types found on their own are widened, not those of the files joined
    "a later file of a decimal, then a whole number and a space": (
        _ten_then("n,s", "{n}.5,x", "1.5,y\n7 ,z"),
        True,
    ),
    "a decimal, then a whole number and a space in the next file": (
        {"d/p0.csv": "n,s\n1.5,x\n", "d/p1.csv": "n,s\n7 ,y\n"},
        False,
    ),
    # DuckDB sniffs the header of each later file: a header line its values' types parse is no
    # header, so a name a type takes is not read joined. Its sniff casts a hexadecimal or binary
    # name to BIGINT (DOUBLE does not take it), and dates and times with AM/PM in their format.
    **{
        f"a later {column} under {name_kind} for a name": (_ten_then(f"s,{name}", row, f"x,{later}"), False)
        for column, name_kind, name, row, later in [
            ("text column of numbers", "a number", "2024", "x{n},n/a", "5"),
            ("text column of booleans", "a boolean", "t", "x{n},y", "t"),
            ("text column of numbers", "a hexadecimal", "0x10", "x{n},n/a", "5"),
            ("text column of numbers", "a binary number", "0b101", "x{n},n/a", "5"),
            ("decimal column of whole numbers", "a hexadecimal", "0XAB", "x{n},{n}.5", "5"),
            (
                "text column of AM/PM times",
                "one",
                "01/31/2024 01:00:00 PM",
                "x{n},n/a",
                "02/28/2024 03:00:00 PM",
            ),
        ]
    },
    # DuckDB's full sniff refuses a file with a row of another width after its first 2048 lines
    # (its dialect candidates' sample); the sniff with no quote, escape or comment finds a dialect
    "a row of a trailing delimiter after 2048 lines of a later file": (
        {"d/p0.csv": "a,b\n9,z\n", "d/p1.csv": "a,b\n" + "".join(f"{i},x\n" for i in range(2047)) + "5,y,\n"},
        False,
    ),
    "dates": ({"d/p0.csv": "a,day\n1,2024-01-31\n", "d/p1.csv": "a,day\n2,2024-02-29\n"}, False),
    # DuckDB 2 sniffs HUGEINT (read file by file), DuckDB 1.5 DOUBLE (joined): either way as DuckDB reads it
    "a number too wide": ({"d/p0.csv": "n\n1\n", "d/p1.csv": "n\n9999999999999999999999\n"}, None),
    "one column, a later file of another delimiter": ({"d/p0.csv": "n\n1\n", "d/p1.csv": "n\n7;8\n"}, False),
    "another column order": ({"d/p0.csv": "a,b\n1,x\n", "d/p1.csv": "b,a\ny,2\n"}, False),
    "a later file without header": ({"d/p0.csv": "a,b\n1,x\n", "d/p1.csv": "2,y\n"}, False),
    "more columns later": ({"d/p0.csv": "a,b\n1,x\n", "d/p1.csv": "a,b,c\n2,y,3\n"}, False),
    "no header at all": ({"d/p0.csv": "1,x\n2,y\n", "d/p1.csv": "3,z\n"}, False),
    "one file": ({"d/p0.csv": "a,b\n1,x\n"}, False),
    "partition folders": ({"d/year=2024/p.csv": "a\n1\n", "d/year=2025/p.csv": "a\n2\n"}, False),
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(text.encode())


def _duckdb_itself(root: Path, sql: str) -> pa.Table:
    """What DuckDB reads from the disk by itself, for ``sql`` whose paths are relative to ``root``."""
    with duckdb.connect() as connection:
        table: pa.Table = connection.sql(sql.replace("'d/", f"'{root}/d/")).to_arrow_table()
        return table


@pytest.fixture
def joined(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """What each statement's CSV globs became: the statement read as one stream, or ``None``."""
    seen: list[str | None] = []
    rewrite = files_sql.with_csv_globs_joined

    def watched(*args: Any) -> str | None:
        seen.append(rewrite(*args))
        return seen[-1]

    monkeypatch.setattr(files_sql, "with_csv_globs_joined", watched)
    return seen


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[Session, Path]]:
    root = tmp_path / "lake"
    root.mkdir()
    with Session() as session:
        session.add("lake", "local", path=str(root))
        yield session, root


def _assert_same(ours: Callable[[], pa.Table], theirs: Callable[[], pa.Table]) -> None:
    try:
        expected = theirs()
    except duckdb.Error:
        with pytest.raises(QueryError) as raised:
            ours()
        assert "\n" not in str(raised.value)
        return
    got = ours()
    assert got.schema.equals(expected.schema), (got.schema, expected.schema)
    pd.testing.assert_frame_equal(got.to_pandas(), expected.to_pandas(), check_exact=True)  # NaN == NaN


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('d/*.csv')",
        "SELECT * FROM 'd/*.csv'",
        "SELECT * FROM read_csv_auto('d/**/*.csv')",
    ],
)
def test_a_glob_of_csv_files_reads_as_duckdb_reads_it(
    folder: tuple[Session, Path], joined: list[str | None], case: str, sql: str
) -> None:
    session, root = folder
    files, alike = CASES[case]
    _write(root, files)
    _assert_same(
        lambda: session.query("lake", sql, limit=None, output="arrow"),
        lambda: _duckdb_itself(root, sql),
    )
    if alike is not None:
        assert (joined[-1] is not None) == alike, joined
    counted = sql.replace("*", "count(*) AS n", 1)  # DuckDB checks every file even when no column is used
    _assert_same(
        lambda: session.query("lake", counted, limit=None, output="arrow"),
        lambda: _duckdb_itself(root, counted),
    )


def test_statements_asking_which_file_a_row_came_from_read_file_by_file(
    folder: tuple[Session, Path], joined: list[str | None]
) -> None:
    session, root = folder
    _write(root, CASES["alike"][0])
    for column in ("filename", "file_index", '"FileName"'):
        frame = session.query("lake", f"SELECT a, {column} AS f FROM read_csv('d/*.csv') ORDER BY a, f")
        assert joined[-1] is None
        assert frame["f"].nunique() == 5


def test_a_large_file_in_the_glob_is_read_file_by_file(
    folder: tuple[Session, Path], joined: list[str | None]
) -> None:
    session, root = folder
    _write(root, {"d/small.csv": "a,b\n1,x\n", "d/large.csv": "a,b\n" + "2,y\n" * 400_000})
    frame = session.query("lake", "SELECT count(*) AS n, sum(a) AS total FROM 'd/*.csv'")
    assert joined[-1] is None
    assert (frame["n"][0], frame["total"][0]) == (400_001, 800_001)


def test_a_row_limit_cuts_a_joined_read(folder: tuple[Session, Path], joined: list[str | None]) -> None:
    session, root = folder
    _write(
        root, {f"d/p{n:02}.csv": "a\n" + "".join(f"{n * 100 + i}\n" for i in range(100)) for n in range(30)}
    )
    frame = session.query("lake", "SELECT a FROM 'd/*.csv'", limit=250)
    assert joined[-1] is not None
    assert frame.attrs["truncated"] is True
    assert frame["a"].tolist() == list(range(250))


#: The kinds of values a column of a generated file holds (each column one kind, as in real files).
_KINDS = [
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(string.ascii_letters + string.digits + ' ,;"\n-:', max_size=12),
    st.dates().map(str),
    st.booleans(),
]


def test_any_files_written_by_pandas_read_as_duckdb_reads_them(
    folder: tuple[Session, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, _ = folder
    read_joined: list[bool] = []  # per example: whether its rows came from the joined read
    read = files_sql._read

    def watched(connection: Any, sql: str, *args: Any) -> Any:
        result = read(connection, sql, *args)
        read_joined.append(".joined-" in sql)
        return result

    monkeypatch.setattr(files_sql, "_read", watched)

    @settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(
        columns=st.integers(1, 4),
        data=st.data(),
        sizes=st.lists(st.integers(0, 6), min_size=2, max_size=12),
    )
    def reads_alike(columns: int, data: st.DataObject, sizes: list[int]) -> None:
        strategies = [data.draw(st.sampled_from(_KINDS), label=f"column {index}") for index in range(columns)]
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            (root / "d").mkdir()
            for number, size in enumerate(sizes):
                rows = [[data.draw(st.one_of(st.none(), kind)) for kind in strategies] for _ in range(size)]
                frame = pd.DataFrame(rows, columns=[f"col{index}" for index in range(columns)], dtype=object)
                frame.to_csv(root / "d" / f"p{number:02}.csv", index=False)
            session.update("lake", path=str(root))
            for sql in ("SELECT * FROM read_csv('d/*.csv')", "SELECT count(*) AS n FROM 'd/*.csv'"):
                _assert_same(
                    lambda: session.query("lake", sql, limit=None, output="arrow"),  # noqa: B023
                    lambda: _duckdb_itself(root, sql),  # noqa: B023
                )

    reads_alike()
    # Tiny files often sniff apart (and dates and booleans are not joined): still, a share of
    # them took the joined read (18-28 of the 200 reads, by the order tests run in)
    assert read_joined.count(True) >= 12, read_joined


@pytest.mark.integration
@pytest.mark.azurite
@pytest.mark.parametrize(
    "case",
    [
        "alike",
        "a decimal after ten whole-number files",
        "another column order",
        "no last line break",
        "two hundred files",
    ],
)
def test_a_glob_of_csv_blobs_reads_as_duckdb_reads_the_same_files(
    azurite: Any, blob_container: str, tmp_path: Path, joined: list[str | None], case: str
) -> None:
    files, alike = CASES[case]
    _write(tmp_path, files)
    azurite.upload(blob_container, {name: text.encode() for name, text in files.items()})
    sql = "SELECT * FROM read_csv('d/*.csv')"
    with blob_lake(azurite, blob_container) as session:
        _assert_same(
            lambda: session.query("lake", sql, limit=None, output="arrow"),
            lambda: _duckdb_itself(tmp_path, sql),
        )
        assert (joined[0] is not None) == alike, joined
        if case in ("alike", "no last line break"):  # read whole once: every byte, no byte twice
            frame = session.query("lake", "SELECT count(*) AS n FROM 'd/*.csv'")
            assert frame.attrs["bytes_fetched"] == sum(len(text.encode()) for text in files.values())


def test_a_timeout_stops_a_joined_read_and_names_no_joined_file(
    folder: tuple[Session, Path], joined: list[str | None]
) -> None:
    session, root = folder
    _write(root, {f"d/p{n:02}.csv": "a\n" + "".join(f"{i}\n" for i in range(2_000)) for n in range(20)})
    endless = "SELECT count(*) FROM 'd/*.csv' x CROSS JOIN 'd/*.csv' y CROSS JOIN range(100000)"
    started = time.monotonic()
    with pytest.raises(QueryError) as raised:
        session.query("lake", endless, timeout=1)
    assert time.monotonic() - started < 15
    assert joined[-1] is not None  # the joined read was under way
    assert "did not finish within 1 s" in str(raised.value)
    assert ".joined-" not in str(raised.value)
    assert "\n" not in str(raised.value)
    assert session.query("lake", "SELECT count(*) AS n FROM 'd/*.csv'")["n"].tolist() == [40_000]
