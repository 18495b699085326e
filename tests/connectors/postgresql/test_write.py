"""Writing DataFrames into PostgreSQL tables on the test server: types, modes, all or nothing."""

from __future__ import annotations

import io
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import uuid4

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import ConfigurationError, ConnectionFailed, ItemNotFound, QueryError
from tests.connectors.postgresql.postgres import admin, source_options
from tests.progress_bars import drawing_into, drawn_lines
from tests.services import PostgresServer


@pytest.fixture
def scratch(session: Session, pg_server: PostgresServer) -> Session:
    """A session with the writable source ``scratch``, named for ``pg_stat_activity``."""
    session.add(
        "scratch",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, read_only=False, application_name=f"write-{uuid4().hex[:8]}"),
    )
    return session


def every_dtype() -> pd.DataFrame:
    """One column per dtype a table holds exactly, NULLs included."""
    return pd.DataFrame(
        {
            "int64": np.array([1, -(2**62), 0], dtype=np.int64),
            "Int64": pd.array([1, None, 3], dtype="Int64"),
            "float64": [0.1 + 0.2, float("nan"), -1e300],
            "Float64": pd.array([1.5, None, 2.0], dtype="Float64"),
            "bool": [True, False, True],
            "boolean": pd.array([True, None, False], dtype="boolean"),
            "string": pd.array(['quote " comma , line\nbreak', None, ""], dtype="string[pyarrow]"),
            "Mixed Case name": pd.array(["a", "b", "c"], dtype="string[pyarrow]"),
            "tz": pd.to_datetime(
                ["2024-01-01 10:00:00.123456", None, "2024-06-30 23:59:59"], format="ISO8601"
            ).tz_localize("UTC"),
            "tz_new_york": pd.to_datetime(["2024-03-10 01:59:59", "2024-03-10 03:00:00", None])
            .as_unit("us")
            .tz_localize("America/New_York"),
            "naive": pd.to_datetime(["2024-01-01 10:00:00.5", "1999-12-31", None], format="ISO8601").as_unit(
                "us"
            ),
            "decimal": pd.array(
                [Decimal("1234567890.12"), None, Decimal("-0.01")], dtype=pd.ArrowDtype(pa.decimal128(12, 2))
            ),
            # as a date column reads: objects of datetime.date
            "date": [date(2024, 2, 29), None, date(1, 1, 1)],
            "bytes": [b'\x00\xff\\x,"\n', None, b""],  # an empty value is not NULL
        }
    )


def read_back(session: Session, table: str) -> pd.DataFrame:
    return session.query("scratch", f"SELECT * FROM {table}", limit=None)


def open_transactions(pg_server: PostgresServer, application: str) -> list[tuple[Any, ...]]:
    return admin(
        pg_server,
        "SELECT pid, state FROM pg_stat_activity WHERE application_name = %s "
        "AND (state LIKE 'idle in transaction%%' OR state = 'active')",
        application,
    )


def copying(pg_server: PostgresServer, application: str) -> bool:
    """Whether a ``COPY ... FROM STDIN`` of ``application`` runs on the server now."""
    return bool(
        admin(
            pg_server,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND state = 'active' "
            "AND query ILIKE 'COPY%%FROM STDIN%%'",
            application,
        )
    )


def application(session: Session) -> str:
    return str(session.registry.get_config("scratch").options["application_name"])


@pytest.mark.parametrize(
    "types",
    [None, {"int64": "bigint"}],  # a type given: sent as CSV, not in binary
    ids=["binary", "csv"],
)
def test_every_dtype_round_trips_exactly(
    scratch: Session, pg_schema: str, pg_server: PostgresServer, types: dict[str, str] | None
) -> None:
    frame = every_dtype()
    line = scratch.write("scratch", f"{pg_schema}.every", frame, types=types)
    formats = admin(
        pg_server,
        "SELECT query FROM pg_stat_statements WHERE query LIKE %s",
        f"COPY %{pg_schema}%every%",
    )
    assert [query.rsplit("FORMAT ", 1)[1].rstrip(")") for (query,) in formats] == [
        "csv" if types else "binary"
    ]
    assert line == f"scratch: 3 row(s) written, table {pg_schema}.every created"
    back = read_back(scratch, f"{pg_schema}.every")
    expected = frame.copy()
    # the same instants, shown in the session's time zone as every timestamptz read is
    for column in ("tz", "tz_new_york"):
        expected[column] = expected[column].dt.tz_convert(back[column].dt.tz)
    pd.testing.assert_frame_equal(back, expected, check_column_type=False)


