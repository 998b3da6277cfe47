"""Outgoing chat: notices queued with the change they report, then delivered in order."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import HELD_PATHS, HELD_SQL, OutgoingChat


class OutgoingChats:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, message: OutgoingChat) -> None:
        self.session.add(message)

    async def get(self, message_id: int) -> OutgoingChat | None:
        return await self.session.get(OutgoingChat, message_id)

    async def pending(self, after_id: int, limit: int) -> Sequence[OutgoingChat]:
        """Neither sent nor dropped, oldest first from ``after_id`` on (the caller keeps each
        recipient's order)."""
        return (await self.session.scalars(
            select(OutgoingChat)
            .where(OutgoingChat.sent_at.is_(None), OutgoingChat.dropped_at.is_(None),
                   OutgoingChat.id > after_id)
            .order_by(OutgoingChat.id).limit(limit))).all()

    async def retry_now(self, platform: str, now: datetime) -> int:
        """A platform's bot is back: every message waiting for it is due at once (not those
        held for the person's next message: no bot can carry them)."""
        result = await self.session.execute(
            update(OutgoingChat)
            .where(OutgoingChat.platform == platform, OutgoingChat.sent_at.is_(None),
                   OutgoingChat.dropped_at.is_(None), OutgoingChat.next_attempt_at > now,
                   or_(OutgoingChat.path.is_(None), OutgoingChat.path.not_in(HELD_PATHS)))
            .values(next_attempt_at=now))
        return result.rowcount or 0

    async def held_for(self, accounts: Sequence[tuple[str, str]]) -> Sequence[OutgoingChat]:
        """The notices held for these accounts' next message (no path was open), in order."""
        return (await self.session.scalars(
            select(OutgoingChat)
            .where(HELD_SQL, OutgoingChat.sent_at.is_(None),
                   OutgoingChat.dropped_at.is_(None), OutgoingChat.is_group.is_(False),
                   tuple_(OutgoingChat.platform, OutgoingChat.recipient).in_(accounts))
            .order_by(OutgoingChat.id))).all()

    async def recheck_held(self, accounts: Sequence[tuple[str, str]], now: datetime) -> int:
        """The notices held for these accounts are looked at again now (a path may have
        opened: accounts joined)."""
        result = await self.session.execute(
            update(OutgoingChat)
            .where(HELD_SQL, OutgoingChat.sent_at.is_(None), OutgoingChat.dropped_at.is_(None),
                   tuple_(OutgoingChat.platform, OutgoingChat.recipient).in_(accounts))
            .values(next_attempt_at=now))
        return result.rowcount or 0

    async def of_order(self, order_id: int) -> Sequence[OutgoingChat]:
        """An order's notices in chat, as queued (for 历史 and for tests)."""
        return (await self.session.scalars(
            select(OutgoingChat).where(OutgoingChat.order_id == order_id)
            .order_by(OutgoingChat.id))).all()

    async def backlog(self) -> tuple[int, datetime | None]:
        """How many messages wait to be delivered (neither sent nor dropped), and when the
        oldest was queued. Those held for the person's next message are not late: they wait
        by the platform's rules, not for the bot."""
        count, oldest = (await self.session.execute(
            select(func.count(), func.min(OutgoingChat.created_at))
            .where(OutgoingChat.sent_at.is_(None), OutgoingChat.dropped_at.is_(None),
                   or_(OutgoingChat.path.is_(None), OutgoingChat.path.not_in(HELD_PATHS))))).one()
        return count, oldest

    async def delete_settled(self, before: datetime, limit: int = 5000) -> int:
        """Delete notices delivered, or dropped, before then (waiting ones are kept). Nothing
        to delete writes nothing (no lock taken on SQLite)."""
        ids = (await self.session.scalars(select(OutgoingChat.id).where(or_(
            OutgoingChat.sent_at < before, OutgoingChat.dropped_at < before)).limit(limit))).all()
        if ids:
            await self.session.execute(delete(OutgoingChat).where(OutgoingChat.id.in_(ids)))
        return len(ids)
