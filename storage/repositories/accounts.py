"""One person, several channels: the chat accounts joined to a handler, and the one-time codes
that join them (docs/conversation.md, "One person, several channels")."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.messages import Account
from storage.models import Handler, JoinCode, JoinedAccount
from storage.repositories.codes import claim
from storage.repositories.companies import Handlers


class JoinedAccounts:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, platform: str, user_id: str) -> JoinedAccount | None:
        return await self.session.scalar(select(JoinedAccount).where(
            JoinedAccount.platform == platform, JoinedAccount.user_id == user_id))

    async def of_handler(self, handler_id: int) -> Sequence[JoinedAccount]:
        """The accounts joined to the handler, in joining order."""
        return (await self.session.scalars(
            select(JoinedAccount).where(JoinedAccount.handler_id == handler_id)
            .order_by(JoinedAccount.id))).all()

    async def of_handlers(self, handler_ids: Sequence[int]) -> Sequence[JoinedAccount]:
        """The accounts joined to any of the handlers (a company's, for 成员)."""
        return (await self.session.scalars(
            select(JoinedAccount).where(JoinedAccount.handler_id.in_(handler_ids))
            .order_by(JoinedAccount.id))).all()

    async def join(self, handler: Handler, account: Account, joined_from: str) -> JoinedAccount:
        """``account`` acts as ``handler`` from now on. Written now: an account joined at this
        instant elsewhere fails here (IntegrityError), not at the commit."""
        row = JoinedAccount(handler_id=handler.id, platform=account.platform,
                            user_id=account.user_id, joined_from=joined_from)
        self.session.add(row)
        await self.session.flush()
        return row

    async def leave(self, rows: Sequence[JoinedAccount]) -> None:
        """The accounts no longer act as their handler (ORM deletes: the account memo sees
        which accounts changed)."""
        for row in rows:
            await self.session.delete(row)
        await self.session.flush()


class JoinCodes:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, code: JoinCode) -> None:
        self.session.add(code)

    async def claim(self, code_hash: str, now: datetime, used_by: str) -> JoinCode | None:
        """The code, marked used by ``used_by``, when it is unused and unexpired."""
        return await claim(self.session, JoinCode, code_hash, now, used_by=used_by)

    async def withdraw(self, handler_id: int, now: datetime) -> None:
        """The handler's unused codes can no longer join an account (it was unbound)."""
        await self.session.execute(
            update(JoinCode)
            .where(JoinCode.handler_id == handler_id, JoinCode.used_at.is_(None),
                   JoinCode.expires_at > now)
            .values(expires_at=now).execution_options(synchronize_session=False))


def handler_accounts(handler: Handler, joined: Sequence[JoinedAccount]) -> list[Account]:
    """A handler's accounts: the one that bound first, then those joined, in joining order."""
    return [Account(handler.platform, handler.user_id),
            *(Account(j.platform, j.user_id) for j in joined)]


async def accounts_of(session: AsyncSession, account: Account) -> list[Account]:
    """The accounts joined with ``account`` (one person's channels), itself first; ``[account]``
    for an account joined with none (or bound to no one)."""
    handler = await Handlers(session).get(account.platform, account.user_id)
    if handler is None:
        return [account]
    others = handler_accounts(handler, await JoinedAccounts(session).of_handler(handler.id))
    return [account, *(a for a in others if a != account)]
