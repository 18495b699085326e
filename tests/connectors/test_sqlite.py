"""The SQLite connector, on real database files through the session's sync API."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import ConfigurationError, ConnectionFailed, ItemNotFound, QueryError
from deepanalyze_jupyter.frames import is_truncated

#: Counts forever; only an interrupt stops it.
ENDLESS = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A small database: a table with NULLs, a mixed-case table, a dotted table and a view."""
    path = tmp_path / "shop.db"
    with closing_connection(path) as connection:
        connection.executescript(
            """
            CREATE TABLE orders (
                id INTEGER PRIMARY KEY,
                region TEXT NOT NULL,
                amount REAL,
                quantity INTEGER DEFAULT 1,
                note TEXT
            );
            INSERT INTO orders VALUES (1, 'EU', 10.5, 2, 'first'), (2, 'US', 20.0, NULL, NULL),
                                      (3, 'EU', 7.25, 1, 'O''Brien'), (4, 'APAC', NULL, 5, 'big');
            CREATE TABLE "Order Items" ("Order Id" INTEGER, "SKU" TEXT);
            INSERT INTO "Order Items" VALUES (1, 'A-1');
            CREATE TABLE "sales.2024" (month TEXT, total INTEGER);
            CREATE TABLE mixed (value);
            INSERT INTO mixed VALUES (1), ('two'), (3.5);
            CREATE TABLE numbers (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER);
            CREATE VIEW eu_orders AS SELECT * FROM orders WHERE region = 'EU';
            """
        )
    return path


class closing_connection:
    """A sqlite3 connection that commits and closes at the end of the block."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path)

    def __enter__(self) -> sqlite3.Connection:
        return self.connection

    def __exit__(self, *exc: object) -> None:
        self.connection.commit()
        self.connection.close()


@pytest.fixture
def shop(session: Session, db_path: Path) -> Session:
    session.add("shop", "sqlite", path=str(db_path))
    return session


# -- registration ---------------------------------------------------------------------------------


def test_add_tests_the_database_and_describes_it(shop: Session, db_path: Path) -> None:
    line = shop.test("shop")
    assert line.startswith(f"SQLite {sqlite3.sqlite_version}, {db_path} (read-only")
    assert "6 tables and views" in line
    assert shop.sources().loc[0, "status"] == "connected"


def test_relative_path_is_made_absolute(
    session: Session, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(db_path.parent)
    config = session.add("shop", "sqlite", path="shop.db")
    assert config.options["path"] == str(db_path)
    assert config.options["read_only"] is True


def test_missing_file_is_refused_and_nothing_registered(session: Session, tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(ItemNotFound, match=r"^shop: database file .*nope\.db does not exist$"):
        session.add("shop", "sqlite", path=str(missing))
    assert not session.registry.exists("shop")
    assert not missing.exists()


def test_a_file_that_is_not_a_database_is_refused(session: Session, tmp_path: Path) -> None:
    fake = tmp_path / "notes.db"
    fake.write_text("just some text, long enough to look like a header " * 4)
    with pytest.raises(ConnectionFailed, match=r"^bad: cannot read .*notes\.db: file is not a database$"):
        session.add("bad", "sqlite", path=str(fake))
    assert not session.registry.exists("bad")


def test_folder_as_path_is_refused(session: Session, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a folder, not a database file"):
        session.add("dir", "sqlite", path=str(tmp_path))


def test_a_pipe_is_refused_rather_than_waited_on(session: Session, tmp_path: Path) -> None:
    """SQLite's open of a named pipe waits for a writer; here one comes, so old code ends too."""
    pipe = tmp_path / "pipe.db"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: open(pipe, "wb").close(), daemon=True)
    writer.start()
    try:
        with pytest.raises(ConfigurationError, match=r"^pipe: .*pipe\.db is not a regular file \(a pipe,"):
            session.add("pipe", "sqlite", path=str(pipe))
        assert not session.registry.exists("pipe")
    finally:
        while writer.is_alive():  # free the writer: it waits for a reader
            os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))
            writer.join(timeout=0.1)


