"""The loop runner: sync calls into the async core from anywhere, interruptible, stoppable."""

from __future__ import annotations

import asyncio
import gc
import inspect
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from deepanalyze_jupyter import runner as runner_module
from deepanalyze_jupyter.runner import LoopRunner

#: Upper bound for waits that only guard against a hang; never a speed requirement.
HANG_GUARD = 10.0


@pytest.fixture
def runner() -> Iterator[LoopRunner]:
    runner = LoopRunner(name="test-loop")
    yield runner
    runner.close()


async def double(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


def test_run_sync_returns_the_result(runner: LoopRunner) -> None:
    assert runner.run_sync(double(21)) == 42
    assert runner.is_running
    assert repr(runner) == "<LoopRunner 'test-loop' running>"


def test_the_loop_runs_on_its_own_daemon_thread(runner: LoopRunner) -> None:
    async def where() -> threading.Thread:
        return threading.current_thread()

    thread = runner.run_sync(where())
    assert thread is not threading.current_thread()
    assert thread.daemon
    assert thread.name == "test-loop"
    assert runner.run_sync(where()) is thread  # one loop, reused


def test_errors_propagate_unchanged(runner: LoopRunner) -> None:
    error = ValueError("boom")

    async def fail() -> None:
        raise error

    with pytest.raises(ValueError, match="boom") as caught:
        runner.run_sync(fail())
    assert caught.value is error


def test_works_inside_a_running_loop(runner: LoopRunner) -> None:
    """Like ipykernel: the caller's own loop is running on the main thread."""

    async def cell() -> int:
        assert asyncio.get_running_loop() is not None
        return runner.run_sync(double(5)) + runner.run_sync(double(1))

    assert threading.current_thread() is threading.main_thread()
    assert asyncio.run(cell()) == 12


def test_works_from_other_threads(runner: LoopRunner) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: runner.run_sync(double(n)), range(40)))
    assert results == [n * 2 for n in range(40)]


def test_works_in_a_plain_script() -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from deepanalyze_jupyter.runner import LoopRunner

        async def double(value):
            await asyncio.sleep(0.01)
            return value * 2

        runner = LoopRunner()
        print(runner.run_sync(double(21)))
        # No close(): the loop's daemon thread must not keep the interpreter alive.
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "42", "")


@pytest.mark.parametrize("sigint", ["default", "ignored by the parent"])
def test_ctrl_c_in_a_plain_script_cancels_the_work(sigint: str) -> None:
    """A script's Ctrl-C cancels the task, also when pytest itself runs with SIGINT ignored.

    A background job of a non-interactive shell starts with SIGINT ignored, and its children
    inherit that; the script puts Python's own handler back, as a script that expects Ctrl-C
    (or a kernel) does. The second case starts the script with SIGINT ignored on purpose.
    """
    script = textwrap.dedent(
        """
        import asyncio, signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from deepanalyze_jupyter.runner import LoopRunner

        async def work():
            print("started", flush=True)
            try:
                await asyncio.sleep(3600)
            finally:
                print("cleaned up", flush=True)

        LoopRunner().run_sync(work())
        """
    )
    argv = [sys.executable, "-c", script]
    if sigint != "default":
        argv = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *argv]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "started\n"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert out == "cleaned up\n"
    assert process.returncode != 0
    assert err.rstrip().endswith("KeyboardInterrupt")


