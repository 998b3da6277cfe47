"""The unlock mailbox: the poller's place in each folder, and the log of every mail handled."""

from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import InboundMail, MailboxState


class Mailboxes:
    """The poller's place in each folder, and the log of every mail it handled."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def last_uid(self, mailbox: str, uidvalidity: int) -> int:
        """The last UID handled; 0 when the folder is new or its UIDVALIDITY changed (then
        every mail is looked at again, and the Message-ID log keeps each filed once)."""
        state = await self.session.scalar(
            select(MailboxState).where(MailboxState.mailbox == mailbox))
        if state is None:
            self.session.add(MailboxState(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=0))
            return 0
        if state.uidvalidity != uidvalidity:
            state.uidvalidity, state.last_uid = uidvalidity, 0
        return state.last_uid

    async def advance(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        await self.session.execute(
            update(MailboxState)
            .where(MailboxState.mailbox == mailbox, MailboxState.uidvalidity == uidvalidity,
                   MailboxState.last_uid < uid)
            .values(last_uid=uid))

    async def by_message_id(self, message_id: str) -> InboundMail | None:
        return await self.session.scalar(
            select(InboundMail).where(InboundMail.message_id == message_id))

    async def last_filed_at(self, mailbox: str, uid: int) -> InboundMail | None:
        """The latest record of the mail at this place in the folder, if it was handled."""
        return await self.session.scalar(
            select(InboundMail).where(InboundMail.mailbox == mailbox, InboundMail.uid == uid)
            .order_by(InboundMail.id.desc()).limit(1))

    async def replies_since(self, sender: str, since: datetime) -> int:
        """Automatic replies queued to this address since then."""
        return await self._replies(InboundMail.sender == sender, since)

    async def replies_to_domain_since(self, domain: str, since: datetime) -> int:
        """Automatic replies queued to any address at this domain since then."""
        return await self._replies(InboundMail.sender.endswith(f"@{domain}", autoescape=True),
                                   since)

    async def _replies(self, whom: ColumnElement[bool], since: datetime) -> int:
        return await self.session.scalar(
            select(func.count()).select_from(InboundMail).where(
                whom, InboundMail.replied.is_(True), InboundMail.received_at >= since)) or 0
