"""「删除我的资料」: an applicant asks that the personal data of the orders they filed go before
its term (PIPL art. 47); a technician confirms (「确认删除 账号」) or refuses with a reason
(「拒绝删除 账号 理由」). Confirmed, the purge of ``purge.py`` runs at once on those orders.

Only finished orders are erased: an open one still needs its scans and numbers. Certificates
and the CRL history are the CA's record and stay. The request and the answer are logged on each
order it concerns (``DELETION_*`` events), which is also where a pending request is read from.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.lifecycle import Event, status_label
from bot.domain.orders import order_title
from bot.domain.retention import is_finished
from bot.domain.review import ReviewRefused
from bot.services.centre import please_contact
from bot.services.filing import note_order
from bot.services.messages import Account
from bot.services.notify import Notifier
from bot.services.retention.purge import Retention, is_masked, purge_order
from storage.db import Database
from storage.models import Handler, Order, OrderEvent, utcnow
from storage.repositories import Handlers, Orders

ANSWERS = (Event.DELETION_REQUESTED, Event.DELETION_CONFIRMED, Event.DELETION_REFUSED)
CONFIRM_USAGE = "确认删除 账号（如 qq:123456）"
REFUSE_USAGE = "拒绝删除 账号 理由"
KEPT = ("以下资料会保留：本单位的证书及其吊销记录（CA 的档案，依法保存）；订单号、单位名称和"
        "办理记录（不含身份证号和手机号）。")


@dataclass(frozen=True)
class Holdings:
    """An account's orders, as 删除我的资料 sees them."""

    erasable: list[Order]  # finished, with scans or numbers not yet masked
    pending: list[Order]  # asked for, awaiting a technician
    open: list[Order]  # still being handled: kept until finished


def _asked(events: Sequence[OrderEvent]) -> bool:
    """Whether the order's last word on deletion is the applicant's request."""
    said = [e.event for e in events if e.event in ANSWERS]
    return bool(said) and said[-1] is Event.DELETION_REQUESTED


async def holdings(session: AsyncSession, handler_id: int) -> Holdings:
    orders = Orders(session)
    erasable, pending, still_open = [], [], []
    for order in await orders.all_of_handler(handler_id):
        if not is_finished(order.status):
            still_open.append(order)
            continue
        events = await orders.events(order.id)
        if _asked(events):
            pending.append(order)
        elif order.attachments or not is_masked(events):
            erasable.append(order)
    return Holdings(erasable, pending, still_open)


def _numbers(orders: Sequence[Order]) -> str:
    return "、".join(o.number for o in orders)


def _open_line(still_open: Sequence[Order]) -> str:
    if not still_open:
        return ""
    listed = "、".join(f"{o.number}（{status_label(o.type, o.status)}）" for o in still_open)
    return f"办理中的订单 {listed} 仍需要这些资料，办结后再按保存期限删除，也可以届时再申请。"