def test_json_values_round_trip_exactly(scratch: Session, pg_schema: str, pg_server: PostgresServer) -> None:
    # lists and dicts as a jsonb column reads: objects, each value as the JSON it holds
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "items": [[1, 2], None, [], [3, None]],
            "record": [
                {"a": 1, "b": "x"},
                {"a": None},  # the keys of each dict, no more
                None,
                {"c": [1.5, None], "d": {"e": 'quote " comma , line\nbreak ü'}},
            ],
        }
    )
    scratch.write("scratch", f"{pg_schema}.json_values", frame)
    formats = admin(
        pg_server,
        "SELECT query FROM pg_stat_statements WHERE query LIKE %s",
        f"COPY %{pg_schema}%json_values%",
    )
    assert [query.rsplit("FORMAT ", 1)[1].rstrip(")") for (query,) in formats] == ["csv"]
    back = scratch.query("scratch", f"SELECT * FROM {pg_schema}.json_values ORDER BY id", limit=None)
    pd.testing.assert_frame_equal(back, frame, check_column_type=False)


def test_many_batches_round_trip(scratch: Session, pg_schema: str) -> None:
    rows = 150_000  # several batches: each column is encoded from a slice of the table
    ids = np.arange(rows)
    frame = pd.DataFrame(
        {
            "id": ids,
            "text": pd.array(
                [None if i % 5 == 0 else f"t{i}" * (i % 4) for i in ids], dtype="string[pyarrow]"
            ),
            "price": pd.array(
                [None if i % 3 == 0 else Decimal(int(i) - rows // 2).scaleb(-3) for i in ids],
                dtype=pd.ArrowDtype(pa.decimal128(10, 3)),
            ),
            "maybe": pd.array([None if i % 7 == 0 else i for i in ids], dtype="Int64"),
        }
    )
    scratch.write("scratch", f"{pg_schema}.many", frame)
    back = scratch.query("scratch", f"SELECT * FROM {pg_schema}.many ORDER BY id", limit=None)
    pd.testing.assert_frame_equal(back, frame, check_column_type=False)


def test_an_empty_frame_makes_an_empty_table(scratch: Session, pg_schema: str) -> None:
    frame = pd.DataFrame({"a": pd.Series([], dtype="int64"), "b": pd.Series([], dtype="string[pyarrow]")})
    assert scratch.write("scratch", f"{pg_schema}.empty", frame).startswith("scratch: 0 row(s) written")
    back = read_back(scratch, f"{pg_schema}.empty")
    assert back.columns.tolist() == ["a", "b"]
    assert len(back) == 0


def test_dates_bytes_and_json_get_their_postgresql_types(
    scratch: Session, pg_schema: str, pg_server: PostgresServer
) -> None:
    frame = pd.DataFrame(
        {
            "day": [date(2024, 2, 29), None],
            "raw": [b"\x00\xffbytes", None],
            "items": [[1, 2], None],
            "record": [{"a": 1}, {"a": None}],
        }
    )
    scratch.write("scratch", f"{pg_schema}.kinds", frame)
    types = admin(
        pg_server,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
        f"{pg_schema}.kinds",
    )
    assert types == [("day", "date"), ("raw", "bytea"), ("items", "jsonb"), ("record", "jsonb")]
    rows = admin(pg_server, f"SELECT day, raw, items, record FROM {pg_schema}.kinds ORDER BY day NULLS LAST")
    assert rows == [(date(2024, 2, 29), b"\x00\xffbytes", [1, 2], {"a": 1}), (None, None, None, {"a": None})]


def test_types_override_and_index(scratch: Session, pg_schema: str, pg_server: PostgresServer) -> None:
    frame = pd.DataFrame({"amount": [1.25, 2.5]}, index=pd.Index(["x", "y"], name="key"))
    scratch.write("scratch", f"{pg_schema}.priced", frame, index=True, types={"amount": "numeric(8,2)"})
    assert admin(pg_server, f"SELECT key, amount::text FROM {pg_schema}.priced ORDER BY key") == [
        ("x", "1.25"),
        ("y", "2.50"),
    ]
    scratch.write("scratch", f"{pg_schema}.no_index", frame)
    assert admin(pg_server, f"SELECT * FROM {pg_schema}.no_index ORDER BY 1") == [(1.25,), (2.5,)]


def test_modes_create_append_replace(scratch: Session, pg_schema: str, pg_server: PostgresServer) -> None:
    table = f'{pg_schema}."Region Totals"'
    first = pd.DataFrame({"region": ["EU"], "total": [1]})
    scratch.write("scratch", table, first)
    with pytest.raises(QueryError, match=r"already exists: nothing was written; use mode 'append'"):
        scratch.write("scratch", table, first)
    scratch.write("scratch", table, pd.DataFrame({"total": [2], "region": ["US"]}), mode="append")
    assert read_back(scratch, table).sort_values("total")["region"].tolist() == ["EU", "US"]
    with pytest.raises(QueryError, match=r"has no column 'other': nothing was written"):
        scratch.write("scratch", table, pd.DataFrame({"other": [1]}), mode="append")
    with pytest.raises(ItemNotFound, match=r"no table .* to append to"):
        scratch.write("scratch", f"{pg_schema}.missing", first, mode="append")
    scratch.write("scratch", table, pd.DataFrame({"x": [1.5, 2.5, 3.5]}), mode="replace")
    replaced = read_back(scratch, table)
    assert replaced.columns.tolist() == ["x"]
    assert len(replaced) == 3
    # nothing left behind under a temporary name
    leftovers = admin(pg_server, "SELECT relname FROM pg_class WHERE relname LIKE %s", "Region Totals__new_%")
    assert leftovers == []


def test_replace_without_a_schema_replaces_the_table_the_search_path_finds(
    session: Session, pg_server: PostgresServer, pg_schema: str
) -> None:
    admin(pg_server, f"CREATE SCHEMA {pg_schema}_first")
    try:
        session.add(
            "scratch",
            "postgresql",
            secrets={"password": pg_server.password},
            **source_options(
                pg_server, read_only=False, options=f"-c search_path={pg_schema}_first,{pg_schema}"
            ),
        )
        admin(pg_server, f"CREATE TABLE {pg_schema}.found AS SELECT 1 AS a")
        session.write("scratch", "found", pd.DataFrame({"a": [2, 3]}), mode="replace")
        assert admin(pg_server, f"SELECT a FROM {pg_schema}.found ORDER BY a") == [(2,), (3,)]
        assert admin(pg_server, "SELECT to_regclass(%s)", f"{pg_schema}_first.found") == [(None,)]
    finally:
        admin(pg_server, f"DROP SCHEMA {pg_schema}_first CASCADE")


def test_a_read_only_source_refuses_naming_the_keyword(
    pg: Session, pg_schema: str, pg_server: PostgresServer
) -> None:
    # the API names its keyword; a magic names its flag instead (tests/notebook/magics/test_write.py)
    with pytest.raises(
        ConfigurationError,
        match=r"read-only: nothing was written; register it with read_only=False to allow writes$",
    ):
        pg.write("pg", f"{pg_schema}.nope", pd.DataFrame({"a": [1]}))
    assert admin(pg_server, "SELECT to_regclass(%s)", f"{pg_schema}.nope") == [(None,)]


def test_a_write_leaves_a_read_only_source_of_the_same_server_read_only(
    pg: Session, scratch: Session, pg_schema: str, pg_server: PostgresServer
) -> None:
    read_only = "SELECT current_setting('transaction_read_only') AS ro"
    assert pg.query("pg", read_only)["ro"].tolist() == ["on"]  # the read-only source's pool is open
    scratch.write("scratch", f"{pg_schema}.written", pd.DataFrame({"a": [1]}))
    scratch.write("scratch", f"{pg_schema}.written", pd.DataFrame({"a": [2]}), mode="replace")
    with pytest.raises(ConfigurationError, match="read-only: nothing was written"):
        pg.write("pg", f"{pg_schema}.nope", pd.DataFrame({"a": [1]}))
    assert pg.query("pg", read_only)["ro"].tolist() == ["on"]
    with pytest.raises(QueryError, match="read-only transaction"):
        pg.query("pg", f"CREATE TABLE {pg_schema}.made (a int)")
    for table in ("nope", "made"):
        assert admin(pg_server, "SELECT to_regclass(%s)", f"{pg_schema}.{table}") == [(None,)]
    assert scratch.query("scratch", f"SELECT a FROM {pg_schema}.written")["a"].tolist() == [2]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column names \\('a'\\)"),
        (pd.DataFrame({"span": pd.to_timedelta([1], unit="s")}), "column 'span' has dtype timedelta"),
        (pd.DataFrame({"mixed": [[1], {"a": 1}]}), "column 'mixed' \\(object\\) cannot be written"),
        (pd.DataFrame({"x" * 64: [1]}), "longer than PostgreSQL's 63 bytes"),
        (pd.DataFrame(index=[1, 2]), "the frame has no columns"),
    ],
    ids=["duplicates", "timedelta", "mixed-objects", "long-name", "no-columns"],
)
def test_frames_that_cannot_be_written_are_refused_before_anything_is_sent(
    scratch: Session, pg_schema: str, pg_server: PostgresServer, frame: pd.DataFrame, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        scratch.write("scratch", f"{pg_schema}.refused", frame)
    assert admin(pg_server, "SELECT to_regclass(%s)", f"{pg_schema}.refused") == [(None,)]


def test_a_bad_type_override_is_refused(scratch: Session, pg_schema: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a type name"):
        scratch.write("scratch", f"{pg_schema}.t", pd.DataFrame({"a": [1]}), types={"a": "int; DROP TABLE x"})


def large_frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(rows), "text": pd.array(["x" * 40] * rows, dtype="string[pyarrow]")})


