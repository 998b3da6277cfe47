"""Orders, with their attachments (scans) and events (the order log)."""

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from bot.domain.lifecycle import FINAL
from storage.models import Attachment, Company, Order, OrderEvent

# An order in a list needs its columns and its company's name, not its scans' rows (a second
# query) nor its handler (two more joins); leaving them out halves 我的订单's query in bench/.
# Touching them on such an order raises rather than quietly loading or reading empty.
_LISTED = (raiseload(Order.attachments), raiseload(Order.handler))
# Written into the SQL as literals: SQLite uses an index restricted to these statuses (a partial
# index, WHERE status IN (...)) only when the query names the same values, not parameters.
_IN_REVIEW = bindparam("in_review", ("submitted", "resubmitted"), expanding=True,
                       literal_execute=True)


class Orders:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def number_taken(self, number: str) -> bool:
        return bool(await self.session.scalar(select(exists().where(Order.number == number))))

    async def add(self, order: Order, event: OrderEvent) -> Order:
        self.session.add(order)
        await self.session.flush()
        event.order_id = order.id
        self.session.add(event)
        await self.session.flush()
        return order

    async def by_id(self, order_id: int) -> Order | None:
        return await self.session.get(Order, order_id)

    async def by_number(self, number: str) -> Order | None:
        return await self.session.scalar(select(Order).where(Order.number == number))

    async def one_of_company(self, company_id: int, order_type: str,
                             status: str) -> Order | None:
        """One of the company's orders of this type in this status (e.g. its renewal draft)."""
        return await self.session.scalar(select(Order).where(
            Order.company_id == company_id, Order.type == order_type, Order.status == status))

    async def of_company(self, company_id: int, limit: int) -> Sequence[Order]:
        """The company's latest orders, as a list shows them: without scans or handler."""
        return (await self.session.scalars(
            select(Order).where(Order.company_id == company_id).options(*_LISTED)
            .order_by(Order.created_at.desc(), Order.id.desc()).limit(limit))).all()

    async def count_of_company(self, company_id: int) -> int:
        return await self.session.scalar(
            select(func.count()).select_from(Order).where(Order.company_id == company_id)) or 0

    async def of_handler(self, handler_id: int, limit: int) -> Sequence[Order]:
        """The orders one account filed itself (what a pending account may see), latest first."""
        return (await self.session.scalars(
            select(Order).where(Order.handler_id == handler_id).options(*_LISTED)
            .order_by(Order.created_at.desc(), Order.id.desc()).limit(limit))).all()

    async def recent_filed_by(self, company_id: int, handler_ids: Collection[int],
                              exclude_types: Collection[str], exclude_statuses: Collection[str],
                              limit: int) -> Sequence[Order]:
        """The company's latest orders filed by these accounts, as a list shows them: the
        answers a new form may offer again."""
        return (await self.session.scalars(
            select(Order).where(Order.company_id == company_id,
                                Order.handler_id.in_(list(handler_ids)),
                                Order.type.not_in(list(exclude_types)),
                                Order.status.not_in(list(exclude_statuses)))
            .options(*_LISTED)
            .order_by(Order.created_at.desc(), Order.id.desc()).limit(limit))).all()

    async def count_of_handler(self, handler_id: int) -> int:
        return await self.session.scalar(
            select(func.count()).select_from(Order).where(Order.handler_id == handler_id)) or 0

    async def latest_of_handler(self, handler_id: int, order_type: str) -> Order | None:
        """The account's latest order of this type (e.g. its binding request)."""
        return await self.session.scalar(
            select(Order).where(Order.handler_id == handler_id, Order.type == order_type)
            .order_by(Order.created_at.desc(), Order.id.desc()).limit(1))

    async def events(self, order_id: int) -> Sequence[OrderEvent]:
        return (await self.session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order_id)
            .order_by(OrderEvent.at, OrderEvent.id))).all()

    async def in_review(self, limit: int) -> Sequence[Order]:
        """The review queue, oldest first, as a list shows them: without scans or handler."""
        return (await self.session.scalars(
            select(Order).where(Order.status.in_(_IN_REVIEW)).options(*_LISTED)
            .order_by(Order.submitted_at, Order.id).limit(limit))).all()

    async def search(self, kinds: Collection[tuple[Collection[str], Collection[str]]],
                     company: str, limit: int) -> Sequence[Order]:
        """By kind (any of ``kinds``: a status among the first, a type among the second) and by
        a company's name (part of it) or USCC: the record's, or what the order claims (an
        unlock mail's company not on record has no record to join: an outer join keeps it)."""
        query = select(Order).outerjoin(Order.company)
        if kinds:
            query = query.where(or_(*(and_(Order.status.in_(statuses), Order.type.in_(types))
                                      for statuses, types in kinds)))
        if company:
            query = query.where(or_(
                Company.name.contains(company, autoescape=True), Company.uscc == company,
                Order.fields["company_name"].as_string().contains(company, autoescape=True),
                Order.fields["uscc"].as_string() == company))
        return (await self.session.scalars(
            query.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit))).all()

    async def last_event(self, order_id: int, event: str) -> OrderEvent | None:
        return await self.session.scalar(
            select(OrderEvent).where(OrderEvent.order_id == order_id, OrderEvent.event == event)
            .order_by(OrderEvent.at.desc(), OrderEvent.id.desc()).limit(1))


    async def scans_in_use(self, hashes: Iterable[str]) -> set[str]:
        """Which of these scans an attachment row still names."""
        wanted = list(set(hashes))
        if not wanted:
            return set()
        return set((await self.session.scalars(
            select(Attachment.sha256).where(Attachment.sha256.in_(wanted)).distinct())).all())

    async def delete_attachments(self, order: Order) -> list[Attachment]:
        """Delete the order's scan rows (every revision); the rows as they were."""
        rows = list((await self.session.scalars(
            select(Attachment).where(Attachment.order_id == order.id)
            .order_by(Attachment.id))).all())
        if rows:
            await self.session.execute(delete(Attachment).where(Attachment.order_id == order.id)
                                       .execution_options(synchronize_session=False))
            for row in rows:
                self.session.expunge(row)
            self.session.expire(order, ["attachments"])
        return rows

    async def finished_before(self, cutoff: datetime, *, with_scans: bool = False,
                              unmasked: bool = False, limit: int = 200) -> Sequence[int]:
        """Ids of orders that became final (已完成/已取消) before ``cutoff``: with scan rows
        left, or not yet masked; oldest first. Retention's work list."""
        final = [s.value for s in FINAL]
        query = select(Order.id).where(Order.status.in_(final), exists().where(
            OrderEvent.order_id == Order.id, OrderEvent.to_status.in_(final),
            OrderEvent.from_status.not_in(final), OrderEvent.at < cutoff))
        if with_scans:
            query = query.where(exists().where(Attachment.order_id == Order.id))
        if unmasked:
            query = query.where(~exists().where(OrderEvent.order_id == Order.id,
                                                OrderEvent.event == "numbers_masked"))
        return (await self.session.scalars(query.order_by(Order.id).limit(limit))).all()

    async def rejected_before(self, cutoff: datetime, limit: int = 200) -> Sequence[int]:
        """Ids of rejected orders with nothing logged on them since ``cutoff``: nobody has
        corrected them. Oldest first."""
        return (await self.session.scalars(
            select(Order.id).where(
                Order.status == "rejected",
                ~exists().where(OrderEvent.order_id == Order.id, OrderEvent.at >= cutoff))
            .order_by(Order.id).limit(limit))).all()

    async def all_of_handler(self, handler_id: int) -> Sequence[Order]:
        """Every order one account filed, with its scans' rows, oldest first (删除我的资料)."""
        return (await self.session.scalars(
            select(Order).where(Order.handler_id == handler_id)
            .order_by(Order.created_at, Order.id))).all()
