"""Group commit of the chat's form states (storage/batching.py): one writer per database saves
the states of every applicant talking at that moment in one transaction.

``save`` returns once that state is committed: a reply is sent only after its own write is
durable, so a kill never loses an acknowledged answer. Per-account order is the caller's
(Dialogue holds an account's lock across ``save``: an account has at most one state in flight).
The memo is the caller's too: these writes go through a Core connection, which the memo's
session hooks do not see, so the caller keeps what it saved (or forgets it when saving failed).

A lone applicant's state (a batch of one) is one statement on a connection that commits each
statement by itself: atomic and durable as a transaction of one statement is, and a round
trip to the driver's thread shorter (docs/benchmarks.md). A crowd's batch is one executemany
in a transaction on a second connection: one commit for them all.
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
        # its own, held between batches: by whether it autocommits (a batch of one row)
        self._connections: dict[bool, AsyncConnection] = {}

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
        alone = len(rows) == 1
        retry = alone in self._connections
        while True:
            try:
                connection = self._connections.get(alone) or await self._connect(alone)
                async with outages():
                    if alone:
                        await save_states(connection, rows)
                    else:
                        async with connection.begin():
                            await save_states(connection, rows)
                return [None] * len(rows)
            except BaseException as error:
                await self._let_go(alone, broken=True)  # the next batch connects afresh
                if not (retry and is_outage(error)):
                    raise
                retry = False

    async def _connect(self, autocommit: bool) -> AsyncConnection:
        connection = await self.db.connect()
        if autocommit:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        self._connections[autocommit] = connection
        return connection

    async def _let_go(self, *which: bool, broken: bool = False) -> None:
        for autocommit in which or (True, False):
            connection = self._connections.pop(autocommit, None)
            if connection is None:
                continue
            try:
                if broken:  # whatever state it is in, the pool must not hand it out again
                    await connection.invalidate()
                await connection.close()
            except Exception as error:  # already broken: nothing more to release
                logger.debug(f"state writer: closing its connection: {error}")
