"""SQL on file sources, run by DuckDB: results, pruning, parameters, limits, interrupts, the sandbox."""

from __future__ import annotations

import concurrent.futures
import io
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepanalyze_jupyter import ConfigurationError, QueryError, Session
from deepanalyze_jupyter.connectors.files.sql import rewrite_paths
from deepanalyze_jupyter.connectors.files.statements import is_sql
from tests.sql.conftest import CSV_FILES, PARQUET_FILES, csv_frame, dataset_files, parquet_frame


def _parquet_all() -> pd.DataFrame:
    return pd.concat([parquet_frame(part) for part in range(PARQUET_FILES)], ignore_index=True)


def test_group_by_over_parquet_files_matches_pandas(lake: Session) -> None:
    frame = lake.query(
        "lake",
        "SELECT region, sum(c3) AS total, count(*) AS n FROM 'sales/2024/*.parquet' "
        "GROUP BY region ORDER BY region",
    )
    expected = _parquet_all().groupby("region")["c3"].agg(["sum", "count"]).sort_index()
    assert frame["region"].tolist() == expected.index.tolist()
    assert [int(value) for value in frame["total"]] == expected["sum"].tolist()
    assert frame["n"].tolist() == expected["count"].tolist()


def test_csv_glob_and_json_join(lake: Session) -> None:
    frame = lake.query(
        "lake",
        "SELECT c.item, sum(c.qty) AS qty, any_value(j.price) AS price "
        "FROM read_csv('csv/day-*.csv') c JOIN read_json('json/items.jsonl') j USING (item) "
        "GROUP BY c.item ORDER BY c.item",
    )
    days = pd.concat([csv_frame(day) for day in range(CSV_FILES)])
    expected = days[days["item"].isin(["item-1", "item-2"])].groupby("item")["qty"].sum()
    assert frame["item"].tolist() == ["item-1", "item-2"]
    assert frame["qty"].tolist() == expected.tolist()
    assert frame["price"].tolist() == [2.5, 4.0]


def test_two_of_twenty_columns_fetch_only_their_share_of_the_bytes(lake: Session) -> None:
    name = "sales/2024/part-0.parquet"
    data = dataset_files()[name]
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    wanted = {"c1", "c7"}
    column_bytes = sum(
        metadata.row_group(group).column(index).total_compressed_size
        for group in range(metadata.num_row_groups)
        for index in range(metadata.num_columns)
        if metadata.row_group(group).column(index).path_in_schema in wanted
    )
    footer = int.from_bytes(data[-8:-4], "little") + 8
    frame = lake.query("lake", f"SELECT sum(c1) AS a, max(c7) AS b FROM '{name}'")
    fetched = frame.attrs["bytes_fetched"]
    assert int(frame["a"][0]) == int(parquet_frame(0)["c1"].sum())
    # The two columns' chunks, the footer, and DuckDB's look at the file's start and end.
    assert fetched <= 1.2 * column_bytes + footer + 64 * 1024, (fetched, column_bytes, len(data))
    assert fetched < len(data) / 4


def test_parameters_are_bound_and_the_row_limit_cuts_with_a_note(lake: Session) -> None:
    frame = lake.query(
        "lake",
        "SELECT c0, region FROM 'sales/2024/part-1.parquet' WHERE region = :region ORDER BY c0",
        {"region": "US"},
        limit=5,
    )
    expected = parquet_frame(1).query("region == 'US'").sort_values("c0").head(5)
    assert frame["c0"].tolist() == expected["c0"].tolist()
    assert frame.attrs["truncated"] is True
    assert frame.attrs["row_limit"] == 5
    whole = lake.query("lake", "SELECT count(*) AS n FROM 'csv/*.csv'", limit=5)
    assert whole.attrs["truncated"] is False
    assert whole["n"][0] == 50 * CSV_FILES


def test_a_missing_parameter_is_one_line(local_lake: Session) -> None:
    with pytest.raises(QueryError, match=r"no value given for parameter :region$"):
        local_lake.query("lake", "SELECT * FROM 'csv/day-0.csv' WHERE item = :region")


