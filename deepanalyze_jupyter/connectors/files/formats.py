"""File bytes -> DataFrame: the one parser of every file source (blobs, local files).

Formats: ``csv``, ``tsv``, ``parquet``, ``json`` (an array of records, an object of
columns, or one record) and ``jsonl`` (one JSON value per line), each optionally
gzip-compressed (``.gz``). Parsing goes through pyarrow and :func:`frames.arrow_to_frame`,
so a column has the same dtype whichever source it came from.

Reader options (``reader_options``), checked by name:

- ``columns``: the columns to keep, in that order;
- ``dtype``: a mapping of column -> dtype (``"int64"``, ``"Int64"``, ``"float64"``,
  ``"string"``, ``"bool"``, ``"datetime64[ns]"``, ``"category"``, ``int``, ...);
- ``sep`` (alias ``delimiter``), ``header``, ``names``, ``skiprows``, ``na_values``,
  ``quotechar``, ``encoding``: how delimited text is laid out.

Text (CSV, TSV, JSON) is UTF-8 unless ``encoding`` names another codec; bytes that are not
valid in it give one :class:`FormatError` naming the file, the byte offset and the option.

Parsing is CPU work: callers on an event loop run :func:`parse_bytes` in a worker thread.
"""

from __future__ import annotations

import codecs
import gzip
import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from ...errors import ConfigurationError, FormatError
from ...frames import arrow_to_frame

__all__ = [
    "READER_OPTIONS",
    "SUPPORTED_FORMATS",
    "ParsedFile",
    "combine_frames",
    "combine_tables",
    "detect_format",
    "parse_bytes",
    "parse_table",
    "validate_reader_options",
]

#: A parsed file before its conversion to pandas: an Arrow table, or a DataFrame when
#: only pandas can hold the data (JSON values of changing types).
ParsedFile: TypeAlias = "pa.Table | pd.DataFrame"

SUPPORTED_FORMATS: tuple[str, ...] = ("csv", "tsv", "parquet", "json", "jsonl")

#: The reader options :func:`parse_bytes` understands.
READER_OPTIONS: tuple[str, ...] = (
    "columns",
    "dtype",
    "sep",
    "delimiter",
    "header",
    "names",
    "skiprows",
    "na_values",
    "quotechar",
    "encoding",
)

_EXTENSIONS: Mapping[str, str] = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "parquet": "parquet",
    "parq": "parquet",
    "pq": "parquet",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
}
_COMPRESSIONS: Mapping[str, str] = {"gz": "gzip", "gzip": "gzip"}
_GZIP_MAGIC = b"\x1f\x8b"
_STRING = pd.StringDtype("pyarrow")
# A JSON-lines block must hold whole lines; pyarrow's default block (1 MiB) is too
# small for long records, so blocks are larger and a failing file is retried whole.
_JSON_BLOCK_SIZE = 8 << 20
_REASON_LENGTH = 160

