"""Closing a session that is collected, or still open when the interpreter exits.

A script (or a kernel) that never calls ``close()`` leaves no connection or task behind:
every source is disconnected and the session's loop stopped.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401  (its exit hook must be registered before ours)
import contextlib
import threading
import weakref
from collections.abc import Callable

from .registry import DataSourceRegistry
from .runner import LoopRunner

__all__ = ["close_at_exit"]


def close_at_exit(
    owner: object, runner: LoopRunner, registry: DataSourceRegistry
) -> weakref.finalize[[LoopRunner, DataSourceRegistry], object]:
    """A finalizer that closes ``registry``'s sources and ``runner`` once ``owner`` is collected,
    at interpreter exit, or when called (once)."""
    finalizer = weakref.finalize(owner, _shut_down, runner, registry)
    _close_before_thread_pools_stop(finalizer)
    return finalizer


def _close_before_thread_pools_stop(close: Callable[[], object]) -> None:
    """Have ``close`` run at interpreter exit while thread pools still take work.

    ``weakref.finalize`` (like ``atexit``) runs after the interpreter stopped every thread
    pool, so a connector that closes through one (SQLite's own thread, a DNS lookup, a file
    handle given back by ``asyncio.to_thread``) could not close any more. The hooks of
    :mod:`threading` run before that, the last registered first; the thread pools' own hook
    is registered when :mod:`concurrent.futures.thread` is imported, as it is above.
    """
    with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
        threading._register_atexit(close)  # type: ignore[attr-defined]


def _shut_down(runner: LoopRunner, registry: DataSourceRegistry) -> None:
    """Disconnect every source and stop the loop (once; not from the loop's own thread)."""
    if not runner.is_running or runner.in_runner_thread():
        return
    try:
        runner.run_sync(registry.disconnect_all(), timeout=30)
    finally:
        runner.close()
