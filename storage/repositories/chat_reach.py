"""Where a windowed channel stands with each account: one upsert per message of theirs, and the
outbox's counts of replies and pushes."""

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Executable

from storage.models import ChatReach
from storage.repositories.upserts import account_upsert

# the month's pushes are left as they are
_UPDATED = ("last_message_at", "last_ref", "replies_used")


def _upsert(dialect: str) -> Executable:
    return account_upsert(ChatReach.__table__, dialect, _UPDATED)


# platform, user_id, at, the message's id, the replies answering it
MessageRow = tuple[str, str, datetime, str | None, int]


async def record_messages(connection: AsyncConnection, rows: Sequence[MessageRow]) -> None:
    """``ChatReaches.message`` for many accounts in one statement, on a Core connection (a
    group commit's batch); at most one row per account."""
    await connection.execute(_upsert(connection.dialect.name), [
        {"platform": platform, "user_id": user_id, "last_message_at": at, "last_ref": ref,
         "replies_used": replies, "push_month": "", "pushes_used": 0}
        for platform, user_id, at, ref, replies in rows])


class ChatReaches:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def message(self, platform: str, user_id: str, at: datetime, ref: str | None,
                      replies_used: int) -> None:
        """The user wrote (``ref``: the platform's id of the message) and was answered with
        ``replies_used`` replies: one statement."""
        await self.session.execute(_upsert(self.session.bind.dialect.name), {
            "platform": platform, "user_id": user_id, "last_message_at": at,
            "last_ref": ref, "replies_used": replies_used, "push_month": "",
            "pushes_used": 0})

    async def of(self, accounts: Iterable[tuple[str, str]]) -> Sequence[ChatReach]:
        keys = list(accounts)
        return (await self.session.scalars(select(ChatReach).where(
            tuple_(ChatReach.platform, ChatReach.user_id).in_(keys)))).all()

    async def count_reply(self, platform: str, user_id: str) -> None:
        await self.session.execute(
            update(ChatReach)
            .where(ChatReach.platform == platform, ChatReach.user_id == user_id)
            .values(replies_used=ChatReach.replies_used + 1))

    async def count_push(self, platform: str, user_id: str, month: str) -> None:
        """One more push this ``month`` ("2026-12"); a new month starts again from one."""
        reach = await self.session.scalar(select(ChatReach).where(
            ChatReach.platform == platform, ChatReach.user_id == user_id))
        if reach is None:
            reach = ChatReach(platform=platform, user_id=user_id, replies_used=0,
                              push_month=month, pushes_used=0)
            self.session.add(reach)
        if reach.push_month != month:
            reach.push_month, reach.pushes_used = month, 0
        reach.pushes_used += 1

    async def forget_before(self, before: datetime) -> int:
        """Delete the records of accounts that have not written since ``before`` (an openid and
        a message id each: nothing to keep once no window or month they count for is open)."""
        silent = or_(ChatReach.last_message_at < before,
                     ChatReach.last_message_at.is_(None)
                     & (ChatReach.push_month < f"{before:%Y-%m}"))  # only pushed to
        result = await self.session.execute(delete(ChatReach).where(silent))
        return result.rowcount or 0
