"""The technicians' review desk: one entry point, ``ReviewDesk.execute``, for every command.

Every change is one transaction: the order, its event row and the queued e-mail together. The
applicant is told in chat right after the commit.
"""

import asyncio
import dataclasses
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from bot.config import Settings
from bot.domain.certificates import CertStatus, revocation_reason
from bot.domain.fields import FieldKind
from bot.domain.forms import form_for
from bot.domain.invoices import InvalidInvoiceFile, invoice_file
from bot.domain.lifecycle import (
    Event,
    OrderStatus,
    OrderType,
    TransitionNotAllowed,
    next_status,
    status_label,
)
from bot.domain.masking import mask_personal_numbers
from bot.domain.order_log import logged_as
from bot.domain.order_numbers import parse_order_number
from bot.domain.orders import fee_text, order_title, yuan
from bot.domain.review import (
    STATUS_WORDS,
    ReviewRefused,
    check_approval,
    check_delivery,
    named_fields,
)
from bot.domain.text import duration
from bot.services import order_views
from bot.services.agents.guide import pair_command
from bot.services.agents.hub import AgentHub
from bot.services.agents.registry import AgentRefused, AgentRegistry, agent_company, agent_owner
from bot.services.applications import binding
from bot.services.applications.commands import is_verified
from bot.services.applications.dialogue import menu
from bot.services.centre import menu_footer
from bot.services.certificates.chat import CertificateChat
from bot.services.certificates.office import CertificateRefused
from bot.services.channels import delivery_words, notice_preview
from bot.services.commands import Command, CommandTable, FormOpen
from bot.services.filing import move_order, note_order
from bot.services.health import Health
from bot.services.messages import Account, ImageSource, MailAttachment, Picture, Reply
from bot.services.notify import Notice, Notifier, applicant_notice
from bot.services.ports import FetchError, ImageFetching, NoticeMail, ScanStorage
from bot.services.retention.erasure import CONFIRM_USAGE, REFUSE_USAGE, Erasure
from bot.services.retention.purge import Retention
from bot.services.review import ukey_commands
from bot.services.review.members import Members
from bot.services.unlock.claims import record_claimed_company
from storage.db import Database, DatabaseUnavailable
from storage.models import Order, utcnow
from storage.repositories import Orders, OutgoingChats

QUEUE_LIMIT = 30
SEARCH_LIMIT = 20


def _age(since: datetime | None, now: datetime) -> str:
    return "" if since is None else duration((now - since).total_seconds())


Mutation = Callable[[Order], None]