@pytest.mark.parametrize("read_only", [True, False])
def test_a_device_is_refused_not_taken_for_an_empty_database(session: Session, read_only: bool) -> None:
    with pytest.raises(ConfigurationError, match=r"^null: /dev/null is not a regular file"):
        session.add("null", "sqlite", path="/dev/null", read_only=read_only)


@pytest.mark.parametrize(
    ("options", "message"), [({}, "missing required option 'path'"), ({"path": " "}, "path")]
)
def test_bad_options_are_refused(session: Session, options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        session.add("shop", "sqlite", **options)


# -- browsing -------------------------------------------------------------------------------------


def test_list_items_lists_tables_and_views_without_internal_tables(shop: Session) -> None:
    items = shop.list_items("shop")
    assert list(items.columns) == ["schema", "name", "kind", "rows"]
    assert items["name"].tolist() == ["Order Items", "eu_orders", "mixed", "numbers", "orders", "sales.2024"]
    assert set(items["schema"]) == {"main"}
    assert items.set_index("name").loc["eu_orders", "kind"] == "view"
    assert items["rows"].dtype == "Int64"
    assert items["rows"].isna().all()
    assert items["name"].dtype == "string"
    assert not is_truncated(items)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("main", 6), ("or", 1), ("*order*", 2), ("main.o*", 1), ("zzz", 0)],
)
def test_list_items_filters_by_schema_glob_or_prefix(shop: Session, prefix: str, expected: int) -> None:
    assert len(shop.list_items("shop", prefix)) == expected


def test_list_items_limit_marks_truncation(shop: Session) -> None:
    items = shop.list_items("shop", limit=2)
    assert len(items) == 2
    assert is_truncated(items)


def test_describe_gives_columns_with_nullability_defaults_and_keys(shop: Session) -> None:
    columns = shop.describe("shop", "orders")
    assert list(columns.columns) == ["name", "type", "nullable", "default", "primary_key"]
    assert columns["name"].tolist() == ["id", "region", "amount", "quantity", "note"]
    assert columns["type"].tolist() == ["INTEGER", "TEXT", "REAL", "INTEGER", "TEXT"]
    assert columns["nullable"].tolist() == [False, False, True, True, True]  # INTEGER PRIMARY KEY: the rowid
    assert columns["primary_key"].tolist() == [True, False, False, False, False]
    assert columns.loc[3, "default"] == "1"
    assert pd.isna(columns.loc[0, "default"])


