"""The DuckDB connection a statement on a file source runs in, sandboxed to that source.

Each statement gets an in-memory database of its own, so nothing one statement creates
is seen by the next. Starting a DuckDB database takes about 15 ms, so when a statement
takes its database the next one is made ahead, in a thread of its own (:func:`make_spare`, :func:`release`);
the next statement takes it and only registers its source in it. (Not when a source
connects: a kernel that runs no SQL does not hold DuckDB's memory.) A finished statement's
database is closed in that thread too (:func:`release`): freeing one takes a few milliseconds.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd

__all__ = ["make_spare", "release", "sandboxed"]

_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,
    # No temporary directory: DuckDB lets the SQL read and write in it whatever the allowed
    # directories (by default ``.tmp`` of the working directory). A statement works in memory.
    "temp_directory": "",
}
_SETUP = (
    # query_progress() answers only with the progress bar on; DuckDB itself prints nothing.
    "SET enable_progress_bar = true",
    "SET enable_progress_bar_print = false",
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)


class _Spare:
    """At most one connection made ahead of the statement that will take it.

    DuckDB takes the process's time zone when a database starts, so a spare made before
    the time zone changed (``TZ`` and ``time.tzset()``) is not taken.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._maker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="duckdb-spare")
        self._made: concurrent.futures.Future[duckdb.DuckDBPyConnection] | None = None
        self._zone: object = None
        self._closing: set[concurrent.futures.Future[None]] = set()

    def make(self) -> None:
        with self._lock:
            if self._made is None:
                self._zone = _time_zone()
                self._made = self._maker.submit(duckdb.connect, config=_CONFIG)

    def take(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            made, self._made = self._made, None
            zone = self._zone
        if made is not None:
            try:
                connection = made.result()
            except Exception:  # a new one is made below, where its error is seen
                connection = None
            if connection is not None and zone == _time_zone():
                return connection
            if connection is not None:
                connection.close()
        return duckdb.connect(config=_CONFIG)

    def release(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Close a finished statement's connection in the thread, then make the next spare.

        Waited for before a fork (:meth:`drop`): a child must not inherit a database half freed.
        """
        with self._lock:
            closing = self._maker.submit(connection.close)
            self._closing.add(closing)
        closing.add_done_callback(self._closed)
        self.make()

    def _closed(self, closing: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._closing.discard(closing)

    def drop(self) -> None:
        """Close the spare if it is made, and wait for the connections being closed; a spare
        still being made is let go (its thread closes it)."""
        with self._lock:
            made, self._made = self._made, None
            closing = list(self._closing)
        concurrent.futures.wait(closing)
        if made is not None and made.done() and made.exception() is None:
            made.result().close()


def _time_zone() -> object:
    """What a new DuckDB database would take as its time zone."""
    return os.environ.get("TZ"), time.tzname, time.timezone


_spare = _Spare()


def _forget_in_child() -> None:
    """A forked process makes its own spares: the parent's thread that makes them is not in it."""
    global _spare
    _spare = _Spare()


# A forked process must not inherit a made DuckDB database: freeing one whose threads stayed
# in the parent crashes the child. So the spare is closed before a fork (the next statement
# makes its own).
os.register_at_fork(before=lambda: _spare.drop(), after_in_child=_forget_in_child)


def make_spare() -> None:
    """Start making the connection of the next statement, unless one is made or being made."""
    _spare.make()


def release(connection: duckdb.DuckDBPyConnection) -> None:
    """Close a finished statement's connection off the statement's path (see the module)."""
    _spare.release(connection)


def sandboxed(filesystem: Any, source: str, frames: Mapping[str, pd.DataFrame]) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that can read only ``source``'s files and the ``frames`` given."""
    connection = _spare.take()
    _spare.make()  # the next statement's, while this one runs
    try:
        connection.register_filesystem(filesystem)
        for name, frame in frames.items():
            connection.register(name, frame)
        connection.execute("SET allowed_directories = $1", [[f"{filesystem.protocol}://{source}/"]])
        for statement in _SETUP:
            connection.execute(statement)
    except BaseException:
        connection.close()
        raise
    return connection
