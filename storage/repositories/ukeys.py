"""UKEYs on record: which company each token serial belongs to."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Ukey


class Ukeys:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_serial(self, token_serial: str) -> Ukey | None:
        """The record of this serial, with its company, or None when it is not on record."""
        return await self.session.scalar(select(Ukey).where(Ukey.token_serial == token_serial))

    async def add(self, ukey: Ukey) -> Ukey:
        """Written now (the serial is unique: a concurrent record of the same one fails here),
        with its company loaded."""
        self.session.add(ukey)
        await self.session.flush()
        await self.session.refresh(ukey, ["company"])
        return ukey