def test_a_primary_key_that_is_not_the_rowid_may_be_null(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    with closing_connection(path) as connection:
        connection.execute("CREATE TABLE pairs (a INTEGER, b TEXT, PRIMARY KEY (a, b))")
        connection.execute("CREATE TABLE coded (code TEXT PRIMARY KEY)")
    session.add("keys", "sqlite", path=str(path))
    assert session.describe("keys", "pairs")["nullable"].tolist() == [True, True]
    assert session.describe("keys", "coded")["nullable"].tolist() == [True]


@pytest.mark.parametrize(
    ("item", "first_column"),
    [
        ("Order Items", "Order Id"),
        ('"Order Items"', "Order Id"),
        ("main.Order Items", "Order Id"),
        ('"main"."sales.2024"', "month"),
        ("sales.2024", "month"),
        ("eu_orders", "id"),
    ],
)
def test_describe_handles_mixed_case_dots_and_quotes(shop: Session, item: str, first_column: str) -> None:
    assert shop.describe("shop", item).loc[0, "name"] == first_column


def test_describe_missing_table_is_item_not_found(shop: Session) -> None:
    with pytest.raises(ItemNotFound, match=r"^shop: no table or view named 'nope'$"):
        shop.describe("shop", "nope")


# -- queries --------------------------------------------------------------------------------------


def test_query_binds_named_parameters(shop: Session) -> None:
    frame = shop.query(
        "shop", "SELECT id, note FROM orders WHERE region = :region ORDER BY id", {"region": "EU"}
    )
    assert frame["id"].tolist() == [1, 3]
    assert frame.loc[1, "note"] == "O'Brien"
    assert frame.attrs["source"] == "shop"
    assert not is_truncated(frame)


def test_parameter_values_are_never_pasted_into_sql(shop: Session) -> None:
    frame = shop.query(
        "shop", "SELECT count(*) AS n FROM orders WHERE note = :note", {"note": "x' OR '1'='1"}
    )
    assert frame.loc[0, "n"] == 0


def test_missing_parameter_names_it(shop: Session) -> None:
    with pytest.raises(QueryError, match=r"^shop: no value given for parameter :region, :n$"):
        shop.query("shop", "SELECT * FROM orders WHERE region = :region LIMIT :n", {"other": 1})


def test_colons_in_strings_are_not_parameters(shop: Session) -> None:
    frame = shop.query("shop", "SELECT ':not_a_parameter' AS text, 'a' || :x AS joined", {"x": "b"})
    assert frame.iloc[0].tolist() == [":not_a_parameter", "ab"]


def test_negative_limit_is_refused(shop: Session) -> None:
    with pytest.raises(ConfigurationError, match="row limit must be at least 0"):
        shop.query("shop", "SELECT 1", limit=-1)


def test_unknown_query_options_are_refused(shop: Session) -> None:
    with pytest.raises(ConfigurationError, match=r"^shop: SQLite queries take no option numeric_as_float$"):
        shop.query("shop", "SELECT 1", numeric_as_float=True)


def test_zero_limit_returns_columns_only(shop: Session) -> None:
    frame = shop.query("shop", "SELECT id, region FROM orders", limit=0)
    assert list(frame.columns) == ["id", "region"]
    assert frame.empty
    assert is_truncated(frame)


def test_query_dtypes_are_exact(shop: Session) -> None:
    frame = shop.query("shop", "SELECT id, region, amount, quantity, note FROM orders ORDER BY id")
    assert frame["id"].dtype == "int64"
    assert frame["quantity"].dtype == "Int64"
    assert frame["quantity"].isna().tolist() == [False, True, False, False]
    assert frame["amount"].dtype == "Float64"  # a float column with a NULL
    assert frame["region"].dtype == "string"
    assert frame["note"].dtype == "string"
    assert pd.isna(frame.loc[1, "note"])


def test_mixed_type_column_stays_object(shop: Session) -> None:
    frame = shop.query("shop", "SELECT value FROM mixed ORDER BY rowid")
    assert frame["value"].dtype == object
    assert frame["value"].tolist() == [1, "two", 3.5]


@pytest.mark.parametrize(
    "sql", ["SELECT 'x' AS v UNION ALL SELECT x'00'", "SELECT x'00' AS v UNION ALL SELECT 'x'"]
)
def test_text_among_blobs_stays_text(shop: Session, sql: str) -> None:
    """Arrow would make the text bytes: the column is a mix, kept as SQLite gave it."""
    reference = sqlite3.connect(":memory:")
    try:
        expected = [row[0] for row in reference.execute(sql)]
    finally:
        reference.close()  # Python 3.13 warns of a connection left to the collector
    frame = shop.query("shop", sql)
    assert frame["v"].dtype == object
    assert frame["v"].tolist() == expected
    assert [type(value) for value in frame["v"]] == [type(value) for value in expected]
    with pytest.raises(QueryError, match=r"^shop: column 'v' mixes value types"):
        shop.query("shop", sql, output="arrow")


def test_duplicate_column_names_are_kept(shop: Session) -> None:
    frame = shop.query("shop", "SELECT id, id FROM orders ORDER BY id LIMIT 1")
    assert list(frame.columns) == ["id", "id"]


@pytest.mark.parametrize("sql", ["SELECT id, id FROM orders", "SELECT value, value FROM mixed WHERE 0"])
def test_duplicate_column_names_as_polars_are_one_line(shop: Session, sql: str) -> None:
    with pytest.raises(QueryError, match=r"^shop: column '(id|value)' appears more than once, which Polars"):
        shop.query("shop", sql, output="polars")


def test_empty_result_keeps_its_columns(shop: Session) -> None:
    frame = shop.query("shop", "SELECT id, region FROM orders WHERE id < 0")
    assert list(frame.columns) == ["id", "region"]
    assert frame.empty


def test_limit_fetches_only_what_it_needs_and_marks_truncation(shop: Session) -> None:
    sql = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 1000000000) SELECT i FROM r"
    started = time.monotonic()
    frame = shop.query("shop", sql, limit=5)
    assert frame["i"].tolist() == [1, 2, 3, 4, 5]
    assert is_truncated(frame)
    assert frame.attrs["row_limit"] == 5
    assert time.monotonic() - started < 10  # a billion rows were not fetched


