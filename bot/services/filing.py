"""Filing an order: the one way an order comes into being, from the chat or from the mailbox;
the one way it moves on (``move_order``: the status by the lifecycle table, and its event); and
the one way something else is logged on it (``note_order``). Nothing else writes the order log.

Runs inside the caller's transaction, so the order, its scans' rows and its first event are
written together with whatever else the caller writes (the end of a chat form, a mail's log).
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.fees import amount_cents
from bot.domain.lifecycle import INITIAL, Event, OrderStatus, OrderType, next_status
from bot.domain.order_log import NOTES
from bot.domain.order_numbers import new_order_number
from bot.domain.orders import number_prefix
from bot.domain.scans import ScanInfo
from storage.models import Attachment, Order, OrderEvent, utcnow
from storage.repositories import Orders


async def free_number(orders: Orders, prefix: str, tz: ZoneInfo) -> str:
    today = utcnow().astimezone(tz).date()
    for _ in range(10):
        number = new_order_number(prefix, today)
        if not await orders.number_taken(number):
            return number  # the unique constraint still guards a simultaneous draw
    raise RuntimeError("no free order number after 10 draws")


async def file_order(session: AsyncSession, settings: Settings, *, order_type: OrderType,
                     values: Mapping[str, str], scans: Mapping[str, ScanInfo],
                     company_id: int | None,  # None: an unlock mail's unregistered company
                     actor: str, handler_id: int | None = None, channel: str = "chat",
                     contact_email: str | None = None,
                     source_message_id: str | None = None) -> Order:
    orders = Orders(session)
    now = utcnow()
    number = await free_number(orders, number_prefix(order_type, values), settings.tz)
    status = next_status(order_type, INITIAL, Event.SUBMIT)
    order = Order(
        number=number, type=order_type, status=status, company_id=company_id,
        handler_id=handler_id, channel=channel, contact_email=contact_email,
        source_message_id=source_message_id, fields=dict(values),
        amount_cents=amount_cents(order_type, values, settings.fees),
        submitted_at=now, created_at=now,
        attachments=[Attachment(slot=key, sha256=s.sha256, format=s.format, size=s.size,
                                width=s.width, height=s.height) for key, s in scans.items()])
    await orders.add(order, _logged(order, actor, Event.SUBMIT, INITIAL, at=now))
    await session.refresh(order, ["company", "handler"])
    return order


def move_order(session: AsyncSession, order: Order, actor: str, event: Event, *,
               reason: str | None = None, detail: dict[str, Any] | None = None,
               at: datetime | None = None) -> OrderStatus:
    """Move the order by ``event`` (refused with the reason when the table has no such move)
    and log it, in the caller's transaction; returns the status it came from."""
    before = order.status
    order.status = next_status(order.type, before, event)
    session.add(_logged(order, actor, event, before, reason=reason, detail=detail, at=at))
    return before


def note_order(session: AsyncSession, order: Order, actor: str, event: Event, *,
               reason: str | None = None, detail: dict[str, Any] | None = None,
               at: datetime | None = None) -> None:
    """Log ``event`` (one of the log's notes) on the order, its status unchanged."""
    if event not in NOTES:
        raise ValueError(f"{event} moves an order: use move_order")
    session.add(_logged(order, actor, event, order.status, reason=reason, detail=detail,
                        at=at))


def _logged(order: Order, actor: str, event: Event, before: OrderStatus, *,
            reason: str | None = None, detail: dict[str, Any] | None = None,
            at: datetime | None = None) -> OrderEvent:
    """The log row of ``event``, from ``before`` to the order's status now."""
    return OrderEvent(order_id=order.id, actor=actor, event=event, from_status=before,
                      to_status=order.status, reason=reason, detail=detail, at=at or utcnow())
