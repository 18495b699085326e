"""The fast path for query results: ``COPY (query) TO STDOUT`` parsed by pyarrow.

The server formats the rows as ``COPY`` text (tab-separated, ``\\N`` for NULL, backslash
escapes). :func:`copy_out` drains it at the libpq level in a tight loop, one growing
buffer at a time (no per-row chunk list to join), handing each full buffer of whole
rows to a parser thread while the next one is read; :func:`parse_copy_text` parses the
buffers with pyarrow's CSV reader and an explicit schema made from the result's column
types (:mod:`.types`), and :func:`finish_columns` undoes escapes and loads the
columns pyarrow does not type.

Why this way, by measurement on 2 cores (1M rows of int8, float8, text, timestamptz,
numeric(12,2), bool and int4 with NULLs; ``bench/bench_postgresql.py``): fetching rows
through a psycopg cursor and building the frame takes about 5 s, mostly per-value
Python work; draining ``COPY`` takes about 1.1 s, most of it the server formatting the
rows; pyarrow parses the text in about 0.3 s, in threads, overlapped with the drain.
Text format rather than CSV: the same server cost, and pyarrow parses it without quote
handling about twice as fast. A repeated statement may be read as binary ``COPY`` instead
(:mod:`.binary`, chosen in :mod:`.query`); the drain is the same.
Draining through psycopg's own ``Copy`` iterator costs one await per row (twice the
time); this generator runs under ``AsyncConnection.wait``, so cancelling the awaiting
task still makes psycopg cancel the query on the server and finish the generator,
leaving the connection idle.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Callable, Generator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg import errors, pq
from psycopg.pq.abc import PGconn, PGresult
from psycopg.waiting import Ready, Wait

from .columns import Column, Loaded, loaded_column
from .memory import arrow_pool
from .types import ColumnKind, ColumnPlan, ConversionError

__all__ = [
    "ParseFailure",
    "copy_out",
    "finish_columns",
    "join_pieces",
    "parse_copy_text",
    "parse_piece",
    "parse_small_copy_text",
    "unescape_copy_text",
]

#: The drained text goes to the parser in pieces of at least this size. A result smaller
#: than that is parsed once, after its last row, in parallel blocks: while rows arrive, the
#: server and the drain loop keep two cores busy, and parsing alongside only slows both
#: (measured: 10k rows 6% faster, 100k rows 20%, 1M rows the same). Later pieces grow
#: to the largest size, each 1/CHUNK_SHARE of what came before, so that what is left to
#: parse after the last row stays small. Each piece is freed once parsed, so the raw text
#: held at once is a few pieces: 4 MiB pieces held the 1M-row benchmark query's peak at
#: about 93 MiB (1.25x its frame), 8 MiB ones at about 97 MiB, in the same time.
FIRST_CHUNK_BYTES = 2 << 20
LARGEST_CHUNK_BYTES = 4 << 20
CHUNK_SHARE = 4

#: pyarrow's largest parse block (a signed 32-bit size); a PostgreSQL row is under 1 GB.
_LARGEST_BLOCK = (1 << 31) - 1

_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES: Mapping[str, str] = MappingProxyType(
    {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
)
_COLUMN_IN_ERROR_RE = re.compile(r"CSV column #(\d+)")


#: Refills of a dry libpq buffer without a turn of the event loop (see :func:`refill`).
_REFILLS_WITHOUT_TURN = 16


class Refills:
    """How many times one ``COPY`` refilled libpq's buffer since the event loop's last turn."""

    __slots__ = ("without_turn",)

    def __init__(self) -> None:
        self.without_turn = 0


def refill(pgconn: PGconn, refills: Refills) -> Generator[Wait, Ready | int, None]:
    """Read into libpq's dry buffer what reached the socket.

    The event loop is waited on only every :data:`_REFILLS_WITHOUT_TURN` refills (and so
    when nothing comes), so that its other tasks, and a cancel, still get a turn. A wait
    costs far more than a read (a reader added and removed, a turn of the loop, the GIL
    handed over): waiting at every dry buffer took about 12,000 waits for 2M rows, this
    1,700, and a 2M-row export to Parquet 10% less time.
    """
    if refills.without_turn < _REFILLS_WITHOUT_TURN:
        refills.without_turn += 1
    else:
        refills.without_turn = 0
        while not (yield Wait.R):
            pass
    pgconn.consume_input()


def _flush(pgconn: PGconn) -> Generator[Wait, Ready | int, None]:
    while pgconn.flush() != 0:
        ready = yield Wait.RW
        if ready & Ready.R:
            pgconn.consume_input()


def _next_result(pgconn: PGconn) -> Generator[Wait, Ready | int, PGresult | None]:
    pgconn.consume_input()
    while pgconn.is_busy():
        while not (yield Wait.R):
            pass
        pgconn.consume_input()
    return pgconn.get_result()


def _finish(pgconn: PGconn, first: PGresult | None) -> Generator[Wait, Ready | int, PGresult | None]:
    """Read the results left until the connection is idle; return the first error, if any."""
    failed = first if first is not None and first.status == pq.ExecStatus.FATAL_ERROR else None
    while (result := (yield from _next_result(pgconn))) is not None:
        if failed is None and result.status == pq.ExecStatus.FATAL_ERROR:
            failed = result
    return failed


def copy_out(
    pgconn: PGconn,
    statements: bytes,
    describe: Callable[[PGresult], None],
    sink: Callable[[bytearray], None],
    *,
    ends: array[int] | None = None,
) -> Generator[Wait, Ready | int, tuple[int, bytearray]]:
    """Run one ``COPY (...) TO STDOUT`` statement, on the extended protocol (which takes one
    statement only: the server refuses anything that would run a second one).

    ``describe`` gets a first result with rows, if any (the columns); ``sink`` gets the ``COPY`` data in
    buffers of whole rows, growing from :data:`FIRST_CHUNK_BYTES` to
    :data:`LARGEST_CHUNK_BYTES`. Given ``ends``, the data stays in one buffer instead,
    and the end of each message (each row of a binary ``COPY``) in it is appended to
    ``ends``. Returns the row count and the last, partly filled buffer. A server error
    is raised as psycopg's exception for it.
    """
    pgconn.send_query_params(statements, None)
    yield from _flush(pgconn)
    result = yield from _next_result(pgconn)
    if result is not None and result.status == pq.ExecStatus.TUPLES_OK:
        describe(result)
        result = yield from _next_result(pgconn)
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        failed = yield from _finish(pgconn, result)
        if failed is not None:
            raise errors.error_from_result(failed, encoding="utf-8")
        raise errors.ProgrammingError("the statement did not start a COPY TO STDOUT")
    buffer = bytearray()
    read = pgconn.get_copy_data
    mark = None if ends is None else ends.append
    chunk_bytes = FIRST_CHUNK_BYTES if ends is None else sys.maxsize
    handed = 0
    refills = Refills()
    while True:
        size, data = read(1)
        if size > 0:
            buffer += data
            if mark is not None:
                mark(len(buffer))
            if len(buffer) >= chunk_bytes:
                handed += len(buffer)
                sink(buffer)
                buffer = bytearray()
                chunk_bytes = min(max(handed // CHUNK_SHARE, FIRST_CHUNK_BYTES), LARGEST_CHUNK_BYTES)
                yield Wait.W  # always ready: lets psycopg give the event loop a turn
        elif size == 0:
            yield from refill(pgconn, refills)
        else:
            break
    result = yield from _next_result(pgconn)
    failed = yield from _finish(pgconn, result)
    if failed is not None:
        raise errors.error_from_result(failed, encoding="utf-8")
    assert result is not None
    return result.command_tuples or 0, buffer


# -- parsing ------------------------------------------------------------------------------


class ParseFailure(Exception):
    """pyarrow could not parse some native column; ``columns`` names the culprits."""

    def __init__(self, columns: frozenset[int]) -> None:
        super().__init__(f"columns {sorted(columns)} could not be parsed")
        self.columns = columns


def parse_copy_text(data: bytes | bytearray, plans: Sequence[ColumnPlan]) -> pa.Table:
    """Parse one buffer of ``COPY`` text rows into a table with one column per plan.

    Native columns get their Arrow type, or stay strings where pyarrow's CSV reader has
    no conversion to it (``decimal256``; see :func:`finish_columns`); the others stay
    strings (still escaped). Raises :class:`ParseFailure` naming the native columns that
    must be read as text instead, or :class:`ConversionError` when no column is to blame.
    """
    names = [f"c{position}" for position in range(len(plans))]
    schema = pa.schema([(name, _parsed_type(plan)) for name, plan in zip(names, plans, strict=True)])
    if not data:
        return schema.empty_table()
    if not plans:  # rows of no columns: one empty line each
        return pa.table({"rows": pa.nulls(data.count(b"\n"))}).drop_columns(["rows"])
    # blocks small enough that even a small buffer is parsed by several threads
    block_size = min(max(len(data) // 8, 64 << 10), 4 << 20)
    try:
        return _read_copy_text(data, schema, block_size)
    except pa.ArrowInvalid as error:
        widest = _widest_row(data)
        if widest < block_size:
            raise _parse_failure(error, plans) from error
    # a row wider than a block cannot be parsed at all: again, with blocks that hold any row
    if widest >= _LARGEST_BLOCK:
        raise ConversionError(f"a row of {widest} bytes is more than the parser takes")
    try:
        return _read_copy_text(data, schema, widest + 1)
    except pa.ArrowInvalid as error:
        raise _parse_failure(error, plans) from error


def parse_piece(data: bytes | bytearray, plans: Sequence[ColumnPlan]) -> tuple[pa.Table, list[ColumnPlan]]:
    """Parse one buffer of ``COPY`` text, reading as text the native columns pyarrow cannot parse.

    Returns the table and the plans it was parsed with: a column whose values pyarrow
    refused (``infinity`` dates, ``NaN`` in a ``numeric(p, s)``) is read as text here, to
    be loaded value by value (:func:`finish_columns`). Each pass reads at least one more
    column as text, so the passes end; :class:`ConversionError` when no column is to blame.
    """
    used = list(plans)
    while True:
        try:
            return parse_copy_text(data, used), used
        except ParseFailure as failure:
            native = [index for index in failure.columns if used[index].kind is ColumnKind.NATIVE]
            if not native:
                raise ConversionError(f"cannot parse the rows the server sent: {failure}") from None
            used = [plan.as_python() if index in native else plan for index, plan in enumerate(used)]


def _parsed_type(plan: ColumnPlan) -> pa.DataType:
    """The type pyarrow parses a column's text into (text: ``large_string``, as the frame holds it)."""
    if plan.kind is ColumnKind.NATIVE and not pa.types.is_decimal256(plan.arrow_type):
        return plan.arrow_type
    return pa.large_string()


