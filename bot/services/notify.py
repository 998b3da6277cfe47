"""Telling people: the applicant (chat, and e-mail when they gave an address) and the staff.

Texts are composed here, the applicant's as one table of named templates (``TEMPLATES``, keyed
by the order event or the ``NoticeKind``, as django-helpdesk names its mail templates); delivery
goes through the ``ChatChannel`` and ``MailQueue`` ports (``bot/services/ports.py``: nonebot and
the mail outbox in ``bot/adapters/``, a recorder in tests).
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.fields import Field
from bot.domain.lifecycle import Event, OrderType
from bot.domain.masking import mask_personal_numbers
from bot.domain.orders import order_title, yuan
from bot.services.agents.guide import guide_url
from bot.services.centre import pickup_line, reach
from bot.services.messages import Account, MailAttachment, Picture, Reply
from bot.services.order_views import company_label
from bot.services.payment import payment_url, qr_png
from bot.services.ports import ChatQueue, MailQueue, NoticeMail
from storage.db import Database
from storage.models import Handler, Order, utcnow


@dataclass
class Notice:
    replies: list[Reply]  # chat
    subject: str  # mail
    body: str
    attachments: tuple[MailAttachment, ...] = ()  # files the mail carries
    cc: tuple[str, ...] = ()  # mailed too, beyond the order's usual addresses
    private: bool = False  # never mailed, not even when the chat cannot carry it (a PIN)


def _names(fields: Sequence[Field]) -> str:
    return "、".join(f.title for f in fields)


class NoticeKind(StrEnum):
    """What the applicant is told that is no event in the order log (``Event`` keys the rest)."""

    PAYMENT_DUE = "payment_due"  # approved, with a fee to pay
    UNLOCK_APPROVED = "unlock_approved"  # approved: the clerk types the new PIN at the agent
    UNLOCK_APPROVED_BY_STAFF = "unlock_approved_by_staff"  # approved, [agents] off: the centre
    UNLOCKED = "unlocked"  # the key agent reset the PIN
    UNLOCK_FAILED = "unlock_failed"
    UKEY_UNRECORDED = "ukey_unrecorded"  # the UKEY read is not on record: a technician checks
    UKEY_NOT_OURS = "ukey_not_ours"  # the UKEY read is on record for another company: stopped
    BINDING_VERIFIED = "binding_verified"  # a binding request approved: the account is verified
    BINDING_REFUSED = "binding_refused"  # a first account's request rejected: 修改 and resubmit
    BINDING_NOT_VOUCHED = "binding_not_vouched"  # a later account's request refused: ask again
    REJECTION_LAPSED = "rejection_lapsed"  # rejected, never corrected: cancelled by retention


@dataclass(frozen=True)
class Template:
    """A notice's texts, formatted with the order's values (see ``_values``)."""

    subject: str  # the mail's, after 「订单 {number}：」
    chat: str
    body: str | None = None  # the mail's; None: the chat text
    pay: bool = False  # the payment link's QR code follows the chat text


TEMPLATES: Mapping[Event | NoticeKind, Template] = {
    Event.APPROVE: Template("审核通过", "{head}已审核通过。"),
    NoticeKind.PAYMENT_DUE: Template(
        "审核通过，请支付",
        "{head}已审核通过。请扫描下方二维码支付 {amount}，付款后我们会尽快制作证书。\n"
        "也可打开支付链接：{url}", pay=True),
    NoticeKind.UNLOCK_APPROVED: Template(
        "审核通过，请在密钥代理窗口输入新密码",
        "{head}已审核通过。请在插着 UKEY 的电脑上的密钥代理窗口输入新密码（两次）：窗口提示"
        "「请输入新密码」时输入您想设置的新 UKEY 密码，提示「请再次输入新密码」时再输入一次。"
        "密钥代理没有运行的，请在那台电脑上运行「cadesk-agent run」；还没有安装或绑定的，请先发送"
        "「绑定密钥代理」，按回复操作（说明：{guide}）。完成后会在这里通知您。"),
    NoticeKind.UNLOCK_APPROVED_BY_STAFF: Template(
        "审核通过", "{head}已审核通过，服务中心会与您联系重置 UKEY 密码，完成后会通知您。"),
    Event.REJECT: Template(
        "未通过审核，请修改后重新提交",
        "{head}未通过审核。\n驳回理由：{reject_reason}\n{to_fix}"
        "请回复「修改 {number}」按提示修改后重新提交，其余内容无需重填。"),
    Event.PAY: Template(
        "已收到付款", "已收到订单 {number} 的付款 {amount}，我们将尽快为您制作证书。"),
    Event.SHIP: Template(
        "证书已寄出",
        "{head}的证书已寄出：{express_company} 快递单号 {express_number}。请注意查收。"),
    Event.AWAIT_PICKUP: Template(
        "证书可以领取了",
        "{head}的证书已可领取。{pickup}"),
    Event.COMPLETE: Template("已办结", "{head}已办结，感谢您的使用。"),
    Event.INVOICE: Template("发票已开具", "{head}的发票已开具：{invoice_info}。{invoice_sent}"),
    NoticeKind.UNLOCKED: Template(
        "UKEY 密码已重置", "{head}已完成：UKEY 密码已重置，请使用您刚才在电脑上设置的新密码。"),
    NoticeKind.UNLOCK_FAILED: Template(
        "远程解锁未成功",
        "{head}的远程解锁没有成功：{reason}\n技术人员已收到通知，会尽快与您联系；着急的话也可以"
        "联系{centre}。"
        "发送「解锁状态 {number}」可查看进度。"),
    NoticeKind.UKEY_UNRECORDED: Template(
        "技术人员核对 UKEY 中",
        "{head}：读到的 UKEY（卡号 {reason}）还没有登记在贵单位名下，技术人员核对后会继续解锁，"
        "请保持 UKEY 插着、密钥代理运行。发送「解锁状态 {number}」可查看进度。"),
    NoticeKind.UKEY_NOT_OURS: Template(
        "UKEY 不属于贵单位，未解锁",
        "{head}：读到的 UKEY（卡号 {reason}）登记在其他单位名下，不能为它重置密码，解锁已停止。"
        "请确认插的是贵单位自己的 UKEY；需要核实登记的，请联系{centre}。"),
    NoticeKind.BINDING_VERIFIED: Template(
        "绑定已核验",
        "绑定已核验：您的绑定申请 {number} 已通过，您现在可以代表本单位办理全部业务，"
        "包括查看本单位的订单和证书、挂失/解挂、续期和绑定密钥代理。"),
    NoticeKind.BINDING_REFUSED: Template(
        "绑定申请未通过核验，请修改后重新提交",
        "您的绑定申请 {number} 未通过核验。\n驳回理由：{reject_reason}\n{to_fix}"
        "请回复「修改 {number}」按理由修改后重新提交（例如重新上传写明您为经办人并加盖公章的"
        "单位授权书）。在此之前您仍可办理新办证书、补办证书和解锁。"),
    NoticeKind.BINDING_NOT_VOUCHED: Template(
        "绑定申请未获本单位确认",
        "您的绑定申请 {number} 未获本单位已核验的经办人确认。\n理由：{reject_reason}\n"
        "如您确为本单位经办人，请先与本单位已核验的经办人沟通，再回复「申请核验」重新申请；"
        "也可以联系{centre}核验。在此之前您仍可办理新办证书、补办证书和解锁。"),
    NoticeKind.REJECTION_LAPSED: Template(
        "驳回后未修改，已自动取消",
        "{head}驳回后 {reason} 天没有修改，已按资料保存期限自动取消，技术人员不会再审核。"
        "需要办理请重新提交申请；如有疑问请联系{centre}。"),
}


def notice_kind(order: Order, kind: Event | NoticeKind,
                settings: Settings) -> Event | NoticeKind:
    """An approval says more when there is a fee to pay or a UKEY to reset (by the clerk at
    the key agent, or by the centre when agents are off)."""
    if kind is Event.APPROVE and order.amount_cents:
        return NoticeKind.PAYMENT_DUE
    if kind is Event.APPROVE and order.type is OrderType.UNLOCK:
        return (NoticeKind.UNLOCK_APPROVED if settings.agents.enabled
                else NoticeKind.UNLOCK_APPROVED_BY_STAFF)
    return kind


def _values(order: Order, fix: Sequence[Field], reason: str,
            settings: Settings) -> dict[str, str]:
    title = order_title(order.type, order.fields)
    return {
        "centre": reach(settings.centre), "pickup": pickup_line(settings),
        "number": order.number, "title": title, "head": f"您的订单 {order.number}（{title}）",
        "amount": yuan(order.amount_cents), "reject_reason": str(order.reject_reason),
        "to_fix": f"需要修改：{_names(fix)}。\n" if fix else "",
        "express_company": str(order.express_company),
        "express_number": str(order.express_number),
        "invoice_info": str(order.invoice_info), "reason": reason,
        "guide": guide_url(settings), "invoice_sent": _invoice_sent(order, settings),
    }


def _invoice_sent(order: Order, settings: Settings) -> str:
    """Where the invoice's file went: the picture follows in the chat; a PDF goes by mail (when
    mail is on: never a promise it cannot keep) and by its link when the technician gave one."""
    issued = (order.invoice or {}).get("issued") or {}
    file = issued.get("file")
    if not file:
        return ""
    if file["content_type"] != "application/pdf":
        return "发票图片见下。"
    request = (order.invoice or {}).get("request") or {}
    addresses = "、".join(sorted({a for a in (request.get("invoice_email"),
                                               order.handler.email if order.handler else None,
                                               order.contact_email) if a}))
    mailed = (f"电子发票（PDF）已发送到邮箱 {addresses}，请查收。"
              if settings.email.enabled and addresses else "")
    link = f"电子发票下载：{issued['url']}" if issued.get("url") else ""
    return mailed + link or "电子发票（PDF）已开好，请联系服务中心获取。"


def applicant_notice(order: Order, kind: Event | NoticeKind, settings: Settings,
                     fix: Sequence[Field] = (), reason: str = "") -> Notice:
    """What the applicant is told when ``kind`` happened to ``order``: its template, filled."""
    template = TEMPLATES[notice_kind(order, kind, settings)]
    values = _values(order, fix, reason, settings)
    pictures: list[Reply] = []
    if template.pay:
        assert order.amount_cents
        values["url"] = url = payment_url(settings.payment.url_template, order.number,
                                          order.amount_cents)
        pictures.append(Picture(qr_png(url), "支付二维码"))
    text = template.chat.format(**values)
    body = text if template.body is None else template.body.format(**values)
    return Notice([text, *pictures], f"订单 {order.number}：{template.subject}", body)


def staff_notice(order: Order, changed: Sequence[Field] | None) -> str:
    """New or resubmitted order, for the staff group: personal numbers never shown."""
    title = order_title(order.type, order.fields)
    if changed is None:
        what = "新订单待审核"
    else:
        what = f"已重新提交，修改了：{_names(changed) or '（无改动）'}"
    return mask_personal_numbers(
        f"【{title}】{order.number} {what}\n单位：{company_label(order)}\n"
        f"发送「查看 {order.number}」审核。")


def withdrawn_notice(order: Order, by: str) -> str:
    """An order withdrawn by the applicant before review, for the staff."""
    return mask_personal_numbers(
        f"【{order_title(order.type, order.fields)}】{order.number} 已由申请人撤回（{by}），"
        f"无需审核。\n单位：{company_label(order)}")


class CompanyNotice(StrEnum):
    """What every verified handler of a company is told about its accounts, agents and UKEYs
    (``Notifier.tell_handlers`` in chat, ``queue_handler_mail`` by mail)."""

    AGENT_PAIRED = "agent_paired"
    HANDLER_REMOVED = "handler_removed"  # to the company's verified handlers
    YOU_ARE_REMOVED = "you_are_removed"  # to the removed account itself
    CHANNEL_JOINED = "channel_joined"  # to a person's other accounts: one more joined them
    CHANNEL_REMOVED = "channel_removed"  # to a person's other accounts: a technician detached one
    LOSS_FILED = "loss_filed"  # a 挂失 filed in chat
    TECHNICIAN_HOLD = "technician_hold"  # a technician's 挂失 by command


# Formatted with the caller's values, ``at`` (now, local time) and ``centre`` (how to reach the
# service centre). ``subject`` is the whole mail subject.
COMPANY_TEMPLATES: Mapping[CompanyNotice, Template] = {
    CompanyNotice.AGENT_PAIRED: Template(
        "【{company}】绑定了新的密钥代理",
        "【{company}】{at} 绑定了新的密钥代理（编号 {agent}），绑定码由账号 {who} 申请。"
        "密钥代理装在插着本单位 UKEY 的电脑上，用于远程解锁、续期等。"
        "如果不是本单位人员所为，请立即联系{centre}吊销。"),
    CompanyNotice.HANDLER_REMOVED: Template(
        "【{company}】的账号 {who} 已解绑",
        "技术人员已于 {at} 解除账号 {who} 与【{company}】的绑定，它不能再代表本单位办理业务；"
        "它绑定的密钥代理（{agents} 个）已同时吊销。如有疑问请联系{centre}。"),
    CompanyNotice.YOU_ARE_REMOVED: Template(
        "您与【{company}】的绑定已解除",
        "技术人员已于 {at} 解除您的账号与【{company}】的绑定：您不能再代表该单位办理业务，"
        "您绑定的密钥代理（{agents} 个）已吊销，未提交的填写已清除。如有疑问请联系{centre}。"),
    CompanyNotice.CHANNEL_JOINED: Template(
        "【{company}】新的渠道已绑定到您的经办人身份",
        "【渠道绑定】{at} 账号 {who} 用您申请的渠道绑定码绑定为您本人：它现在与您是同一位经办人，"
        "可以代表【{company}】查看和办理您能办理的业务。如果不是您本人操作，请立即联系{centre}，"
        "由技术人员解绑该账号。"),
    CompanyNotice.CHANNEL_REMOVED: Template(
        "【{company}】账号 {who} 已不再是您的渠道",
        "技术人员已于 {at} 解绑账号 {who}：它不再与您是同一位经办人，不能再代表【{company}】"
        "办理业务；它绑定的密钥代理（{agents} 个）已吊销。您的其他账号不受影响。"
        "如有疑问请联系{centre}。"),
    CompanyNotice.LOSS_FILED: Template(
        "【{company}】的证书已挂失",
        "账号 {who} 于 {at} 为【{company}】提交了挂失（订单 {number}）：UKEY {token} 上的 "
        "{count} 张证书（序列号 {serials}）已立即暂停使用。如果不是本单位人员所为，请立即联系"
        "{centre}；找回 UKEY 后可发送「解挂」申请恢复。"),
    CompanyNotice.TECHNICIAN_HOLD: Template(
        "【{company}】的证书已由技术人员挂失",
        "技术人员于 {at} 为【{company}】挂失了 UKEY {token} 上的 {count} 张证书（序列号 "
        "{serials}），理由：{why}。证书已暂停使用；找回 UKEY 后可发送「解挂」申请恢复，"
        "如有疑问请联系{centre}。"),
}


def company_notice(kind: CompanyNotice, settings: Settings, **values: str) -> Notice:
    """What a company's handlers are told when ``kind`` happened: its template, filled."""
    template = COMPANY_TEMPLATES[kind]
    values = {"at": f"{utcnow().astimezone(settings.tz):%Y-%m-%d %H:%M}",
              "centre": reach(settings.centre), **values}
    text = template.chat.format(**values)
    body = text if template.body is None else template.body.format(**values)
    return Notice([text], template.subject.format(**values), body)