class ReviewDesk:
    def __init__(self, settings: Settings, db: Database, scans: ScanStorage,
                 fetcher: ImageFetching, notifier: Notifier, agents: AgentRegistry,
                 hub: AgentHub, certificates: CertificateChat | None,
                 health: Health) -> None:
        self.settings = settings
        self.health = health  # 状态
        self.fetcher = fetcher  # an invoice's file, from its link (or a path on the Console)
        self.certificates = certificates  # None: [pki] is off
        self.agents = agents
        self.hub = hub
        self.db = db
        self.scans = scans
        self.notifier = notifier
        self.members = Members(settings, db, notifier, agents, hub)
        self.erasure = Erasure(settings, db, Retention(settings, db, scans, notifier), notifier)

    async def execute(self, actor: Account, text: str, *, private: bool) -> list[Reply]:
        found = TECHNICIAN_COMMANDS.split(text)
        assert found is not None, "the plugin routes only the desk's commands here"
        command, rest = found
        word = command.word
        if not self.settings.staff.is_technician(str(actor)):
            logger.warning(f"technician command {word!r} refused: {actor} is not a technician")
            return [f"「{word}」是技术人员命令，您没有权限使用。"
                    "查询本单位的订单请回复「我的订单」或「查询 订单号」。"]
        args = rest.split(maxsplit=1)
        try:
            if command.pki:
                self._pki()
            if command.private and not private:
                raise ReviewRefused(f"「{word}」请在私聊中发送。")
            replies = await command.handler(self, actor, args, private)
        except (ReviewRefused, TransitionNotAllowed) as error:
            replies = [str(error)]
        except StaleDataError:
            replies = ["该订单刚被其他人处理过，请先「查看」确认后再操作。"]
        except DatabaseUnavailable as error:  # rolled back: nothing of the command was done
            logger.warning(f"database unavailable for {actor}'s {word}: {error}")
            replies = [f"系统繁忙，「{word}」没有执行，请稍等一两分钟后再发一次。"]
        if not private:  # a group is read by many: no personal numbers, no scans
            replies = [mask_personal_numbers(r) for r in replies if isinstance(r, str)]
        return replies

    # --- reading --------------------------------------------------------------------------
    async def _help(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        """Every desk command; a technician who also acts for a company is shown its menu too
        (in private: the group need not see which company)."""
        certificates = self.certificates is not None
        desk = technician_help(certificates=certificates)
        handler = await self.members.binding(actor) if private else None
        if handler is None:
            return [desk]
        return [desk, "您同时绑定了单位，也可以作为申请人办理：\n"
                + menu(handler.company.name, certificates=certificates,
                       verified=is_verified(handler))]

    async def _queue(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        async with self.db.transaction() as session:
            orders = await Orders(session).in_review(QUEUE_LIMIT)
        if not orders:
            return ["没有待审核的订单。"]
        now = utcnow()
        lines = [f"待审核订单（{len(orders)} 个，等得最久的在前）："]
        for i, o in enumerate(orders, 1):
            again = "（重新提交）" if o.status is OrderStatus.RESUBMITTED else ""
            lines.append(f"{i}. {o.number} {order_title(o.type, o.fields)} "
                         f"{order_views.company_label(o)} 已等待 {_age(o.submitted_at, now)}"
                         f"{again}")
        lines.append("发送「查看 订单号」审核。")
        return ["\n".join(lines)]

    async def _status(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        """The health check in Chinese: what /healthz tells a monitor (no personal data, so
        the group may read it too)."""
        return [(await self.health.check()).summary(self.settings.tz)]

    async def _view(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        number = self._number(args, "查看")
        async with self.db.transaction() as session:
            order = await self._load(Orders(session), number)
            events = await Orders(session).events(order.id)
        text = order_views.order_detail(order, events, self.settings.tz, reveal=private)
        hint = f"\n审核：「通过 {number}」或「驳回 {number} 理由」"
        if not private:
            return [text + "\n扫描件含个人信息，请私聊查看。" + hint]
        current = {a.slot: a for a in order.attachments}
        pictures: list[Reply] = []
        for f in form_for(order.type).fields:
            if f.kind is FieldKind.SCAN and f.key in current:
                data = await asyncio.to_thread(self.scans.read, current[f.key].sha256)
                pictures.append(Picture(data, f.title))
        return [text + hint, *pictures]

    async def _search(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        words = " ".join(args).split()
        kinds: list[tuple[frozenset[str], frozenset[str]]] = []
        company = ""
        for word in words:
            if word in STATUS_WORDS:
                wanted = STATUS_WORDS[word]
                kinds.append((frozenset(wanted.statuses), frozenset(wanted.types)))
            else:
                company = word
        async with self.db.transaction() as session:
            orders = await Orders(session).search(kinds, company, SEARCH_LIMIT)
        if not orders:
            return ["没有符合条件的订单。"]
        lines = [f"找到 {len(orders)} 个订单（最新的在前" +
                 (f"，最多显示 {SEARCH_LIMIT} 个" if len(orders) == SEARCH_LIMIT else "") + "）："]
        for i, o in enumerate(orders, 1):
            lines.append(f"{i}. {o.number} {order_title(o.type, o.fields)} "
                         f"{order_views.company_label(o)} "
                         f"{status_label(o.type, o.status)} "
                         f"{fee_text(o.amount_cents)}")
        return ["\n".join(lines)]

    async def _history(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        number = self._number(args, "历史")
        async with self.db.transaction() as session:
            order = await self._load(Orders(session), number)
            events = await Orders(session).events(order.id)
            notices = await OutgoingChats(session).of_order(order.id)
        lines = [f"订单 {number} 的办理记录："]
        for e in events:
            moved = (f"{status_label(order.type, e.from_status)} → "
                     f"{status_label(order.type, e.to_status)}"
                     if e.from_status != e.to_status else "")
            why = f"：{e.reason}" if e.reason else ""
            changed = (e.detail or {}).get("changed")
            what = f"（修改了 {'、'.join(changed)}）" if changed else ""
            lines.append(f"{e.at.astimezone(self.settings.tz):%Y-%m-%d %H:%M} {e.actor} "
                         f"{logged_as(e.event, e.detail)} {moved}{why}{what}".rstrip())
        told = [n for n in notices if not n.is_group]
        if told:
            lines.append("通知：")
        for n in told:
            lines.append(f"{n.created_at.astimezone(self.settings.tz):%Y-%m-%d %H:%M} "
                         f"→ {n.platform}:{n.recipient} {notice_preview(n.message)}："
                         + delivery_words(n.path, n.platform, dropped=n.dropped_at is not None,
                                          mailed=n.mail == NoticeMail.SENT))
        return ["\n".join(lines)]

    async def _unlock_status(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        number = self._number(args, "解锁状态")
        async with self.db.transaction() as session:
            order = await self._load(Orders(session), number)
        return [await self.hub.describe(order)]

    async def _retry_unlock(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        number = self._number(args, "重新解锁")
        async with self.db.transaction() as session:
            order = await self._load(Orders(session), number)
        if order.type is not OrderType.UNLOCK or order.status is not OrderStatus.APPROVED:
            raise ReviewRefused("只有审核通过、尚未完成的解锁订单才能重新解锁。")
        if not self.settings.agents.enabled:
            raise ReviewRefused("本服务未开通密钥代理。")
        if not await self.hub.retry(order, str(actor)):
            raise ReviewRefused(f"订单 {number} 的远程解锁仍在进行，「解锁状态 {number}」可查看。")
        return [f"已为订单 {number} 重新安排远程解锁。", await self.hub.describe(order)]

    async def _list_agents(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        wanted = args[0].strip() if args else ""
        agents = [a for a in await self.agents.of_company()
                  if not wanted or wanted in agent_owner(a) or wanted == agent_company(a)]
        if not agents:
            return ["没有密钥代理。申请人发送「绑定密钥代理」即可绑定。"]
        lines = [f"密钥代理（{len(agents)} 个）："]
        for a in agents:
            state = "已吊销" if a.revoked_at else "有效"
            seen = (f"，最近在线 {a.last_seen_at.astimezone(self.settings.tz):%m-%d %H:%M}"
                    if a.last_seen_at else "，尚未上线")
            lines.append(f"{a.id}. {agent_owner(a)} {state}{seen}（由 {a.paired_by} 绑定）")
        lines.append("吊销：「吊销代理 编号」")
        return ["\n".join(lines)]

    async def _revoke_agent(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        if not args or not args[0].strip().isdigit():
            raise ReviewRefused(f"用法：{usage('吊销代理')}")
        try:
            agent = await self.agents.revoke(int(args[0]), str(actor))
        except AgentRefused as error:
            raise ReviewRefused(str(error)) from None
        await self.hub.cut_off(agent.id)
        return [f"已吊销 {agent_owner(agent)} 的密钥代理 {agent.id}，它再也不能接收任务。"]

    # --- accounts (review/members.py) -------------------------------------------------------
    async def _members(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        return [await self.members.listing(" ".join(args).strip(), private=private)]

    async def _unbind(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        return [await self.members.remove(str(actor), " ".join(args), private=private)]

    # --- personal data (retention/erasure.py) ---------------------------------------------
    async def _confirm_erasure(self, actor: Account, args: list[str],
                               private: bool) -> list[Reply]:
        return [await self.erasure.confirm(str(actor), " ".join(args))]

    async def _refuse_erasure(self, actor: Account, args: list[str],
                              private: bool) -> list[Reply]:
        return [await self.erasure.refuse(str(actor), " ".join(args))]

    # --- changing -------------------------------------------------------------------------
    async def _approve(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        number = self._number(args, "通过")
        required = self.settings.staff.approvals_required
        settled = None
        async with self._certificate_transaction() as session:
            orders = Orders(session)
            order = await self._load(orders, number)
            next_status(order.type, order.status, Event.APPROVE)  # refuses a wrong state
            approval = check_approval(await orders.events(order.id), str(actor), required)
            if not approval.complete:
                note_order(session, order, str(actor), Event.APPROVAL)
                order.updated_at = utcnow()  # bumps the version: two approvals cannot race
                return [f"已记录您对 {number} 的通过（{len(approval.approvers)}/{required}），"
                        "还需另一位技术人员复核。"]
            if order.type is OrderType.BINDING:
                assert order.company is not None
                if (why := binding.outdated(order)) is not None:
                    raise ReviewRefused(why)
                told = await binding.approve(
                    session, self.settings, self.notifier, order, str(actor),
                    menu(order.company.name, certificates=self.certificates is not None,
                         footer=menu_footer(self.settings, self.certificates is not None)),
                    detail={"approvers": list(approval.approvers)})
            elif order.type is OrderType.LOSS:  # approved and settled in this one transaction
                settled = await self._settle_loss(session, order, actor, approval.approvers)
            else:
                recorded = await record_claimed_company(session, order, str(actor))
                await self._change(session, order, actor, Event.APPROVE,
                                   detail={"approvers": list(approval.approvers)})
                if recorded:  # an unregistered company's record, made by this approval
                    await self.notifier.notify_staff(
                        session, f"{actor} 通过订单 {number}：{recorded}", order.id)
        if order.type is OrderType.BINDING:
            await told.deliver(self.notifier)
            return [f"已通过绑定申请 {number}：申请人现为已核验的经办人，"
                    "已通知申请人和本单位其他已核验的经办人。"]
        await self.notifier.deliver()
        if settled is not None:
            return [settled]
        paid = f"，已通知申请人支付 {yuan(order.amount_cents)}" if order.amount_cents else ""
        if order.type is OrderType.UNLOCK and self.settings.agents.enabled:
            if await self.hub.start_unlock(order):
                return [f"已通过订单 {number}，已交给申请人的密钥代理远程解锁。"]
            # the approval told the applicant how to start (or install and pair) the agent
            return [f"已通过订单 {number}。申请人的密钥代理不在线，已通知其启动；"
                    f"「解锁状态 {number}」可查看进度。"]
        return [f"已通过订单 {number}{paid}。"]

    async def _reject(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        number = self._number(args, "驳回")
        reason = args[1].strip() if len(args) > 1 else ""
        if not reason:
            raise ReviewRefused(f"请写明驳回理由，申请人要据此修改。用法：{usage('驳回')}")

        def mutate(order: Order) -> None:
            order.reject_reason = reason

        async with self.db.transaction() as session:
            order = await self._load(Orders(session), number)
            if order.type is OrderType.BINDING:
                next_status(order.type, order.status, Event.REJECT)  # refuses a wrong state
                told = await binding.reject(session, self.settings, self.notifier, order,
                                            str(actor), reason)
            else:
                fix = named_fields(form_for(order.type), reason)
                await self._change(session, order, actor, Event.REJECT, mutate=mutate,
                                   reason=reason, fix=fix, detail={"fields": [f.key for f in fix]})
        if order.type is OrderType.BINDING:
            await told.deliver(self.notifier)
            return [f"已驳回绑定申请 {number}，申请人仍为待核验，已通知其驳回理由。"]
        await self.notifier.deliver()
        if fix:
            return [f"已驳回订单 {number}，申请人将被要求重新提供："
                    f"{'、'.join(f.title for f in fix)}。"]
        return [f"已驳回订单 {number}。理由中没有认出具体的项目或附件，"
                "申请人将自行选择要修改的内容。"]

    async def _pay(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        number = self._number(args, "收款")
        order = await self._simple(actor, number, Event.PAY)
        done = f"已登记订单 {number} 收款 {yuan(order.amount_cents)}，已通知申请人。"
        if order.type is OrderType.RENEWAL and self.certificates is not None:
            online = await self.certificates.jobs.start_rekey(order)
            words = ("请保持 UKEY 插在运行着密钥代理的电脑上，并按电脑上的提示输入 UKEY 密码，"
                     "新证书会直接写入 UKEY。" if online else
                     "请在插着 UKEY 的电脑上运行「cadesk-agent run」，并按提示输入 UKEY 密码，"
                     "新证书会直接写入 UKEY。")
            await self.notifier.tell_applicant(order, Notice([words], "", ""))
            state = "已交给申请人的密钥代理" if online else "等申请人的密钥代理上线"
            return [done + f"续期{state}写入新证书。"]
        if order.type is OrderType.CERTIFICATE and self.certificates is not None:
            return [done + f"请把空白 UKEY 插在服务大厅的密钥代理上，发送「制证 {number}」。"]
        return [done]

    async def _ship(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        args = " ".join(args).split(maxsplit=2)  # the number, the company, the tracking number
        if len(args) < 3:
            raise ReviewRefused(f"用法：{usage('发货')}，"
                                "例如：发货 XB-261125-7KQ3 顺丰 SF1234567890")
        number = self._number(args, "发货")
        company, tracking = args[1], args[2].strip()
        if not re.fullmatch(r"[A-Za-z0-9-]{6,40}", tracking):
            raise ReviewRefused("快递单号应为 6–40 位字母或数字，请核对。")

        def mutate(order: Order) -> None:
            order.express_company, order.express_number = company, tracking

        await self._simple(actor, number, Event.SHIP, mutate)
        return [f"已登记订单 {number} 发货：{company} {tracking}，已通知申请人。"]

    async def _await_pickup(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        number = self._number(args, "待自取")
        await self._simple(actor, number, Event.AWAIT_PICKUP)
        return [f"订单 {number} 已设为待自取，已通知申请人。"]

    async def _complete(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        number = self._number(args, "完成")
        await self._simple(actor, number, Event.COMPLETE)
        return [f"订单 {number} 已办结，已通知申请人。"]

    async def _invoice(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        """发票 订单号 发票号码 [文件]: the invoice issued, told to the applicant in chat and by
        mail (to the 开票 request's address too), with its file when one is given: a link to
        the PDF or picture (or, on the Console, its path)."""
        number = self._number(args, "发票")
        words = args[1].split() if len(args) > 1 else []
        source = _invoice_source(actor, words[-1]) if words else None
        info = " ".join(words[:-1] if source else words)
        if not info:
            raise ReviewRefused(f"请写上发票号码。用法：{usage('发票')}")
        attachment, picture = None, None
        if source is not None:
            try:
                data = await self.fetcher.fetch(source)
                kind = invoice_file(data)
            except (FetchError, InvalidInvoiceFile) as error:
                raise ReviewRefused(f"发票文件没有取到：{error}发票未登记，请核对后重发。"
                                    ) from None
            sha256 = hashlib.sha256(data).hexdigest()
            await asyncio.to_thread(self.scans.save, sha256, data)
            attachment = MailAttachment(sha256, f"发票-{number}{kind.suffix}", kind.content_type)
            picture = Picture(data, f"订单 {number} 的发票") if kind.picture else None
        async with self.db.transaction() as session:
            order = await self._load(Orders(session), number)
            if order.status is OrderStatus.CANCELLED:
                raise ReviewRefused("该订单已取消，不能登记发票。")
            order.invoice_info = info
            issued = {"number": info, "file": attachment.to_json() if attachment else None,
                      "url": source.url if source else None}
            order.invoice = {**(order.invoice or {}), "issued": issued}
            note_order(session, order, str(actor), Event.INVOICE, reason=info,
                       detail={"file": attachment.sha256} if attachment else None)
            notice = applicant_notice(order, Event.INVOICE, self.settings)
            email = ((order.invoice.get("request") or {}).get("invoice_email"))
            notice = dataclasses.replace(
                notice, replies=[*notice.replies, *([picture] if picture else [])],
                attachments=(attachment,) if attachment else (), cc=(email,) if email else ())
            await self.notifier.notify_applicant(session, order, notice)
        await self.notifier.deliver()
        with_file = "（附发票文件）" if attachment else ""
        return [f"已登记订单 {number} 的发票 {info}{with_file}，已通知申请人。"]

    # --- certificates -----------------------------------------------------------------------
    def _pki(self) -> CertificateChat:
        """The certificate service (commands declared ``pki`` were refused without it)."""
        if self.certificates is None:
            raise ReviewRefused("本服务未开通证书签发（bot.toml 的 [pki]）。")
        return self.certificates

    async def _personalise(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        certificates = self._pki()
        number = self._number(args, "制证")
        async with self.db.transaction() as session:
            order = await self._load(Orders(session), number)
        if order.type is not OrderType.CERTIFICATE or order.status is not OrderStatus.PAID:
            state = status_label(order.type, order.status)
            raise ReviewRefused(f"只有已支付、尚未发货的新办/补办订单才能制证，订单 {number} "
                                f"目前{state}。")
        logger.info(f"personalisation of {number} started by {actor}")
        try:
            online = await certificates.jobs.start_issuance(order)
        except CertificateRefused as refusal:
            raise ReviewRefused(str(refusal)) from None
        if online:
            return [f"已开始为订单 {number} 制证：服务大厅的密钥代理正在初始化 UKEY、生成密钥、"
                    "写入证书，完成后会通知您。"]
        return [f"已安排订单 {number} 制证，但服务大厅的密钥代理不在线：请在制证电脑上插好空白 "
                "UKEY 并运行「cadesk-agent run」，上线后自动开始。"]

    async def _retry_issuance(self, actor: Account, args: list[str],
                              private: bool) -> list[Reply]:
        return await self._retry(actor, self._number(args, "重新制证"), OrderType.CERTIFICATE)

    async def _retry_renewal(self, actor: Account, args: list[str],
                             private: bool) -> list[Reply]:
        return await self._retry(actor, self._number(args, "重新续期"), OrderType.RENEWAL)

    async def _retry(self, actor: Account, number: str, order_type: OrderType) -> list[Reply]:
        """重新制证 / 重新续期: the stopped step queued again (the checks are the job service's)."""
        try:
            retried = await self._pki().jobs.retry(number, order_type, str(actor))
        except CertificateRefused as refusal:
            raise ReviewRefused(str(refusal)) from None
        if order_type is OrderType.CERTIFICATE:
            where = ("服务大厅的密钥代理正在执行" if retried.online else
                     "服务大厅的密钥代理不在线：请在制证电脑上插好 UKEY 并运行"
                     "「cadesk-agent run」，上线后自动开始")
        else:
            where = ("已交给申请人的密钥代理，已通知申请人插好 UKEY" if retried.online else
                     "申请人的密钥代理不在线，已通知申请人插好 UKEY 并运行「cadesk-agent run」")
        return [f"已重新安排订单 {number} 的{retried.step}：{where}。"
                f"「解锁状态 {number}」可查看进度。"]

    async def _certificates(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        certificates = self._pki()
        certs = await certificates.office.search(" ".join(args).strip(), SEARCH_LIMIT)
        if not certs:
            return ["没有符合条件的证书。"]
        lines = [f"证书（{len(certs)} 张，最新的在前）："]
        lines += [f"{i}. {certificates.office.describe(c, company=True)}"
                  for i, c in enumerate(certs, 1)]
        return ["\n".join(lines)]

    async def _revoke(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        office = self._pki().office
        reason = args[1].strip() if len(args) > 1 else ""
        if not args or not reason:
            raise ReviewRefused(f"请写上证书序列号和吊销理由。用法：{usage('吊销')}")
        async with office.transaction() as session:  # the CRL listing it in the same commit
            cert = await office.by_serial(session, args[0])
            if cert is None:
                raise ReviewRefused(f"没有找到序列号为 {args[0]} 的证书。")
            try:
                office.change_status(session, cert, CertStatus.REVOKED, order=None,
                                     actor=str(actor), reason=revocation_reason(reason),
                                     why=reason)
            except CertificateRefused as refusal:
                raise ReviewRefused(str(refusal)) from None
            serial, company = cert.serial, cert.subject_name
            await self.notifier.notify_staff(
                session, f"{actor} 吊销了 {company} 的证书 {serial}：{reason}")
        await self.notifier.deliver()
        return [f"已吊销证书 {serial}（{company}），理由：{reason}。已发布新的证书吊销列表。"]

    async def _hold(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        """挂失 证书序列号 理由: after a phone call, at once and without an order."""
        certificates = self._pki()
        why = args[1].strip() if len(args) > 1 else ""
        if not args or not why:
            raise ReviewRefused(f"请写上证书序列号和挂失理由。用法：{usage('挂失')}")
        async with certificates.office.transaction() as session:  # with the CRL listing them
            try:
                held = await certificates.loss.hold_by_technician(session, args[0], str(actor),
                                                                  why)
            except CertificateRefused as refusal:
                raise ReviewRefused(str(refusal)) from None
            first = held.certificates[0]
            what = (f"{first.subject_name} 的 UKEY {first.token_serial} 上的 "
                    f"{len(held.certificates)} 张证书（{held.serials}）")
            await self.notifier.notify_staff(session, f"{actor} 挂失了{what}：{why}")
        await certificates.loss.announce(held)
        return [f"已挂失{what}，理由：{why}。已发布新的证书吊销列表，已通知该单位 "
                f"{len(held.handlers)} 位已核验经办人。解挂须由单位发送「解挂」申请并审核通过。"]

    async def _hall_code(self, actor: Account, args: list[str], private: bool) -> list[Reply]:
        code, _ = await self.agents.new_code(None, str(actor))
        minutes = int(self.settings.agents.pairing_code_minutes)
        return [f"制证代理绑定码：{code}（{minutes} 分钟内有效，只能使用一次）。"
                "在服务大厅的制证电脑上运行：\n"
                f"{pair_command(self.settings, code)}\n"
                "然后在 agent.toml 里写上空白 UKEY 的出厂管理员 PIN（factory_so_pin），"
                "再运行「cadesk-agent run」。"]

    async def _settle_loss(self, session: AsyncSession, order: Order, actor: Account,
                           approvers: Sequence[str]) -> str:
        """A 挂失 or 解挂 approved, in the approval's transaction (``_certificate_transaction``:
        the CRL is signed in it): the certificate follows and the order completes. A 解挂 whose
        certificate was revoked while it waited cannot be done: the order is cancelled with
        that reason instead, and nothing else changes."""
        certificates = self._pki()
        number = order.number
        cert = await certificates.office.by_serial(session, order.fields.get("cert_serial", ""))
        if (order.fields.get("apply_kind") == "解挂" and cert is not None
                and cert.status == CertStatus.REVOKED):
            why = f"证书 {cert.serial} 已吊销，无法解挂"
            move_order(session, order, str(actor), Event.CANCEL, reason=why,
                       detail={"approvers": list(approvers)})
            await session.flush()  # the version check happens here
            text = (f"您的订单 {number}（证书解挂）无法办理：{why}，订单已关闭。\n"
                    "吊销的证书不能再恢复使用；如仍需要 CA 证书，请发送「补办证书」申请。")
            await self.notifier.notify_applicant(
                session, order, Notice([text], f"订单 {number}：证书已吊销，无法解挂", text))
            logger.info(f"order {number}: 解挂 refused at approval by {actor}, {why}")
            return f"订单 {number} 未能解挂：{why}。订单已取消，已通知申请人。"
        move_order(session, order, str(actor), Event.APPROVE,
                   detail={"approvers": list(approvers)})
        try:
            done = await certificates.loss.on_approved(session, order, str(actor))
        except CertificateRefused as refusal:
            raise ReviewRefused(str(refusal)) from None
        await session.flush()  # the version check happens here
        notice = applicant_notice(order, Event.COMPLETE, self.settings)
        notice = Notice([f"{done}\n{notice.replies[0]}"], notice.subject, f"{done}\n{notice.body}")
        await self.notifier.notify_applicant(session, order, notice)
        return f"已通过订单 {number}：{done}已通知申请人。"

    def _certificate_transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A transaction that may hold, release or revoke certificates: with [pki] on, the CRL
        listing the change is signed in it (``CertificateOffice.transaction``)."""
        if self.certificates is None:
            return self.db.transaction()
        return self.certificates.office.transaction()

    # --- helpers --------------------------------------------------------------------------
    async def _simple(self, actor: Account, number: str, event: Event,
                      mutate: Mutation | None = None) -> Order:
        async with self.db.transaction() as session:
            order = await self._load(Orders(session), number)
            next_status(order.type, order.status, event)  # a wrong state says so first
            if event in (Event.SHIP, Event.AWAIT_PICKUP):
                check_delivery(order.fields, event)
            # leaving 已支付 (发货, 待自取; 完成 for a renewal) hands the UKEY over: only written
            if order.status is OrderStatus.PAID and self.certificates is not None and (
                    why := await self.certificates.jobs.not_written(session, order)):
                raise ReviewRefused(why)
            await self._change(session, order, actor, event, mutate=mutate)
        await self.notifier.deliver()
        return order

    async def _change(self, session: AsyncSession, order: Order, actor: Account, event: Event, *,
                      mutate: Mutation | None = None, reason: str | None = None,
                      fix: Sequence[Any] = (), detail: dict[str, Any] | None = None) -> None:
        """Move the order, log the event, queue the applicant's notice (chat and mail): all in
        the caller's transaction; ``notifier.deliver()`` after it commits."""
        next_status(order.type, order.status, event)  # before mutating
        if mutate:
            mutate(order)
        before = move_order(session, order, str(actor), event, reason=reason, detail=detail)
        after = order.status
        await session.flush()  # the version check happens here
        notice = applicant_notice(order, event, self.settings, fix)
        await self.notifier.notify_applicant(session, order, notice)
        logger.info(f"order {order.number}: {before} → {after} by {actor}")

    def _number(self, args: list[str], word: str) -> str:
        if not args:
            raise ReviewRefused(f"请写上订单号。用法：{usage(word)}")
        number = parse_order_number(args[0])
        if number is None:  # typed, but no order can have it (XB-000000-0000)
            raise ReviewRefused(f"没有找到订单 {args[0]}，请核对订单号（例如 XB-261125-7KQ3）。")
        return number

    async def _load(self, orders: Orders, number: str) -> Order:
        order = await orders.by_number(number)
        if order is None:
            raise ReviewRefused(f"没有找到订单 {number}，请核对订单号。")
        return order


# --- the technicians' commands ----------------------------------------------------------------
TechnicianHandler = Callable[[ReviewDesk, Account, list[str], bool], Awaitable[list[Reply]]]
# In 帮助 order. ``shared``: applicants send it too, only a technician's goes to the desk (帮助
# then only without a form open: inside one it explains the field being asked).
TECHNICIAN_COMMANDS = CommandTable[TechnicianHandler]([
    Command(("待审核",), "待审核", "等待审核的订单，等得最久的在前", ReviewDesk._queue),
    Command(("状态",), "状态",
            "系统运行状况：数据库、QQ 连接、邮箱收信、待发通知、密钥代理、吊销列表",
            ReviewDesk._status),
    Command(("查看",), "查看 订单号", "订单的全部内容和扫描件（群里隐去个人信息和扫描件）",
            ReviewDesk._view),
    Command(("通过",), "通过 订单号", "审核通过（需两人复核时记下第一位）", ReviewDesk._approve),
    Command(("驳回",), "驳回 订单号 理由（写明要修改的项目或附件，例如：附件二不清晰）",
            "驳回，申请人按理由中点名的项目修改", ReviewDesk._reject),
    Command(("收款",), "收款 订单号", "登记已收款", ReviewDesk._pay),
    Command(("发货",), "发货 订单号 快递公司 快递单号", "登记发货", ReviewDesk._ship),
    Command(("待自取",), "待自取 订单号", "设为待自取", ReviewDesk._await_pickup),
    Command(("完成",), "完成 订单号", "办结", ReviewDesk._complete),
    Command(("发票",), "发票 订单号 发票号码 [电子发票 PDF 或图片的链接]",
            "登记已开具的发票，申请人在聊天和邮件中收到（附文件）", ReviewDesk._invoice),
    Command(("订单",), "订单 [状态] [单位名称或信用代码]", "按状态、单位查找订单",
            ReviewDesk._search),
    Command(("历史",), "历史 订单号", "订单的办理记录", ReviewDesk._history),
    Command(("代理",), "代理 [单位名称或信用代码]", "密钥代理列表", ReviewDesk._list_agents),
    Command(("吊销代理",), "吊销代理 编号", "吊销一个密钥代理，立即断开",
            ReviewDesk._revoke_agent),
    Command(("成员",), "成员 [单位名称或信用代码]",
            "单位的账号、状态和各自绑定的密钥代理（不写单位：有待核验账号的单位）",
            ReviewDesk._members),
    Command(("解绑",), "解绑 账号（如 qq:123456）",
            "解除账号与单位的绑定，吊销它绑定的密钥代理，通知本人和单位", ReviewDesk._unbind),
    Command(("解锁状态",), "解锁状态 订单号（制证、续期的 UKEY 任务也看得到）",
            "远程解锁进行到哪一步", ReviewDesk._unlock_status, shared=True,
            form_open=FormOpen.ANSWER),
    Command(("重新解锁",), "重新解锁 订单号", "远程解锁失败或过期后重新安排",
            ReviewDesk._retry_unlock),
    Command(("制证",), "制证 订单号（把空白 UKEY 插在服务大厅的密钥代理上）",
            "为已支付的新办/补办订单制作 UKEY", ReviewDesk._personalise, pki=True),
    Command(("重新制证",), "重新制证 订单号", "制证失败或过期后重新安排（已签发的证书只重新写入）",
            ReviewDesk._retry_issuance, pki=True),
    Command(("重新续期",), "重新续期 订单号（申请人也可以发）",
            "续期写入失败或过期后重新安排（已签发的新证书只重新写入）", ReviewDesk._retry_renewal,
            pki=True, shared=True, form_open=FormOpen.ANSWER),
    Command(("证书",), "证书 [单位名称、信用代码、证书序列号或 UKEY 卡号]", "查找证书及其状态",
            ReviewDesk._certificates, pki=True),
    Command(("吊销",), "吊销 证书序列号 理由（如：密钥泄露、单位变更、停止使用）",
            "永久吊销证书，立即发布新的吊销列表", ReviewDesk._revoke, pki=True),
    Command(("挂失",), "挂失 证书序列号 理由（接到单位电话后；不带参数是申请人的挂失表单）",
            "立即挂失该证书及同一 UKEY 上的其他有效证书，通知单位", ReviewDesk._hold,
            pki=True, shared=True, argument_required=True, form_open=FormOpen.ANSWER),
    Command(("绑定制证代理",), "绑定制证代理", "服务大厅制证电脑的一次性绑定码",
            ReviewDesk._hall_code, pki=True, private=True),
    Command(("帮助",), "帮助", "查看本说明", ReviewDesk._help, shared=True),
    Command(("登记UKEY",), ukey_commands.REGISTER_USAGE,
            "登记 cadesk 之前发出的 UKEY 属于哪个单位（远程解锁、续期只认登记的 UKEY）",
            ukey_commands.register_ukey),
    Command(("确认解锁",), ukey_commands.CONFIRM_USAGE,
            "解锁读到未登记的 UKEY 时，核实后确认它属于本单位并继续重置密码",
            ukey_commands.confirm_unlock),
    Command(("确认删除",), CONFIRM_USAGE,
            "同意申请人的「删除我的资料」：立即删除其已办结订单的扫描件、隐去号码，通知本人",
            ReviewDesk._confirm_erasure),
    Command(("拒绝删除",), REFUSE_USAGE, "不同意申请人的「删除我的资料」，理由告诉本人",
            ReviewDesk._refuse_erasure),
])


INVOICE_SUFFIXES = {".pdf", ".jpg", ".jpeg", ".png"}


def _invoice_source(actor: Account, word: str) -> ImageSource | None:
    """The invoice's file named after its number: a link, or on the Console a path."""
    if word.startswith(("http://", "https://")):
        return ImageSource(url=word)
    path = Path(word.strip("'\""))
    if actor.platform == "console" and ("/" in word or "\\" in word
                                        or path.suffix.lower() in INVOICE_SUFFIXES):
        return ImageSource(path=path.expanduser())
    return None


def usage(word: str) -> str:
    return TECHNICIAN_COMMANDS[word].usage


def technician_help(certificates: bool = True) -> str:
    """The technician's 帮助: every command with its usage."""
    return "\n".join(["技术人员命令（私聊或技术人员群里发送）：",
                      *(f"· {c.usage} — {c.help}"
                        for c in TECHNICIAN_COMMANDS.visible(pki=certificates))])
