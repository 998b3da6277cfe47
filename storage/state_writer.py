"""Group commit of the chat's form states (storage/batching.py): one writer per database saves
the states of every applicant talking at that moment in one transaction.

``save`` returns once that state is committed: a reply is sent only after its own write is
durable, so a kill never loses an acknowledged answer. Per-account order is the caller's
(Dialogue holds an account's lock across ``save``: an account has at most one state in flight).
The memo is the caller's too: these writes go through a Core connection, which the memo's
session hooks do not see, so the caller keeps what it saved (or forgets it when saving failed).
"""

from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.batching import Batcher
from storage.db import Database, is_outage, outages
from storage.repositories.conversations import save_states

Row = tuple[str, str, dict[str, Any], datetime]  # platform, user_id, state, saved at


class StateWriter:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._batcher: Batcher[Row, None] = Batcher("state writer", self._write)
        self._connection: AsyncConnection | None = None  # its own, held between batches

    @property
    def batches(self) -> int:
        return self._batcher.batches

    async def save(self, platform: str, user_id: str, state: dict[str, Any],
                   at: datetime) -> None:
        """Return once ``state`` is the account's committed form; raises what the commit
        raised (``DatabaseUnavailable`` when the database is down)."""
        await self._batcher.submit((platform, user_id, state, at))

    async def close(self) -> None:
        """Write what is waiting, then stop."""
        await self._batcher.close()
        await self._let_go()

    async def _write(self, rows: list[Row]) -> list[None]:
        # a held connection may have died while idle (a server restart): then the batch is
        # tried once more on a fresh one, as the pool's pre-ping would (an upsert of the same
        # state twice is harmless, should the break have come after the commit)
        retry = self._connection is not None
        while True:
            try:
                if self._connection is None:
                    self._connection = await self.db.connect()
                async with outages(), self._connection.begin():
                    await save_states(self._connection, rows)
                return [None] * len(rows)
            except BaseException as error:
                await self._let_go(broken=True)  # the next batch connects afresh
                if not (retry and is_outage(error)):
                    raise
                retry = False

    async def _let_go(self, broken: bool = False) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if broken:  # whatever state it is in, the pool must not hand it out again
                await connection.invalidate()
            await connection.close()
        except Exception as error:  # already broken: nothing more to release
            logger.debug(f"state writer: closing its connection: {error}")
