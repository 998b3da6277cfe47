"""Companies (one per USCC) and their handlers (a chat account bound to a company)."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.trust import HandlerStatus
from storage.account_memo import BindingRow
from storage.models import Company, Handler


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
        return await self.session.scalar(
            select(Handler).where(Handler.platform == platform, Handler.user_id == user_id))

    async def binding_of(self, platform: str, user_id: str) -> BindingRow | None:
        """The account's binding, read with one Core statement (no ORM object); None when it
        is not bound or a technician unbound it."""
        row = (await self.session.execute(
            select(Handler.id, Handler.company_id, Company.name, Handler.status)
            .join(Company, Company.id == Handler.company_id)
            .where(Handler.platform == platform, Handler.user_id == user_id,
                   Handler.status != HandlerStatus.REMOVED))).first()
        return BindingRow(*row) if row is not None else None

    async def bindings_of(self, accounts: Sequence[tuple[str, str]]
                          ) -> dict[tuple[str, str], BindingRow]:
        """``binding_of`` for many accounts in one statement: those bound, by account."""
        rows = await self.session.execute(
            select(Handler.platform, Handler.user_id, Handler.id, Handler.company_id,
                   Company.name, Handler.status)
            .join(Company, Company.id == Handler.company_id)
            .where(tuple_(Handler.platform, Handler.user_id).in_(accounts),
                   Handler.status != HandlerStatus.REMOVED))
        return {(platform, user_id): BindingRow(*rest)
                for platform, user_id, *rest in rows}

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
        (its row is reused: one row per account)."""
        handler = await self.get(platform, user_id)
        if handler is None:
            handler = Handler(platform=platform, user_id=user_id, company=company)
            self.session.add(handler)
        else:
            handler.company, handler.status = company, HandlerStatus.PENDING
            handler.verified_at = handler.verified_by = None
        await self.session.flush()
        return handler