@pytest.mark.usefixtures("ctrl_c")
@pytest.mark.parametrize("mode", ["create", "replace"])
def test_an_interrupt_mid_copy_leaves_the_table_as_it_was(
    scratch: Session, pg_schema: str, pg_server: PostgresServer, mode: str
) -> None:
    table = f"{pg_schema}.kept"
    if mode == "replace":
        scratch.write("scratch", table, pd.DataFrame({"id": [7]}))
    frame = large_frame(5_000_000)  # a COPY of a second or more
    app, main_thread = application(scratch), threading.main_thread().ident
    assert main_thread is not None

    def interrupt_once_the_copy_runs() -> None:  # Ctrl-C while the server is taking the rows
        if wait_until(lambda: copying(pg_server, app), 60):
            signal.pthread_kill(main_thread, signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_the_copy_runs, daemon=True)
    watcher.start()
    with pytest.raises(KeyboardInterrupt) as raised:
        scratch.write("scratch", table, frame, mode=mode)
    watcher.join()
    assert str(raised.value) == f"scratch: interrupted; nothing was written to {table}"
    expected = [(7,)] if mode == "replace" else None
    if expected is None:
        assert admin(pg_server, "SELECT to_regclass(%s)", table) == [(None,)]
    else:
        assert admin(pg_server, f"SELECT id FROM {table}") == expected
    assert wait_until(lambda: not open_transactions(pg_server, application(scratch)), 5)
    scratch.write("scratch", f"{pg_schema}.after", pd.DataFrame({"a": [1]}))  # the source still works


