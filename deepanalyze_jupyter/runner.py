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
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopRunner"]

T = TypeVar("T")

#: How long an interrupted task may take to unwind before the caller gets control back.
CANCEL_GRACE_SECONDS = 5.0


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
        cancel, result = self._spawn(self.loop, coro)
        try:
            return result.result(timeout)
        except KeyboardInterrupt:
            self._cancel_and_wait(cancel, result)
            raise
        except concurrent.futures.TimeoutError:
            self._cancel_and_wait(cancel, result)
            raise TimeoutError(f"the operation did not finish within {timeout} s") from None

    @staticmethod
    def _spawn(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]
    ) -> tuple[Callable[[], None], concurrent.futures.Future[T]]:
        """Start ``coro`` as a task without waiting for the loop.

        Returns a thread-safe function that cancels the task (even one not made yet) and
        a future that settles only once the task is done.
        """
        result: concurrent.futures.Future[T] = concurrent.futures.Future()
        tasks: list[asyncio.Task[T]] = []

        def settle(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                result.cancel()
                result.set_running_or_notify_cancel()  # wakes concurrent.futures.wait()
            elif (error := task.exception()) is not None:
                result.set_exception(error)
            else:
                result.set_result(task.result())

        def create() -> None:
            try:
                task = loop.create_task(coro)
            except BaseException as error:  # the loop is closing
                coro.close()
                result.set_exception(error)
                return
            tasks.append(task)
            task.add_done_callback(settle)

        def cancel_tasks() -> None:
            for task in tasks:
                task.cancel()

        def cancel() -> None:
            # Runs after create() on the loop, since callbacks run in the order given.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
                loop.call_soon_threadsafe(cancel_tasks)

        loop.call_soon_threadsafe(create)
        return cancel, result

    @staticmethod
    def _cancel_and_wait(cancel: Callable[[], None], result: concurrent.futures.Future[Any]) -> None:
        cancel()
        concurrent.futures.wait([result], timeout=CANCEL_GRACE_SECONDS)

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

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