def test_result_dtypes_are_nullable_and_exact(local_lake: Session) -> None:
    frame = local_lake.query(
        "lake",
        "SELECT CAST(NULL AS BIGINT) AS missing, 1::BIGINT AS one, 1.25::DECIMAL(10, 2) AS price, "
        "TIMESTAMPTZ '2024-01-01 10:00:00+00' AS at",
    )
    assert str(frame["missing"].dtype) == "Int64"
    assert frame["one"].dtype.kind == "i"  # exact integers, NumPy where nothing is missing
    assert str(frame["price"][0]) == "1.25"
    assert str(frame["at"].dtype).startswith("datetime64")
    assert "UTC" in str(frame["at"].dtype)


ESCAPES = {
    "absolute path": "SELECT * FROM read_csv('/etc/passwd')",
    "absolute path in FROM": "SELECT * FROM '/etc/passwd'",
    "dot dot": "SELECT * FROM read_csv('../outside.csv')",
    "dot dot inside": "SELECT * FROM 'csv/../../outside.csv'",
    "file url": "SELECT * FROM read_csv('file:///etc/passwd')",
    "http url": "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
    "another source": "SELECT * FROM read_text('dsrc://other/x.csv')",
    "own protocol with dot dot": "SELECT * FROM read_text('dsrc://lake/../x')",
    "path through an expression": "SELECT * FROM read_text('/et' || 'c/passwd')",
    "attach": "ATTACH 'db.duckdb' AS other",
    "copy to a local file": "COPY (SELECT 1) TO 'out.csv'",
    "copy into the source": "COPY (SELECT 1 AS x) TO 'dsrc://lake/out.csv'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set access back": "SET enable_external_access = true",
    "unlock": "SET lock_configuration = false",
    "widen the allowed paths": "SET allowed_directories = ['/']",
    "python variable": "SELECT * FROM ESCAPES",
}


@pytest.mark.parametrize("sql", list(ESCAPES.values()), ids=list(ESCAPES))
def test_every_way_out_is_refused_in_one_line(lake: Session, sql: str) -> None:
    with pytest.raises(QueryError) as caught:
        lake.query("lake", sql)
    message = str(caught.value)
    assert message.startswith("lake: ")
    assert "\n" not in message
    assert "secret" not in message
    assert "root:" not in message


def test_writes_leave_the_source_as_it_was(local_lake: Session, tmp_path: object) -> None:
    before = local_lake.list_items("lake", recursive=True, refresh=True)["name"].tolist()
    for sql in (ESCAPES["copy into the source"], ESCAPES["copy to a local file"]):
        with pytest.raises(QueryError, match=r"read-only|reads only its own files"):
            local_lake.query("lake", sql)
    assert local_lake.list_items("lake", recursive=True, refresh=True)["name"].tolist() == before


