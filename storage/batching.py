"""Group execution: the chat's per-message database work (a form's state written, an account's
rows read) handed over by many applicants at once and done for all of them in one transaction.

``Batcher.submit`` returns the item's own result once its batch is done. A batch starts as soon
as an item arrives, so a lone applicant waits for nobody; items that arrive while one batch runs
go together in the next, so under load many applicants share one transaction (and one fsync)
instead of queueing for SQLite's write lock or the connection pool one by one.

When the database is down the whole batch fails with ``DatabaseUnavailable`` and every caller
says 「系统繁忙」. Any other error is the one item's: the batch is done again item by item, so it
fails alone.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from loguru import logger

from storage.db import is_outage

In = TypeVar("In")
Out = TypeVar("Out")
MAX_BATCH = 500  # items in one transaction at most (one statement's parameters)


@dataclass
class _Item(Generic[In, Out]):
    value: In
    done: asyncio.Future[Out] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class Batcher(Generic[In, Out]):
    def __init__(self, name: str, run: Callable[[list[In]], Awaitable[Sequence[Out]]],
                 max_batch: int = MAX_BATCH) -> None:
        """``run`` does a whole batch in one transaction and returns one result per item, in
        order."""
        self.name = name
        self._run_batch = run
        self.max_batch = max_batch
        self._waiting: list[_Item[In, Out]] = []
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()  # nothing waiting, nothing in a batch
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # batches done (the benchmark's and the tests' view of batching)

    async def submit(self, value: In) -> Out:
        """``value``'s result once its batch is done; raises what the batch raised for it."""
        item: _Item[In, Out] = _Item(value)
        # the caller may be gone (cancelled) by the time it settles: nobody else reads it
        item.done.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._waiting.append(item)
        self._idle.clear()
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name=self.name)
        return await asyncio.shield(item.done)  # a cancelled caller's item is still done

    async def close(self) -> None:
        """Finish what is waiting, then stop."""
        if self._task is None:
            return
        if not self._task.done():
            await self._idle.wait()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._waiting:  # what arrived during a batch goes in the next one
                batch = self._waiting[:self.max_batch]
                del self._waiting[:self.max_batch]
                await self._do(batch)
            self._idle.set()

    async def _do(self, batch: list[_Item[In, Out]]) -> None:
        try:
            results = await self._run_batch([item.value for item in batch])
        except asyncio.CancelledError:
            for item in batch:
                item.done.cancel()
            raise
        except Exception as error:
            if len(batch) == 1 or is_outage(error):
                for item in batch:
                    _settle(item, error=error)
                return
            logger.warning(f"{self.name}: a batch of {len(batch)} failed ({error}); "
                           "doing them one by one")
            for item in batch:
                await self._do([item])
            return
        self.batches += 1
        for item, result in zip(batch, results, strict=True):
            _settle(item, result=result)


def _settle(item: _Item[In, Out], *, result: Out | None = None,
            error: BaseException | None = None) -> None:
    if item.done.done():
        return
    if error is not None:
        item.done.set_exception(error)
    else:
        item.done.set_result(result)  # type: ignore[arg-type]