def test_exact_limit_is_not_truncated(shop: Session) -> None:
    frame = shop.query("shop", "SELECT id FROM orders", limit=4)
    assert len(frame) == 4
    assert not is_truncated(frame)


def test_parameter_values_of_common_python_types_bind(shop: Session) -> None:
    sql = "SELECT :n AS n, :f AS f, :when AS w, :day AS d, :dec AS dec, :flag AS flag, :none AS none"
    params = {
        "n": np.int64(7),
        "f": np.float64(1.5),
        "when": dt.datetime(2024, 5, 1, 12, 30),
        "day": dt.date(2024, 5, 1),
        "dec": Decimal("1.10"),
        "flag": True,
        "none": None,
    }
    row = shop.query("shop", sql, params).iloc[0]
    assert (row["n"], row["f"], row["flag"]) == (7, 1.5, 1)
    assert row["w"] == "2024-05-01 12:30:00"
    assert row["d"] == "2024-05-01"
    assert row["dec"] == "1.10"
    assert pd.isna(row["none"])


def test_unbindable_parameter_is_named(shop: Session) -> None:
    with pytest.raises(QueryError, match=r"^shop: parameter :ids has a type SQLite cannot bind: list$"):
        shop.query("shop", "SELECT * FROM orders WHERE id IN (:ids)", {"ids": [1, 2]})