def test_the_working_directory_s_dot_tmp_is_neither_read_nor_written(
    local_lake: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB's default temporary directory, ``.tmp`` of the working directory, is one it
    # lets the SQL read and write even with external access off.
    scratch = tmp_path / "notebook"
    (scratch / ".tmp").mkdir(parents=True)
    (scratch / ".tmp" / "kept.txt").write_text("not-yours")
    monkeypatch.chdir(scratch)
    folder = str(scratch / ".tmp")
    for sql in (
        f"SELECT * FROM read_text(concat('{folder}', '/kept.txt'))",
        f"SELECT * FROM glob(concat('{folder}', '/*'))",
        f"COPY (SELECT 1 AS x) TO '{folder}/written.csv'",
        "EXPORT DATABASE '.tmp'",
    ):
        with pytest.raises(QueryError, match=r"^lake: refused: SQL on this source reads only its own files"):
            local_lake.query("lake", sql)
    assert sorted(os.listdir(scratch / ".tmp")) == ["kept.txt"]


def test_a_query_beyond_duckdb_s_memory_says_so_and_spills_nothing_to_disk(
    local_lake: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepanalyze_jupyter.connectors.files import sandbox

    notebook = tmp_path / "notebook"
    notebook.mkdir()
    monkeypatch.chdir(notebook)
    monkeypatch.setattr(sandbox, "_SETUP", ("SET memory_limit = '32MB'", *sandbox._SETUP))
    with pytest.raises(QueryError) as refused:
        local_lake.query("lake", "SELECT i FROM range(10000000) t(i) ORDER BY hash(i)", limit=1)
    message = str(refused.value)
    assert message.startswith("lake: Out of Memory Error")
    assert "\n" not in message
    assert message.endswith("works in memory (nothing spills to disk): select fewer columns or rows")
    assert os.listdir(notebook) == []  # no .tmp made for spilled blocks
    assert local_lake.query("lake", "SELECT 1 AS one")["one"].tolist() == [1]


def test_queries_need_no_extension_from_disk_or_network(
    lake: Session, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # An empty home: no extension directory to load from; auto-install is off and external
    # access too, so nothing can be downloaded either.
    monkeypatch.setenv("HOME", str(tmp_path))
    frame = lake.query(
        "lake",
        "SELECT (SELECT count(*) FROM 'sales/2024/*.parquet') AS rows, "
        "(SELECT count(*) FROM read_json('json/items.jsonl')) AS items, "
        "(SELECT count(*) FROM read_csv('csv/*.csv')) AS lines",
    )
    assert frame.iloc[0].tolist() == [40_000 * PARQUET_FILES, 2, 50 * CSV_FILES]
    with pytest.raises(QueryError, match="reads only its own files"):
        lake.query("lake", "SELECT * FROM duckdb_extensions()")  # not even its directory is listed
    settings = lake.query(
        "lake",
        "SELECT name, value FROM duckdb_settings() WHERE name IN "
        "('autoinstall_known_extensions', 'autoload_known_extensions', 'enable_external_access', "
        "'lock_configuration', 'python_enable_replacements') ORDER BY name",
    )
    assert dict(zip(settings["name"], settings["value"], strict=True)) == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "enable_external_access": "false",
        "lock_configuration": "true",
        "python_enable_replacements": "false",
    }


def test_earlier_frames_join_only_when_given_by_name(local_lake: Session) -> None:
    prices = pd.DataFrame({"item": ["item-3", "item-4"], "price": [1.5, 3.0]})
    sql = (
        "SELECT p.item, sum(c.qty * p.price) AS revenue "
        "FROM 'csv/*.csv' c JOIN prices p USING (item) GROUP BY 1 ORDER BY 1"
    )
    with pytest.raises(QueryError, match="prices"):
        local_lake.query("lake", sql)
    frame = local_lake.query("lake", sql, frames={"prices": prices})
    days = pd.concat([csv_frame(day) for day in range(CSV_FILES)]).merge(prices, on="item")
    expected = (days["qty"] * days["price"]).groupby(days["item"]).sum()
    assert frame["revenue"].tolist() == expected.tolist()


def test_a_timeout_stops_a_long_scan_at_once(lake: Session) -> None:
    started = time.monotonic()
    with pytest.raises(QueryError, match=r"did not finish within 0\.5 s"):
        lake.query("lake", _LONG_SCAN, timeout=0.5)
    assert time.monotonic() - started < 5
    assert lake.query("lake", "SELECT 1 AS one")["one"][0] == 1


def test_cancelling_interrupts_duckdb(lake: Session) -> None:
    future = lake.runner.submit(lake.registry.query("lake", _LONG_SCAN))
    time.sleep(1.0)
    assert not future.done()
    started = time.monotonic()
    future.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=5)
    # The engine's thread stopped too: the loop answers the next query promptly.
    assert lake.query("lake", "SELECT 2 AS two")["two"][0] == 2
    assert time.monotonic() - started < 5


def test_unknown_query_options_are_refused(local_lake: Session) -> None:
    with pytest.raises(ConfigurationError, match="take no option numeric_as_float"):
        local_lake.query("lake", "SELECT 1", numeric_as_float=True)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM 'a.csv' WHERE x = 'a.csv'", "SELECT * FROM 'dsrc://s/a.csv' WHERE x = 'a.csv'"),
        (
            "SELECT * FROM read_parquet(['a', 'b'], hive_partitioning = true) JOIN 'c' USING (k)",
            "SELECT * FROM read_parquet(['dsrc://s/a', 'dsrc://s/b'], hive_partitioning = true) "
            "JOIN 'dsrc://s/c' USING (k)",
        ),
        (
            "SELECT * FROM read_csv('x.csv', delim = ',')",
            "SELECT * FROM read_csv('dsrc://s/x.csv', delim = ',')",
        ),
        ("SELECT 'it''s' FROM 'o''k.csv'", "SELECT 'it''s' FROM 'dsrc://s/o''k.csv'"),
        # A FROM clause's list: each table after a comma, after ON or a subquery too.
        (
            "SELECT * FROM 'a' x, 'b' y, read_csv('c') z WHERE x.k = 'v'",
            "SELECT * FROM 'dsrc://s/a' x, 'dsrc://s/b' y, read_csv('dsrc://s/c') z WHERE x.k = 'v'",
        ),
        (
            "SELECT * FROM 'a' x JOIN 'b' y ON x.k = y.k, 'c' z",
            "SELECT * FROM 'dsrc://s/a' x JOIN 'dsrc://s/b' y ON x.k = y.k, 'dsrc://s/c' z",
        ),
        ("SELECT * FROM (SELECT 1, 'v'), 'y'", "SELECT * FROM (SELECT 1, 'v'), 'dsrc://s/y'"),
        # Values stay values: a comparison, a list, a CTE's columns, the select list after a set operation.
        (
            "SELECT x IS DISTINCT FROM 'a', x IS NOT DISTINCT FROM 'b', 'c' FROM 'd'",
            "SELECT x IS DISTINCT FROM 'a', x IS NOT DISTINCT FROM 'b', 'c' FROM 'dsrc://s/d'",
        ),
        ("SELECT extract(year FROM d), 'k' FROM 't'", "SELECT extract(year FROM d), 'k' FROM 'dsrc://s/t'"),
        ("SELECT * FROM 'a' WHERE k IN ('b', 'c')", "SELECT * FROM 'dsrc://s/a' WHERE k IN ('b', 'c')"),
        (
            "WITH a AS (SELECT * FROM 'x'), b AS (SELECT 'q') SELECT * FROM a, b",
            "WITH a AS (SELECT * FROM 'dsrc://s/x'), b AS (SELECT 'q') SELECT * FROM a, b",
        ),
        ("SELECT * FROM 'a' UNION SELECT 'b', 'c'", "SELECT * FROM 'dsrc://s/a' UNION SELECT 'b', 'c'"),
        ("FROM 'a' SELECT 'b', 'c' GROUP BY 1, 2", "FROM 'dsrc://s/a' SELECT 'b', 'c' GROUP BY 1, 2"),
        # The FROM of trim, extract, substring and overlay is no FROM clause.
        (
            "SELECT trim(both 'x' FROM 'xax'), trim(FROM ' a'), extract(year FROM '2020-01-01'::date), "
            "substring('abc' FROM 'b') FROM 'a'",
            "SELECT trim(both 'x' FROM 'xax'), trim(FROM ' a'), extract(year FROM '2020-01-01'::date), "
            "substring('abc' FROM 'b') FROM 'dsrc://s/a'",
        ),
        # A list, struct or map in a join's condition holds values; a comparison with IS DISTINCT
        # FROM there does not end the FROM clause's list.
        (
            "SELECT * FROM 'a' t JOIN 'b' u ON t.k = ['p', 'q'] AND u.m = MAP {'r': 1, 's': 2}, 'c' v",
            "SELECT * FROM 'dsrc://s/a' t JOIN 'dsrc://s/b' u "
            "ON t.k = ['p', 'q'] AND u.m = MAP {'r': 1, 's': 2}, 'dsrc://s/c' v",
        ),
        # A file function's named arguments hold values, in a list or a struct too.
        (
            "SELECT * FROM read_csv(['a', 'b'], names = ['x', 'y'], columns = {'x': 'INT', 'y': 'INT'})",
            "SELECT * FROM read_csv(['dsrc://s/a', 'dsrc://s/b'], names = ['x', 'y'], "
            "columns = {'x': 'INT', 'y': 'INT'})",
        ),
        (
            "SELECT * FROM 'a' x JOIN 'b' y ON x.k IS DISTINCT FROM 'v', 'c' z",
            "SELECT * FROM 'dsrc://s/a' x JOIN 'dsrc://s/b' y ON x.k IS DISTINCT FROM 'v', 'dsrc://s/c' z",
        ),
        ("SELECT t.distinct FROM 'a' t", "SELECT t.distinct FROM 'dsrc://s/a' t"),
        (
            "SELECT t.distinct FROM 'a' t, 'b' u WHERE t.k IS NOT DISTINCT FROM 'v'",
            "SELECT t.distinct FROM 'dsrc://s/a' t, 'dsrc://s/b' u WHERE t.k IS NOT DISTINCT FROM 'v'",
        ),
        ("DESCRIBE 'a'", "DESCRIBE 'dsrc://s/a'"),
        ("SUMMARIZE 'a'", "SUMMARIZE 'dsrc://s/a'"),
        ("PIVOT 'a' ON k USING sum(v)", "PIVOT 'dsrc://s/a' ON k USING sum(v)"),
        ("UNPIVOT 'a' ON b, c INTO NAME n VALUE v", "UNPIVOT 'dsrc://s/a' ON b, c INTO NAME n VALUE v"),
    ],
)
def test_paths_in_file_positions_move_into_the_source(sql: str, expected: str) -> None:
    assert rewrite_paths(sql, "s") == expected


