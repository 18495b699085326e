"""Reading ahead: the next batch is read while the caller works on the last, one at most."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from deepanalyze_jupyter.streaming import read_ahead

WAIT = 10.0  # seconds: only reached when the behaviour is missing


class Producer:
    """An async source of numbers that records what was asked of it."""

    def __init__(self, count: int, *, block_at: int | None = None, fail_at: int | None = None) -> None:
        self.count = count
        self.block_at = block_at
        self.fail_at = fail_at
        self.started: list[int] = []
        self.reading = asyncio.Event()  # set when a read starts
        self.blocked = asyncio.Event()  # set when the read that never ends has started
        self.cancelled = False
        self.closed = False

    async def items(self) -> AsyncIterator[int]:
        try:
            for index in range(self.count):
                self.started.append(index)
                self.reading.set()
                if index == self.block_at:
                    self.blocked.set()
                    await asyncio.Event().wait()  # a read that never ends by itself
                if index == self.fail_at:
                    raise ValueError(f"item {index} is broken")
                await asyncio.sleep(0)
                yield index
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.closed = True


def test_the_next_item_is_read_while_the_caller_works_on_the_last() -> None:
    async def main() -> list[int]:
        producer = Producer(5)
        seen = []
        async for item in read_ahead(producer.items()):
            producer.reading.clear()
            if item < 4:  # the caller "works" until the next read has started: it must start meanwhile
                await asyncio.wait_for(producer.reading.wait(), WAIT)
                assert producer.started[-1] == item + 1
            seen.append(item)
        assert producer.closed
        return seen

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_no_more_than_one_item_is_read_ahead() -> None:
    async def main() -> None:
        producer = Producer(20)
        async for item in read_ahead(producer.items()):
            for _ in range(10):  # a slow caller: the reads get every chance to run on
                await asyncio.sleep(0)
            assert max(producer.started) <= item + 1

    asyncio.run(main())


def test_closing_early_cancels_the_read_under_way_and_closes_the_source() -> None:
    async def main() -> Producer:
        producer = Producer(10, block_at=1)
        ahead = read_ahead(producer.items())
        assert await ahead.__anext__() == 0
        await asyncio.wait_for(producer.blocked.wait(), WAIT)  # the next read is under way
        await asyncio.wait_for(ahead.aclose(), WAIT)
        return producer

    producer = asyncio.run(main())
    assert producer.cancelled
    assert producer.closed


def test_an_error_of_the_source_comes_after_the_items_before_it() -> None:
    producer = Producer(10, fail_at=2)
    seen: list[int] = []

    async def main() -> None:
        async for item in read_ahead(producer.items()):
            seen.append(item)

    with pytest.raises(ValueError, match="item 2 is broken"):
        asyncio.run(main())
    assert seen == [0, 1]
    assert producer.closed


def test_an_error_of_the_caller_stops_the_source() -> None:
    producer = Producer(10, block_at=1)

    async def main() -> None:
        async with contextlib.aclosing(read_ahead(producer.items())) as ahead:
            async for _ in ahead:
                await asyncio.wait_for(producer.blocked.wait(), WAIT)
                raise KeyError("the caller failed")

    with pytest.raises(KeyError):
        asyncio.run(main())
    assert producer.cancelled
    assert producer.closed


def test_a_cancelled_caller_cancels_the_read_under_way() -> None:
    async def main() -> Producer:
        producer = Producer(10, block_at=1)

        async def consume() -> None:
            async with contextlib.aclosing(read_ahead(producer.items())) as ahead:
                async for _ in ahead:
                    pass

        task = asyncio.ensure_future(consume())
        await asyncio.wait_for(producer.blocked.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return producer

    producer = asyncio.run(main())
    assert producer.cancelled
    assert producer.closed
