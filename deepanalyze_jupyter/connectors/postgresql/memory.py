"""Memory a large result freed, handed back to the system rather than kept for the next one.

Parsed tables are made in the C library's ``malloc`` (:func:`arrow_pool`), whose per-thread
arenas keep what is freed; :func:`give_back_memory` trims them. A result's build gives
back as it goes (:func:`giving_back`), and a dropped frame a moment after it is freed
(:func:`give_back_memory_when_dropped`).
"""

from __future__ import annotations

import ctypes
import functools
import threading
import weakref
from collections.abc import Callable

import pandas as pd
import pyarrow as pa

__all__ = ["arrow_pool", "give_back_memory", "give_back_memory_when_dropped", "giving_back"]

#: Seconds from a large frame's finalizer to the trim, long enough for its columns to be freed.
_GIVE_BACK_DELAY = 0.05


def arrow_pool() -> pa.MemoryPool:
    """The memory pool the parsed tables are made in: the C library's ``malloc``.

    pyarrow's default pool (mimalloc) keeps what a large result freed for later, in each
    parser thread's own heap, and gives little of it back even when asked: after a 1M-row
    query and ``del`` of its frame the process stayed 85 MiB above its start, and each
    interrupted query added more. Memory from ``malloc`` goes back with
    :func:`give_back_memory`.
    """
    return pa.system_memory_pool()


def give_back_memory() -> None:
    """Hand the memory a large result freed back to the system, not to the next query.

    The parser threads' tables are many buffers of a few hundred KiB in the C library's
    per-thread arenas, which it keeps when they are freed; ``malloc_trim`` returns them.
    Elsewhere than glibc only the Arrow pools are asked.
    """
    trim = _malloc_trim()
    for pool in (arrow_pool(), pa.default_memory_pool()):  # pandas' conversions use the default
        if trim is None or pool.backend_name != "system":  # the system pool's release is a trim
            pool.release_unused()
    if trim is not None:
        trim(0)  # once: each trim walks every heap of the process (a few milliseconds)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, if this process has it."""
    trim: Callable[[int], int] | None = getattr(ctypes.CDLL(None), "malloc_trim", None)
    return trim


def giving_back(checkpoint: Callable[[], None]) -> Callable[[], None]:
    """``checkpoint``, handing the memory freed so far back to the system first.

    Each column of a large result is freed, once converted, into the parser threads'
    heaps, which the pandas columns made next do not reuse: without this, the process
    held the parsed result and the frame at once (1.9x the frame at its peak; 1.2x with).
    """

    def step() -> None:
        give_back_memory()
        checkpoint()

    return step


def give_back_memory_when_dropped(frame: pd.DataFrame | pa.Table) -> None:
    """Once ``frame`` is dropped, hand its memory back to the system (:func:`give_back_memory`).

    A large frame's columns are freed into the C library's heaps, which keep them for
    later: after ``del`` of a 1M-row frame the process stayed about 80 MiB larger, under
    20 MiB once they are trimmed (``bench/bench_postgresql.py``). A finalizer runs before
    the frame's columns are freed, so the trim comes a moment later, in a timer thread.
    """
    weakref.finalize(frame, _give_back_memory_soon).atexit = False


def _give_back_memory_soon() -> None:
    timer = threading.Timer(_GIVE_BACK_DELAY, give_back_memory)
    timer.daemon = True
    timer.start()
