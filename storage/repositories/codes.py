"""One-time codes (a key agent's pairing code, a join code): claimed by one conditional UPDATE."""

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import JoinCode, PairingCode

C = TypeVar("C", PairingCode, JoinCode)


async def claim(session: AsyncSession, model: type[C], code_hash: str, now: datetime,
                **used: Any) -> C | None:
    """The code, marked used (``used_at`` and ``used``), when it exists, is unused and has not
    expired; otherwise None.

    One conditional UPDATE decides: of concurrent claims exactly one changes the row (SQLite
    ignores ``FOR UPDATE``, so a read-then-write would let several through). A caller that
    refuses after claiming rolls the claim back with its transaction."""
    claimed = await session.execute(
        update(model)
        .where(model.code_hash == code_hash, model.used_at.is_(None), model.expires_at > now)
        .values(used_at=now, **used)
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        return None
    return await session.scalar(select(model).where(model.code_hash == code_hash))
