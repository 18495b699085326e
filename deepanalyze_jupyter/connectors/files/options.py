"""Reader options of file sources: checked once by name, then turned into what each parser takes.

- ``columns``: the columns to keep, in that order;
- ``dtype``: a mapping of column -> dtype (``"int64"``, ``"Int64"``, ``"float64"``,
  ``"string"``, ``"bool"``, ``"datetime64[ns]"``, ``"category"``, ``int``, ...);
- ``sep`` (alias ``delimiter``), ``header``, ``names``, ``skiprows``, ``na_values``,
  ``quotechar``, ``encoding``: how delimited text is laid out.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ...errors import ConfigurationError, quoted

__all__ = ["ARROW_TYPES", "PANDAS_AFTER", "READER_OPTIONS", "ReaderOptions", "validate_reader_options"]

#: The reader options the parsers understand.
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

#: dtype name -> the Arrow type to parse (or cast) the column as. A name also listed in
#: :data:`PANDAS_AFTER` is converted by pandas afterwards (nullable and categorical dtypes).
ARROW_TYPES: Mapping[str, pa.DataType] = {
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
PANDAS_AFTER = frozenset(
    {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64"}
    | {"boolean"}
)
_PYTHON_TYPES: Mapping[type, str] = {int: "int64", float: "float64", str: "string", bool: "bool"}


@dataclass(frozen=True)
class ReaderOptions:
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
    def parse(cls, options: Mapping[str, Any] | None, source: str) -> ReaderOptions:
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
        raise ConfigurationError(f"unknown text encoding {quoted(name)}", source=source) from None
    try:  # codecs also names byte transforms (zlib, base64) and ciphers (rot13): not text
        bytes(4).decode(canonical, "ignore")  # Python checks only non-empty input
    except LookupError:
        raise ConfigurationError(
            f"{quoted(name)} is not a text encoding (e.g. latin-1, utf-16)", source=source
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
    ReaderOptions.parse(reader_options, source)
