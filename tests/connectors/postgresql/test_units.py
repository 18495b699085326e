"""The PostgreSQL connector's parts that need no server: options, DSNs, types, COPY text, errors."""

from __future__ import annotations

import datetime as dt
import io
import logging
from array import array
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pytest

from deepanalyze_jupyter.connectors.postgresql import copy as pg_copy
from deepanalyze_jupyter.connectors.postgresql.binary import (
    binary_gain,
    decodable,
    decode_binary_copy,
    prefer_binary,
)
from deepanalyze_jupyter.connectors.postgresql.columns import (
    Loaded,
    frame_from_columns,
    frame_from_values,
    python_column,
)
from deepanalyze_jupyter.connectors.postgresql.connector import PostgresConnector
from deepanalyze_jupyter.connectors.postgresql.copy import (
    ParseFailure,
    finish_columns,
    parse_copy_text,
    parse_piece,
    parse_small_copy_text,
    unescape_copy_text,
)
from deepanalyze_jupyter.connectors.postgresql.dsn import connection_params, describe_target, split_dsn
from deepanalyze_jupyter.connectors.postgresql.errors import connect_error
from deepanalyze_jupyter.connectors.postgresql.query import CopyFormats
from deepanalyze_jupyter.connectors.postgresql.types import (
    ColumnKind,
    ConversionError,
    PlanCache,
    PlanSettings,
    plan_columns,
)
from deepanalyze_jupyter.errors import AuthenticationFailed, ConfigurationError, ConnectionFailed
from deepanalyze_jupyter.models import Secret

SECRET = "s3cr3t-Pa55word"

# -- options and DSNs ------------------------------------------------------------------------


def test_no_option_is_required() -> None:
    options, secrets = PostgresConnector.prepare("pg", {}, {})
    assert secrets == {}
    assert options == {
        "read_only": True,
        "numeric_as_float": False,
        "pool_max_size": 2,
        "pool_timeout": 30.0,
        "max_idle": 60.0,
    }


def test_a_password_in_a_uri_becomes_a_secret_and_leaves_the_dsn() -> None:
    options, secrets = PostgresConnector.prepare(
        "pg", {"dsn": f"postgresql://ana:{SECRET}@db.example:6543/sales?sslmode=require"}, {}
    )
    assert secrets["password"].reveal() == SECRET
    assert SECRET not in options["dsn"]
    assert "host=db.example" in options["dsn"]
    assert "sslmode=require" in options["dsn"]


def test_a_password_in_a_key_value_dsn_becomes_a_secret() -> None:
    options, secrets = PostgresConnector.prepare("pg", {"dsn": f"host=h user=u password='{SECRET}'"}, {})
    assert secrets["password"].reveal() == SECRET
    assert "password" not in options["dsn"]


def test_an_explicit_password_wins_over_the_one_in_the_dsn() -> None:
    _, secrets = PostgresConnector.prepare(
        "pg", {"dsn": "postgresql://u:from-dsn-pass@h/db"}, {"password": Secret(SECRET)}
    )
    assert secrets["password"].reveal() == SECRET


