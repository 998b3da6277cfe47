"""Outgoing mail: e-mail queued with the change it reports, then sent and retried."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OutgoingMail


class OutgoingMails:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, mail_id: int) -> OutgoingMail | None:
        return await self.session.get(OutgoingMail, mail_id)

    async def due(self, now: datetime, limit: int) -> Sequence[OutgoingMail]:
        """Neither sent nor given up, and whose next attempt is due; oldest first."""
        return (await self.session.scalars(
            select(OutgoingMail).where(OutgoingMail.sent_at.is_(None),
                                       OutgoingMail.failed_at.is_(None),
                                       OutgoingMail.next_attempt_at <= now)
            .order_by(OutgoingMail.id).limit(limit))).all()

    async def backlog(self) -> tuple[int, datetime | None]:
        """How many mails wait to be sent (neither sent nor given up), and when the oldest was
        queued."""
        count, oldest = (await self.session.execute(
            select(func.count(), func.min(OutgoingMail.created_at))
            .where(OutgoingMail.sent_at.is_(None), OutgoingMail.failed_at.is_(None)))).one()
        return count, oldest

    async def pending_attachments(self) -> set[str]:
        """The scan-store files that mail not yet sent will read."""
        lists = (await self.session.scalars(
            select(OutgoingMail.attachments).where(OutgoingMail.sent_at.is_(None),
                                                   OutgoingMail.failed_at.is_(None),
                                                   OutgoingMail.attachments.is_not(None)))).all()
        return {a["sha256"] for files in lists for a in files or ()}

    async def delete_settled(self, before: datetime, limit: int = 5000) -> int:
        """Delete mail sent, or given up, before then (unsent mail is never deleted). Nothing
        to delete writes nothing (no lock taken on SQLite)."""
        ids = (await self.session.scalars(select(OutgoingMail.id).where(or_(
            OutgoingMail.sent_at < before, OutgoingMail.failed_at < before)).limit(limit))).all()
        if ids:
            await self.session.execute(delete(OutgoingMail).where(OutgoingMail.id.in_(ids)))
        return len(ids)