def test_a_comma_list_of_files_and_a_distinct_from_value_read_as_duckdb_reads_them(lake: Session) -> None:
    days = "SELECT count(*) AS n FROM 'csv/day-0.csv' a, 'csv/day-1.csv' b, read_csv('csv/day-2.csv') c"
    crossed = lake.query("lake", days)
    assert int(crossed["n"][0]) == 50**3
    compared = lake.query(
        "lake",
        "SELECT count(*) FILTER (item IS DISTINCT FROM 'item-1') AS other, "
        "count(*) FILTER (item IS NOT DISTINCT FROM 'item-1') AS same FROM 'csv/day-0.csv'",
    )
    same = sum(1 for n in range(50) if n % 7 == 1)
    assert (int(compared["other"][0]), int(compared["same"][0])) == (50 - same, same)
    described = lake.query("lake", "DESCRIBE 'csv/day-0.csv'")
    assert list(described["column_name"]) == ["day", "item", "qty"]
    pivoted = lake.query("lake", "PIVOT 'csv/day-0.csv' ON item USING sum(qty)")
    assert sorted(pivoted.columns) == sorted(["day", *(f"item-{n}" for n in range(7))])


def test_values_beside_a_from_keep_their_results(local_lake: Session) -> None:
    trimmed = local_lake.query("lake", "SELECT trim(both 'x' FROM 'xax') AS t")
    assert trimmed["t"][0] == "a"
    joined = local_lake.query(
        "lake",
        "SELECT count(*) AS n FROM 'csv/day-0.csv' a JOIN 'csv/day-1.csv' b "
        "ON a.qty IS NOT DISTINCT FROM b.qty AND [a.item, 'p'][2] = 'p', 'csv/day-2.csv' c "
        "WHERE a.qty IS DISTINCT FROM c.qty",
    )
    assert int(joined["n"][0]) == 50 * 49
    named = local_lake.query("lake", "FROM read_csv('csv/day-0.csv', names = ['d', 'i', 'q']) LIMIT 1")
    assert list(named.columns) == ["d", "i", "q"]
    distinct = local_lake.query(
        "lake", "SELECT t.distinct FROM 'csv/day-0.csv' AS t(day, item, \"distinct\") LIMIT 1"
    )
    assert list(distinct.columns) == ["distinct"]  # a column named distinct, then a FROM clause


