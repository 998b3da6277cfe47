"""A background pass that runs now, then every so often (sooner when woken), until stopped.

A failing pass is logged and the next one comes as usual: a mail server or database outage
must not end the worker.
"""

import asyncio
from collections.abc import Awaitable, Callable

from loguru import logger


class Periodic:
    def __init__(self, name: str, work: Callable[[], Awaitable[object]], seconds: float) -> None:
        self.name = name
        self.work = work
        self.seconds = seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            # a cancel can be swallowed below (e.g. Python 3.11's wait_for racing its own
            # timeout, which the mail libraries use): the loop then ends at its next turn
            self._wake.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task, self._stopping = None, False

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.work()
            except Exception as error:
                logger.opt(exception=error).warning(
                    f"{self.name} failed: {type(error).__name__}: {error}")
            try:
                async with asyncio.timeout(self.seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass
