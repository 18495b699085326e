"""Result formats (pandas, Arrow, Polars) and the results cache, without a service."""

from __future__ import annotations

import sys
from decimal import Decimal

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from deepanalyze_jupyter.errors import ConfigurationError, QueryError
from deepanalyze_jupyter.results import (
    Result,
    check_output,
    convert_result,
    result_info,
    result_size,
    with_info,
)
from deepanalyze_jupyter.results_cache import ResultCache, result_key


def promised_frame() -> pd.DataFrame:
    """A frame as the connectors make it: nullable ints, NULL next to NaN, decimals, zoned times."""
    frame = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "x": pd.arrays.FloatingArray(np.array([np.nan, 0.0, 2.5]), np.array([False, True, False])),
            "price": pd.array(
                [Decimal("1.10"), None, Decimal("12345678901234.99")],
                dtype=pd.ArrowDtype(pa.decimal128(16, 2)),
            ),
            "at": pd.to_datetime(["2024-01-01 10:00", "2024-06-01 12:30", None]).tz_localize("Europe/Paris"),
            "label": pd.array(["a", None, "c"], dtype=pd.StringDtype("pyarrow")),
        }
    )
    frame.attrs.update(source="src", truncated=True, row_limit=3)
    return frame


def test_arrow_keeps_the_promises_and_the_attrs() -> None:
    table = convert_result(promised_frame(), "arrow")
    assert isinstance(table, pa.Table)
    assert table.schema.field("n").type == pa.int64()
    assert table.column("n").to_pylist() == [1, None, 3]
    x = table.column("x")
    assert x.to_pylist()[1] is None  # NULL stays missing ...
    assert np.isnan(x.to_pylist()[0])  # ... and NaN stays NaN
    assert table.schema.field("price").type == pa.decimal128(16, 2)
    assert table.column("price").to_pylist()[2] == Decimal("12345678901234.99")
    assert table.schema.field("at").type == pa.timestamp("us", "UTC")
    assert table.column("at").to_pylist()[0] == pd.Timestamp("2024-01-01 09:00", tz="UTC")
    assert result_info(table) == {"source": "src", "truncated": True, "row_limit": 3}
    assert set(table.schema.metadata) == {b"deepanalyze_jupyter"}  # no pandas index metadata


def test_polars_keeps_the_promises() -> None:
    frame = convert_result(promised_frame(), "polars")
    assert isinstance(frame, pl.DataFrame)
    assert frame.schema["n"] == pl.Int64
    assert frame["n"].to_list() == [1, None, 3]
    assert frame["x"].is_null().to_list() == [False, True, False]
    assert frame["x"].is_nan().to_list()[0] is True
    assert frame.schema["price"] == pl.Decimal(16, 2)
    assert frame["price"].to_list()[2] == Decimal("12345678901234.99")
    assert frame.schema["at"] == pl.Datetime("us", "UTC")
    assert frame.schema["label"] == pl.String


def test_pandas_is_returned_as_it_is() -> None:
    frame = promised_frame()
    assert convert_result(frame, "pandas") is frame


def test_an_unknown_format_is_one_line_naming_the_source() -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_output("feather", source="shop")
    assert str(refused.value) == "shop: unknown result format 'feather'; use one of pandas, arrow, polars"


def test_polars_missing_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(ConfigurationError) as refused:
        convert_result(promised_frame(), "polars", source="shop")
    assert str(refused.value) == (
        "shop: the polars result format needs Polars: pip install 'deepanalyze-jupyter[polars]'"
    )


def test_with_info_adds_to_an_arrow_table() -> None:
    table = with_info(convert_result(promised_frame(), "arrow"), {"cache_age": 2.5})
    assert result_info(table) == {"source": "src", "truncated": True, "row_limit": 3, "cache_age": 2.5}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame_of(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"v": np.arange(rows, dtype=np.int64)})


def test_a_result_is_reused_within_the_ttl_only() -> None:
    clock = Clock()
    cache = ResultCache(clock=clock)
    cache.put("s", "k", Result(frame_of(3), {"source": "s"}))
    clock.now += 9
    hit = cache.get("s", "k", ttl=10)
    assert hit is not None
    assert hit.age == 9
    assert hit.result.info == {"source": "s"}
    assert cache.get("s", "k", ttl=5) is None  # older than this caller's TTL: gone
    assert cache.get("s", "k", ttl=10) is None


def test_a_cached_frame_is_a_private_copy() -> None:
    cache = ResultCache()
    frame = frame_of(3)
    cache.put("s", "k", Result(frame))
    frame.loc[0, "v"] = 99
    hit = cache.get("s", "k", ttl=60)
    assert hit is not None
    hit.result.value.loc[1, "v"] = 77
    again = cache.get("s", "k", ttl=60)
    assert again is not None
    assert again.result.value["v"].tolist() == [0, 1, 2]


def test_the_size_bound_pushes_the_least_recently_used_out() -> None:
    size = int(frame_of(1000).memory_usage(index=True, deep=True).sum())
    cache = ResultCache(max_bytes=size * 2)
    cache.put("s", "a", Result(frame_of(1000)))
    cache.put("s", "b", Result(frame_of(1000)))
    assert cache.get("s", "a", ttl=60) is not None  # a is now the most recently used
    cache.put("s", "c", Result(frame_of(1000)))
    assert cache.get("s", "b", ttl=60) is None
    assert cache.get("s", "a", ttl=60) is not None
    assert cache.get("s", "c", ttl=60) is not None
    assert cache.nbytes == size * 2
    cache.put("s", "huge", Result(frame_of(10_000)))  # larger than the bound: not kept, nothing pushed out
    assert cache.get("s", "huge", ttl=60) is None
    assert len(cache) == 2
    cache.max_bytes = size
    assert len(cache) == 1
    assert cache.nbytes == size