_LONG_SCAN = (
    "SELECT count(*) FROM 'sales/2024/*.parquet' a, range(200000) r WHERE (a.c1 * r.range) % 1000003 = 7"
)


class _Recorder:
    """A progress factory that keeps what it was told."""

    def __init__(self) -> None:
        self.described: list[str] = []
        self.units: list[str] = []
        self.items = 0
        self.closed = 0

    def __call__(
        self, description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
    ) -> _Recorder:
        self.described.append(description)
        self.units.append(items)
        return self

    def update(self, nbytes: int = 0, items: int = 0) -> None:
        self.items += items

    def close(self) -> None:
        self.closed += 1


def test_a_long_scan_reports_its_progress(tmp_path: Path) -> None:
    # A scan of files (DuckDB before 2.0 reports no progress for range(), only for scans).
    rows = 5_000_000
    first = tmp_path / "part0.parquet"
    numbers = np.arange(rows)
    pq.write_table(pa.table({"a": numbers, "b": numbers % 97}), first, row_group_size=250_000)
    for index in range(1, 16):
        os.link(first, tmp_path / f"part{index}.parquet")
    recorder = _Recorder()
    with Session(progress=recorder) as session:
        session.add("lake", "local", path=str(tmp_path))
        counted = session.query(
            "lake",
            "SELECT count(*) AS n FROM 'part*.parquet' WHERE a % 7 = 3 AND CAST(b AS VARCHAR) LIKE '%3%'",
            limit=None,
        )
    assert int(counted["n"][0]) > 0
    assert recorder.described == ["Querying files of lake"]
    assert recorder.units == ["%"]  # a percentage of the query done, drawn as a bar of its own
    assert 0 < recorder.items <= 100
    assert recorder.closed == 1


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("SELECT * FROM 'x.csv'", True),
        ("-- the totals\nselect\n  region FROM 'x.csv'", True),
        ("with t AS (SELECT 1) SELECT * FROM t", True),
        ("FROM 'sales/*.parquet'", True),
        ("sales/*.csv\nreadme.txt", False),
        ("select.csv", False),
        ("# a comment\n2024/*", False),
    ],
)
def test_a_cell_is_sql_when_it_starts_with_a_statement(cell: str, expected: bool) -> None:
    assert is_sql(cell) is expected


