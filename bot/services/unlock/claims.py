"""A company known only from what an unlock mail claims: recorded when a technician approves.

The mailbox never creates or renames a company (a name from outside is a claim, a USCC not on
record is a claim). Such an order waits with ``company_id = NULL``, the claimed USCC and name in
its fields. Approving it is the evidence the company exists: its record is made then, in the
approval's transaction, or the order joins the record that appeared meanwhile under that USCC.
"""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.lifecycle import OrderType
from bot.domain.order_log import Event
from bot.domain.review import ReviewRefused
from bot.services.filing import note_order
from storage.models import Order
from storage.repositories import Companies


async def record_claimed_company(session: AsyncSession, order: Order, actor: str) -> str:
    """Give an approved company-less order its company; what was done, for the technician
    ("" when the order had a company already)."""
    if order.company_id is not None or order.type is not OrderType.UNLOCK:
        return ""
    uscc, name = order.fields.get("uscc", ""), order.fields.get("company_name", "")
    if not uscc or not name:
        raise ReviewRefused(f"订单 {order.number} 没有单位名称或统一社会信用代码，无法登记单位，"
                            f"请「驳回 {order.number} 理由」让申请人补充。")
    companies = Companies(session)
    company = await companies.by_uscc(uscc)
    joined = company is not None
    if company is None:
        try:
            company = await companies.add(uscc, name, None)
        except IntegrityError:  # the same USCC recorded by another approval this very moment
            raise ReviewRefused("该单位刚被另一笔审核登记，请再发一次「通过 "
                                f"{order.number}」。") from None
    order.company = company
    note_order(session, order, actor, Event.COMPANY_RECORDED,
               detail={"uscc": uscc, "name": company.name, "claimed_name": name,
                       "joined": joined})
    if joined:
        differs = "" if company.name == name else f"（邮件所写名称「{name}」未采用）"
        return f"信用代码 {uscc} 已登记为【{company.name}】，订单已并入该单位{differs}。"
    return f"已按本订单登记新单位【{name}】（信用代码 {uscc}）。"