@contextmanager
def commit_held(pg_server: PostgresServer, table: str) -> Iterator[None]:
    """Make the table ``table`` (a bigint column ``a``) whose writes wait at ``COMMIT`` while in
    the block: a deferred trigger runs at the commit, and it waits for a lock the block holds."""
    schema, key = table.split(".")[0], int(uuid4().int % 2**62)
    admin(pg_server, f"CREATE TABLE {table} (a bigint)")
    admin(
        pg_server,
        f"CREATE FUNCTION {schema}.wait_for_the_test() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_advisory_xact_lock({key}); RETURN NULL; END $$",
    )
    admin(
        pg_server,
        f"CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.wait_for_the_test()",
    )
    with pg_server.admin_connection() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [key])
        yield


def committing(pg_server: PostgresServer, application: str) -> bool:
    """Whether a ``COMMIT`` of ``application`` waits for a lock on the server now."""
    return bool(
        admin(
            pg_server,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND query = 'COMMIT' "
            "AND wait_event_type = 'Lock'",
            application,
        )
    )


def interrupt_when(condition: Callable[[], bool]) -> threading.Thread:
    """A started thread that sends Ctrl-C (a real SIGINT) to the main thread once ``condition()``."""
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def watch() -> None:
        if wait_until(condition, 60):
            signal.pthread_kill(main_thread, signal.SIGINT)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


