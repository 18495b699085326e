"""File bytes -> DataFrame: every format, compression, reader options and failure."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepanalyze_jupyter.connectors.files.formats import (
    SUPPORTED_FORMATS,
    ParsedFile,
    combine_frames,
    combine_tables,
    detect_format,
    parse_bytes,
    parse_table,
)
from deepanalyze_jupyter.errors import ConfigurationError, FormatError

RECORDS: list[dict[str, Any]] = [
    {"id": 1, "name": "ada", "score": 1.5, "when": "2024-01-01T10:00:00Z"},
    {"id": 2, "name": None, "score": 2.5, "when": "2024-01-02T11:30:00Z"},
    {"id": 3, "name": "cy", "score": None, "when": "2024-01-03T12:00:00Z"},
]
CSV = (
    b"id,name,score,when\n1,ada,1.5,2024-01-01T10:00:00Z\n"
    b"2,,2.5,2024-01-02T11:30:00Z\n3,cy,,2024-01-03T12:00:00Z\n"
)


def _parquet() -> bytes:
    sink = io.BytesIO()
    table = pa.Table.from_pylist(RECORDS)
    table = table.set_column(3, "when", pa.array(pd.to_datetime([r["when"] for r in RECORDS], utc=True)))
    pq.write_table(table, sink)
    return sink.getvalue()


SAMPLES: dict[str, bytes] = {
    "csv": CSV,
    "tsv": CSV.replace(b",", b"\t"),
    "json": json.dumps(RECORDS).encode(),
    "jsonl": "\n".join(json.dumps(r) for r in RECORDS).encode() + b"\n",
    "parquet": _parquet(),
}


def parse(data: bytes | memoryview, path: str, **kwargs: Any) -> pd.DataFrame:
    return parse_bytes(data, path=path, source="files", **kwargs)


# -- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "explicit", "expected"),
    [
        ("a/b.csv", None, ("csv", None)),
        ("b.CSV", None, ("csv", None)),
        ("b.tsv", None, ("tsv", None)),
        ("b.parquet", None, ("parquet", None)),
        ("b.pq", None, ("parquet", None)),
        ("b.json", None, ("json", None)),
        ("b.jsonl", None, ("jsonl", None)),
        ("b.ndjson", None, ("jsonl", None)),
        ("sales.2024.csv.gz", None, ("csv", "gzip")),
        ("b.jsonl.gz", None, ("jsonl", "gzip")),
        ("export.txt", "csv", ("csv", None)),
        ("export", "TSV", ("tsv", None)),
        ("export.gz", "json", ("json", "gzip")),
        ("export", "csv.gz", ("csv", "gzip")),
        ("b.csv", "parquet", ("parquet", None)),
    ],
)
def test_detect_format(path: str, explicit: str | None, expected: tuple[str, str | None]) -> None:
    assert detect_format(path, explicit) == expected


def test_supported_formats_are_the_documented_five() -> None:
    assert set(SUPPORTED_FORMATS) == {"csv", "tsv", "parquet", "json", "jsonl"}


@pytest.mark.parametrize("path", ["report.xlsx", "noext", "archive.gz", "dir/"])
def test_unknown_format_names_the_path(path: str) -> None:
    with pytest.raises(FormatError, match="cannot tell the format") as caught:
        detect_format(path, source="files")
    assert path.rstrip("/") in str(caught.value)
    assert str(caught.value).startswith("files: ")


def test_unsupported_explicit_format_is_refused() -> None:
    with pytest.raises(FormatError, match=r"unsupported format 'xml' for a\.csv; supported: csv"):
        detect_format("a.csv", "xml")


# -- every format, plain and gzip ------------------------------------------------------------


@pytest.mark.parametrize("file_format", sorted(SAMPLES))
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_every_format_parses_with_consistent_dtypes(file_format: str, compressed: bool) -> None:
    data = SAMPLES[file_format]
    path = f"dir/sample.{file_format}"
    if compressed:
        data, path = gzip.compress(data), path + ".gz"
    frame = parse(data, path)
    assert list(frame.columns) == ["id", "name", "score", "when"]
    assert frame["id"].tolist() == [1, 2, 3]
    assert str(frame["id"].dtype) == "int64"
    assert frame["name"].dtype == pd.StringDtype("pyarrow")
    assert frame["name"].isna().tolist() == [False, True, False]
    assert frame["score"].dtype == "Float64"  # a float column with a missing value
    assert pd.isna(frame["score"].iloc[2])


@pytest.mark.parametrize("file_format", ["csv", "tsv", "parquet"])
def test_timestamps_keep_their_time_zone(file_format: str) -> None:
    frame = parse(SAMPLES[file_format], f"x.{file_format}")
    assert isinstance(frame["when"].dtype, pd.DatetimeTZDtype)
    assert frame["when"].iloc[1] == pd.Timestamp("2024-01-02T11:30:00Z")


def test_explicit_format_wins_over_the_name() -> None:
    frame = parse(SAMPLES["jsonl"], "export.txt", format="jsonl")
    assert len(frame) == 3


def test_gzip_data_under_a_plain_name_is_decompressed() -> None:
    frame = parse(gzip.compress(CSV), "plain.csv")
    assert frame["id"].tolist() == [1, 2, 3]


def test_a_gz_name_holding_plain_text_still_parses() -> None:
    frame = parse(CSV, "already-inflated.csv.gz")
    assert len(frame) == 3


def test_memoryview_and_bytearray_are_accepted() -> None:
    assert len(parse(memoryview(bytearray(CSV)), "a.csv")) == 3
    assert len(parse(memoryview(SAMPLES["parquet"]), "a.parquet")) == 3


def test_nullable_integers_stay_integers() -> None:
    frame = parse(b"a,b\n1,x\n,y\n3,z\n", "n.csv")
    assert str(frame["a"].dtype) == "Int64"
    assert frame["a"].tolist()[0] == 1


def test_json_shapes() -> None:
    columns = parse(b'{"a": [1, 2], "b": ["x", null]}', "c.json")
    assert columns["a"].tolist() == [1, 2]
    single = parse(b'{"a": 1, "b": "x"}', "one.json")
    assert single.to_dict("records") == [{"a": 1, "b": "x"}]
    union = parse(b'[{"a": 1}, {"a": null, "b": "x"}]', "u.json")
    assert list(union.columns) == ["a", "b"]
    assert str(union["a"].dtype) == "Int64"
    lines_named_json = parse(SAMPLES["jsonl"], "lines.json")
    assert len(lines_named_json) == 3


def test_jsonl_with_changing_types_falls_back_to_objects() -> None:
    frame = parse(b'{"a": 1}\n{"a": "two"}\n\n', "mixed.jsonl")
    assert frame["a"].tolist() == [1, "two"]


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (
            b'{"a": 1, "i": -9223372036854775808, "s": "", "b": true}\n'
            b'{"a": "two", "i": null, "s": null, "b": null}\n'
            b'{"a": 3, "i": 9223372036854775807, "s": "x", "b": false}\n',
            "mixed.jsonl",
        ),
        (
            b'{"a": [1, "two", 3], "i": [-9223372036854775808, null, 9223372036854775807], '
            b'"s": ["", null, "x"], "b": [true, null, false]}',
            "columns.json",
        ),
    ],
    ids=["records", "columns"],
)
def test_one_column_of_changing_types_leaves_the_others_typed(data: bytes, name: str) -> None:
    frame = parse(data, name)
    assert frame["a"].tolist() == [1, "two", 3]
    assert str(frame["i"].dtype) == "Int64"  # not float64: the extremes stay exact
    assert frame["i"].tolist() == [-9223372036854775808, pd.NA, 9223372036854775807]
    assert frame["s"].dtype == pd.StringDtype("pyarrow")
    assert frame["s"].tolist() == ["", pd.NA, "x"]
    assert str(frame["b"].dtype) == "boolean"


def test_jsonl_with_long_records_spanning_blocks() -> None:
    line = json.dumps({"text": "x" * 3_000_000}).encode()
    frame = parse(line + b"\n" + line + b"\n", "long.jsonl")
    assert len(frame) == 2
    assert len(frame["text"].iloc[0]) == 3_000_000


# -- reader options --------------------------------------------------------------------------


def test_reader_option_columns_selects_and_orders() -> None:
    for file_format in SAMPLES:
        frame = parse(SAMPLES[file_format], f"x.{file_format}", reader_options={"columns": ["score", "id"]})
        assert list(frame.columns) == ["score", "id"], file_format


@pytest.mark.parametrize("file_format", sorted(SAMPLES))
def test_reader_option_missing_column_is_a_format_error(file_format: str) -> None:
    with pytest.raises(FormatError, match=rf"cannot parse x\.{file_format} as {file_format}: .*nope"):
        parse(SAMPLES[file_format], f"x.{file_format}", reader_options={"columns": ["nope"]})


def test_reader_option_dtype() -> None:
    frame = parse(
        b"zip,n,flag,kind\n01234,1,true,a\n00042,,false,b\n",
        "d.csv",
        reader_options={"dtype": {"zip": str, "n": "Int32", "flag": "boolean", "kind": "category"}},
    )
    assert frame["zip"].tolist() == ["01234", "00042"]
    assert str(frame["n"].dtype) == "Int32"
    assert str(frame["flag"].dtype) == "boolean"
    assert isinstance(frame["kind"].dtype, pd.CategoricalDtype)


def test_reader_option_dtype_on_parquet_and_json() -> None:
    for file_format in ("parquet", "json", "jsonl"):
        frame = parse(SAMPLES[file_format], f"x.{file_format}", reader_options={"dtype": {"id": "float64"}})
        assert frame["id"].dtype == "float64", file_format


def test_reader_option_dtype_that_does_not_fit_is_a_format_error() -> None:
    with pytest.raises(FormatError, match=r"cannot parse d\.csv as csv"):
        parse(b"a\nx\n", "d.csv", reader_options={"dtype": {"a": "int64"}})


def test_reader_option_separator_and_header() -> None:
    frame = parse(b"1;x\n2;y\n", "semi.csv", reader_options={"sep": ";", "header": False})
    assert frame.shape == (2, 2)
    named = parse(
        b"1;x\n2;y\n", "semi.csv", reader_options={"delimiter": ";", "names": ["n", "s"], "header": None}
    )
    assert list(named.columns) == ["n", "s"]
    assert named["n"].tolist() == [1, 2]
    renamed = parse(b"a;b\n1;x\n", "semi.csv", reader_options={"sep": ";", "names": ["n", "s"]})
    assert renamed.to_dict("records") == [{"n": 1, "s": "x"}]


def test_reader_option_skiprows_na_values_quotechar_encoding() -> None:
    data = "# comment\nname,v\n'a, b',MISSING\n'é',2\n".encode("latin-1")
    frame = parse(
        data,
        "odd.csv",
        reader_options={"skiprows": 1, "na_values": ["MISSING"], "quotechar": "'", "encoding": "latin-1"},
    )
    assert frame["name"].tolist() == ["a, b", "é"]
    assert frame["v"].isna().tolist() == [True, False]


def test_unknown_reader_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown reader option\(s\) 'colums'"):
        parse(CSV, "a.csv", reader_options={"colums": ["id"]})


# -- empty and malformed files ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["e.csv", "e.tsv", "e.json", "e.jsonl", "e.parquet", "e.csv.gz"])
def test_empty_file_gives_an_empty_frame(path: str) -> None:
    frame = parse(b"", path)
    assert frame.empty
    assert len(parse(b"", path, reader_options={"columns": ["a"]}).columns) == 1


def test_empty_gzip_gives_an_empty_frame() -> None:
    assert parse(gzip.compress(b""), "e.csv.gz").empty


def test_header_only_csv_keeps_its_columns() -> None:
    frame = parse(b"a,b\n", "h.csv")
    assert list(frame.columns) == ["a", "b"]
    assert len(frame) == 0


@pytest.mark.parametrize(
    ("path", "data", "reason"),
    [
        ("bad.csv", b"a,b\n1,2\n3,4,5\n", "Expected 2 columns, got 3"),
        ("bad.tsv", b"a\tb\n1\n", "Expected 2 columns, got 1"),
        ("bad.parquet", b"PAR1 this is not parquet", "Parquet"),
        ("bad.json", b'[{"a": 1},', "line 1"),
        ("bad.json", b"42", "expected an array or an object"),
        ("bad.jsonl", b'{"a": 1}\n{"a": \n', "line 2"),
        ("bad.csv.gz", b"\x1f\x8b\x08\x00 truncated", "invalid gzip data"),
        ("bad.csv.gz", b"\x00\x01\x02\x03 binary", "not gzip data"),
        ("bad.csv", b"\xff\xfe\x00a,b\n", "decode"),
    ],
)
def test_malformed_file_is_a_format_error_naming_the_file(path: str, data: bytes, reason: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse(data, path)
    message = str(caught.value)
    assert message.startswith(f"files: cannot parse {path} as ")
    assert reason in message
    assert "\n" not in message
    assert caught.value.__cause__ is None


# -- combining -------------------------------------------------------------------------------


def test_combine_frames_concatenates_in_order_with_a_source_column() -> None:
    first = parse(b"a,b\n1,x\n2,y\n", "one.csv")
    second = parse(b"a,c\n3,z\n", "two.csv")
    combined = combine_frames([("one.csv", first), ("two.csv", second)], source_column="file")
    assert list(combined.columns) == ["file", "a", "b", "c"]
    assert combined["file"].tolist() == ["one.csv", "one.csv", "two.csv"]
    assert combined["file"].dtype == pd.StringDtype("pyarrow")
    assert combined["a"].tolist() == [1, 2, 3]
    assert combined["c"].isna().tolist() == [True, True, False]
    assert combined.index.tolist() == [0, 1, 2]
    assert "file" not in first.columns


def test_combine_frames_skips_empty_files_but_keeps_their_names_out() -> None:
    empty = parse(b"", "empty.csv")
    data = parse(b"a\n1\n", "data.csv")
    combined = combine_frames([("empty.csv", empty), ("data.csv", data)], source_column="file")
    assert combined.to_dict("records") == [{"file": "data.csv", "a": 1}]


def test_combine_frames_of_nothing_and_of_empties() -> None:
    assert combine_frames([], source_column=None).empty
    only_header = combine_frames([("h.csv", parse(b"a,b\n", "h.csv"))], source_column="file")
    assert list(only_header.columns) == ["file", "a", "b"]
    assert len(only_header) == 0


def test_combine_frames_without_source_column() -> None:
    data = parse(b"a\n1\n", "data.csv")
    assert combine_frames([("x", data), ("y", data)], source_column=None)["a"].tolist() == [1, 1]


def test_combine_frames_refuses_a_clashing_source_column() -> None:
    data = parse(b"file\n1\n", "data.csv")
    with pytest.raises(ConfigurationError, match=r"clashes with a column of data\.csv"):
        combine_frames([("data.csv", data)], source_column="file")


# -- parsing many files at once (Arrow first, pandas once) -----------------------------------------


def _parts(*files: tuple[str, bytes]) -> list[tuple[str, ParsedFile]]:
    return [(path, parse_table(data, path=path, source="files")) for path, data in files]


def test_parse_table_stops_at_arrow_and_applies_arrow_dtypes() -> None:
    table = parse_table(
        b"a,b\n1,x\n", path="t.csv", source="files", reader_options={"dtype": {"a": "float64"}}
    )
    assert isinstance(table, pa.Table)
    assert table.schema.field("a").type == pa.float64()
    assert isinstance(parse_table(b"", path="e.csv", source="files"), pd.DataFrame)


def test_combine_tables_matches_combine_frames() -> None:
    files = [("one.csv", b"a,b\n1,x\n2,y\n"), ("two.csv", b"a,c\n3,z\n"), ("empty.csv", b"")]
    fast = combine_tables(_parts(*files), source="files", source_column="file")
    slow = combine_frames([(path, parse(data, path)) for path, data in files], source_column="file")
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["file"].tolist() == ["one.csv", "one.csv", "two.csv"]


def test_combine_tables_promotes_compatible_types() -> None:
    combined = combine_tables(
        _parts(("i.csv", b"v\n1\n"), ("f.csv", b"v\n2.5\n"), ("n.csv", b"v\n\n")),
        source="files",
        source_column=None,
    )
    assert combined["v"].dtype == "float64"
    assert combined["v"].tolist()[:2] == [1.0, 2.5]


def test_combine_tables_falls_back_to_pandas_for_clashing_types() -> None:
    combined = combine_tables(
        _parts(("i.csv", b"v\n1\n"), ("s.csv", b"v\nabc\n")),
        source="files",
        source_column="file",
    )
    assert combined["v"].tolist() == [1, "abc"]
    assert combined["file"].tolist() == ["i.csv", "s.csv"]


def test_combine_tables_applies_pandas_dtypes_once() -> None:
    options = {"dtype": {"k": "category", "n": "Int32"}}
    parts = [
        (path, parse_table(data, path=path, source="files", reader_options=options))
        for path, data in (("a.csv", b"k,n\nx,1\n"), ("b.csv", b"k,n\ny,\n"))
    ]
    combined = combine_tables(parts, source="files", source_column=None, reader_options=options)
    assert isinstance(combined["k"].dtype, pd.CategoricalDtype)
    assert str(combined["n"].dtype) == "Int32"
    assert combined["n"].isna().tolist() == [False, True]


def test_combine_tables_of_mixed_json_parts() -> None:
    parts = _parts(("m.jsonl", b'{"a": 1}\n{"a": "two"}\n'), ("n.jsonl", b'{"a": 3}\n'))
    combined = combine_tables(parts, source="files", source_column=None)
    assert combined["a"].tolist() == [1, "two", 3]


def test_combine_tables_refuses_a_clashing_source_column() -> None:
    with pytest.raises(ConfigurationError, match="clashes"):
        combine_tables(_parts(("d.csv", b"file\n1\n")), source="files", source_column="file")


# -- text encodings ---------------------------------------------------------------------------------

LATIN_1_ROWS = [("Zoë", "Málaga"), ("Jürgen", "Köln")]


def _latin_1(format: str) -> bytes:
    """Two rows of names with accents, in ``format``, encoded as Latin-1."""
    if format == "csv":
        text = "name,city\n" + "".join(f"{name},{city}\n" for name, city in LATIN_1_ROWS)
    elif format == "jsonl":
        text = "".join(json.dumps({"name": n, "city": c}, ensure_ascii=False) + "\n" for n, c in LATIN_1_ROWS)
    else:
        text = json.dumps([{"name": n, "city": c} for n, c in LATIN_1_ROWS], ensure_ascii=False)
    return text.encode("latin-1")


@pytest.mark.parametrize("format", ["csv", "json", "jsonl"])
def test_text_that_is_not_utf8_is_refused_naming_the_file_the_offset_and_the_option(format: str) -> None:
    data = _latin_1(format)
    offset = data.index("ë".encode("latin-1"))
    with pytest.raises(FormatError) as raised:
        parse_bytes(data, path=f"names/x.{format}", source="files")
    assert str(raised.value) == (
        f"files: cannot parse names/x.{format} as {format}: byte 0xeb at offset {offset} is not valid "
        "utf-8; give the file's encoding (encoding='latin-1')"
    )


@pytest.mark.parametrize("format", ["csv", "json", "jsonl"])
@pytest.mark.parametrize("encoding", ["latin-1", "latin1", "ISO-8859-1", "cp1252"])
def test_the_encoding_option_reads_latin_1_text_as_strings(format: str, encoding: str) -> None:
    frame = parse_bytes(
        _latin_1(format), path=f"x.{format}", source="files", reader_options={"encoding": encoding}
    )
    assert [tuple(row) for row in frame[["name", "city"]].itertuples(index=False)] == LATIN_1_ROWS
    assert all(isinstance(value, str) for value in frame["name"])


def test_text_invalid_in_the_given_encoding_names_the_offset() -> None:
    data = b"name\nab\n\x81\n"  # 0x81 is undefined in cp1252
    with pytest.raises(
        FormatError, match=r"byte 0x81 at offset 8 is not valid cp1252; give the file's encoding"
    ):
        parse_bytes(data, path="x.csv", source="files", reader_options={"encoding": "cp1252"})


def test_an_unknown_encoding_is_refused_before_reading() -> None:
    with pytest.raises(ConfigurationError, match=r"^files: unknown text encoding 'klingon'$"):
        parse_bytes(b"a\n1\n", path="x.csv", source="files", reader_options={"encoding": "klingon"})


@pytest.mark.parametrize("format", ["csv", "json", "jsonl"])
@pytest.mark.parametrize("encoding", ["hex", "base64", "zlib", "bz2", "rot13", "uu"])
def test_a_codec_that_is_not_a_text_encoding_is_refused_before_reading(format: str, encoding: str) -> None:
    """Python's codecs also name byte transforms (``zlib``) and text ciphers: neither decodes text."""
    with pytest.raises(
        ConfigurationError, match=rf"^files: {encoding!r} is not a text encoding \(e\.g\. latin-1, utf-16\)$"
    ):
        parse_bytes(b"a\n1\n", path=f"x.{format}", source="files", reader_options={"encoding": encoding})


@pytest.mark.parametrize("format", ["csv", "json", "jsonl"])
def test_utf_16_text_with_its_byte_order_mark_reads(format: str) -> None:
    data = _latin_1(format).decode("latin-1").encode("utf-16")
    frame = parse_bytes(data, path=f"x.{format}", source="files", reader_options={"encoding": "utf-16"})
    assert [tuple(row) for row in frame[["name", "city"]].itertuples(index=False)] == LATIN_1_ROWS


def test_parquet_bytes_columns_are_not_taken_for_undecodable_text() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"blob": pa.array([b"\xff\x00", b"\xe9"])}), sink)
    frame = parse_bytes(sink.getvalue(), path="x.parquet", source="files")
    assert list(frame["blob"]) == [b"\xff\x00", b"\xe9"]
