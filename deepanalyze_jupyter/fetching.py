"""How a session's query or read becomes a :class:`~.results.Result`.

From the results cache while younger than the caller's ``cache_ttl``, else asked of the
source (as Arrow where its connector builds Arrow itself) and converted to the format
asked for; and the warning a caller of the Python API gets when the session's default
row limit cut the result.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from .registry import DataSourceRegistry, RowLimit
from .results import Result, check_output, convert_result, result_info, with_info
from .results_cache import check_ttl, result_key

__all__ = ["ResultTruncated", "query_work", "read_work", "value_warning_if_cut"]

Fetch = Callable[[str | None], Coroutine[Any, Any, pd.DataFrame | pa.Table]]


class ResultTruncated(UserWarning):
    """A query or read of the Python API was cut at the session's default row limit.

    ``limit=None`` fetches every row (``limit=N`` sets another limit, and no warning is
    given for a limit asked for). To silence it::

        warnings.filterwarnings("ignore", category=ResultTruncated)
    """


def query_work(
    registry: DataSourceRegistry,
    source_id: str,
    sql: str,
    params: Mapping[str, Any] | None,
    limit: RowLimit,
    timeout: float | None,
    output: str,
    cache_ttl: float | None,
    options: Mapping[str, Any],
) -> Coroutine[Any, Any, Result]:
    """The work of a query (for :meth:`Session.run`): from the cache, or asked of the source."""
    key = (
        "query",
        sql,
        sorted((params or {}).items()),
        _limit_key(registry, limit),
        output,
        sorted(options.items()),
    )

    def fetch(native: str | None) -> Coroutine[Any, Any, pd.DataFrame | pa.Table]:
        asked = {**options, "output": native} if native else options
        return registry.query(source_id, sql, params, limit=limit, timeout=timeout, options=asked)

    return _result(registry, source_id, key, output, cache_ttl, fetch, statement=True)


def read_work(
    registry: DataSourceRegistry,
    source_id: str,
    paths: str | Sequence[str],
    format: str | None,
    limit: RowLimit,
    source_column: str | None,
    output: str,
    cache_ttl: float | None,
    reader_options: Mapping[str, Any],
) -> Coroutine[Any, Any, Result]:
    """The work of a read (for :meth:`Session.run`): from the cache, or asked of the source."""
    path_list = [paths] if isinstance(paths, str) else list(paths)
    key = (
        "read",
        path_list,
        format,
        _limit_key(registry, limit),
        source_column,
        output,
        sorted(reader_options.items()),
    )

    def fetch(native: str | None) -> Coroutine[Any, Any, pd.DataFrame | pa.Table]:
        return registry.read(
            source_id,
            path_list,
            format=format,
            limit=limit,
            source_column=source_column,
            reader_options=reader_options,
            output=native or "pandas",
        )

    return _result(registry, source_id, key, output, cache_ttl, fetch)


def value_warning_if_cut(
    registry: DataSourceRegistry, result: Result, source_id: str, limit: RowLimit
) -> Any:
    """The result's value; warn the caller when the default row limit (not one they asked for) cut it.

    Called straight from a public method of the session, whose caller the warning names.
    """
    if limit == "default" and result.info.get("truncated"):
        warnings.warn(
            ResultTruncated(
                f"{source_id}: the result was cut at the default limit of "
                f"{registry.default_row_limit:,} rows; pass limit=None to fetch every row "
                "(or limit=N for another limit)"
            ),
            stacklevel=3,
        )
    return result.value


def _limit_key(registry: DataSourceRegistry, limit: RowLimit) -> int | None:
    return registry.default_row_limit if limit == "default" else limit


def _native_output(registry: DataSourceRegistry, source_id: str, output: str) -> str | None:
    """``"arrow"`` if the source's connector builds Arrow itself and ``output`` is not pandas."""
    if output == "pandas":
        return None
    config = registry.get_config(source_id)
    connector_class = registry.connector_class(config.type, source=source_id)
    return "arrow" if "arrow" in connector_class.native_outputs else None


async def _result(
    registry: DataSourceRegistry,
    source_id: str,
    key_parts: tuple[Any, ...],
    output: str,
    cache_ttl: float | None,
    fetch: Fetch,
    *,
    statement: bool = False,
) -> Result:
    """Fetch and convert a result, or take it from the results cache while younger than ``cache_ttl``.

    Runs on the session's loop; the conversion to Arrow or Polars runs in a worker thread.
    A ``statement`` on a writable source forgets what was cached of the source once it has run
    (:meth:`~.registry.DataSourceRegistry.query`); its own result is still kept.
    """
    check_output(output, source=source_id)
    cache_ttl = check_ttl(cache_ttl, source=source_id)
    key = result_key(*key_parts) if cache_ttl else None
    if key is not None and cache_ttl:
        hit = registry.results.get(source_id, key, ttl=cache_ttl)
        if hit is not None:
            info = {**hit.result.info, "cache_age": hit.age}
            return Result(with_info(hit.result.value, {"cache_age": hit.age}), info)
    generation = registry.results.generation(source_id)
    if statement and registry.writable(source_id):
        generation += 1  # the clear the statement makes of its own source, and no other, leaves it kept
    frame = await fetch(_native_output(registry, source_id, output))
    info = result_info(frame)
    value = (
        frame
        if output == "pandas"
        else await asyncio.to_thread(convert_result, frame, output, source=source_id)
    )
    result = Result(value, info)
    if key is not None:
        registry.results.put(source_id, key, result, generation=generation)
    return result
