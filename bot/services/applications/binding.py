"""Binding a chat account to a company as a request someone approves (SPEC.md: a binding is
verified, not claimed; bot/domain/trust.py for the states).

A binding request is an order of type ``BINDING`` (单位绑定, ``BD-…``), reviewed like any other.
It takes one of two routes, kept in its values as ``route``:
- ``documents``: the company's first account (or the first since nobody there is verified) sends
  the 单位授权书 naming it and the 营业执照; a technician approves or rejects it (``修改`` works).
- ``vouch``: a later account of a company with verified handlers; any of them (``同意绑定`` /
  ``拒绝绑定``) or a technician decides. A refused account may ask again (``申请核验``).
Approval verifies the account and completes the order in one transaction.

Every function here runs in the caller's transaction, queues its notices there, and returns who
was told (``Told.deliver`` after the commit sends them).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.forms import BINDING_REQUEST
from bot.domain.lifecycle import IN_REVIEW, Event, OrderStatus, OrderType, status_label
from bot.domain.masking import mask_mobile, mask_name
from bot.domain.review import named_fields
from bot.domain.trust import HandlerStatus
from bot.services.centre import please_contact
from bot.services.filing import file_order, move_order
from bot.services.messages import Reply
from bot.services.notify import Notice, NoticeKind, Notifier, applicant_notice, staff_notice
from storage.models import Handler, Order, utcnow
from storage.repositories import Handlers, Orders

ROUTE = "route"
DOCUMENTS = "documents"
VOUCH = "vouch"


@dataclass
class Told:
    """Who was told what, in the transaction (the notices go out with ``deliver`` after the
    commit)."""

    order: Order
    requester: Notice | None = None
    handlers: Sequence[Handler] = field(default_factory=list)
    to_handlers: Notice | None = None

    async def deliver(self, notifier: Notifier) -> None:
        await notifier.deliver()


def is_vouch(order: Order) -> bool:
    return order.fields.get(ROUTE) == VOUCH


def who(handler: Handler, values: Mapping[str, str]) -> str:
    """The requester as a colleague reads it: name and mobile masked, the account in full."""
    return (f"申报人 {mask_name(values.get('declarant', ''))}，"
            f"手机 {mask_mobile(values.get('declarant_mobile', ''))}，"
            f"账号 {handler.platform}:{handler.user_id}")


async def open_request(orders: Orders, handler: Handler) -> Order | None:
    """The account's binding request still waiting for a decision or a correction, if any."""
    order = await orders.latest_of_handler(handler.id, OrderType.BINDING)
    if order is None or order.company_id != handler.company_id:
        return None
    if order.status in IN_REVIEW or (order.status is OrderStatus.REJECTED and not is_vouch(order)):
        return order
    return None


def request_values(company_uscc: str, values: Mapping[str, str]) -> dict[str, str]:
    """What a binding request starts from: the company named and who is asking."""
    return {"uscc": company_uscc, "company_name": values["company_name"],
            "declarant": values["declarant"], "declarant_mobile": values["declarant_mobile"]}


async def file_vouch_request(session: AsyncSession, settings: Settings, notifier: Notifier,
                             handler: Handler, values: Mapping[str, str], actor: str) -> Told:
    """A later account asks; the company's verified handlers are asked (chat and mail)."""
    orders = Orders(session)
    previous = await orders.latest_of_handler(handler.id, OrderType.BINDING)
    if previous is not None and previous.status is OrderStatus.REJECTED:
        move_order(session, previous, actor, Event.CANCEL, reason="重新申请核验")
    order = await file_order(session, settings, order_type=OrderType.BINDING,
                             values={**values, ROUTE: VOUCH}, scans={},
                             company_id=handler.company_id, handler_id=handler.id, actor=actor)
    verified = await Handlers(session).verified_of(handler.company_id)
    company = handler.company.name
    text = (f"有人（{who(handler, values)}）申请代表【{company}】办理业务，"
            f"绑定申请 {order.number}。"
            f"同意请回复「同意绑定 {order.number}」，不认识请回复「拒绝绑定 {order.number}」。"
            "在确认之前，对方不能查看或办理本单位已有的订单、证书和 UKEY。")
    notice = Notice([text], f"【{company}】有人申请绑定本单位（{order.number}）", text)
    await notifier.notify_handlers(session, verified, notice)
    return Told(order, handlers=verified, to_handlers=notice)