def _mail(notice: Notice, mailed: bool) -> NoticeMail:
    """What the chat outbox may do by mail with a notice it cannot deliver in chat."""
    if mailed:
        return NoticeMail.SENT
    return NoticeMail.NEVER if notice.private else NoticeMail.MAY


class Notifier:
    """Every notice is queued in the transaction of the change it reports (``notify_*``: chat
    through the chat outbox, mail through the mail outbox) and goes out after the commit
    (``deliver``), so a change and its notices are all or nothing and a dropped connection
    only delays them. ``tell_*`` are for notices that report no change of their own: they
    queue in a transaction of their own."""

    def __init__(self, settings: Settings, db: Database, chat: ChatQueue,
                 mail: MailQueue) -> None:
        self.settings = settings
        self.db = db
        self.chat = chat
        self.mail = mail

    async def queue_mail(self, session: AsyncSession, order: Order, notice: Notice) -> set[str]:
        """The mail only, in the caller's transaction. Goes to the handler's address and to
        whoever mailed the order in (threaded there); the addresses it went to."""
        if not notice.subject:
            return set()  # a chat-only notice
        addresses = {a for a in (order.handler.email if order.handler else None,
                                 order.contact_email, *notice.cc) if a}
        thread = ({"In-Reply-To": order.source_message_id,
                   "References": order.source_message_id} if order.source_message_id else None)
        for address in sorted(addresses):
            await self.mail.enqueue(session, address, notice.subject, notice.body,
                                    order_id=order.id,
                                    headers=thread if address == order.contact_email else None,
                                    attachments=notice.attachments)
        return addresses

    async def notify_applicant(self, session: AsyncSession, order: Order,
                               notice: Notice) -> None:
        """In the transaction of the change: the chat message to the account that filed the
        order (none for a mailed-in order) and the mail (none when ``notice.subject`` is
        empty)."""
        handler = order.handler
        mailed = await self.queue_mail(session, order, notice)
        if handler is not None:
            self.chat.enqueue(session, Account(handler.platform, handler.user_id),
                              notice.replies, order_id=order.id,
                              mail=_mail(notice, handler.email in mailed))

    async def queue_handler_mail(self, session: AsyncSession, handlers: Sequence[Handler],
                                 notice: Notice) -> None:
        """In the transaction of the change: a mail to each of ``handlers`` who gave an address
        (e.g. every verified handler of a company, told that someone asks to act for it)."""
        if not notice.subject:
            return  # a chat-only notice
        for address in sorted({h.email for h in handlers if h.email}):
            await self.mail.enqueue(session, address, notice.subject, notice.body)

    async def notify_handlers(self, session: AsyncSession, handlers: Sequence[Handler],
                              notice: Notice) -> None:
        """In the transaction of the change: chat and mail to each of ``handlers``."""
        for handler in handlers:
            self.chat.enqueue(session, Account(handler.platform, handler.user_id),
                              notice.replies,
                              mail=_mail(notice, bool(notice.subject and handler.email)))
        await self.queue_handler_mail(session, handlers, notice)

    async def notify_account(self, session: AsyncSession, account: Account,
                       replies: Sequence[Reply], order_id: int | None = None) -> None:
        """In the caller's transaction: chat to one account (e.g. an expiry reminder)."""
        self.chat.enqueue(session, account, replies, order_id=order_id)

    async def notify_staff(self, session: AsyncSession, text: str,
                           order_id: int | None = None) -> None:
        """In the transaction of the change: to the staff group, or each technician; personal
        numbers masked."""
        text = mask_personal_numbers(text)
        staff = self.settings.staff
        if staff.group:
            self.chat.enqueue(session, Account.parse(staff.group), [text], group=True,
                              order_id=order_id)
            return
        for technician in staff.technicians:
            self.chat.enqueue(session, Account.parse(technician), [text], order_id=order_id)

    async def deliver(self) -> None:
        """After the commit: the chat notices go out now, the mail worker is woken."""
        self.mail.wake()
        await self.chat.deliver()

    # --- notices that report no change of their own: queued in their own transaction --------
    async def tell_applicant(self, order: Order, notice: Notice) -> None:
        """The chat message only (the caller queued any mail with its change)."""
        chat_only = Notice(notice.replies, "", "", private=notice.private)
        await self._alone(lambda session: self.notify_applicant(session, order, chat_only))

    async def tell_handlers(self, handlers: Sequence[Handler], notice: Notice) -> None:
        """The chat message to each of ``handlers`` (the caller queued the mail)."""
        chat_only = Notice(notice.replies, "", "")
        await self._alone(lambda session: self.notify_handlers(session, handlers, chat_only))

    async def tell_staff(self, text: str) -> None:
        await self._alone(lambda session: self.notify_staff(session, text))

    async def _alone(self, queue: Callable[[AsyncSession], Awaitable[None]]) -> None:
        try:
            async with self.db.transaction() as session:
                await queue(session)
        except Exception as error:  # a notice must never undo or hide what it reports
            logger.opt(exception=error).error(f"a chat notice could not be queued: {error}")
            return
        await self.deliver()