# dtype name -> the Arrow type to parse (or cast) the column as. A name also listed
# in _PANDAS_AFTER is converted by pandas afterwards (nullable and categorical dtypes).
_ARROW_TYPES: Mapping[str, pa.DataType] = {
    "int": pa.int64(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "float": pa.float64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
    "str": pa.string(),
    "string": pa.string(),
    "object": pa.string(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime64[ns]": pa.timestamp("ns"),
    "datetime64[us]": pa.timestamp("us"),
    "datetime64[ms]": pa.timestamp("ms"),
    "datetime64[s]": pa.timestamp("s"),
}
_PANDAS_AFTER = frozenset(
    {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64"}
    | {"boolean"}
)
_PYTHON_TYPES: Mapping[type, str] = {int: "int64", float: "float64", str: "string", bool: "bool"}


def detect_format(
    path: str, explicit: str | None = None, *, source: str | None = None
) -> tuple[str, str | None]:
    """The format and compression of ``path``: ``("csv", "gzip")`` for ``x.csv.gz``.

    ``explicit`` (a format name, optionally with ``.gz``) wins over the extension;
    compression is still taken from the extension. Raises :class:`FormatError`.
    """
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    suffixes = name.split(".")[1:]
    compression = None
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        compression = _COMPRESSIONS[suffixes.pop()]
    if explicit is not None:
        wanted = explicit.strip().lower().lstrip(".")
        for ending, method in _COMPRESSIONS.items():
            if wanted.endswith("." + ending):
                wanted, compression = wanted[: -len(ending) - 1], method
        if wanted not in _EXTENSIONS:
            raise FormatError(
                f"unsupported format {explicit!r} for {path}; supported: {', '.join(SUPPORTED_FORMATS)}",
                source=source,
            )
        return _EXTENSIONS[wanted], compression
    if suffixes and suffixes[-1] in _EXTENSIONS:
        return _EXTENSIONS[suffixes[-1]], compression
    raise FormatError(
        f"cannot tell the format of {path} from its name; pass format= "
        f"(one of {', '.join(SUPPORTED_FORMATS)})",
        source=source,
    )


@dataclass(frozen=True)
class _ReaderOptions:
    """Reader options, checked once and turned into what each parser takes."""

    columns: list[str] | None
    dtypes: dict[str, str]
    delimiter: str | None
    header: bool
    names: list[str] | None
    skiprows: int
    na_values: list[str] | None
    quotechar: str
    encoding: str

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None, source: str) -> _ReaderOptions:
        given = dict(options or {})
        unknown = sorted(set(given) - set(READER_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"unknown reader option(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(READER_OPTIONS)}",
                source=source,
            )
        columns = given.get("columns")
        if isinstance(columns, str):
            columns = [columns]
        names = given.get("names")
        na_values = given.get("na_values")
        if isinstance(na_values, str):
            na_values = [na_values]
        header = given.get("header", True)
        return cls(
            columns=None if columns is None else [str(column) for column in columns],
            dtypes=_dtype_names(given.get("dtype"), source),
            delimiter=given.get("sep", given.get("delimiter")),
            header=header not in (False, None),
            names=None if names is None else [str(name) for name in names],
            skiprows=int(given.get("skiprows") or 0),
            na_values=None if na_values is None else [str(value) for value in na_values],
            quotechar=str(given.get("quotechar", '"')),
            encoding=_codec_name(given.get("encoding"), source),
        )


def _codec_name(encoding: Any, source: str) -> str:
    """The canonical name of a text encoding (``latin1`` -> ``iso8859-1``); UTF-8 by default."""
    if encoding is None:
        return "utf-8"
    name = str(encoding)
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise ConfigurationError(f"unknown text encoding {name[:40]!r}", source=source) from None
    try:  # codecs also names byte transforms (zlib, base64) and ciphers (rot13): not text
        bytes(4).decode(canonical, "ignore")  # Python checks only non-empty input
    except LookupError:
        raise ConfigurationError(
            f"{name[:40]!r} is not a text encoding (e.g. latin-1, utf-16)", source=source
        ) from None
    return canonical


def _dtype_names(dtypes: Any, source: str) -> dict[str, str]:
    if dtypes is None:
        return {}
    if not isinstance(dtypes, Mapping):
        raise ConfigurationError("reader option 'dtype' must map column names to dtypes", source=source)
    names: dict[str, str] = {}
    for column, dtype in dtypes.items():
        name = _PYTHON_TYPES.get(dtype) if isinstance(dtype, type) else None
        names[str(column)] = name or str(dtype)
    return names


def validate_reader_options(reader_options: Mapping[str, Any] | None, *, source: str) -> None:
    """Check reader options before any file is fetched; raise :class:`ConfigurationError`."""
    _ReaderOptions.parse(reader_options, source)


def parse_table(
    data: bytes | bytearray | memoryview,
    *,
    path: str,
    source: str,
    format: str | None = None,
    reader_options: Mapping[str, Any] | None = None,
) -> ParsedFile:
    """Parse one file's bytes, stopping short of pandas: an Arrow table when it can be.

    Columns are selected and Arrow-typed dtypes applied; :func:`combine_tables` turns
    many of these into one DataFrame with a single conversion. Errors as :func:`parse_bytes`.
    """
    return _parse(data, path, source, format, _ReaderOptions.parse(reader_options, source))[0]


def parse_bytes(
    data: bytes | bytearray | memoryview,
    *,
    path: str,
    source: str,
    format: str | None = None,
    reader_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Parse one file's bytes into a DataFrame.

    The format comes from ``format`` or the path's extension; gzip data is
    decompressed. Malformed content raises :class:`FormatError` naming the path and
    the format; an empty file gives an empty frame.
    """
    options = _ReaderOptions.parse(reader_options, source)
    parsed, context = _parse(data, path, source, format, options)
    with _parse_errors(context, source):
        return _to_frame(parsed, options)


def _parse(
    data: bytes | bytearray | memoryview, path: str, source: str, format: str | None, options: _ReaderOptions
) -> tuple[ParsedFile, str]:
    """The parsed file, and the start of the message of any error about it."""
    file_format, compression = detect_format(path, format, source=source)
    label = file_format if compression is None else f"{file_format} ({compression})"
    context = f"cannot parse {path} as {label}"
    with _parse_errors(context, source):
        raw = _decompressed(data, compression)
        if not raw:
            return _empty_frame(options), context
        try:
            parsed = _PARSERS[file_format](raw, options)
        except UnicodeDecodeError:
            raise _not_decodable(raw, options.encoding) from None
        return _select(parsed, options), context


@contextmanager
def _parse_errors(context: str, source: str) -> Iterator[None]:
    """Turn a parser's error into a one-line :class:`FormatError` starting with ``context``."""
    try:
        yield
    except FormatError:
        raise
    except (pa.ArrowException, ValueError, TypeError, KeyError, OSError, EOFError, zlib.error) as error:
        raise FormatError(f"{context}: {_reason(error)}", source=source) from None


def _decompressed(data: bytes | bytearray | memoryview, compression: str | None) -> bytes | memoryview:
    view = memoryview(data)
    # Decompress by content: a ".gz" name whose data was already inflated still parses,
    # and so does gzip data served under a plain name.
    if bytes(view[:2]) == _GZIP_MAGIC:
        try:
            return gzip.decompress(view)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"invalid gzip data ({error})") from None
    if compression == "gzip" and len(view) and not _looks_like_text_or_parquet(view):
        raise ValueError("not gzip data")
    return view


def _looks_like_text_or_parquet(view: memoryview) -> bool:
    head = bytes(view[:4])
    return head == b"PAR1" or all(byte >= 9 for byte in head)


def _not_decodable(raw: bytes | memoryview, encoding: str) -> ValueError:
    """The error of text that is not valid ``encoding``: where it fails, and what to do."""
    try:
        codecs.decode(bytes(raw), encoding)
    except UnicodeDecodeError as error:
        where = f"byte 0x{error.object[error.start]:02x} at offset {error.start}"
    else:
        where = "a byte"
    return ValueError(
        f"{where} is not valid {encoding}; give the file's encoding "
        "(--encoding latin-1, or encoding='latin-1')"
    )


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if len(text) > _REASON_LENGTH:
        text = text[: _REASON_LENGTH - 3] + "..."
    return text


def _empty_frame(options: _ReaderOptions) -> pd.DataFrame:
    columns = options.columns or options.names or []
    return pd.DataFrame({column: pd.Series([], dtype=object) for column in columns})


# -- parsers: bytes -> Arrow table (or a DataFrame when Arrow cannot hold the data) ---------


def _parse_delimited(raw: bytes | memoryview, options: _ReaderOptions, delimiter: str) -> pa.Table:
    read_options = pa_csv.ReadOptions(
        use_threads=True,
        column_names=options.names,
        autogenerate_column_names=not options.header and options.names is None,
        skip_rows=options.skiprows,
        skip_rows_after_names=1 if options.header and options.names else 0,
        encoding=options.encoding,
    )
    parse_options = pa_csv.ParseOptions(delimiter=delimiter, quote_char=options.quotechar)
    column_types = {
        column: _ARROW_TYPES[dtype] for column, dtype in options.dtypes.items() if dtype in _ARROW_TYPES
    }
    convert_kwargs: dict[str, Any] = {"column_types": column_types, "strings_can_be_null": True}
    if options.columns is not None:
        convert_kwargs["include_columns"] = options.columns
    if options.na_values is not None:
        convert_kwargs["null_values"] = options.na_values
    table = pa_csv.read_csv(
        pa.BufferReader(pa.py_buffer(raw)),
        read_options=read_options,
        parse_options=parse_options,
        convert_options=pa_csv.ConvertOptions(**convert_kwargs),
    )
    # Arrow reads text that is not UTF-8 as bytes rather than failing: refuse it instead.
    if any(pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type) for field in table.schema):
        raise _not_decodable(raw, options.encoding)
    return table


def _parse_csv(raw: bytes | memoryview, options: _ReaderOptions) -> pa.Table:
    return _parse_delimited(raw, options, options.delimiter or ",")


def _parse_tsv(raw: bytes | memoryview, options: _ReaderOptions) -> pa.Table:
    return _parse_delimited(raw, options, options.delimiter or "\t")


def _parse_parquet(raw: bytes | memoryview, options: _ReaderOptions) -> pa.Table:
    buffer = pa.py_buffer(raw)
    if options.columns is not None:
        schema = pq.read_schema(pa.BufferReader(buffer))
        _check_columns(options.columns, schema.names)
    return pq.read_table(pa.BufferReader(buffer), columns=options.columns, use_threads=True)


def _parse_jsonl(raw: bytes | memoryview, options: _ReaderOptions) -> pa.Table | pd.DataFrame:
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
            raise _not_decodable(raw, "utf-8") from None
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


def _parse_json(raw: bytes | memoryview, options: _ReaderOptions) -> pa.Table | pd.DataFrame:
    text = codecs.decode(bytes(raw), options.encoding).strip()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data" and text.startswith("{"):  # JSON lines named .json
            return _parse_jsonl(raw, options)
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


def _records_table(records: list[Any]) -> pa.Table | pd.DataFrame:
    if records and all(isinstance(record, dict) for record in records):
        try:
            # pa.array infers one struct type over every record's keys, in order of appearance.
            return pa.Table.from_struct_array(pa.array(records))
        except (pa.ArrowException, TypeError, OverflowError):
            return pd.DataFrame.from_records(records)
    return pd.DataFrame(records)


def _columns_table(columns: dict[str, list[Any]]) -> pa.Table | pd.DataFrame:
    try:
        return pa.table(columns)
    except (pa.ArrowException, TypeError, OverflowError):
        return pd.DataFrame(columns)


_PARSERS = {
    "csv": _parse_csv,
    "tsv": _parse_tsv,
    "parquet": _parse_parquet,
    "json": _parse_json,
    "jsonl": _parse_jsonl,
}


# -- after parsing: column selection and dtypes --------------------------------------------


def _check_columns(wanted: Sequence[str], present: Sequence[str]) -> None:
    missing = [column for column in wanted if column not in present]
    if missing:
        raise ValueError(f"no column(s) {', '.join(map(repr, missing))} in the file")


def _select(parsed: ParsedFile, options: _ReaderOptions) -> ParsedFile:
    """Keep the wanted columns and cast those whose dtype Arrow can hold."""
    if isinstance(parsed, pd.DataFrame):
        if options.columns is not None:
            _check_columns(options.columns, [str(column) for column in parsed.columns])
            return parsed[options.columns]
        return parsed
    table = parsed
    if options.columns is not None:
        _check_columns(options.columns, table.column_names)
        table = table.select(options.columns)
    for column, dtype in options.dtypes.items():
        target = _ARROW_TYPES.get(dtype)
        if target is not None and column in table.column_names:
            position = table.column_names.index(column)
            if table.schema.field(position).type != target:
                table = table.set_column(position, column, table.column(position).cast(target))
    return table


def _to_frame(parsed: ParsedFile, options: _ReaderOptions) -> pd.DataFrame:
    """Convert to pandas, then apply the dtypes only pandas has (nullable, categorical)."""
    after: dict[str, Any]
    if isinstance(parsed, pa.Table):
        frame = arrow_to_frame(parsed)
        after = {
            column: dtype
            for column, dtype in options.dtypes.items()
            if column in frame.columns and (dtype not in _ARROW_TYPES or dtype in _PANDAS_AFTER)
        }
    else:
        frame = parsed
        after = {
            column: (_STRING if dtype in ("str", "string") else dtype)
            for column, dtype in options.dtypes.items()
            if column in frame.columns
        }
    for column, dtype in after.items():
        try:
            frame[column] = frame[column].astype(dtype)
        except (TypeError, ValueError) as error:
            raise ValueError(f"column {column!r} cannot be converted to {dtype}: {_reason(error)}") from None
    return frame


# -- combining ---------------------------------------------------------------------------


def combine_tables(
    parts: Sequence[tuple[str, ParsedFile]],
    *,
    source: str,
    source_column: str | None,
    reader_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Combine files parsed by :func:`parse_table` into one DataFrame, in order.

    Arrow tables are concatenated first and converted to pandas once, which is much
    faster than converting each file; files whose columns Arrow cannot unify (or that
    only pandas could hold) are combined by :func:`combine_frames` instead.
    """
    options = _ReaderOptions.parse(reader_options, source)
    _check_source_column(parts, source_column)
    tables = [parsed for _, parsed in parts if isinstance(parsed, pa.Table)]
    others = [parsed for _, parsed in parts if not isinstance(parsed, pa.Table) and len(parsed)]
    combined: pd.DataFrame | None = None
    if tables and not others:
        try:
            table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = None
        if table is not None:
            with _parse_errors("cannot combine the files", source):
                combined = _to_frame(table, options)
    if combined is None:
        with _parse_errors("cannot combine the files", source):
            frames = [(name, _to_frame(parsed, options)) for name, parsed in parts]
        return combine_frames(frames, source_column=source_column)
    if source_column is not None:
        combined = _with_source_column(combined, parts, source_column)
    return combined


def combine_frames(frames: Sequence[tuple[str, pd.DataFrame]], *, source_column: str | None) -> pd.DataFrame:
    """Concatenate ``(name, frame)`` pairs into one frame, in order.

    Columns missing from some files are filled with missing values. With
    ``source_column``, a first column of that name tells which file each row came from.
    """
    _check_source_column(frames, source_column)
    kept = [frame for _, frame in frames if len(frame)] or [frame for _, frame in frames[:1]]
    if not kept:
        combined = pd.DataFrame()
    elif len(kept) == 1:
        combined = kept[0].copy()
    else:
        combined = pd.concat(kept, ignore_index=True)
    if source_column is not None:
        combined = _with_source_column(combined, frames, source_column)
    return combined


def _check_source_column(parts: Sequence[tuple[str, ParsedFile]], source_column: str | None) -> None:
    if source_column is None:
        return
    for name, parsed in parts:
        columns = parsed.column_names if isinstance(parsed, pa.Table) else parsed.columns
        if source_column in columns:
            raise ConfigurationError(f"the source column {source_column!r} clashes with a column of {name}")


def _with_source_column(
    frame: pd.DataFrame, parts: Sequence[tuple[str, ParsedFile]], source_column: str
) -> pd.DataFrame:
    """``frame`` with a first column naming, for each row, the file it came from."""
    names = pd.array([name for name, _ in parts], dtype=_STRING)
    counts = np.array([len(parsed) for _, parsed in parts], dtype=np.int64)
    labels = names.take(np.repeat(np.arange(len(parts)), counts)) if len(parts) else names
    frame.insert(0, source_column, pd.Series(labels, index=frame.index))
    return frame
