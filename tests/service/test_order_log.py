"""The order log on SQLite and PostgreSQL: ``move_order`` and ``note_order`` write it, the typed
columns read back as enum members, and the database keeps the same plain strings as before."""

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from bot.config import Settings
from bot.domain.lifecycle import Event, OrderStatus, OrderType, TransitionNotAllowed
from bot.samples import fake_uscc
from bot.services.filing import file_order, move_order, note_order
from storage.db import Database
from storage.models import Order
from storage.repositories import Companies, Orders


async def test_moves_and_notes_are_logged_as_plain_strings(
        database_url: str, settings: Settings) -> None:
    db = Database(database_url)
    await db.migrate()
    async with db.transaction() as session:
        company = await Companies(session).add(fake_uscc(), "临沂日志测试有限公司", None)
        order = await file_order(
            session, settings, order_type=OrderType.CERTIFICATE,
            values={"apply_kind": "新办", "region": "临沂", "ukey_count": "1"}, scans={},
            company_id=company.id, actor="qq:1")
        number = order.number
        assert move_order(session, order, "qq:2", Event.APPROVE) is OrderStatus.SUBMITTED
        note_order(session, order, "qq:2", Event.INVOICE, reason="增值税普通发票")
        with pytest.raises(TransitionNotAllowed, match="不能发货"):
            move_order(session, order, "qq:2", Event.SHIP)
    async with db.transaction() as session:
        order = await Orders(session).by_number(number)
        assert order is not None
        assert order.type is OrderType.CERTIFICATE
        assert order.status is OrderStatus.APPROVED
        events = await Orders(session).events(order.id)
        assert [(e.event, e.from_status, e.to_status) for e in events] == [
            (Event.SUBMIT, OrderStatus.DRAFT, OrderStatus.SUBMITTED),
            (Event.APPROVE, OrderStatus.SUBMITTED, OrderStatus.APPROVED),
            (Event.INVOICE, OrderStatus.APPROVED, OrderStatus.APPROVED)]
        assert all(e.event is Event(e.event) for e in events)
        raw = (await session.execute(text(
            "SELECT o.type, o.status, e.event, e.to_status FROM orders o "
            "JOIN order_events e ON e.order_id = o.id ORDER BY e.id"))).all()
        assert [tuple(r) for r in raw] == [
            ("certificate", "approved", "submit", "submitted"),
            ("certificate", "approved", "approve", "approved"),
            ("certificate", "approved", "invoice", "approved")]
        assert all(type(v) is str for r in raw for v in r)  # plain text, as before the enums
    async with db.transaction() as session:
        order = await Orders(session).by_number(number)
        assert order is not None
        with pytest.raises(ValueError, match="'lost' is not a valid OrderStatus"):
            order.status = "lost"
        with pytest.raises(StatementError, match="'lost' is not a valid OrderStatus"):
            await session.scalar(select(Order).where(Order.status == "lost"))
    await db.close()
