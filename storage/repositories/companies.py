"""Companies (one per USCC) and their handlers (a chat account bound to a company)."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.trust import HandlerStatus
from storage.account_memo import BindingRow
from storage.models import Company, Handler, JoinedAccount


class Companies:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_uscc(self, uscc: str) -> Company | None:
        return await self.session.scalar(select(Company).where(Company.uscc == uscc))

    async def by_name(self, name: str) -> Company | None:
        return await self.session.scalar(select(Company).where(Company.name == name))

    async def find(self, wanted: str) -> Sequence[Company]:
        """The company whose USCC ``wanted`` is, or those whose name contains it."""
        return (await self.session.scalars(
            select(Company).where((Company.uscc == wanted.upper())
                                  | Company.name.contains(wanted))
            .order_by(Company.name))).all()

    async def with_pending_handlers(self) -> Sequence[Company]:
        """The companies that have an account waiting to be verified."""
        pending = select(Handler.company_id).where(Handler.status == HandlerStatus.PENDING)
        return (await self.session.scalars(
            select(Company).where(Company.id.in_(pending)).order_by(Company.name))).all()

    async def add(self, uscc: str, name: str, pledge_accepted_at: datetime | None) -> Company:
        company = Company(uscc=uscc, name=name, pledge_accepted_at=pledge_accepted_at)
        self.session.add(company)
        await self.session.flush()
        return company


class Handlers:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, platform: str, user_id: str) -> Handler | None:
        """The handler the account acts as: the one it was joined to, else its own binding
        (removed ones too: the caller decides what a removed binding may still do)."""
        return await self.session.scalar(
            select(Handler).where(_acts_as(platform, user_id)))

    async def by_id(self, handler_id: int) -> Handler | None:
        return await self.session.get(Handler, handler_id)

    async def own(self, platform: str, user_id: str) -> Handler | None:
        """The account's own binding (not one it was joined to)."""
        return await self.session.scalar(
            select(Handler).where(Handler.platform == platform, Handler.user_id == user_id))

    async def binding_of(self, platform: str, user_id: str) -> BindingRow | None:
        """The account's binding (its own, or its handler's when joined), as Core rows (no ORM
        object); None when it is not bound or a technician unbound it."""
        return (await self.bindings_of([(platform, user_id)])).get((platform, user_id))

    async def bindings_of(self, accounts: Sequence[tuple[str, str]]
                          ) -> dict[tuple[str, str], BindingRow]:
        """``binding_of`` for many accounts in two statements (their own bindings, then the
        handlers joined ones act as, which win): those bound, by account."""
        binding = (Handler.id, Handler.company_id, Company.name, Handler.status)
        own = (select(Handler.platform, Handler.user_id, *binding)
               .where(tuple_(Handler.platform, Handler.user_id).in_(accounts)))
        joined = (select(JoinedAccount.platform, JoinedAccount.user_id, *binding)
                  .join(Handler, Handler.id == JoinedAccount.handler_id)
                  .where(tuple_(JoinedAccount.platform, JoinedAccount.user_id).in_(accounts)))
        found: dict[tuple[str, str], BindingRow] = {}
        for query in (own, joined):
            rows = await self.session.execute(
                query.join(Company, Company.id == Handler.company_id)
                .where(Handler.status != HandlerStatus.REMOVED))
            found |= {(platform, user_id): BindingRow(*rest) for platform, user_id, *rest in rows}
        return found

    async def set_email(self, handler_id: int, address: str | None) -> None:
        """Where the handler's notices are mailed; ``None`` for chat only."""
        handler = await self.session.get(Handler, handler_id)
        assert handler is not None
        handler.email = address

    async def of_company(self, company_id: int) -> Sequence[Handler]:
        """Every account bound to the company (removed ones too), in binding order."""
        return (await self.session.scalars(
            select(Handler).where(Handler.company_id == company_id)
            .order_by(Handler.id))).all()

    async def verified_of(self, company_id: int) -> Sequence[Handler]:
        """The accounts that act for the company: told of everything done in its name."""
        return (await self.session.scalars(
            select(Handler).where(Handler.company_id == company_id,
                                  Handler.status == HandlerStatus.VERIFIED)
            .order_by(Handler.id))).all()

    async def bind(self, platform: str, user_id: str, company: Company) -> Handler:
        """A new binding, pending until verified; an account a technician removed binds anew
        (its row is reused: one row per account). Binding anew ends every join: a joined
        account leaves its handler, and the accounts joined to this one's old binding do not
        follow it to the new one."""
        stale = list((await self.session.scalars(select(JoinedAccount).where(
            JoinedAccount.platform == platform, JoinedAccount.user_id == user_id))).all())
        handler = await self.own(platform, user_id)
        if handler is None:
            handler = Handler(platform=platform, user_id=user_id, company=company)
            self.session.add(handler)
        else:
            stale = [*stale, *(await self.session.scalars(
                select(JoinedAccount).where(JoinedAccount.handler_id == handler.id))).all()]
            handler.company, handler.status = company, HandlerStatus.PENDING
            handler.verified_at = handler.verified_by = None
        for row in stale:  # ORM deletes: the account memo sees which accounts they were
            await self.session.delete(row)
        await self.session.flush()
        return handler


def _acts_as(platform: str, user_id: str) -> ColumnElement[bool]:
    """The handler row an account acts as: the one it was joined to, else its own (a join
    exists only beside no own row or a removed one). Two scalar lookups by unique keys, then
    the primary key: every step an index."""
    joined = select(JoinedAccount.handler_id).where(
        JoinedAccount.platform == platform, JoinedAccount.user_id == user_id)
    own = select(Handler.id).where(Handler.platform == platform, Handler.user_id == user_id)
    return Handler.id == func.coalesce(joined.scalar_subquery(), own.scalar_subquery())
