"""The bridge from synchronous callers to the async core.

A :class:`LoopRunner` owns one event loop on a daemon thread. :meth:`LoopRunner.run_sync`
submits a coroutine to it and blocks until the result is ready. This works the same
inside ipykernel (whose own loop is already running on the main thread), in a terminal
IPython and in a plain script, without patching any loop.

A ``KeyboardInterrupt`` (Ctrl-C, or the kernel's interrupt) while waiting cancels the
task on the loop, waits briefly for it to unwind (so connectors can cancel the work on
the server), and propagates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Awaitable, Coroutine, Iterable
from types import FrameType, TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["LoopRunner", "gather_all", "traceback_past_the_bridge"]

T = TypeVar("T")

#: How long an interrupted task may take to unwind before the caller gets control back.
CANCEL_GRACE_SECONDS = 5.0
#: How often a waiting caller wakes so that Python runs a pending signal handler. Ctrl-C
#: can land on any thread of the process (a library's worker thread, Polars' or DuckDB's);
#: Python then only sets a flag, which a caller blocked in one long wait would never see.
SIGNAL_CHECK_SECONDS = 0.1


class LoopRunner:
    """One private event loop on a daemon thread, started on first use."""

    def __init__(self, name: str = "deepanalyze-loop") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<LoopRunner {self._name!r} {state}>"

    @property
    def is_running(self) -> bool:
        """Whether the loop thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runner's loop, started if needed."""
        with self._lock:
            if self._loop is None or not self.is_running:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name=self._name, daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    def in_runner_thread(self) -> bool:
        """Whether the calling code runs on the runner's own thread."""
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop and return a future for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run_sync(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result, blocking the caller.

        On ``KeyboardInterrupt`` the task is cancelled and given a moment to unwind (so a
        connector can cancel its work on the server) before the interrupt propagates.
        On ``timeout`` the task is cancelled the same way and :class:`TimeoutError` raised.
        """
        if self.in_runner_thread():
            coro.close()
            raise RuntimeError(
                "run_sync() was called from the runner's own loop; await the coroutine instead"
            )
        task = _LoopTask(self.loop, coro)
        try:  # from here on, an interrupt cancels the task, even one not made yet
            task.start()
            return _wait_for(task.result, timeout)
        except KeyboardInterrupt:
            task.cancel_and_wait()
            raise
        except concurrent.futures.TimeoutError:
            if task.result.done():  # the work's own TimeoutError, not the caller's timeout
                raise
            task.cancel_and_wait()
            raise TimeoutError(f"the operation did not finish within {timeout} s") from None

    def close(self, *, timeout: float = 10.0) -> None:
        """Cancel every pending task, stop the loop and join its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or not thread.is_alive():
            return

        async def shutdown() -> None:
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()
            await _abort_transports(loop)

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()


async def _abort_transports(loop: asyncio.AbstractEventLoop) -> None:
    """Abort the connections the loop still holds, so that their sockets close with it.

    A connection closed with bytes still to send (an upload cancelled while its peer reads
    no more) waits until they are sent: with the loop gone it never closes, and its socket
    stays open until the transport is collected. Selector loops keep their transports by
    file descriptor (``_transports``, where one already closed may stay until collected);
    other loops are left as they are.
    """
    transports = getattr(loop, "_transports", None)
    open_ones = [each for each in (transports or {}).values() if getattr(each, "_sock", None) is not None]
    for transport in open_ones:
        transport.abort()
    if open_ones:
        await asyncio.sleep(0)  # the aborts close their sockets in the next iteration


class _LoopTask(Generic[T]):
    """A coroutine run as a task on a loop of another thread, cancellable from any thread.

    :attr:`result` settles only once the task is done (or known never to start).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> None:
        self._loop = loop
        self._coro = coro
        self._task: asyncio.Task[T] | None = None
        self.result: concurrent.futures.Future[T] = concurrent.futures.Future()

    def start(self) -> None:
        """Ask the loop to make the task, without waiting for it."""
        self._loop.call_soon_threadsafe(self._create)

    def cancel_and_wait(self) -> None:
        """Cancel the task and give it a moment to unwind."""
        # Callbacks run in the order given, so this one sees the task if start() got as far.
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
            self._loop.call_soon_threadsafe(self._cancel)
        concurrent.futures.wait([self.result], timeout=CANCEL_GRACE_SECONDS)

    def _create(self) -> None:
        try:
            task = self._loop.create_task(self._coro)
        except BaseException as error:  # the loop is closing
            self._coro.close()
            self.result.set_exception(error)
            return
        self._task = task
        task.add_done_callback(self._settle)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
        elif not self.result.done():  # start() was interrupted before the loop got the task
            self._coro.close()
            self._cancel_result()

    def _settle(self, task: asyncio.Task[T]) -> None:
        # A done task keeps its exception, whose traceback holds the frames of the code it
        # ran (and their data); the caller's traceback (``sys.last_traceback`` in a kernel)
        # reaches this object, so it must not reach the task.
        self._task = None
        if task.cancelled():
            self._cancel_result()
        elif (error := task.exception()) is not None:
            self.result.set_exception(error)
        else:
            self.result.set_result(task.result())

    def _cancel_result(self) -> None:
        self.result.cancel()
        self.result.set_running_or_notify_cancel()  # wakes concurrent.futures.wait()


def _wait_for(future: concurrent.futures.Future[T], timeout: float | None) -> T:
    """``future.result(timeout)``, woken every :data:`SIGNAL_CHECK_SECONDS` to let an
    interrupt that landed on another thread reach this one."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SIGNAL_CHECK_SECONDS if deadline is None else deadline - time.monotonic()
        if left <= 0 and not future.done():
            raise concurrent.futures.TimeoutError
        try:  # the future's own wait: no waiter to install and remove, as wait() has
            return future.result(timeout=max(0.0, min(left, SIGNAL_CHECK_SECONDS)))
        except concurrent.futures.TimeoutError:
            if future.done():  # the work's own TimeoutError, not the wait's
                raise


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Run ``awaitables`` concurrently and return their results in order.

    If one fails, or the caller is cancelled, the others are cancelled and awaited
    before the error propagates, so nothing keeps running behind the caller's back.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


#: The files of the frames between a caller and the loop thread.
_BRIDGE_FILES = frozenset({__file__, concurrent.futures._base.__file__})


def traceback_past_the_bridge(tb: TracebackType | None, caller: FrameType) -> TracebackType | None:
    """``tb`` without its first entries: ``caller``'s and the bridge's to the loop thread."""
    while tb is not None and (tb.tb_frame is caller or tb.tb_frame.f_code.co_filename in _BRIDGE_FILES):
        tb = tb.tb_next
    return tb
