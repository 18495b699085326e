"""What the connector puts around each query it runs (:mod:`.query`, :mod:`.stream`).

The check that every ``:name`` has a value; the statements sent before it (a read-only
transaction, a statement timeout); the column planner for the connection; and the one
line a refused statement gives (``COPY``, transaction control, several statements).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from ...errors import QueryError
from ...sqlparams import missing_parameters
from .errors import one_line, query_error
from .query import plan_settings
from .result import CopyStatement, Planner, QueryFailed, Statement, TransactionControl
from .types import ColumnPlan, PlanCache

__all__ = ["check_parameters", "column_planner", "one_line_errors", "query_preamble"]

AsyncConnection = psycopg.AsyncConnection[Any]

_SET_TIMEOUT = "SELECT set_config('statement_timeout', $1, false)"
#: Read-only: a transaction that cannot be made writable, with its snapshot taken (after
#: which ``SET TRANSACTION READ WRITE`` is refused), and in which ``DO`` and ``CALL`` are
#: atomic (they cannot ``COMMIT``).
_READ_ONLY_PREAMBLE: tuple[Statement, ...] = (("BEGIN READ ONLY", None), ("SELECT 1", None))
_MULTIPLE_STATEMENTS = "cannot insert multiple commands into a prepared statement"


def _milliseconds(seconds: float) -> str:
    return str(max(0, round(seconds * 1000)))


def check_parameters(sql: str, params: Mapping[str, Any] | None, *, source: str) -> None:
    """Refuse ``sql`` when one of its ``:name`` parameters has no value in ``params``."""
    missing = missing_parameters(sql, params)
    if missing:
        names = ", ".join(f":{name}" for name in missing)
        raise QueryError(f"no value given for parameter {names}", source=source)


def query_preamble(*, read_only: bool, timeout: float | None) -> list[Statement]:
    """The statements sent before a query: a read-only transaction, and this query's timeout
    (the reset after the query restores the source's own)."""
    preamble = list(_READ_ONLY_PREAMBLE) if read_only else []
    if timeout is not None:
        preamble.append((_SET_TIMEOUT, [_milliseconds(timeout)]))
    return preamble


def column_planner(conn: AsyncConnection, plans: PlanCache, *, numeric_as_float: bool) -> Planner:
    """The column plans of a result on ``conn``, from ``plans`` when the same shape was planned."""
    settings = plan_settings(conn, numeric_as_float=numeric_as_float)

    def planner(fields: Sequence[tuple[str, int, int]]) -> list[ColumnPlan]:
        return plans.plans(fields, conn, settings)

    return planner


@contextmanager
def one_line_errors(conn: AsyncConnection, *, read_only: bool, source: str) -> Iterator[None]:
    """Make a refused or failed statement (:func:`.query.run_query`) a one-line ``QueryError``."""
    try:
        yield
    except CopyStatement:
        raise QueryError(
            "COPY ... TO STDOUT and FROM STDIN cannot run as a query; write the SELECT itself "
            "(results are read through COPY already)",
            source=source,
        ) from None
    except TransactionControl as refused:
        raise QueryError(_transaction_refusal(refused.tag, read_only=read_only), source=source) from None
    except QueryFailed as failed:
        if failed.error.diag.message_primary == _MULTIPLE_STATEMENTS:
            raise QueryError(
                "the SQL holds several statements; a query runs one (run them one at a time, "
                "or together in a DO block)",
                source=source,
            ) from None
        raise query_error(
            failed.error, source=source, connection_lost=conn.broken, position=failed.position
        ) from None
    except psycopg.Error as error:  # e.g. a value psycopg cannot quote
        raise QueryError(one_line(str(error)), source=source) from None


def _transaction_refusal(tag: str, *, read_only: bool) -> str:
    if read_only:
        return (
            f"{tag} is not available on a read-only source: each query runs alone in a "
            "read-only transaction, rolled back after it"
        )
    return (
        f"{tag} is not available: each query is its own transaction (committed when it "
        "succeeds); run several statements together in a DO block"
    )
