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

from storage.batching import Batcher
from storage.db import Database
from storage.repositories.conversations import save_states

Row = tuple[str, str, dict[str, Any], datetime]  # platform, user_id, state, saved at


class StateWriter:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._batcher: Batcher[Row, None] = Batcher("state writer", self._write)

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

    async def _write(self, rows: list[Row]) -> list[None]:
        async with self.db.core_transaction() as connection:
            await save_states(connection, rows)
        return [None] * len(rows)