@pytest.mark.parametrize(
    ("sql", "error", "message"),
    [
        ("SELECT * FROM nope", ItemNotFound, r"^shop: no such table: nope$"),
        ("SELEC 1", QueryError, r"^shop: near \"SELEC\": syntax error$"),
        ("SELECT 1; SELECT 2", QueryError, r"^shop: You can only execute one statement at a time\.$"),
    ],
)
def test_query_errors_are_one_clear_line(
    shop: Session, sql: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        shop.query("shop", sql)
    assert "\n" not in str(raised.value)


# -- read-only and writable -----------------------------------------------------------------------


def test_read_only_by_default_refuses_writes(shop: Session, db_path: Path) -> None:
    with pytest.raises(QueryError, match=r"^shop: the source is read-only: the statement would write"):
        shop.query("shop", "INSERT INTO orders (id, region) VALUES (99, 'EU')")
    with closing_connection(db_path) as connection:
        assert connection.execute("SELECT count(*) FROM orders").fetchone() == (4,)


#: Statements a read-only source must refuse: each would write the file, another file or
#: a new one. ``{db}`` is the source's own file, ``{dir}`` the folder it is in.
WRITING_STATEMENTS = [
    "ATTACH DATABASE 'file:{db}?mode=rw' AS again",
    "ATTACH DATABASE 'file:{dir}/new.db?mode=rwc' AS fresh",
    "ATTACH DATABASE '{dir}/plain.db' AS plain",
    "VACUUM INTO '{dir}/copy.db'",
    "VACUUM",
    "DETACH DATABASE temp",
    "CREATE TEMP TABLE scratch (x)",
    "CREATE TEMP VIEW v AS SELECT 1",
    "CREATE TABLE t (x)",
    "CREATE INDEX i ON orders (region)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TRIGGER tr AFTER INSERT ON orders BEGIN SELECT 1; END",
    "CREATE VIRTUAL TABLE vt USING fts5(x)",
    "DROP VIEW eu_orders",
    "DROP TABLE orders",
    "ALTER TABLE orders ADD COLUMN y",
    "INSERT INTO orders (id, region) VALUES (99, 'EU')",
    "UPDATE orders SET region = 'X'",
    "DELETE FROM orders",
    "REPLACE INTO orders (id, region) VALUES (1, 'X')",
    "ANALYZE",
    "PRAGMA journal_mode = delete",
    "PRAGMA main.journal_mode = wal",
    "PRAGMA user_version = 5",
    "PRAGMA writable_schema = ON",
    "PRAGMA query_only = OFF",
    "PRAGMA wal_checkpoint",
    "PRAGMA optimize",
    "PRAGMA incremental_vacuum",
    "SELECT load_extension('/nonexistent/ext')",
    "WITH x AS (SELECT 1) INSERT INTO orders (id, region) SELECT 98, 'EU' FROM x",
]


@pytest.mark.parametrize("statement", WRITING_STATEMENTS)
def test_read_only_source_refuses_anything_that_writes_anywhere(
    shop: Session, db_path: Path, statement: str
) -> None:
    folder = db_path.parent
    before = (db_path.read_bytes(), db_path.stat().st_mtime_ns, sorted(folder.iterdir()))
    sql = statement.format(db=db_path, dir=folder)
    with pytest.raises(
        QueryError, match=r"^shop: the source is read-only: the statement would write"
    ) as raised:
        shop.query("shop", sql)
    assert "\n" not in str(raised.value)
    assert (db_path.read_bytes(), db_path.stat().st_mtime_ns, sorted(folder.iterdir())) == before
    # The refusal did not break the source: it still reads, and sees nothing attached.
    assert shop.query("shop", "SELECT count(*) AS n FROM orders").loc[0, "n"] == 4
    assert list(shop.query("shop", "PRAGMA database_list")["name"]) == ["main"]


@pytest.mark.parametrize(
    "statement",
    [
        "PRAGMA user_version",
        "PRAGMA journal_mode",
        "PRAGMA table_info(orders)",
        "PRAGMA index_list(orders)",
        "PRAGMA integrity_check",
        "SELECT name FROM pragma_table_info('orders')",
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 3) SELECT * FROM r",
        "SELECT upper(region), count(*) AS n FROM eu_orders GROUP BY 1",
        "BEGIN",
        "SAVEPOINT s",
        "EXPLAIN SELECT 1",
    ],
)
def test_read_only_source_still_runs_what_only_reads(shop: Session, statement: str) -> None:
    shop.query("shop", statement)  # raises if refused


@pytest.mark.parametrize("table", ["sqlite_master", "sqlite_temp_master"])
def test_read_only_source_cannot_change_the_schema_tables(shop: Session, db_path: Path, table: str) -> None:
    before = db_path.read_bytes()
    with pytest.raises(QueryError, match=rf"^shop: table {table} may not be modified$"):
        shop.query("shop", f"UPDATE {table} SET sql = NULL")
    assert db_path.read_bytes() == before


def test_read_only_holds_against_several_statements_at_once(shop: Session, db_path: Path) -> None:
    """Only one statement runs per query, and a script of them is refused before anything ran."""
    script = f"SELECT 1; ATTACH DATABASE 'file:{db_path}?mode=rw' AS again; DELETE FROM again.orders"
    with pytest.raises(QueryError):
        shop.query("shop", script)
    with closing_connection(db_path) as connection:
        assert connection.execute("SELECT count(*) FROM orders").fetchone() == (4,)


