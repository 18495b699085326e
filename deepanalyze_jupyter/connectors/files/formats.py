"""File bytes -> DataFrame: the one parser of every file source (blobs, local files).

Formats: ``csv``, ``tsv``, ``parquet``, ``json`` (an array of records, an object of
columns, or one record) and ``jsonl`` (one JSON value per line), each optionally
gzip-compressed (``.gz``). The format comes from the file's extension (or ``format=``);
the readers live by family in :mod:`.text` and :mod:`.columnar`, the reader options in
:mod:`.options`. Parsing goes through pyarrow and :func:`frames.arrow_to_frame`, so a
column has the same dtype whichever source it came from; :mod:`.combine` makes one
frame of many files, and :mod:`.partitions` adds the columns of ``key=value`` folders.

Parsing is CPU work: callers on an event loop run :func:`parse_bytes` (or
:func:`parse_table`) in a worker thread.
"""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from ...errors import FormatError
from .columnar import parse_parquet
from .combine import combine_frames, combine_tables
from .conversion import ParsedFile, empty_frame, parse_errors, select, to_frame
from .options import READER_OPTIONS, ReaderOptions, validate_reader_options
from .partitions import PartitionValues, with_partition_columns
from .text import not_decodable, parse_csv, parse_json, parse_jsonl, parse_tsv

__all__ = [
    "GZIP_MAGIC",
    "READER_OPTIONS",
    "SUPPORTED_FORMATS",
    "ParsedFile",
    "combine_frames",
    "combine_tables",
    "detect_format",
    "own_columns",
    "parse_bytes",
    "parse_label",
    "parse_table",
    "validate_reader_options",
]

SUPPORTED_FORMATS: tuple[str, ...] = ("csv", "tsv", "parquet", "json", "jsonl")

_PARSERS: Mapping[str, Callable[[bytes | memoryview, ReaderOptions], ParsedFile]] = {
    "csv": parse_csv,
    "tsv": parse_tsv,
    "parquet": parse_parquet,
    "json": parse_json,
    "jsonl": parse_jsonl,
}
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
#: The first bytes of gzip data.
GZIP_MAGIC = b"\x1f\x8b"


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


def parse_table(
    data: bytes | bytearray | memoryview,
    *,
    path: str,
    source: str,
    format: str | None = None,
    reader_options: Mapping[str, Any] | None = None,
    partitions: PartitionValues | None = None,
) -> ParsedFile:
    """Parse one file's bytes, stopping short of pandas: an Arrow table when it can be.

    Columns are selected and Arrow-typed dtypes applied; ``partitions`` (from
    :func:`.partitions.partition_values`) become columns after the file's own.
    :func:`combine_tables` turns many of these into one DataFrame with a single
    conversion. Errors as :func:`parse_bytes`.
    """
    options = ReaderOptions.parse(reader_options, source)
    return _parse(data, path, source, format, options, partitions or {})[0]


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
    options = ReaderOptions.parse(reader_options, source)
    parsed, context = _parse(data, path, source, format, options, {})
    with parse_errors(context, source):
        return to_frame(parsed, options)


def _parse(
    data: bytes | bytearray | memoryview,
    path: str,
    source: str,
    format: str | None,
    options: ReaderOptions,
    partitions: PartitionValues,
) -> tuple[ParsedFile, str]:
    """The parsed file, and the start of the message of any error about it."""
    file_format, compression, context = parse_label(path, format, source)
    with parse_errors(context, source):
        raw = _decompressed(data, compression)
        if not raw:
            return empty_frame(options), context
        try:
            parsed = _PARSERS[file_format](raw, own_columns(options, partitions))
        except UnicodeDecodeError:
            raise not_decodable(raw, options.encoding) from None
        return select(with_partition_columns(parsed, partitions), options), context


def parse_label(path: str, format: str | None, source: str) -> tuple[str, str | None, str]:
    """The format and compression of ``path``, and the start of any error's message about it."""
    file_format, compression = detect_format(path, format, source=source)
    label = file_format if compression is None else f"{file_format} ({compression})"
    return file_format, compression, f"cannot parse {path} as {label}"


def own_columns(options: ReaderOptions, partitions: PartitionValues) -> ReaderOptions:
    """``options`` for the file itself: the columns asked for, less those its folders give."""
    if partitions and options.columns is not None:
        own = [column for column in options.columns if column not in partitions]
        return dataclasses.replace(options, columns=own)
    return options


def _decompressed(data: bytes | bytearray | memoryview, compression: str | None) -> bytes | memoryview:
    view = memoryview(data)
    # Decompress by content: a ".gz" name whose data was already inflated still parses,
    # and so does gzip data served under a plain name.
    if bytes(view[:2]) == GZIP_MAGIC:
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
