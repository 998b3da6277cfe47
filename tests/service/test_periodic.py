"""The background workers' loop: a stop always ends it."""

import asyncio
import contextlib

from bot.adapters.periodic import Periodic


async def test_stop_ends_the_loop_even_when_the_work_swallows_the_cancel() -> None:
    """A library that swallows a cancel (as a racing wait_for can) used to keep the worker
    running every interval, and the bot's shutdown (and the test teardowns) waited forever."""
    calls = 0

    async def stubborn() -> None:
        nonlocal calls
        calls += 1
        with contextlib.suppress(asyncio.CancelledError):  # swallowed
            await asyncio.sleep(10)

    worker = Periodic("stubborn", stubborn, 60)
    worker.start()
    await asyncio.sleep(0.05)
    async with asyncio.timeout(2):
        await worker.stop()
    assert calls == 1


async def test_a_failing_pass_does_not_end_the_worker() -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("mail server down")

    worker = Periodic("failing", failing, 0.01)
    worker.start()
    async with asyncio.timeout(2):
        while calls < 3:  # noqa: ASYNC110 - the worker runs on this loop
            await asyncio.sleep(0.01)
    await worker.stop()