def _read_copy_text(data: bytes | bytearray, schema: pa.Schema, block_size: int) -> pa.Table:
    return pa_csv.read_csv(
        pa.py_buffer(data),
        memory_pool=arrow_pool(),
        read_options=pa_csv.ReadOptions(column_names=schema.names, block_size=block_size),
        parse_options=pa_csv.ParseOptions(
            delimiter="\t", quote_char=False, double_quote=False, ignore_empty_lines=False
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=schema,
            null_values=["\\N"],
            strings_can_be_null=True,
            true_values=["t"],
            false_values=["f"],
        ),
    )


def _widest_row(data: bytes | bytearray) -> int:
    """The length of the longest line of ``data``, its newline included."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    if not ends.size:
        return len(data)
    return max(int(ends[0]) + 1, int(np.diff(ends).max(initial=0)), len(data) - int(ends[-1]) - 1)


def _parse_failure(error: pa.ArrowInvalid, plans: Sequence[ColumnPlan]) -> Exception:
    """The columns to read as text instead; a :class:`ConversionError` when there are none."""
    columns = _failed_columns(str(error), plans)
    if not columns:
        return ConversionError(f"cannot parse the rows the server sent: {str(error).splitlines()[0]}")
    return ParseFailure(columns)


def _failed_columns(message: str, plans: Sequence[ColumnPlan]) -> frozenset[int]:
    """The native columns to blame for a parse error: the one it names, else every decimal, else all."""
    native = [position for position, plan in enumerate(plans) if _parsed_type(plan) != pa.large_string()]
    match = _COLUMN_IN_ERROR_RE.search(message)
    if match and int(match.group(1)) in native:
        return frozenset({int(match.group(1))})
    decimals = [position for position in native if pa.types.is_decimal(plans[position].arrow_type)]
    return frozenset(decimals or native)


def finish_columns(
    table: pa.Table, plans: Sequence[ColumnPlan], checkpoint: Callable[[], None] = lambda: None
) -> list[Column]:
    """Turn the parsed table's columns into final columns: unescape text, load Python values.

    ``checkpoint`` is called before each column (it raises to stop the work). Arrow data
    is taken as it is where it needs no change (no copy).
    """
    columns: list[Column] = []
    for column, plan in zip(table.columns, plans, strict=True):
        checkpoint()
        if plan.kind is ColumnKind.NATIVE:
            columns.append(column if column.type == plan.arrow_type else _cast_text(column, plan))
            continue
        text = _unescape(column)
        columns.append(text if plan.kind is ColumnKind.TEXT else loaded_column(plan, text.to_pylist()))
    return columns


def join_pieces(pieces: list[list[Column]]) -> list[Column]:
    """The columns of a result from those of its pieces, in order; ``pieces`` is emptied.

    A column that is Arrow of one type in every piece is one chunked column (no copy);
    one that some piece had to load in Python (a value pyarrow could not parse there)
    is loaded in every piece, as psycopg would load it.
    """
    width = len(pieces[0]) if pieces else 0
    joined: list[list[Column]] = [[] for _ in range(width)]
    while pieces:
        for position, column in enumerate(pieces.pop(0)):
            joined[position].append(column)
    return [_joined(parts) for parts in joined]


def _joined(parts: list[Column]) -> Column:
    arrow = [part for part in parts if not isinstance(part, Loaded)]
    if len(arrow) == len(parts) and len({part.type for part in arrow}) == 1:
        chunks = [
            chunk
            for part in arrow
            for chunk in (part.chunks if isinstance(part, pa.ChunkedArray) else [part])
        ]
        return pa.chunked_array(chunks, arrow[0].type)
    return Loaded(
        [value for part in parts for value in (part.values if isinstance(part, Loaded) else part.to_pylist())]
    )


def _cast_text(column: pa.ChunkedArray, plan: ColumnPlan) -> Column:
    """A native column pyarrow's CSV reader left as text, cast by Arrow (exact), or loaded by psycopg."""
    try:
        return pc.cast(column, plan.arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. NaN in a numeric(p, s)
        return loaded_column(plan, column.to_pylist())


def parse_small_copy_text(
    data: bytes | bytearray, plans: Sequence[ColumnPlan]
) -> tuple[list[list[Any]], int]:
    """Parse a few rows of ``COPY`` text in Python: the values of each column, and the row count.

    For small results, where pyarrow's fixed costs would dominate. Values are loaded by
    psycopg's loaders, as in the cursor path.
    """
    lines = data.decode("utf-8").split("\n")
    lines.pop()  # the text ends with a newline
    if not plans:
        return [], len(lines)
    fields = list(zip(*(line.split("\t") for line in lines), strict=True)) or [() for _ in plans]
    columns: list[list[Any]] = []
    for plan, texts in zip(plans, fields, strict=True):
        if plan.kind is ColumnKind.TEXT:
            columns.append([None if text == "\\N" else unescape_copy_text(text) for text in texts])
            continue
        load = plan.load
        try:
            columns.append(
                [None if text == "\\N" else load(unescape_copy_text(text).encode("utf-8")) for text in texts]
            )
        except (errors.DataError, ValueError, TypeError) as error:
            raise ConversionError(f"cannot load column {plan.name!r}: {error}") from error
    return columns, len(lines)


def unescape_copy_text(text: str) -> str:
    """Undo the backslash escapes of ``COPY`` text format in one value.

    Each escape is a backslash and the character after it, read from the left. Escaped
    backslashes are set aside first as NUL, which no PostgreSQL text holds, and the
    other escapes replaced by ``str.replace``: a call back to Python for each escape took
    8 s for 20 MB of backslashes. An escape the server does not write falls back to the
    pattern.
    """
    if "\\" not in text:
        return text
    if "\0" in text:  # not from the server; read escape by escape
        return _ESCAPE_RE.sub(_replace_escape, text)
    text = text.replace("\\\\", "\0")
    for char, value in _ESCAPES.items():
        text = text.replace("\\" + char, value)
    if "\\" in text:
        text = _ESCAPE_RE.sub(_replace_escape, text)
    return text.replace("\0", "\\")


def _unescape(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Undo ``COPY`` text escapes (``\\n``, ``\\t``, ``\\\\``...) in the values that have any."""
    return pa.chunked_array([_unescape_chunk(chunk) for chunk in column.chunks], column.type)


def _unescape_chunk(chunk: pa.Array) -> pa.Array:
    if not _holds_backslash(chunk):
        return chunk
    mask = pc.fill_null(pc.match_substring(chunk, "\\"), False)
    if not pc.any(mask).as_py():
        return chunk
    fixed = [unescape_copy_text(text) for text in pc.filter(chunk, mask).to_pylist()]
    return pc.replace_with_mask(chunk, mask, pa.array(fixed, chunk.type))


def _holds_backslash(chunk: pa.Array) -> bool:
    """A fast look at the bytes behind a string array (a sliced array's too: it may say yes)."""
    data = chunk.buffers()[2]
    return data is not None and bool((np.frombuffer(data, dtype=np.uint8) == ord("\\")).any())


def _replace_escape(match: re.Match[str]) -> str:
    char = match.group(1)
    return _ESCAPES.get(char, char)