@pytest.mark.parametrize(
    "dsn", [f"host=h password {SECRET}", f"nonsense={SECRET}", f"postgresql://u:{SECRET}@h/db?bogus=1"]
)
def test_a_malformed_dsn_is_refused_without_echoing_it(dsn: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PostgresConnector.prepare("pg", {"dsn": dsn}, {})
    message = str(caught.value)
    assert message.startswith("pg: ")
    assert SECRET not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_an_unknown_dsn_parameter_is_named() -> None:
    with pytest.raises(ConfigurationError, match="'nonsense'"):
        split_dsn("host=h nonsense=1", source="pg")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"port": 0}, "port"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"pool_max_size": 0}, "pool_max_size"),
        ({"statement_timeout": -1}, "statement_timeout"),
        ({"sslmode": "sometimes"}, "sslmode"),
        ({"port": "five"}, "port"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_options_are_refused_naming_them(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        PostgresConnector.prepare("pg", options, {})


def test_connection_params_layer_defaults_dsn_options_and_session_settings() -> None:
    params = connection_params(
        {"dsn": "host=a port=1 application_name=from-dsn", "host": "b", "options": "-c search_path=x"},
        password=SECRET,
        sslpassword=None,
        read_only=True,
    )
    assert params["host"] == "b"  # the option wins over the DSN
    assert params["port"] == "1"
    assert params["application_name"] == "from-dsn"  # the DSN wins over the default
    assert params["connect_timeout"] == "10"
    assert params["password"] == SECRET
    assert params["client_encoding"] == "UTF8"
    # the read-only setting comes last, so the user's own options cannot undo it
    assert params["options"].startswith("-c search_path=x ")
    assert params["options"].endswith("-c default_transaction_read_only=on")


def test_connection_params_of_a_writable_source_do_not_force_read_only() -> None:
    params = connection_params({}, password=None, sslpassword=None, read_only=False)
    assert "default_transaction_read_only" not in params["options"]
    assert "password" not in params
    assert params["application_name"] == "deepanalyze-jupyter"


def test_the_target_description_never_holds_the_password() -> None:
    target = describe_target({"host": "h", "port": "5", "dbname": "d", "user": "u", "password": SECRET})
    assert target == "h:5/d as u"


def test_connect_errors_tell_authentication_from_connection_problems() -> None:
    refused = connect_error(
        psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "u"'),
        source="pg",
        target="h:5",
    )
    assert isinstance(refused, AuthenticationFailed)
    assert str(refused) == 'pg: authentication failed for h:5: password authentication failed for user "u"'
    unreachable = connect_error(
        psycopg.OperationalError("connection failed: connection refused\n\tIs the server running?"),
        source="pg",
        target="h:5",
    )
    assert type(unreachable) is ConnectionFailed
    assert "\n" not in str(unreachable)


# -- column plans and frames ------------------------------------------------------------------

SETTINGS = PlanSettings(time_zone="Europe/Paris")
NUMERIC_12_2 = (12 << 16) + 2 + 4


def plans_for(*fields: tuple[str, int, int], settings: PlanSettings = SETTINGS) -> list[Any]:
    return plan_columns(list(fields), psycopg.adapters, settings)


def test_plans_map_postgresql_types_to_arrow_types() -> None:
    plans = plans_for(
        ("i", 23, -1),
        ("f", 700, -1),
        ("n", 1700, NUMERIC_12_2),
        ("u", 1700, -1),
        ("tz", 1184, -1),
        ("t", 25, -1),
        ("j", 3802, -1),
        ("e", 999_999, -1),
    )
    kinds = [(plan.kind, plan.arrow_type) for plan in plans]
    assert kinds == [
        (ColumnKind.NATIVE, pa.int64()),
        (ColumnKind.NATIVE, pa.float64()),
        (ColumnKind.NATIVE, pa.decimal128(12, 2)),
        (ColumnKind.PYTHON, None),
        (ColumnKind.NATIVE, pa.timestamp("us", tz="Europe/Paris")),
        (ColumnKind.TEXT, pa.string()),
        (ColumnKind.PYTHON, None),
        (ColumnKind.TEXT, pa.string()),  # an unknown type (an enum): its text
    ]


def test_numeric_as_float_and_non_iso_dates_change_the_plans() -> None:
    settings = PlanSettings(numeric_as_float=True, iso_dates=False)
    numeric, date = plans_for(("n", 1700, NUMERIC_12_2), ("d", 1082, -1), settings=settings)
    assert numeric.arrow_type == pa.float64()
    assert date.kind is ColumnKind.PYTHON


def test_the_plan_cache_returns_equal_plans_for_the_same_shape() -> None:
    cache = PlanCache(size=2)
    fields = [("a", 23, -1)]
    first = cache.plans(fields, psycopg.adapters, SETTINGS)
    again = cache.plans(fields, psycopg.adapters, SETTINGS)
    assert again[0] is first[0]
    other = cache.plans(fields, psycopg.adapters, PlanSettings(time_zone="UTC"))
    assert other[0] is not first[0]
    assert other == first  # planned again, to the same plan
    cache.plans([("b", 25, -1)], psycopg.adapters, SETTINGS)
    cache.plans([("c", 16, -1)], psycopg.adapters, SETTINGS)
    assert len(cache._plans) == 2


ROWS = [
    "1\t1.5\tplain\t2024-01-01 10:00:00+01\t12.50\tt\t\\N\t{1,2}\t\\\\x0a0b",
    "2\tNaN\ttab\\there\\nnewline \\\\ back\t2024-06-01 10:00:00.5+02\t-0.01\tf\t7\t{}\t\\N",
    "3\t-Infinity\t\t\\N\t\\N\t\\N\t\\N\t\\N\t\\\\x",
]
COPY_TEXT = ("\n".join(ROWS) + "\n").encode()
FIELDS = [
    ("id", 20, -1),
    ("f", 701, -1),
    ("t", 25, -1),
    ("ts", 1184, -1),
    ("n", 1700, NUMERIC_12_2),
    ("b", 16, -1),
    ("nullable", 23, -1),
    ("arr", 1007, -1),
    ("bytes", 17, -1),
]


def test_copy_text_parsed_by_pyarrow_and_in_python_gives_the_same_frame() -> None:
    plans = plans_for(*FIELDS)
    arrow_frame = frame_from_columns(plans, finish_columns(parse_copy_text(COPY_TEXT, plans), plans), 3)
    values, count = parse_small_copy_text(COPY_TEXT, plans)
    python_frame = frame_from_values(plans, values, count)
    assert count == 3
    assert arrow_frame.dtypes.tolist() == python_frame.dtypes.tolist()
    pd.testing.assert_frame_equal(arrow_frame, python_frame)
    frame = arrow_frame
    assert frame["t"].tolist() == ["plain", "tab\there\nnewline \\ back", ""]
    assert frame["ts"].dtype == "datetime64[us, Europe/Paris]"
    assert frame["ts"][1] == pd.Timestamp("2024-06-01 08:00:00.5", tz="UTC")
    assert frame["n"].dtype == pd.ArrowDtype(pa.decimal128(12, 2))
    assert frame["n"][0] == Decimal("12.50")
    assert frame["b"].dtype == "boolean"
    assert frame["nullable"].dtype == "Int64"
    assert frame["arr"].tolist() == [[1, 2], [], None]
    assert frame["bytes"].tolist() == [b"\n\x0b", None, b""]
    assert str(frame["f"][1]) == "nan"
    assert frame["f"][2] == float("-inf")


def test_values_pyarrow_cannot_parse_name_their_column() -> None:
    plans = plans_for(("d", 1082, -1), ("n", 1700, NUMERIC_12_2))
    with pytest.raises(ParseFailure) as caught:
        parse_copy_text(b"infinity\t1.00\n", plans)
    assert caught.value.columns == frozenset({0})
    with pytest.raises(ParseFailure) as caught:
        parse_copy_text(b"2024-01-01\tNaN\n", plans)
    assert caught.value.columns == frozenset({1})


def test_a_row_wider_than_a_parse_block_is_parsed() -> None:
    plans = plans_for(("t", 25, -1), ("i", 20, -1))
    wide = b"x" * 300_000
    table = parse_copy_text(b"a\t1\n" + wide + b"\t2\n" + b"b\t3\n" * 50_000 + wide + b"\t4\n", plans)
    assert table.column(0)[1].as_py() == wide.decode()
    assert table.column(1).to_pylist()[:2] == [1, 2]
    assert table.column(1)[-1].as_py() == 4


def test_a_parse_error_no_column_explains_is_one_error() -> None:
    text_only = plans_for(("t", 25, -1))
    with pytest.raises(ConversionError, match="cannot parse the rows"):
        parse_copy_text(b"a\tb\n", text_only)  # more fields than columns


def test_the_text_fallback_ends_when_no_column_is_left_to_read_as_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plans = plans_for(("t", 25, -1))

    def failing(data: bytes, plans: Any) -> pa.Table:
        raise ParseFailure(frozenset({0}))  # names a column already read as text

    monkeypatch.setattr(pg_copy, "parse_copy_text", failing)
    with pytest.raises(ConversionError, match="cannot parse the rows"):
        parse_piece(b"a\n", plans)


def test_a_column_pyarrow_cannot_parse_is_read_as_text_in_that_piece_only() -> None:
    plans = plans_for(("d", 1082, -1), ("n", 1700, NUMERIC_12_2))
    table, used = parse_piece(b"infinity\t1.00\n", plans)
    assert [plan.kind for plan in used] == [ColumnKind.PYTHON, ColumnKind.NATIVE]
    assert table.schema.types == [pa.large_string(), pa.decimal128(12, 2)]
    table, used = parse_piece(b"2024-01-02\t2.00\n", plans)
    assert used == plans


def test_a_wide_numeric_is_parsed_exactly_and_a_nan_in_it_loads() -> None:
    (plan,) = plans_for(("n", 1700, (50 << 16 | 3) + 4))
    assert plan.arrow_type == pa.decimal256(50, 3)
    exact = "12345678901234567890123456789012345678901234567.891"
    table = parse_copy_text(f"{exact}\n\\N\n".encode(), [plan])
    assert finish_columns(table, [plan])[0].to_pylist() == [Decimal(exact), None]
    (with_nan,) = finish_columns(parse_copy_text(b"NaN\n1.000\n", [plan]), [plan])
    assert isinstance(with_nan, Loaded)  # loaded by psycopg, as Arrow holds no NaN decimal
    assert with_nan.values[0].is_nan()
    assert with_nan.values[1] == Decimal("1.000")


def test_a_nan_in_a_constrained_numeric_stays_a_decimal_object() -> None:
    (plan,) = plans_for(("n", 1700, NUMERIC_12_2))
    column = python_column(plan, [Decimal("NaN"), Decimal("1.00")])
    assert column.dtype == object
    assert column[0].is_nan()


def test_python_columns_have_the_dtypes_arrow_columns_get() -> None:
    tz = dt.timezone.utc
    samples: list[tuple[tuple[str, int, int], list[Any]]] = [
        (("i", 20, -1), [1, 2]),
        (("ni", 20, -1), [1, None]),
        (("b", 16, -1), [True, False]),
        (("nb", 16, -1), [True, None]),
        (("f", 701, -1), [1.5, None]),
        (("t", 25, -1), ["a", None]),
        (("ts", 1114, -1), [dt.datetime(2024, 1, 1), None]),
        (("tz", 1184, -1), [dt.datetime(2024, 1, 1, tzinfo=tz), None]),
        (("d", 1082, -1), [dt.date(2024, 1, 1), None]),
        (("tm", 1083, -1), [dt.time(1, 2), None]),
        (("n", 1700, NUMERIC_12_2), [Decimal("1.25"), None]),
        (("iv", 1186, -1), [dt.timedelta(hours=1), None]),
    ]
    plans = plans_for(*(fields for fields, _ in samples))
    values = [column for _, column in samples]
    direct = frame_from_values(plans, values, 2)
    arrow_columns = [
        pa.array(column, plan.arrow_type if plan.kind is not ColumnKind.TEXT else pa.string())
        for plan, column in zip(plans, values, strict=True)
    ]
    through_arrow = frame_from_columns(plans, arrow_columns, 2)
    assert direct.dtypes.tolist() == through_arrow.dtypes.tolist()
    pd.testing.assert_frame_equal(direct, through_arrow)


def test_duplicate_names_and_empty_frames_keep_their_columns() -> None:
    plans = plans_for(("a", 23, -1), ("a", 25, -1))
    frame = frame_from_values(plans, [[], []], 0)
    assert list(frame.columns) == ["a", "a"]
    assert frame.dtypes.tolist() == [pd.api.types.pandas_dtype("int64"), pd.StringDtype("pyarrow")]
    assert len(frame_from_values([], [], 4)) == 4


def test_unescaping_copy_text() -> None:
    assert unescape_copy_text("a\\tb\\nc\\\\d\\re\\x") == "a\tb\nc\\d\rex"
    assert unescape_copy_text("plain") == "plain"


def test_pool_warnings_print_only_where_logging_is_configured(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from deepanalyze_jupyter.connectors.postgresql.pool import quiet_pool_warnings

    quiet_pool_warnings()
    quiet_pool_warnings()  # installed once
    pool_logger = logging.getLogger("psycopg.pool")
    assert sum(type(found).__name__ == "_QuietPoolWarnings" for found in pool_logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="psycopg.pool"):
        pool_logger.warning("error connecting in %r: %s", "deepanalyze:shop", "refused")
        pool_logger.warning("error connecting in %r: %s", "their-pool", "refused")
    assert [record.getMessage() for record in caplog.records] == [
        "error connecting in 'deepanalyze:shop': refused",
        "error connecting in 'their-pool': refused",
    ]
    printed = io.StringIO()
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging, "lastResort", logging.StreamHandler(printed))
    pool_logger.warning("error connecting in %r: %s", "deepanalyze:shop", "refused")
    pool_logger.warning("error connecting in %r: %s", "their-pool", "refused")
    pool_logger.warning("discarding closed connection: %s", "<AsyncConnection [BAD]>")
    assert printed.getvalue() == ""


# -- binary COPY ------------------------------------------------------------------------------


def binary_copy(rows: list[list[bytes | None]]) -> tuple[bytearray, array[int]]:
    """Binary ``COPY`` data of ``rows`` (each field's bytes, None for NULL) and its message ends."""
    data = bytearray(b"PGCOPY\n\xff\r\n\x00" + bytes(8))
    ends: array[int] = array("q")
    for row in rows:
        data += len(row).to_bytes(2, "big")
        for value in row:
            data += (-1 if value is None else len(value)).to_bytes(4, "big", signed=True) + (value or b"")
        ends.append(len(data))
    data += b"\xff\xff"
    ends.append(len(data))
    return data, ends


def int8(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def test_only_types_read_alike_from_binary_and_text_are_decoded() -> None:
    plans = plans_for(
        ("i", 20, -1),
        ("n", 1700, NUMERIC_12_2),
        ("t", 25, -1),
        ("tz", 1184, -1),
        ("big", 1700, ((20 << 16) | 2) + 4),
        ("u", 1700, -1),
        ("f4", 700, -1),
        ("uuid", 2950, -1),
        ("j", 3802, -1),
    )
    assert [decodable(plan) for plan in plans] == [True, True, True, True, False, False, False, False, False]
    (as_float,) = plans_for(("n", 1700, NUMERIC_12_2), settings=PlanSettings(numeric_as_float=True))
    assert not decodable(as_float)


def test_binary_is_preferred_where_the_servers_savings_outweigh_the_decoding() -> None:
    integers_and_text = plans_for(("i", 20, -1), ("t", 25, -1))
    with_a_timestamptz = [*integers_and_text, *plans_for(("at", 1184, -1))]
    with_json_too = [*with_a_timestamptz, *plans_for(("j", 3802, -1))]
    assert binary_gain(integers_and_text) < 0
    assert not prefer_binary(integers_and_text)
    assert prefer_binary(with_a_timestamptz)
    assert not prefer_binary(with_json_too)  # json is not decoded from binary here


def test_binary_copy_rows_decode_to_the_frame_text_gives() -> None:
    plans = plans_for(("id", 20, -1), ("t", 25, -1), ("b", 16, -1))
    data, ends = binary_copy(
        [[int8(1), b"caf\xc3\xa9", b"\x01"], [int8(-2), None, None], [int8(3), b"", b"\x00"]]
    )
    frame = frame_from_columns(plans, decode_binary_copy(data, ends, plans, rows=3, keep=2), 2)
    assert frame["id"].tolist() == [1, -2]
    assert frame["t"].iloc[0] == "café"
    assert pd.isna(frame["t"].iloc[1])
    assert str(frame["b"].dtype) == "boolean"


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([[int8(1), b"ok"], [int8(2), b"\xff\xfe"]], "column 't' holds text that is not UTF-8"),
        ([[int8(1), b"\xa9ok"]], "column 't' holds text that is not UTF-8"),  # starts inside a character
        ([[int8(1)]], "binary COPY rows do not all have 2 fields"),
        ([[b"\x00\x00\x00\x01", b"x"]], "column 'id' has values of an unexpected size"),
    ],
    ids=["invalid-utf8", "split-character", "field-count", "value-size"],
)
def test_binary_copy_that_does_not_fit_its_columns_is_a_clear_error(
    rows: list[list[bytes | None]], problem: str
) -> None:
    plans = plans_for(("id", 20, -1), ("t", 25, -1))
    data, ends = binary_copy(rows)
    with pytest.raises(ConversionError, match=problem):
        decode_binary_copy(data, ends, plans, rows=len(rows), keep=len(rows))


def test_binary_copy_without_its_header_or_with_too_few_rows_is_refused() -> None:
    plans = plans_for(("id", 20, -1))
    data, ends = binary_copy([[int8(1)]])
    with pytest.raises(ConversionError, match="COPY sent 2 rows but 1 were read"):
        decode_binary_copy(bytearray(data), ends, plans, rows=2, keep=2)
    with pytest.raises(ConversionError, match="no header or end"):
        decode_binary_copy(data[5:], ends, plans, rows=1, keep=1)


def test_copy_formats_remember_the_statements_to_read_as_binary_most_recent_first() -> None:
    formats = CopyFormats(size=2)
    assert not formats.binary("a")
    formats.remember("a", binary=True)
    formats.remember("b", binary=True)
    formats.remember("a", binary=True)  # "a" ran again, and is still best read as binary
    formats.remember("c", binary=True)  # so "b", run longest ago, is the one forgotten
    assert formats.binary("a")
    assert not formats.binary("b")
    formats.remember("a", binary=False)
    assert not formats.binary("a")
    assert formats.binary("c")