class Erasure:
    """The request, the confirmation and the refusal; ``Retention`` deletes the files."""

    def __init__(self, settings: Settings, db: Database, retention: Retention,
                 notifier: Notifier) -> None:
        self.settings = settings
        self.db = db
        self.retention = retention
        self.notifier = notifier

    async def request(self, account: Account) -> list[str]:
        """The applicant's 删除我的资料: logged on each order concerned, the staff told."""
        async with self.db.transaction() as session:
            # any binding the account has or had (解绑 keeps the row): its orders are its own
            handler = await Handlers(session).get(account.platform, account.user_id)
            if handler is None:
                return ["您还没有在这里办理过业务，我们没有保存您的个人资料。"]
            held = await holdings(session, handler.id)
            if held.pending:
                return [f"您的删除资料申请（订单 {_numbers(held.pending)}）已提交，正在等待技术"
                        "人员确认，确认后会在这里通知您。"]
            if not held.erasable:
                return ["您提交的订单中没有可以删除的个人资料：已办结订单的扫描件和号码已经删除"
                        "或隐去。" + _open_line(held.open) + KEPT]
            for order in held.erasable:
                note_order(session, order, str(account), Event.DELETION_REQUESTED)
            await self.notifier.notify_staff(session, (
                f"【删除资料申请】账号 {account}（{handler.company.name}）申请删除其已办结订单的"
                f"个人资料（扫描件、身份证号、手机号）：{_numbers(held.erasable)}。\n"
                f"同意请发送「确认删除 {account}」，不同意请发送「拒绝删除 {account} 理由」。"))
        await self.notifier.deliver()
        logger.info(f"{account} asked for the deletion of {len(held.erasable)} orders' data")
        return [f"已提交删除资料申请：订单 {_numbers(held.erasable)} 的扫描件将删除，身份证号和"
                "手机号将只保留隐去后的形式。技术人员确认后会在这里通知您。"
                + _open_line(held.open) + KEPT]

    async def _pending_of(self, session: AsyncSession, typed: str,
                          usage: str) -> tuple[Handler, Holdings]:
        account = Account.parse(typed.strip())
        if not account.platform or not account.user_id:
            raise ReviewRefused(f"请写上申请人的账号。用法：{usage}")
        handler = await Handlers(session).get(account.platform, account.user_id)
        held = await holdings(session, handler.id) if handler is not None else None
        if handler is None or held is None or not held.pending:
            raise ReviewRefused(f"账号 {account} 没有待确认的删除资料申请。")
        return handler, held

    async def confirm(self, actor: str, typed: str) -> str:
        """A technician's 确认删除: the purge runs now on the orders asked for."""
        now = utcnow()
        hashes: set[str] = set()
        async with self.db.transaction() as session:
            handler, held = await self._pending_of(session, typed, CONFIRM_USAGE)
            orders = Orders(session)
            scans = 0
            for order in held.pending:
                masked = is_masked(await orders.events(order.id))
                scans += len(order.attachments)
                note_order(session, order, actor, Event.DELETION_CONFIRMED, at=now)
                found, _ = await purge_order(session, order, actor, "request", now,
                                             scans=True, numbers=not masked)
                hashes |= set(found)
            account = Account(handler.platform, handler.user_id)
            titles = "、".join(f"{o.number}（{order_title(o.type, o.fields)}）"
                              for o in held.pending)
            what = f"扫描件（{scans} 份）已删除" if scans else "扫描件此前已按保存期限删除"
            await self.notifier.notify_account(session, account, [
                f"您申请删除的个人资料已删除：订单 {titles} 的{what}，"
                "身份证号和手机号只保留隐去后的形式（如 370***********123X）。"
                + _open_line(held.open) + KEPT])
        files = await self.retention.discard_unused(hashes)
        await self.notifier.deliver()
        logger.info(f"{actor} confirmed a deletion request: {len(held.pending)} orders, "
                    f"{files} files")
        return (f"已删除账号 {account} 的资料：订单 {_numbers(held.pending)} 的扫描件 {scans} 份"
                f"（磁盘上删除 {files} 个文件，其余仍被其他订单使用），号码已隐去。已通知申请人。")

    async def refuse(self, actor: str, typed: str) -> str:
        """A technician's 拒绝删除 with the reason, told to the applicant."""
        who, _, reason = typed.strip().partition(" ")
        reason = reason.strip()
        if not reason:
            raise ReviewRefused(f"请写明理由，申请人会收到。用法：{REFUSE_USAGE}")
        async with self.db.transaction() as session:
            handler, held = await self._pending_of(session, who, REFUSE_USAGE)
            for order in held.pending:
                note_order(session, order, actor, Event.DELETION_REFUSED, reason=reason)
            account = Account(handler.platform, handler.user_id)
            await self.notifier.notify_account(session, account, [
                f"您申请删除订单 {_numbers(held.pending)} 的个人资料，技术人员没有同意。\n"
                f"理由：{reason}\n这些资料将按保存期限到期后删除；如有疑问，"
                f"{please_contact(self.settings)}"])
        await self.notifier.deliver()
        return f"已拒绝账号 {account} 的删除资料申请，已把理由告诉申请人。"
