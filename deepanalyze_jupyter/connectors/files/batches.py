"""One file read in batches, with memory bounded by the batch, not by the file.

Parquet comes row group by row group (only the columns asked for are fetched),
delimited text through pyarrow's streaming CSV reader, JSON lines block by block of
whole lines. Each batch goes through what :func:`.formats.parse_table` applies to a
whole file (the reader options, column selection, partition columns), so its columns
get the dtypes :meth:`Session.read` gives them. A JSON document (one value) and a
gzip-compressed Parquet file cannot be cut: they are parsed whole, then handed out
in batches.

Reading is blocking work (each block may be a ranged request): callers on an event
loop step the iterator in a worker thread.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from .conversion import ParsedFile, check_columns, empty_frame, parse_errors, select
from .formats import GZIP_MAGIC, own_columns, parse_label, parse_table
from .options import ReaderOptions
from .partitions import PartitionValues, with_partition_columns
from .text import delimited_options, has_undecoded_text, not_decodable, parse_jsonl

__all__ = ["file_batches"]

#: Bytes of text read (and parsed) at a time.
_TEXT_BLOCK = 1 << 20

PartReader = Callable[[IO[bytes], ReaderOptions, int], Iterator[ParsedFile]]


def file_batches(
    file: IO[bytes],
    *,
    path: str,
    source: str,
    format: str | None = None,
    reader_options: Mapping[str, Any] | None = None,
    partitions: PartitionValues | None = None,
    rows: int,
) -> Iterator[ParsedFile]:
    """The rows of the open binary ``file`` (named ``path``) in batches of at most ``rows`` rows.

    Errors as :func:`.formats.parse_table`: one :class:`FormatError` naming the path.
    """
    options = ReaderOptions.parse(reader_options, source)
    file_format, _, context = parse_label(path, format, source)
    partitions = partitions or {}
    with parse_errors(context, source):
        head = file.read(2)
        file.seek(0)
        if not head:
            yield empty_frame(options)
            return
        zipped = head == GZIP_MAGIC
        reader = _READERS.get(file_format)
        if reader is None or (zipped and file_format == "parquet"):
            whole = parse_table(
                file.read(),
                path=path,
                source=source,
                format=format,
                reader_options=reader_options,
                partitions=partitions,
            )
            yield from _rebatched([whole], rows)
            return
        stream: IO[bytes] = gzip.GzipFile(fileobj=file, mode="rb") if zipped else file  # type: ignore[assignment]
        parts = reader(stream, own_columns(options, partitions), rows)
        for part in _rebatched(parts, rows):
            yield select(with_partition_columns(part, partitions), options)


def _parquet(file: IO[bytes], options: ReaderOptions, rows: int) -> Iterator[ParsedFile]:
    reader = pq.ParquetFile(file)
    if options.columns is not None:
        check_columns(options.columns, reader.schema_arrow.names)
    schema = reader.schema_arrow
    if options.columns is not None:
        schema = pa.schema([schema.field(name) for name in options.columns], metadata=schema.metadata)
    found = False
    for batch in reader.iter_batches(batch_size=rows, columns=options.columns, use_threads=True):
        found = True
        yield pa.Table.from_batches([batch], schema=schema)
    if not found:
        yield schema.empty_table()


def _delimited(delimiter: str | None) -> PartReader:
    def read(file: IO[bytes], options: ReaderOptions, rows: int) -> Iterator[ParsedFile]:
        read_options, parse_options, convert_options = delimited_options(
            options, options.delimiter or delimiter or ",", block_size=_TEXT_BLOCK
        )
        reader = pa_csv.open_csv(
            file, read_options=read_options, parse_options=parse_options, convert_options=convert_options
        )
        if has_undecoded_text(reader.schema):
            raise not_decodable(b"", options.encoding)
        found = False
        for batch in _guessed_types_kept(reader):
            found = True
            yield pa.Table.from_batches([batch], schema=reader.schema)
        if not found:
            yield reader.schema.empty_table()

    return read


def _guessed_types_kept(reader: pa_csv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches; a later value that does not fit the type guessed from the first
    block (a whole read would widen the column) is one error saying which dtype to give."""
    try:
        yield from reader
    except pa.ArrowInvalid as error:
        found = re.search(r"column #(\d+): CSV conversion error to (\w+)", str(error))
        if found is None:
            raise
        name = reader.schema.names[int(found.group(1))]
        raise ValueError(
            f"column {name!r} holds values that are not {found.group(2)}, which its first "
            f"{_TEXT_BLOCK >> 20} MiB suggested; give its dtype (dtype={{{name!r}: 'string'}})"
        ) from None


def _jsonl(file: IO[bytes], options: ReaderOptions, rows: int) -> Iterator[ParsedFile]:
    """Blocks of whole lines, each parsed as JSON lines by the whole-file parser."""
    tail = b""
    while True:
        block = file.read(_TEXT_BLOCK)
        if not block:
            break
        data = tail + block
        end = data.rfind(b"\n") + 1
        tail = data[end:]
        if end:
            yield parse_jsonl(data[:end], options)
    if tail.strip():
        yield parse_jsonl(tail, options)


_READERS: Mapping[str, PartReader] = {
    "parquet": _parquet,
    "csv": _delimited(","),
    "tsv": _delimited("\t"),
    "jsonl": _jsonl,
}


def _rebatched(parts: Iterable[ParsedFile], rows: int) -> Iterator[ParsedFile]:
    """``parts`` cut and joined into batches of ``rows`` rows (the last one shorter).

    A file with no rows gives one empty batch, which still names the columns.
    """
    held: list[ParsedFile] = []
    count = 0
    first: ParsedFile | None = None
    given = False
    for part in parts:
        first = part if first is None else first
        if held and type(part) is not type(held[0]):
            yield from _joined(held)
            given, held, count = True, [], 0
        start = 0
        while start < len(part):
            take = min(rows - count, len(part) - start)
            held.append(_slice(part, start, take))
            count += take
            start += take
            if count == rows:
                yield from _joined(held)
                given, held, count = True, [], 0
    if held:
        yield from _joined(held)
    elif not given and first is not None:
        yield first


def _slice(part: ParsedFile, start: int, length: int) -> ParsedFile:
    if isinstance(part, pa.Table):
        return part.slice(start, length)
    return part.iloc[start : start + length].reset_index(drop=True)


def _joined(parts: list[ParsedFile]) -> Iterator[ParsedFile]:
    """``parts`` as one batch; apart when their columns do not unify (JSON of changing types)."""
    if len(parts) == 1:
        yield parts[0]
    elif isinstance(parts[0], pd.DataFrame):
        yield pd.concat(parts, ignore_index=True)
    else:
        try:
            yield pa.concat_tables(parts, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            yield from parts
