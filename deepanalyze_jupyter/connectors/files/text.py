"""Text formats -> Arrow: delimited text (CSV, TSV), JSON and JSON lines.

Text is UTF-8 unless the ``encoding`` reader option names another codec; bytes that are
not valid in it give :func:`not_decodable`'s error, naming the byte offset and the option.
Each parser returns an Arrow table, or a DataFrame when only pandas can hold the data
(JSON values of changing types).
"""

from __future__ import annotations

import codecs
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from ...frames import arrow_to_frame
from .options import ARROW_TYPES, ReaderOptions

__all__ = [
    "delimited_options",
    "has_undecoded_text",
    "not_decodable",
    "parse_csv",
    "parse_json",
    "parse_jsonl",
    "parse_tsv",
]

# A JSON-lines block must hold whole lines; pyarrow's default block (1 MiB) is too
# small for long records, so blocks are larger and a failing file is retried whole.
_JSON_BLOCK_SIZE = 8 << 20


def not_decodable(raw: bytes | memoryview, encoding: str) -> ValueError:
    """The error of text that is not valid ``encoding``: where it fails, and what to do."""
    try:
        codecs.decode(bytes(raw), encoding)
    except UnicodeDecodeError as error:
        where = f"byte 0x{error.object[error.start]:02x} at offset {error.start}"
    else:
        where = "a byte"
    return ValueError(f"{where} is not valid {encoding}; give the file's encoding (encoding='latin-1')")


def delimited_options(
    options: ReaderOptions, delimiter: str, **read: Any
) -> tuple[pa_csv.ReadOptions, pa_csv.ParseOptions, pa_csv.ConvertOptions]:
    """What pyarrow's CSV readers (whole or streamed) take for ``options``; ``read`` adds read options."""
    read_options = pa_csv.ReadOptions(
        use_threads=True,
        column_names=options.names,
        autogenerate_column_names=not options.header and options.names is None,
        skip_rows=options.skiprows,
        skip_rows_after_names=1 if options.header and options.names else 0,
        encoding=options.encoding,
        **read,
    )
    parse_options = pa_csv.ParseOptions(delimiter=delimiter, quote_char=options.quotechar)
    column_types = {
        column: ARROW_TYPES[dtype] for column, dtype in options.dtypes.items() if dtype in ARROW_TYPES
    }
    convert_kwargs: dict[str, Any] = {"column_types": column_types, "strings_can_be_null": True}
    if options.columns is not None:
        convert_kwargs["include_columns"] = options.columns
    if options.na_values is not None:
        convert_kwargs["null_values"] = options.na_values
    return read_options, parse_options, pa_csv.ConvertOptions(**convert_kwargs)


def has_undecoded_text(schema: pa.Schema) -> bool:
    """Whether Arrow read text that is not valid in the encoding as bytes (it does rather than fail)."""
    return any(pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type) for field in schema)


def _parse_delimited(raw: bytes | memoryview, options: ReaderOptions, delimiter: str) -> pa.Table:
    read_options, parse_options, convert_options = delimited_options(options, delimiter)
    table = pa_csv.read_csv(
        pa.BufferReader(pa.py_buffer(raw)),
        read_options=read_options,
        parse_options=parse_options,
        convert_options=convert_options,
    )
    if has_undecoded_text(table.schema):
        raise not_decodable(raw, options.encoding)
    return table


def parse_csv(raw: bytes | memoryview, options: ReaderOptions) -> pa.Table:
    """Comma-separated text (or ``sep``)."""
    return _parse_delimited(raw, options, options.delimiter or ",")


def parse_tsv(raw: bytes | memoryview, options: ReaderOptions) -> pa.Table:
    """Tab-separated text (or ``sep``)."""
    return _parse_delimited(raw, options, options.delimiter or "\t")


def parse_jsonl(raw: bytes | memoryview, options: ReaderOptions) -> pa.Table | pd.DataFrame:
    """One JSON value per line: by Arrow's reader, or line by line when types change."""
    if options.encoding != "utf-8":  # Arrow's JSON reader takes UTF-8 only
        raw = codecs.decode(bytes(raw), options.encoding).encode()
    buffer = pa.py_buffer(raw)
    block_size = max(_JSON_BLOCK_SIZE, len(buffer) // 4 + 1)
    try:
        table = pa_json.read_json(
            pa.BufferReader(buffer), read_options=pa_json.ReadOptions(block_size=block_size)
        )
    except pa.ArrowInvalid:
        pass  # changing types, records that are not objects, or malformed: parse line by line
    else:
        try:
            table.validate(full=True)  # Arrow's JSON reader keeps bytes that are not UTF-8
        except pa.ArrowInvalid:
            raise not_decodable(raw, "utf-8") from None
        return table
    text = codecs.decode(bytes(raw), "utf-8")
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"line {number}: {error.msg}") from None
    return _records_table(records)


def parse_json(raw: bytes | memoryview, options: ReaderOptions) -> pa.Table | pd.DataFrame:
    """An array of records, an object of columns, or one record (JSON lines named .json too)."""
    text = codecs.decode(bytes(raw), options.encoding).strip()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data" and text.startswith("{"):  # JSON lines named .json
            return parse_jsonl(raw, options)
        raise ValueError(f"line {error.lineno} column {error.colno}: {error.msg}") from None
    if isinstance(document, list):
        return _records_table(document)
    if isinstance(document, dict):
        values = list(document.values())
        if values and all(isinstance(value, list) for value in values):
            return _columns_table(document)
        if values and all(isinstance(value, dict) for value in values):
            return pd.DataFrame.from_dict(document)
        return _records_table([document])
    raise ValueError(f"expected an array or an object, found a {type(document).__name__}")


_UNTYPED = (pa.ArrowException, TypeError, OverflowError)


def _records_table(records: list[Any]) -> pa.Table | pd.DataFrame:
    if records and all(isinstance(record, dict) for record in records):
        try:
            # pa.array infers one struct type over every record's keys, in order of appearance.
            return pa.Table.from_struct_array(pa.array(records))
        except _UNTYPED:
            keys = dict.fromkeys(key for record in records for key in record)
            return _columns_table({key: [record.get(key) for record in records] for key in keys})
    return pd.DataFrame(records)


def _columns_table(columns: dict[str, list[Any]]) -> pa.Table | pd.DataFrame:
    """The columns as an Arrow table; where one holds values of changing types (``1`` and
    ``"x"``), a DataFrame of that column as objects and the others as Arrow types them."""
    try:
        return pa.table(columns)
    except _UNTYPED:
        return pd.DataFrame({name: _typed_column(values) for name, values in columns.items()})


def _typed_column(values: list[Any]) -> pd.Series:
    """``values`` in the dtype Arrow gives them (integers with a null stay integers), or as objects."""
    try:
        column = pa.array(values)
    except _UNTYPED:
        return pd.Series(values, dtype=object)
    return arrow_to_frame(pa.table({"values": column}))["values"]