@pytest.mark.usefixtures("ctrl_c")
def test_an_interrupt_during_the_commit_says_the_outcome_is_not_known(
    scratch: Session, pg_schema: str, pg_server: PostgresServer
) -> None:
    table, app = f"{pg_schema}.held", application(scratch)
    with commit_held(pg_server, table):
        watcher = interrupt_when(lambda: committing(pg_server, app))  # Ctrl-C while COMMIT waits
        with pytest.raises(KeyboardInterrupt) as raised:
            scratch.write("scratch", table, pd.DataFrame({"a": [1]}), mode="append")
    watcher.join()
    assert str(raised.value) == (
        "scratch: interrupted while committing; the write may or may not have been committed; "
        f"check the table {table}"
    )
    assert wait_until(lambda: not open_transactions(pg_server, app), 5)


def test_a_write_draws_a_bar_of_bytes_and_rows(scratch: Session, pg_schema: str) -> None:
    drawn = io.StringIO()
    bar = drawing_into(drawn)

    scratch.registry.progress = bar
    scratch.run(scratch.registry.disconnect("scratch"))  # the next connect takes the new progress factory
    scratch.write("scratch", f"{pg_schema}.barred", large_frame(100_000))
    lines = drawn_lines(drawn)
    assert lines, "no bar was drawn"
    bar_of_rows = (
        rf"scratch: writing {pg_schema}\.barred:\s+[1-9]\d*%\|.*\| [\d.]+k/100k \[.*rows/s, [\d.]+[kM]B\]"
    )
    assert any(re.fullmatch(bar_of_rows, line) for line in lines), lines


def test_a_connection_killed_mid_write_is_a_clear_error_and_nothing_is_written(
    scratch: Session, pg_schema: str, pg_server: PostgresServer
) -> None:
    table = f"{pg_schema}.killed"
    failures: list[BaseException] = []

    def run() -> None:
        try:
            scratch.write("scratch", table, large_frame(4_000_000))
        except Exception as error:
            failures.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    name = application(scratch)
    copying = "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'COPY%%'"
    assert wait_until(lambda: bool(admin(pg_server, copying, name)), 20)
    ((pid,),) = admin(pg_server, copying, name)
    admin(pg_server, "SELECT pg_terminate_backend(%s)", pid)
    worker.join(30)
    (failure,) = failures
    assert isinstance(failure, ConnectionFailed)
    assert "nothing was written" in str(failure)
    assert pg_server.password not in str(failure)
    assert admin(pg_server, "SELECT to_regclass(%s)", table) == [(None,)]
    scratch.write("scratch", table, pd.DataFrame({"a": [1]}))
    assert admin(pg_server, f"SELECT a FROM {table}") == [(1,)]


def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())
