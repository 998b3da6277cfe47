"""The chat's reads of accounts not in the memo (storage/account_memo.py), batched
(storage/batching.py): after a restart, or when a crowd arrives at once, the accounts that
nobody has read yet are read together, a binding and a form each, in one transaction, instead
of one transaction each queueing for the connection pool."""

from storage.account_memo import AccountRows, Key
from storage.batching import Batcher
from storage.db import Database
from storage.repositories import Conversations, Handlers


class AccountReader:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._batcher: Batcher[Key, AccountRows] = Batcher("account reader", self._read)

    @property
    def batches(self) -> int:
        return self._batcher.batches

    async def read(self, key: Key) -> AccountRows:
        """The account's binding and form as the database has them now."""
        return await self._batcher.submit(key)

    async def close(self) -> None:
        await self._batcher.close()

    async def _read(self, keys: list[Key]) -> list[AccountRows]:
        wanted = list(set(keys))
        async with self.db.transaction() as session:
            bindings = await Handlers(session).bindings_of(wanted)
            forms = await Conversations(session).forms_of(wanted)
        return [AccountRows(bindings.get(key), forms.get(key)) for key in keys]
