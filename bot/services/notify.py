"""Telling people: the applicant (chat, and e-mail when they gave an address) and the staff.

Texts are composed here; delivery goes through the ``ChatChannel`` and ``MailQueue`` ports
(``bot/services/ports.py``: nonebot and the mail outbox in ``bot/adapters/``, a recorder in
tests).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.fields import Field
from bot.domain.lifecycle import Event, OrderType
from bot.domain.masking import mask_personal_numbers
from bot.domain.orders import order_title, yuan
from bot.services.messages import Account, Picture, Reply
from bot.services.payment import payment_url, qr_png
from bot.services.ports import ChatChannel, MailQueue
from storage.models import Order


@dataclass
class Notice:
    replies: list[Reply]  # chat
    subject: str  # mail
    body: str


def _names(fields: Sequence[Field]) -> str:
    return "、".join(f.title for f in fields)


SUBJECTS = {
    Event.APPROVE: "审核通过", Event.REJECT: "未通过审核，请修改后重新提交",
    Event.PAY: "已收到付款", Event.SHIP: "证书已寄出", Event.AWAIT_PICKUP: "证书可以领取了",
    Event.COMPLETE: "已办结", "invoice": "发票信息已登记",
    "unlocked": "UKEY 密码已重置", "unlock_failed": "远程解锁未成功",
    "agent_offline": "请启动密钥代理",
}


def applicant_notice(order: Order, event: str, settings: Settings,
                     fix: Sequence[Field] = (), reason: str = "") -> Notice:
    """What the applicant is told when ``event`` happened to ``order``."""
    number, title = order.number, order_title(OrderType(order.type), order.fields)
    head = f"您的订单 {number}（{title}）"
    subject = f"订单 {number}：{SUBJECTS[event]}"
    if event == Event.APPROVE and order.amount_cents:
        url = payment_url(settings.payment.url_template, number, order.amount_cents)
        text = (f"{head}已审核通过。请扫描下方二维码支付 {yuan(order.amount_cents)}，"
                f"付款后我们会尽快制作证书。\n也可打开支付链接：{url}")
        return Notice([text, Picture(qr_png(url), "支付二维码")], f"{subject}，请支付", text)
    if event == Event.APPROVE and order.type == OrderType.UNLOCK:
        text = f"{head}已审核通过，技术人员会尽快为您重置 UKEY 密码，完成后会通知您。"
    elif event == Event.APPROVE:
        text = f"{head}已审核通过。"
    elif event == Event.REJECT:
        todo = (f"需要修改：{_names(fix)}。\n" if fix else "")
        text = (f"{head}未通过审核。\n驳回理由：{order.reject_reason}\n{todo}"
                f"请回复「修改 {number}」按提示修改后重新提交，其余内容无需重填。")
    elif event == Event.PAY:
        text = f"已收到订单 {number} 的付款 {yuan(order.amount_cents)}，我们将尽快为您制作证书。"
    elif event == Event.SHIP:
        text = (f"{head}的证书已寄出：{order.express_company} 快递单号 {order.express_number}。"
                "请注意查收。")
    elif event == Event.AWAIT_PICKUP:
        text = f"{head}的证书已可领取。请经办人携带本人身份证原件和单位授权书到服务大厅自取。"
    elif event == Event.COMPLETE:
        text = f"{head}已办结，感谢您的使用。"
    elif event == "unlocked":
        text = f"{head}已完成：UKEY 密码已重置，请使用您刚才在电脑上设置的新密码。"
    elif event == "unlock_failed":
        text = (f"{head}的远程解锁没有成功：{reason}\n技术人员已收到通知，会尽快与您联系。"
                f"发送「解锁状态 {number}」可查看进度。")
    elif event == "agent_offline":
        text = (f"{head}已审核通过，等待您的密钥代理上线。请在插着 UKEY 的电脑上运行"
                "「cadesk-agent run」；如尚未绑定，请先发送「绑定密钥代理」。")
    else:  # invoice
        text = f"{head}的发票信息已登记：{order.invoice_info}"
    return Notice([text], subject, text)


def staff_notice(order: Order, changed: Sequence[Field] | None) -> str:
    """New or resubmitted order, for the staff group: personal numbers never shown."""
    title = order_title(OrderType(order.type), order.fields)
    if changed is None:
        what = "新订单待审核"
    else:
        what = f"已重新提交，修改了：{_names(changed) or '（无改动）'}"
    return mask_personal_numbers(
        f"【{title}】{order.number} {what}\n单位：{order.company.name}\n"
        f"发送「查看 {order.number}」审核。")


class Notifier:
    def __init__(self, settings: Settings, chat: ChatChannel, mail: MailQueue) -> None:
        self.settings = settings
        self.chat = chat
        self.mail = mail

    async def queue_mail(self, session: AsyncSession, order: Order, notice: Notice) -> None:
        """Inside the transaction that made the change: the mail is as durable as the change.
        Goes to the handler's address and to whoever mailed the order in (threaded there)."""
        addresses = {a for a in (order.handler.email if order.handler else None,
                                 order.contact_email) if a}
        thread = ({"In-Reply-To": order.source_message_id,
                   "References": order.source_message_id} if order.source_message_id else None)
        for address in sorted(addresses):
            await self.mail.enqueue(session, address, notice.subject, notice.body,
                                    order_id=order.id,
                                    headers=thread if address == order.contact_email else None)

    async def tell_applicant(self, order: Order, notice: Notice) -> None:
        """After the commit: the chat message now, and a nudge to the mail worker."""
        self.mail.wake()
        handler = order.handler
        if handler is None:
            return
        account = Account(handler.platform, handler.user_id)
        if not await self.chat.send(account, notice.replies):
            logger.warning(f"order {order.number}: {account} could not be told in chat")

    async def tell_staff(self, text: str) -> None:
        text = mask_personal_numbers(text)
        staff = self.settings.staff
        if staff.group:
            await self.chat.send_group(Account.parse(staff.group), [text])
            return
        for technician in staff.technicians:
            await self.chat.send(Account.parse(technician), [text])