@pytest.mark.parametrize(
    "opening",
    ["BEGIN", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", "SAVEPOINT s"],
)
def test_read_only_source_holds_no_lock_that_blocks_the_files_writers(
    shop: Session, db_path: Path, opening: str
) -> None:
    """A transaction a user opens ends with the query: no lock outlives it to block other writers."""
    shop.query("shop", opening)
    shop.query("shop", "SELECT count(*) AS n FROM orders")
    writer = sqlite3.connect(db_path, timeout=0.5)
    try:
        writer.execute("INSERT INTO orders (id, region) VALUES (50, 'EU')")
        writer.commit()
    finally:
        writer.close()
    assert shop.query("shop", "SELECT count(*) AS n FROM orders").loc[0, "n"] == 5


def test_read_only_source_over_a_wal_database_leaves_the_file_unchanged(
    session: Session, tmp_path: Path
) -> None:
    """Reading a WAL database changes no byte of it; SQLite's -shm and -wal files may appear (README)."""
    path = tmp_path / "wal.db"
    with closing_connection(path) as connection:
        connection.execute("PRAGMA journal_mode = wal")
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES (1)")
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    session.add("wal", "sqlite", path=str(path))
    assert session.query("wal", "SELECT count(*) AS n FROM t").loc[0, "n"] == 1
    session.query("wal", "BEGIN")
    with pytest.raises(QueryError, match="read-only"):
        session.query("wal", "PRAGMA wal_checkpoint(TRUNCATE)")
    session.remove("wal")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert {entry.name for entry in tmp_path.iterdir()} <= {"wal.db", "wal.db-shm", "wal.db-wal"}
    assert not (tmp_path / "wal.db-wal").exists() or (tmp_path / "wal.db-wal").stat().st_size == 0


def test_writable_source_may_still_attach(session: Session, tmp_path: Path) -> None:
    """The refusals are those of read-only sources only."""
    other = tmp_path / "other.db"
    session.add("scratch", "sqlite", path=str(tmp_path / "main.db"), read_only=False)
    session.query("scratch", f"ATTACH DATABASE '{other}' AS other")
    session.query("scratch", "CREATE TABLE other.t (x)")
    assert other.exists()


def test_writable_source_writes_and_creates_the_file(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    session.add("scratch", "sqlite", path=str(path), read_only=False)
    assert session.query("scratch", "CREATE TABLE t (x INTEGER)").empty
    session.query("scratch", "INSERT INTO t VALUES (:x)", {"x": 41})
    assert session.query("scratch", "SELECT x + 1 AS y FROM t").loc[0, "y"] == 42
    with closing_connection(path) as connection:  # committed: another connection sees it
        assert connection.execute("SELECT x FROM t").fetchall() == [(41,)]


def test_read_only_flag_accepts_text(session: Session, db_path: Path) -> None:
    config = session.add("shop", "sqlite", path=str(db_path), read_only="false")
    assert config.options["read_only"] is False


def test_memory_database_is_private_and_writable(session: Session) -> None:
    config = session.add("mem", "sqlite", path=":memory:")
    assert config.options == {"path": ":memory:", "read_only": False, "timeout": 5.0}
    session.query("mem", "CREATE TABLE t (x TEXT)")
    session.query("mem", "INSERT INTO t VALUES ('a')")
    assert session.query("mem", "SELECT x FROM t")["x"].tolist() == ["a"]
    assert session.list_items("mem", refresh=True)["name"].tolist() == ["t"]


def replace_database(path: Path, value: str) -> None:
    """Put a new database at ``path`` as a script regenerating it does: made aside, then moved."""
    fresh = path.with_name("fresh.db")
    with closing_connection(fresh) as connection:
        connection.execute("CREATE TABLE t (x TEXT)")
        connection.execute("INSERT INTO t VALUES (?)", (value,))
    fresh.replace(path)


@pytest.mark.parametrize("read_only", [True, False])
def test_a_replaced_file_is_read_anew(session: Session, tmp_path: Path, read_only: bool) -> None:
    path = tmp_path / "made.db"
    replace_database(path, "old")
    session.add("made", "sqlite", path=str(path), read_only=read_only)
    assert session.query("made", "SELECT x FROM t")["x"].tolist() == ["old"]
    replace_database(path, "new")
    assert session.query("made", "SELECT x FROM t")["x"].tolist() == ["new"]
    if not read_only:  # a write reaches the file at the path, not the one it replaced
        session.query("made", "INSERT INTO t VALUES ('added')")
        with closing_connection(path) as connection:
            assert connection.execute("SELECT x FROM t").fetchall() == [("new",), ("added",)]


def test_a_deleted_file_is_one_clear_line(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    replace_database(path, "old")
    session.add("gone", "sqlite", path=str(path))
    path.unlink()
    with pytest.raises(ItemNotFound, match=r"^gone: database file .*gone\.db no longer exists$"):
        session.query("gone", "SELECT x FROM t")
    replace_database(path, "back")
    assert session.query("gone", "SELECT x FROM t")["x"].tolist() == ["back"]


# -- interruption and the event loop ---------------------------------------------------------------


def test_interrupt_stops_the_statement_and_leaves_the_source_usable(shop: Session) -> None:
    started = time.monotonic()
    # The runner cancels the task on timeout exactly as on a kernel interrupt.
    with pytest.raises(TimeoutError):
        shop.run(shop.registry.query("shop", ENDLESS, limit=None), timeout=0.5)
    assert time.monotonic() - started < 5
    assert shop.query("shop", "SELECT count(*) AS n FROM orders").loc[0, "n"] == 4


def test_query_timeout_interrupts_with_a_clear_error(shop: Session) -> None:
    started = time.monotonic()
    with pytest.raises(QueryError, match=r"^shop: the query did not finish within 0\.3 s and was stopped$"):
        shop.query("shop", ENDLESS, timeout=0.3)
    assert time.monotonic() - started < 5
    assert shop.query("shop", "SELECT 1 AS one").loc[0, "one"] == 1


def test_a_running_query_does_not_block_other_sources(shop: Session, db_path: Path) -> None:
    shop.add("other", "sqlite", path=str(db_path))
    slow = shop.runner.submit(shop.registry.query("shop", ENDLESS, limit=None, timeout=1.5))
    try:
        started = time.monotonic()
        assert shop.query("other", "SELECT count(*) AS n FROM orders").loc[0, "n"] == 4
        assert time.monotonic() - started < 1
        assert not slow.done()
    finally:
        with pytest.raises(QueryError, match="did not finish"):
            slow.result(timeout=10)


def test_a_query_cancelled_while_waiting_its_turn_never_runs(shop: Session) -> None:
    first = shop.runner.submit(shop.registry.query("shop", ENDLESS, limit=None, timeout=1))
    with pytest.raises(TimeoutError):  # queued behind the first on the source's one thread
        shop.run(shop.registry.query("shop", ENDLESS, limit=None), timeout=0.2)
    with pytest.raises(QueryError, match="did not finish"):
        first.result(timeout=10)
    started = time.monotonic()
    assert shop.query("shop", "SELECT 1 AS one").loc[0, "one"] == 1
    assert time.monotonic() - started < 2


def test_remove_closes_the_worker_thread(session: Session, db_path: Path) -> None:
    def started_by(add: Callable[[], object]) -> list[threading.Thread]:
        # The SQLite threads the call started: another test's source may have the same name.
        before = set(threading.enumerate())
        add()
        started = [thread for thread in threading.enumerate() if thread not in before]
        return [thread for thread in started if thread.name.startswith("sqlite-")]

    workers = started_by(lambda: session.add("shop", "sqlite", path=str(db_path)))
    others = started_by(lambda: session.add("shop2", "sqlite", path=str(db_path)))
    assert [thread.name for thread in workers] == ["sqlite-shop_0"]
    assert [thread.name for thread in others] == ["sqlite-shop2_0"]
    session.remove("shop")
    for thread in workers:
        thread.join(timeout=5)
    assert not [thread for thread in workers if thread.is_alive()]
    assert all(thread.is_alive() for thread in others)  # only the removed source's thread ends
