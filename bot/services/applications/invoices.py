"""开票 订单号: an applicant asks for an order's invoice with the INVOICE form (invoice type, the
company's name and USCC as 抬头 and 税号, bank and address for a 专用发票, the e-mail for the
electronic invoice). The answers are kept on the order and the technicians told what to issue;
a technician's 发票 (review/desk.py) then records the invoice and sends it."""

from typing import TYPE_CHECKING

from bot.domain.flow import FormFlow
from bot.domain.forms import INVOICE
from bot.domain.invoices import describe_request, invoice_refused
from bot.domain.lifecycle import Event
from bot.services.applications.commands import Asked, may_see, not_found, order_number_of
from bot.services.filing import note_order
from bot.services.messages import Account
from bot.services.order_views import company_label
from storage.models import Handler
from storage.repositories import Conversations, Orders

if TYPE_CHECKING:
    from bot.services.applications.dialogue import Dialogue

async def request_invoice(dialogue: "Dialogue", asked: Asked) -> list[str]:
    """「开票 订单号」: the form starts with 抬头 and 税号 filled from the company profile."""
    number, why = order_number_of("开票", asked.argument)
    if number is None:
        return [why]
    async with dialogue.db.transaction() as session:
        order = await Orders(session).by_number(number)
    if not may_see(asked.bound, order):
        return [not_found(number)]
    assert order is not None
    if why := invoice_refused(order.status, order.amount_cents, order.invoice):
        return [f"订单 {number}：{why}"]
    company = asked.bound.company
    head, *rest = await dialogue._start(
        asked, INVOICE, {"order_number": number, "invoice_title": company.name,
                         "tax_id": company.uscc})
    return [f"{head}\n订单 {number} 的发票抬头为【{company.name}】，纳税人识别号 {company.uscc}"
            "（取自本单位登记信息）。", *rest]


async def file_request(dialogue: "Dialogue", account: Account, handler: Handler,
                       flow: FormFlow) -> list[str]:
    """The form confirmed: the request goes on the order, its log and the technicians' chat."""
    values, _ = flow.result()
    number = values["order_number"]
    request = {k: v for k, v in values.items() if k != "order_number"}
    async with dialogue.db.transaction() as session:
        await Conversations(session).delete(account.platform, account.user_id)
        order = await Orders(session).by_number(number)
        if not may_see(handler, order):
            return [not_found(number) + "开票申请未提交。"]
        assert order is not None
        if why := invoice_refused(order.status, order.amount_cents, order.invoice):
            return [f"订单 {number}：{why}开票申请未提交。"]
        again = bool((order.invoice or {}).get("request"))
        order.invoice = {**(order.invoice or {}), "request": request}
        note_order(session, order, str(account), Event.INVOICE_REQUESTED,
                   reason=request["invoice_type"], detail=request)
        await dialogue.notifier.notify_staff(
            session, f"【开票申请】订单 {number}（{company_label(order)}）"
            f"{'更新了开票信息' if again else ''}：{describe_request(request)}\n"
            f"开好后发送「发票 {number} 发票号码 电子发票链接」登记，申请人会收到发票。"
            f"完整信息请私聊发送「查看 {number}」。", order.id)
    await dialogue.notifier.deliver()
    mailed = (f"，电子发票会发送到 {request['invoice_email']}"
              if dialogue.settings.email.enabled else "")
    return [f"已提交订单 {number} 的开票申请（{request['invoice_type']}）。发票开好后会在这里"
            f"通知您{mailed}。回复「查询 {number}」可查看。"]
