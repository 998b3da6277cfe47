"""Group commit of the chat's form states: one writer per database saves the states of every
applicant talking at that moment in one transaction.

A message's state is handed to ``save``, which returns once that state is committed (a reply is
sent only after its own write is durable: a kill never loses an acknowledged answer). The writer
starts a commit as soon as a state arrives, so a lone applicant waits for nobody; while one
commit runs, the states that arrive meanwhile gather and go in the next, so under load many
applicants share one transaction and one fsync instead of queueing for SQLite's write lock one
by one. Per-account order is the caller's (Dialogue holds an account's lock across ``save``:
an account has at most one state in flight).

When the database is down the whole batch fails with ``DatabaseUnavailable`` and every caller
says 「系统繁忙」 (nothing kept). Any other error (a state that cannot be stored) is the one
state's: the batch is saved again state by state, so it fails alone.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loguru import logger

from storage.db import Database, is_outage
from storage.repositories.conversations import Conversations

MAX_BATCH = 500  # states in one transaction at most (one statement's parameters)


@dataclass
class _State:
    platform: str
    user_id: str
    state: dict[str, Any]
    at: datetime
    saved: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def row(self) -> tuple[str, str, dict[str, Any], datetime]:
        return self.platform, self.user_id, self.state, self.at


class StateWriter:
    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._waiting: list[_State] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()  # nothing waiting, nothing being committed
        self._idle.set()
        self.batches = 0  # commits made (the benchmark's and the tests' view of batching)

    async def save(self, platform: str, user_id: str, state: dict[str, Any],
                   at: datetime) -> None:
        """Return once ``state`` is the account's committed form; raises what the commit
        raised (``DatabaseUnavailable`` when the database is down)."""
        pending = _State(platform, user_id, state, at)
        # the caller may be gone (cancelled) by the time it settles: nobody else reads it
        pending.saved.add_done_callback(lambda saved: saved.cancelled() or saved.exception())
        self._waiting.append(pending)
        self._idle.clear()
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="state writer")
        await asyncio.shield(pending.saved)  # a cancelled caller's state is still written

    async def close(self) -> None:
        """Write what is waiting, then stop."""
        if self._task is None:
            return
        if not self._task.done():
            await self._idle.wait()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._waiting:  # what arrived during a commit goes in the next one
                batch = self._waiting[:self.max_batch]
                del self._waiting[:self.max_batch]
                await self._commit(batch)
            self._idle.set()

    async def _commit(self, batch: list[_State]) -> None:
        try:
            await self._write([pending.row for pending in batch])
        except asyncio.CancelledError:
            _settle(batch, asyncio.CancelledError())
            raise
        except Exception as error:
            if len(batch) == 1 or is_outage(error):
                _settle(batch, error)
                return
            logger.warning(f"state writer: a batch of {len(batch)} failed ({error}); "
                           "saving them one by one")
            for pending in batch:
                await self._commit([pending])
            return
        _settle(batch, None)

    async def _write(self, rows: list[tuple[str, str, dict[str, Any], datetime]]) -> None:
        async with self.db.transaction() as session:
            await Conversations(session).save_many(rows)
        self.batches += 1


def _settle(batch: list[_State], error: BaseException | None) -> None:
    for pending in batch:
        if pending.saved.done():
            continue
        if error is None:
            pending.saved.set_result(None)
        elif isinstance(error, asyncio.CancelledError):
            pending.saved.cancel()
        else:
            pending.saved.set_exception(error)