def test_a_link_out_of_the_folder_is_refused(local_lake: Session, tmp_path: Path) -> None:
    (tmp_path / "lake" / "csv" / "out.csv").symlink_to(tmp_path / "outside.csv")
    with pytest.raises(QueryError) as caught:
        local_lake.query("lake", "SELECT * FROM read_csv('csv/out.csv')")
    assert "outside the folder" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "not-yours" not in str(caught.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 AS a; SELECT 2 AS b",
        "SELECT count(*) AS n FROM 'sales/2024/*.parquet'; CREATE TABLE kept AS SELECT 1 AS x",
        "CREATE TABLE kept AS SELECT 1 AS x; SELECT * FROM kept;",
        "SELECT 1 /* ; */ AS a; SELECT 2 AS b",
        "SELECT 'a;b' AS a;\n-- a comment;\nSELECT 2 AS b",
        "SELECT $$;$$ AS a; SELECT 2 AS b",
        "SELECT 1 AS a;SELECT 2 AS b",
    ],
)
def test_several_statements_are_refused_and_none_runs(local_lake: Session, sql: str) -> None:
    # as on PostgreSQL and SQLite: never the last result alone, never a statement run silently
    with pytest.raises(QueryError, match=r"^lake: the SQL holds several statements; .*none of them ran$"):
        local_lake.query("lake", sql)
    assert local_lake.query("lake", "SELECT ';' AS text; -- one statement")["text"].tolist() == [";"]