def test_keyboard_interrupt_cancels_the_task_and_propagates(
    runner: LoopRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (the kernel's interrupt) lands in the main thread blocked in run_sync."""
    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    # A grace far longer than this test, so returning early proves run_sync saw the task finish.
    monkeypatch.setattr(runner_module, "CANCEL_GRACE_SECONDS", 60.0)
    started = threading.Event()
    seen: list[str] = []

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            await asyncio.sleep(0.01)  # cleanup that itself awaits, like cancelling on the server
            seen.append("cleaned up")
            raise

    main_thread_id = threading.main_thread().ident
    assert main_thread_id is not None

    def interrupt() -> None:
        if started.wait(HANG_GUARD):
            signal.pthread_kill(main_thread_id, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    begun = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run_sync(work())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == ["cancelled", "cleaned up"]
    assert time.monotonic() - begun < 30.0
    assert runner.run_sync(double(2)) == 4  # the loop is still usable


def test_an_interrupt_that_lands_on_another_thread_still_stops_the_wait(runner: LoopRunner) -> None:
    """Ctrl-C goes to whichever thread of the process the kernel picks: once a library has
    started threads of its own (Polars, DuckDB), that may not be the main thread, which then
    only finds Python's flag set when it next wakes."""
    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    started = threading.Event()

    async def work() -> None:
        started.set()
        await asyncio.sleep(3600)

    def interrupt_from_this_thread() -> None:
        if started.wait(HANG_GUARD):
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # not the main thread

    threading.Thread(target=interrupt_from_this_thread, daemon=True).start()
    begun = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run_sync(work(), timeout=20)  # a wait that never woke would time out here
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - begun < 5.0
    assert runner.run_sync(double(2)) == 4


@pytest.mark.parametrize("handed_over", [True, False], ids=["after-handover", "before-handover"])
def test_an_interrupt_while_starting_still_cancels(
    runner: LoopRunner, monkeypatch: pytest.MonkeyPatch, handed_over: bool
) -> None:
    """Ctrl-C can land while the task is being handed to the loop, before run_sync waits."""
    monkeypatch.setattr(runner_module, "CANCEL_GRACE_SECONDS", 60.0)
    original_start = runner_module._LoopTask.start
    seen: list[str] = []

    def interrupted_start(task: runner_module._LoopTask[None]) -> None:
        if handed_over:
            original_start(task)
        raise KeyboardInterrupt

    async def work() -> None:
        seen.append("started")
        try:
            await asyncio.sleep(3600)
        finally:
            seen.append("cleaned up")

    monkeypatch.setattr(runner_module._LoopTask, "start", interrupted_start)
    coro = work()
    begun = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        runner.run_sync(coro)
    assert time.monotonic() - begun < 30.0
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    if handed_over:  # cancelled before its first step or after it, but cancelled and unwound
        assert seen in (["started", "cleaned up"], [])
    else:
        assert seen == []


def test_a_timeout_cancels_the_task(runner: LoopRunner) -> None:
    seen: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            seen.append("cleaned up")

    with pytest.raises(TimeoutError, match=r"did not finish within 0\.05 s"):
        runner.run_sync(slow(), timeout=0.05)
    assert seen == ["cleaned up"]


def test_run_sync_from_the_loop_thread_is_refused(runner: LoopRunner) -> None:
    async def outer() -> str:
        inner = double(1)
        with pytest.raises(
            RuntimeError, match="called from the runner's own loop; await the coroutine instead"
        ):
            runner.run_sync(inner)
        assert inspect.getcoroutinestate(inner) == inspect.CORO_CLOSED
        return "not deadlocked"

    assert runner.run_sync(outer(), timeout=HANG_GUARD) == "not deadlocked"


def test_close_cancels_pending_work_and_stops_the_loop() -> None:
    runner = LoopRunner()
    started = threading.Event()
    seen: list[str] = []

    async def pending() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            seen.append("cleaned up")

    future = runner.submit(pending())
    assert started.wait(HANG_GUARD)
    loop = runner.loop
    thread = runner._thread
    assert thread is not None
    runner.close()
    assert seen == ["cleaned up"]
    assert future.cancelled()
    assert not runner.is_running
    assert not thread.is_alive()
    assert loop.is_closed()
    assert repr(runner) == "<LoopRunner 'deepanalyze-loop' stopped>"
    runner.close()  # twice is harmless


def test_close_leaves_no_socket_open_behind_a_transport_still_closing() -> None:
    """A connection closed with bytes still unsent (a cancelled upload to a peer that reads
    no more) waits for them: the loop's close aborts it, so its socket is closed, not left
    to a ResourceWarning when the transport is collected."""
    listener = socket.create_server(("127.0.0.1", 0))
    runner = LoopRunner("closing")
    try:

        async def send_and_close() -> tuple[asyncio.BaseTransport, asyncio.BaseTransport]:
            loop = asyncio.get_running_loop()
            closed, _ = await loop.create_connection(asyncio.Protocol, *listener.getsockname())
            closed.close()
            await asyncio.sleep(0.05)  # closed for good, though held (the loop keeps it until collected)
            transport, _ = await loop.create_connection(asyncio.Protocol, *listener.getsockname())
            transport.write(b"x" * (64 * 1024 * 1024))  # more than the kernel's buffers take
            transport.close()
            return closed, transport

        closed, transport = runner.run_sync(send_and_close())
        assert transport.is_closing()
        runner.close()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del closed, transport
            gc.collect()
        assert [str(warning.message) for warning in caught] == []
    finally:
        runner.close()
        listener.close()


def test_close_before_any_use_is_harmless() -> None:
    runner = LoopRunner()
    runner.close()
    assert not runner.is_running


def test_the_wait_for_a_result_installs_no_waiter(
    runner: LoopRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("concurrent.futures.wait() installs and removes a waiter on every call")

    monkeypatch.setattr(runner_module.concurrent.futures, "wait", refuse)
    assert runner.run_sync(double(21)) == 42


def test_the_works_own_timeout_error_propagates_at_once(runner: LoopRunner) -> None:
    async def times_out() -> None:
        await asyncio.sleep(0)
        raise TimeoutError("the work's own")

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="the work's own"):
        runner.run_sync(times_out())
    assert time.monotonic() - started < HANG_GUARD
