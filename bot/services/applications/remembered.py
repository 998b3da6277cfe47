"""What a new form offers again (the rules are bot/domain/remembered.py), read only from orders
this account may see the answers of: a verified account, its company's orders filed by the
company's verified handlers (never another company's, never a pending claimant's); a pending
account, only the orders it filed itself (docs/conversation.md)."""

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.forms import Form
from bot.domain.lifecycle import OrderStatus, OrderType
from bot.domain.remembered import remembered
from bot.services.applications.commands import is_verified
from storage.models import Handler
from storage.repositories import Handlers, Orders

EARLIER_ORDERS = 20
# a binding request's 经办人 is whoever asked to bind; a renewal asks nothing
NOT_READ_TYPES = (OrderType.BINDING, OrderType.RENEWAL)
# answers never submitted, refused by a technician (until corrected) or withdrawn
NOT_READ_STATUSES = (OrderStatus.DRAFT, OrderStatus.REJECTED, OrderStatus.CANCELLED)


async def remembered_answers(session: AsyncSession, handler: Handler,
                             form: Form) -> dict[str, str]:
    """The answers ``form`` offers this account, from the newest orders it may read."""
    if is_verified(handler):
        filers = [h.id for h in await Handlers(session).verified_of(handler.company_id)]
    else:
        filers = [handler.id]
    orders = await Orders(session).recent_filed_by(handler.company_id, filers, NOT_READ_TYPES,
                                                   NOT_READ_STATUSES, EARLIER_ORDERS)
    return remembered(form, (order.fields for order in orders))