def test_clear_drops_one_source_or_all() -> None:
    cache = ResultCache()
    for source in ("a", "a", "b"):
        cache.put(source, len(cache), Result(frame_of(2)))
    assert cache.clear("a") == 2
    assert cache.clear() == 1
    assert cache.nbytes == 0


def test_keys_tell_parameters_apart_and_refuse_what_cannot_be_one() -> None:
    assert result_key("q", [("ids", [1, 2])]) == result_key("q", [("ids", [1, 2])])
    assert result_key("q", [("ids", [1, 2])]) != result_key("q", [("ids", [1, 3])])
    assert result_key("q", [("f", lambda: 1)]) is None


@pytest.mark.parametrize("cleared", ["s", None], ids=["its-source", "all"])
def test_a_result_fetched_before_a_clear_is_not_kept(cleared: str | None) -> None:
    cache = ResultCache()
    before = cache.generation("s")
    cache.clear(cleared)  # the source was updated (or the cache emptied) while its query ran
    cache.put("s", "k", Result(frame_of(2)), generation=before)
    assert cache.get("s", "k", ttl=60) is None
    cache.put("s", "k", Result(frame_of(2)), generation=cache.generation("s"))
    assert cache.get("s", "k", ttl=60) is not None


def test_lists_and_dicts_in_a_frame_count_what_they_hold() -> None:
    """A JSON or array column holds its values' contents: 1,000 lists of 2,000 large ints are
    about 72 MB, though pandas counts each list's own 16 KB."""
    lists = pd.DataFrame({"v": [list(range(10**6, 10**6 + 2000)) for _ in range(1000)]})
    assert result_size(lists) > 1000 * 2000 * (8 + 28)
    nested = pd.DataFrame({"j": [{"a": [{"b": "x" * 1000}]} for _ in range(1000)]})
    assert result_size(nested) > 1000 * 1000
    assert result_size(pd.DataFrame({"s": ["x"] * 10})) < 10_000


def test_nanoseconds_a_file_holds_are_kept_in_utc() -> None:
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01 01:00:00.000000001"]).tz_localize("Europe/Paris")})
    table = convert_result(frame, "arrow")
    assert table.schema.field("t").type == pa.timestamp("ns", "UTC")
    assert table.column("t").cast(pa.int64()).to_pylist() == [frame["t"].iloc[0].value]


def test_a_column_arrow_cannot_hold_is_named() -> None:
    frame = pd.DataFrame({"ok": [1, 2], "m": np.array([1, "a"], dtype=object)})
    with pytest.raises(QueryError) as refused:
        convert_result(frame, "arrow", source="src")
    assert str(refused.value) == (
        "src: column 'm' cannot be returned as arrow (Could not convert 'a' with type str:"
        " tried to convert to int64); use --as pandas"
    )


def test_a_key_holds_no_copy_of_a_joined_frame() -> None:
    """The key was the pickle itself: a DataFrame joined with ``frames=`` stayed in the cache, uncounted."""
    frame = pd.DataFrame({"x": np.arange(1_000_000)})
    key = result_key("query", "SELECT sum(x) FROM f", [], 10, "pandas", [("frames", {"f": frame})])
    assert key is not None
    assert len(key) <= 64
    frame.loc[0, "x"] = -1  # a changed frame still makes another key
    assert result_key("query", "SELECT sum(x) FROM f", [], 10, "pandas", [("frames", {"f": frame})]) != key


def test_a_slice_of_an_arrow_table_counts_the_buffers_it_holds() -> None:
    """A row limit slices a file's table: ten rows held all 8 MB of its buffers but counted 80 bytes."""
    table = pa.table({"x": np.arange(1_000_000, dtype=np.float64)})
    cache = ResultCache(max_bytes=2**20)
    cache.put("s", "k", Result(table.slice(0, 10)))
    assert cache.nbytes == 0 or cache.nbytes >= table.get_total_buffer_size()
    assert cache.get("s", "k", ttl=60) is None  # larger than the bound: not kept


def test_a_cached_frame_is_a_private_copy_down_to_its_json_values() -> None:
    """PostgreSQL json/jsonb and arrays, and Parquet structs, are dicts and lists in an object column:
    a caller changing one in the frame it was given changed the result the cache gave next."""
    cache = ResultCache()
    frame = pd.DataFrame({"j": [{"a": [1]}, None], "arr": [[1, 2], [3, 4]], "s": ["x", "y"]})
    cache.put("s", "k", Result(frame))
    frame.loc[0, "j"]["a"].append(99)  # the caller's own frame, after the put
    hit = cache.get("s", "k", ttl=60)
    assert hit is not None
    hit.result.value.loc[0, "j"]["a"] = "changed"
    hit.result.value.loc[0, "arr"][0] = -1
    again = cache.get("s", "k", ttl=60)
    assert again is not None
    expected = {"j": [{"a": [1]}, None], "arr": [[1, 2], [3, 4]], "s": ["x", "y"]}
    assert again.result.value.to_dict("list") == expected