def outdated(order: Order) -> str | None:
    """Why a request cannot be approved any more: its account is bound elsewhere or removed."""
    requester = order.handler
    if requester is None or requester.company_id != order.company_id or (
            requester.status is HandlerStatus.REMOVED):
        return (f"绑定申请 {order.number} 的申请账号已不再绑定该单位，不能通过；"
                f"请「驳回 {order.number} 理由」结束它。")
    return None


def decision_refused(decider: Handler, order: Order | None, number: str) -> str | None:
    """Why a verified handler may not decide this request (None: they may)."""
    if order is None or order.type is not OrderType.BINDING or (
            order.company_id != decider.company_id):
        return f"没有找到本单位的绑定申请 {number}，请核对编号。"
    if order.handler_id == decider.id:
        return "不能确认自己的绑定申请：请等待本单位其他已核验的经办人或技术人员确认。"
    if order.status not in IN_REVIEW:
        return f"绑定申请 {number} 目前{status_label(order.type, order.status)}，无需再处理。"
    return outdated(order)


async def approve(session: AsyncSession, settings: Settings, notifier: Notifier, order: Order,
                  actor: str, menu: str, detail: dict | None = None,
                  decider: Handler | None = None) -> Told:
    """The request approved: the account verified, the order completed, everyone told (but the
    colleague who decided, who has the reply)."""
    requester = order.handler
    assert requester is not None
    assert order.company is not None
    now = utcnow()
    move_order(session, order, actor, Event.APPROVE, detail=detail, at=now)
    move_order(session, order, actor, Event.COMPLETE, at=now)
    requester.status, requester.verified_at, requester.verified_by = (
        HandlerStatus.VERIFIED, now, actor)
    if not is_vouch(order):  # the technician checked the licence: its name is the company's
        order.company.name = order.fields["company_name"]
    await session.flush()  # the version check happens here
    notice = applicant_notice(order, NoticeKind.BINDING_VERIFIED, settings)
    notice = Notice([*notice.replies, menu], notice.subject, notice.body)
    await notifier.notify_applicant(session, order, notice)
    others = [h for h in await Handlers(session).verified_of(order.company_id)
              if h.id != requester.id and (decider is None or h.id != decider.id)]
    text = (f"{who(requester, order.fields)} 已核验为【{order.company.name}】的经办人"
            f"（绑定申请 {order.number}，由 {actor} 确认），现在可以代表本单位办理全部业务。"
            f"如有疑问{please_contact(settings)}")
    told = Notice([text], f"【{order.company.name}】新增经办人（{order.number}）", text)
    await notifier.notify_handlers(session, others, told)
    return Told(order, notice, others, told)


async def reject(session: AsyncSession, settings: Settings, notifier: Notifier, order: Order,
                 actor: str, reason: str) -> Told:
    """The request refused: the requester told why and what to do; the account stays pending."""
    fix = [] if is_vouch(order) else named_fields(BINDING_REQUEST, reason)
    order.reject_reason = reason
    move_order(session, order, actor, Event.REJECT, reason=reason,
               detail={"fields": [f.key for f in fix]})
    await session.flush()
    kind = NoticeKind.BINDING_NOT_VOUCHED if is_vouch(order) else NoticeKind.BINDING_REFUSED
    notice = applicant_notice(order, kind, settings, fix)
    await notifier.notify_applicant(session, order, notice)
    return Told(order, notice)


def staff_notice_of(order: Order) -> str:
    """For the technicians: every new binding request, with who may decide it."""
    assert order.handler is not None
    who_decides = ("本单位已核验的经办人可回复「同意绑定」确认，技术人员也可以「通过」。"
                   if is_vouch(order) else "请核对单位授权书（写明经办人、加盖公章）和营业执照。")
    return (staff_notice(order, None) + f"\n申请人：{who(order.handler, order.fields)}\n"
            + who_decides)


def submitted_reply(order: Order, vouch: bool) -> list[Reply]:
    """What the requester reads once the request is filed."""
    if vouch:
        how = ("本单位已核验的经办人已收到通知，由其回复确认；技术人员也可以核验。"
               "如对方不认识您，请先与其沟通。")
    else:
        how = "技术人员会核对单位授权书和营业执照，结果会第一时间在这里通知您。"
    return [f"绑定申请已提交，编号 {order.number}。{how}\n"
            "核验通过前，您可以办理新办证书、补办证书和解锁，查看您自己提交的订单；"
            "查看本单位已有的订单和证书、挂失/解挂、续期、绑定密钥代理须等核验通过。"
            "回复「认证进度」查看进度。"]