def test_each_statement_has_a_database_of_its_own(local_lake: Session) -> None:
    """The database made ahead for the next statement starts empty: nothing a statement made is left."""
    local_lake.query("lake", "CREATE MACRO twice(x) AS x * 2")
    assert local_lake.query("lake", "SELECT 21 AS n")["n"].tolist() == [21]
    with pytest.raises(QueryError, match="twice") as raised:
        local_lake.query("lake", "SELECT twice(21) AS n")
    assert "\n" not in str(raised.value)


def test_a_forked_process_makes_its_own_database_and_does_not_crash(local_lake: Session) -> None:
    """The database made ahead is closed before a fork (a child freeing one whose threads stayed
    in the parent crashes); the child's statements get databases of their own."""
    import gc

    from deepanalyze_jupyter.connectors.files import sandbox

    local_lake.query("lake", "SELECT 1 AS one")  # one is made ahead after it
    made = sandbox._spare._made
    assert made is not None
    made.result(timeout=30)  # a whole database, its threads running, in the parent
    del made
    pid = os.fork()
    if pid == 0:  # the child: exit codes say what happened
        code = 3
        try:
            gc.collect()
            connection = sandbox.sandboxed(__import__("fsspec").filesystem("memory"), "lake", {})
            code = 0 if connection.execute("SELECT 42").fetchall() == [(42,)] else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_fork_waits_for_the_databases_being_closed(local_lake: Session) -> None:
    """A finished statement's database is closed in a thread; before a fork that is waited for,
    so no child inherits a database half freed."""
    from deepanalyze_jupyter.connectors.files import sandbox

    for _ in range(3):
        local_lake.query("lake", "SELECT 1 AS one")
    sandbox._spare.drop()  # what runs before a fork
    assert not sandbox._spare._closing
    pid = os.fork()
    if pid == 0:
        os._exit(0 if not sandbox._spare._closing else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert local_lake.query("lake", "SELECT 2 AS two")["two"].tolist() == [2]


_FAILS_LATE = (
    "SELECT CASE WHEN i > 300000 THEN error('row ' || i || ' is refused') ELSE i END AS i "
    "FROM range(1000000) AS t(i)"
)


def test_an_error_after_the_first_rows_is_one_line_of_duckdb(local_lake: Session) -> None:
    """DuckDB's error after its first batch comes through Arrow's stream: as its own still."""
    with pytest.raises(QueryError, match=r"^lake: Invalid Input Error: row 300001 is refused$"):
        local_lake.query("lake", _FAILS_LATE, limit=None)
    with pytest.raises(QueryError, match=r"^lake: Invalid Input Error: row 300001 is refused$"):
        list(local_lake.query_batches("lake", _FAILS_LATE, rows=100_000))
    assert local_lake.query("lake", "SELECT 1 AS n")["n"][0] == 1


@pytest.mark.parametrize(
    ("sql", "where"),
    [
        ("SELECT '\ud800' AS x", "U+D800 at character 9"),
        ("FROM 'a\udcff.csv'", "U+DCFF at character 8"),
        ("SELECT * FROM 'x\x00.csv'", "U+0000 at character 17"),  # some DuckDB versions end the text there
    ],
    ids=["surrogate", "surrogate in a path", "NUL"],
)
def test_sql_that_is_not_valid_text_is_refused_in_one_line_naming_where(
    local_lake: Session, sql: str, where: str
) -> None:
    # A lone surrogate (text decoded with surrogateescape): DuckDB's tokenizer cannot take it.
    with pytest.raises(QueryError) as caught:
        local_lake.query("lake", sql)
    message = str(caught.value)
    assert message == f"lake: the SQL holds a character that is not text ({where}); nothing ran"
