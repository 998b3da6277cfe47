"""Certificates onto UKEYs through key agents, step by step.

制证 (a paid new/reissue order, a technician's command; the service hall's agent):
    token_info (the blank UKEY's serial) → personalise (SO PIN off the factory default, the
    initial user PIN, a key pair made on the token, a request signed there) → the CA signs →
    write_certificate. The initial PIN reaches the applicant only in their private chat.
续期 (the applicant's own agent):
    token_info (which certificate is on the key; refused if the company changed) → the applicant
    confirms (确认续期) → review and payment like any order → request (signed with the key
    already on the token: the key is kept) → the CA signs, counted from the current expiry →
    write_certificate → the order completes.
重新制证 / 重新续期 (``retry``): a paid order whose steps stopped (a job failed or expired, or its
    result was refused) gets the step it needs queued again; a certificate already issued is only
    written. Until its certificate is written such an order does not leave 已支付
    (``not_written``: 发货, 待自取, 完成).
Loss reports (挂失/解挂) need no token: see ``LossDesk`` below.
The UKEY 制证 makes goes on record for the order's company (``issued``); ``request`` and
``write_certificate`` are queued only for a UKEY on record for the order's company
(bot/services/agents/ukeys.py), and a renewal reads only such a UKEY.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.certificates import (
    CertStatus,
    CertSubject,
    renewal_refusal,
    renewed_until,
    same_ukey,
    years_to_months,
)
from bot.domain.certificates import add_months as months_after
from bot.domain.fees import amount_cents
from bot.domain.lifecycle import INITIAL, Event, OrderStatus, OrderType, status_label
from bot.domain.order_log import TOKEN_JOB_NAMES
from bot.domain.orders import yuan
from bot.key_agent.protocol import HALL, b64, unb64
from bot.pki import CAError, subject_of
from bot.services.agents.hub import AgentHub, Route, Step
from bot.services.agents.so_pins import initial_user_pin, load_master
from bot.services.agents.ukeys import UkeyRefused, whose
from bot.services.agents.ukeys import record as record_ukey
from bot.services.centre import please_contact
from bot.services.certificates.office import HOLDABLE, CertificateOffice, CertificateRefused
from bot.services.filing import free_number, move_order, note_order
from bot.services.messages import Account
from bot.services.notify import (
    CompanyNotice,
    Notice,
    Notifier,
    company_notice,
    staff_notice,
)
from storage.db import Database
from storage.models import Certificate, Handler, Order, TokenJob, utcnow
from storage.repositories import Certificates, Handlers, Orders, TokenJobs, Ukeys

# the command that queues a stopped certificate or renewal order's token step again
RETRY_WORDS = {OrderType.CERTIFICATE: "重新制证", OrderType.RENEWAL: "重新续期"}
# the jobs after payment (a renewal's token_info read the key before it was submitted)
AFTER_PAYMENT = {OrderType.CERTIFICATE: ("token_info", "personalise", "write_certificate"),
                 OrderType.RENEWAL: ("request", "write_certificate")}
HANDED_OVER = (OrderStatus.SHIPPED, OrderStatus.AWAITING_PICKUP, OrderStatus.COMPLETED)


@dataclass
class Retried:
    """A stopped order's step queued again: which, and whether an agent is there to run it."""

    order: Order
    kind: str  # the job queued
    route: Route
    online: bool = False

    @property
    def step(self) -> str:
        """The job as 解锁状态 names it."""
        return TOKEN_JOB_NAMES[self.kind]


class CertificateJobs:
    """The steps after each agent result for certificate and renewal orders (``JobSteps``)."""

    def __init__(self, settings: Settings, db: Database, office: CertificateOffice,
                 hub: AgentHub, notifier: Notifier) -> None:
        self.settings = settings
        self.db = db
        self.office = office
        self.hub = hub
        self.notifier = notifier

    # --- starting ---------------------------------------------------------------------------
    async def start_issuance(self, order: Order) -> bool:
        """制证: True when the service hall's agent is online to take the blank UKEY. Refused
        (``CertificateRefused``) while a job of the order is open, or once its certificate is
        written: a second 制证 would start a second chain on another blank UKEY."""
        number = order.number
        async with self.db.transaction() as session:
            if await TokenJobs(session).open_for_order(order.id, utcnow()):
                raise CertificateRefused(
                    f"订单 {number} 的制证还在进行（等待服务大厅的密钥代理或正在执行），"
                    f"「解锁状态 {number}」可查看；失败或过期后请发「重新制证 {number}」。")
            if await self._written(session, order):
                raise CertificateRefused(f"订单 {number} 的证书已经写入 UKEY，无需再制证。")
            await self._queue_issuance(session, order)
        await self.hub.deliver(HALL)
        return self.hub.company_online(HALL)

    async def _queue_issuance(self, session: AsyncSession, order: Order) -> str:
        """The next 制证 job, in the caller's transaction; returns what it does."""
        if order.certificate_serial:  # made already, but the write did not finish: write again
            cert = await self.office.by_serial(session, order.certificate_serial)
            assert cert is not None
            await self.hub.queue(session, order, "write_certificate", cert.token_serial,
                                 hall=True, data={"certificate": b64(cert.der)})
            return "write_certificate"
        await self.hub.queue(session, order, "token_info", None, hall=True)
        return "token_info"

    async def start_renewal(self, handler: Handler, actor: str) -> str:
        """续期: a draft renewal order, and its agent asked what is on the key."""
        async with self.db.transaction() as session:
            order = await Orders(session).one_of_company(
                handler.company_id, OrderType.RENEWAL, OrderStatus.DRAFT)
            if order is None:
                values = {"project": "证书续期", "company_name": handler.company.name,
                          "uscc": handler.company.uscc}
                number = await free_number(Orders(session), "XQ", self.settings.tz)
                order = Order(number=number, type=OrderType.RENEWAL, status=INITIAL,
                              company_id=handler.company_id, handler_id=handler.id,
                              fields=values, amount_cents=amount_cents(
                                  OrderType.RENEWAL, values, self.settings.fees))
                session.add(order)
                await session.flush()
            await self.hub.queue(session, order, "token_info", None)
            number = order.number
            company_id = order.company_id
        await self.hub.deliver(company_id)
        head = f"续期订单 {number}：正在读取您的 UKEY 里的证书。"
        if self.hub.company_online(company_id):
            return head + "请保持 UKEY 插在运行着密钥代理的电脑上，读取结果马上发给您。"
        return (head + "您的密钥代理现在不在线：请在插着 UKEY 的电脑上运行「cadesk-agent run」"
                "（尚未绑定的请先发送「绑定密钥代理」），上线后会自动读取。")

    async def confirm_renewal(self, account: Account, handler: Handler, number: str) -> str:
        """确认续期 订单号: the applicant saw what is on the key; the order goes to review."""
        async with self.db.transaction() as session:
            order = await Orders(session).by_number(number)
            if (order is None or order.company_id != handler.company_id
                    or order.type is not OrderType.RENEWAL):
                return f"没有找到本单位的续期订单 {number}，请核对订单号。"
            if order.status is not OrderStatus.DRAFT:
                return f"续期订单 {number} 已经提交过了，回复「查询 {number}」查看进度。"
            if not order.certificate_serial:
                return ("还没有读到您 UKEY 里的证书，暂不能提交。请确认密钥代理在线，"
                        "再发送「续期」重新读取。")
            move_order(session, order, str(account), Event.SUBMIT)
            order.submitted_at = utcnow()
            await session.flush()
            await session.refresh(order, ["company", "handler"])
            await self.notifier.notify_staff(session, staff_notice(order, None), order.id)
        await self.notifier.deliver()
        return (f"已提交续期订单 {number}，技术人员审核通过后请按提示扫码支付 "
                f"{yuan(order.amount_cents)}。支付后，请把 UKEY 插在运行着密钥代理的电脑上，"
                "按提示输入 UKEY 密码，新证书会直接写入 UKEY。")

    async def start_rekey(self, order: Order) -> bool:
        """After a renewal is paid: the agent signs a request with the key already on the UKEY."""
        async with self.db.transaction() as session:
            await self._queue_rekey(session, order)
        await self.hub.deliver(order.company_id)
        return self.hub.company_online(order.company_id)

    async def _queue_rekey(self, session: AsyncSession, order: Order) -> str:
        """The next 续期 job after payment, in the caller's transaction; returns what it does.
        A new certificate already issued (the order names another serial than the one read
        off the key) is only written; otherwise the key signs a request."""
        if order.certificate_serial and order.certificate_serial != order.fields.get(
                "cert_serial"):
            cert = await self.office.by_serial(session, order.certificate_serial)
            assert cert is not None
            await self.hub.queue(session, order, "write_certificate", cert.token_serial,
                                 data={"certificate": b64(cert.der)})
            return "write_certificate"
        await self.hub.queue(session, order, "request", order.token_serial,
                             data={"common_name": order.company.name})
        return "request"

    # --- when a step did not finish -----------------------------------------------------------
    async def not_written(self, session: AsyncSession, order: Order) -> str | None:
        """Why a certificate or renewal order cannot be handed over or closed yet: its
        certificate is not on the UKEY (None when it is, or for any other order)."""
        if order.type not in RETRY_WORDS or await self._written(session, order):
            return None
        number, word = order.number, RETRY_WORDS[order.type]
        if order.type is OrderType.CERTIFICATE and not order.certificate_serial:
            return f"订单 {number} 还没有制证，请先「制证 {number}」。"
        after = ("写入后才能发货或待自取" if order.type is OrderType.CERTIFICATE
                 else "写入后订单自动完成，无需「完成」")
        return (f"订单 {number} 的证书还没有写入 UKEY，{after}。「解锁状态 {number}」可查看进度；"
                f"任务失败或过期的，请发「{word} {number}」重新安排。")

    @staticmethod
    async def _written(session: AsyncSession, order: Order) -> bool:
        return any(e.event is Event.CERT_WRITTEN for e in await Orders(session).events(order.id))

    async def retry(self, number: str, order_type: OrderType, actor: str,
                    company_id: int | None = None) -> Retried:
        """重新制证 / 重新续期: a paid order whose token steps stopped (a job failed, expired,
        or its result was refused) gets its next step queued again, logged with who asked.
        ``company_id``: asked by the company's handler, who sees only its own orders. Raises
        ``CertificateRefused`` saying why not."""
        word = RETRY_WORDS[order_type]
        async with self.db.transaction() as session:
            order = await Orders(session).by_number(number)
            if order is None or company_id not in (None, order.company_id):
                raise CertificateRefused(f"没有找到订单 {number}，请核对订单号。")
            if order.type is not order_type:
                other = RETRY_WORDS.get(order.type) if company_id is None else None
                raise CertificateRefused(
                    f"订单 {number} 是{order.type.label}订单，不能{word}"
                    + (f"，请发「{other} {number}」。" if other else "。"))
            state = status_label(order.type, order.status)
            if order.status in HANDED_OVER or await self._written(session, order):
                raise CertificateRefused(
                    f"订单 {number} 的证书已经写入 UKEY（目前{state}），无需{word}。")
            if order.type is OrderType.RENEWAL and order.status is OrderStatus.DRAFT:
                raise CertificateRefused(f"续期订单 {number} 还没有提交：请发送「续期」重新读取 "
                                         "UKEY，核对后「确认续期」。")
            if order.status is not OrderStatus.PAID:
                raise CertificateRefused(f"订单 {number} 目前{state}，只有已支付的订单才能"
                                         f"{word}。")
            jobs = TokenJobs(session)
            if await jobs.open_for_order(order.id, utcnow()):
                raise CertificateRefused(
                    f"订单 {number} 的 UKEY 任务还在进行（等待密钥代理上线或正在执行），"
                    f"「解锁状态 {number}」可查看；任务失败或过期后再发「{word} {number}」。")
            stopped = [j for j in await jobs.of_order(order.id)
                       if j.kind in AFTER_PAYMENT[order_type]]
            if not stopped:
                raise CertificateRefused(
                    f"订单 {number} 还没有开始制证，请发「制证 {number}」。"
                    if order_type is OrderType.CERTIFICATE
                    else f"订单 {number} 没有失败的 UKEY 任务，无需{word}。")
            last = stopped[-1]
            if order_type is OrderType.CERTIFICATE:
                step = await self._queue_issuance(session, order)
            else:
                step = await self._queue_rekey(session, order)
            note_order(session, order, actor, Event.TOKEN_RETRY,
                       reason=f"{word}：{TOKEN_JOB_NAMES[step]}",
                       detail={"kind": step, "after": last.kind, "after_status": last.status})
            order.updated_at = utcnow()  # bumps the version: two retries at once cannot both queue
            hall = order_type is OrderType.CERTIFICATE
            retried = Retried(order, step, HALL if hall else order.company_id)
            await self._tell_retry(session, retried, actor, by_staff=company_id is None)
        logger.info(f"order {number}: {step} queued again by {actor}")
        await self.hub.deliver(retried.route)
        await self.notifier.deliver()
        retried.online = self.hub.company_online(retried.route)
        return retried

    async def _tell_retry(self, session: AsyncSession, retried: Retried, actor: str, *,
                          by_staff: bool) -> None:
        """A renewal retried by a technician: the applicant must be at the PC with the UKEY (a
        request asks for its PIN). Retried by the applicant: the staff are told."""
        order = retried.order
        if not by_staff:
            await self.notifier.notify_staff(
                session, f"{actor} 重新安排了续期订单 {order.number} 的{retried.step}。", order.id)
        elif order.type is OrderType.RENEWAL:
            pin = "，按提示输入 UKEY 密码" if retried.kind == "request" else ""
            text = (f"技术人员已重新安排您的续期订单 {order.number}（{retried.step}）。请把 UKEY "
                    f"插在运行着密钥代理（「cadesk-agent run」）的电脑上{pin}，新证书会直接写入 "
                    "UKEY。")
            await self.notifier.notify_applicant(
                session, order, Notice([text], f"续期订单 {order.number}：已重新安排", text))

    # --- after each job -----------------------------------------------------------------------
    async def after(self, session: AsyncSession, order: Order, job: TokenJob,
                    message: dict[str, Any]) -> Step:
        actor = f"agent:{job.agent_id}"
        if not message.get("ok"):
            return self._failed(order, job, message)
        token = message.get("token") or {}
        try:
            if order.type is OrderType.CERTIFICATE:
                return await self._issuing(session, order, job, message, token, actor)
            if order.type is OrderType.RENEWAL:
                return await self._renewing(session, order, job, message, token, actor)
        except CAError as error:
            logger.warning(f"order {order.number}: the CA refused: {error}")
            return Step(staff=f"订单 {order.number} 签发证书失败：{error}{self._again(order)}")
        except UkeyRefused as refusal:  # the next job was not queued
            logger.warning(f"order {order.number}: token job refused: {refusal}")
            return Step(staff=f"订单 {order.number}：{refusal}{self._again(order)}")
        return Step()

    @staticmethod
    def _again(order: Order) -> str:
        """How a technician starts a paid order's stopped steps again."""
        if order.status is not OrderStatus.PAID or order.type not in RETRY_WORDS:
            return ""
        return f"\n处理后请发「{RETRY_WORDS[order.type]} {order.number}」。"

    def _failed(self, order: Order, job: TokenJob, message: dict[str, Any]) -> Step:
        why = f"（{message.get('code')}）：{message.get('message')}"
        if order.type is OrderType.CERTIFICATE:
            return Step(staff=f"订单 {order.number} 制证失败{why}{self._again(order)}")
        again = ("发送「续期」重新读取。" if job.kind == "token_info" else
                 f"发送「重新续期 {order.number}」重新安排（已付的费用不会重复收取）。")
        text = (f"您的续期订单 {order.number} 这一步没有完成：{message.get('message')}\n"
                f"请确认 UKEY 插好、密钥代理在运行，然后{again}")
        staff = (f"续期订单 {order.number} 的 {job.kind} 失败{why}" + (
            "" if job.kind == "token_info" else
            f"\n处理后申请人或技术人员可发「重新续期 {order.number}」。"))
        return Step(Notice([text], f"续期订单 {order.number}：未完成", text), staff=staff)

    async def _issuing(self, session: AsyncSession, order: Order, job: TokenJob,
                       message: dict[str, Any], token: dict[str, Any], actor: str) -> Step:
        serial = str(token.get("serial"))
        if job.kind == "token_info":
            if token.get("certificates"):
                return Step(staff=f"订单 {order.number}：服务大厅插着的 UKEY（{serial}）里已有"
                                  "证书，不是空白 UKEY。请换一个空白 UKEY 后再发"
                                  f"「制证 {order.number}」。")
            ukey = await Ukeys(session).by_serial(serial)
            if ukey is not None and ukey.company_id != order.company_id:
                return Step(staff=f"订单 {order.number}：服务大厅插着的 UKEY（{serial}）登记在 "
                                  f"{whose(ukey)} 名下，不能为本单位制证。请换一个空白 UKEY 后再发"
                                  f"「制证 {order.number}」。")
            await self.hub.queue(session, order, "personalise", serial, hall=True,
                                 data={"common_name": order.company.name})
            return Step()
        if job.kind == "personalise":  # the key is made on this UKEY: it is the company's now
            await record_ukey(session, serial, order.company, "issued", actor)
            months = years_to_months(order.fields.get("years", "1年"))
            cert = self.office.issue(session, order, unb64(message["csr"]), serial,
                                     months_after(utcnow(), months))
            note_order(session, order, actor, Event.CERT_ISSUED, reason=f"签发证书 {cert.serial}",
                       detail={"certificate": cert.serial, "token_serial": serial})
            await self.hub.queue(session, order, "write_certificate", serial, hall=True,
                                 data={"certificate": b64(cert.der)})
            return Step()
        # write_certificate: the UKEY is ready
        cert = await self.office.by_serial(session, order.certificate_serial or "")
        assert cert is not None
        note_order(session, order, actor, Event.CERT_WRITTEN, reason=f"证书已写入 UKEY {serial}")
        pin = initial_user_pin(load_master(self.settings.agents.so_master_file), serial, order.id)
        until = cert.not_after.astimezone(self.settings.tz)
        words = (f"您的订单 {order.number} 的 UKEY 已制作完成：UKEY 卡号 {serial}，"
                 f"证书序列号 {cert.serial}，有效期至 {until:%Y-%m-%d}。\n"
                 f"UKEY 初始密码：{pin}\n"
                 "初始密码只在这个私聊里发给您一次（UKEY 寄出或自取时不附密码）。收到 UKEY 后请"
                 "用证书客户端立即修改密码，并删除这条消息。")
        delivery = "待自取" if order.fields.get("self_pickup") == "自取" else "发货"
        return Step(private=[words], staff=f"订单 {order.number} 制证完成（UKEY {serial}，证书 "
                    f"{cert.serial}），可以「{delivery} {order.number}」了。")

    async def _renewing(self, session: AsyncSession, order: Order, job: TokenJob,
                        message: dict[str, Any], token: dict[str, Any], actor: str) -> Step:
        serial = str(token.get("serial"))
        if job.kind == "token_info":
            return await self._read_for_renewal(session, order, token, serial, actor)
        if job.kind == "request":
            current = await self.office.by_serial(session, order.fields.get("cert_serial", ""))
            assert current is not None
            requested = x509.load_der_x509_csr(unb64(message["csr"])).public_key()
            if requested != x509.load_der_x509_certificate(current.der).public_key():
                return Step(staff=f"续期订单 {order.number}：UKEY 给出的密钥与原证书的不同，"
                                  f"未签发。请核实是不是换了 UKEY。{self._again(order)}")
            until = renewed_until(current.not_after, utcnow(), self.settings.pki.term_months)
            cert = self.office.issue(session, order, unb64(message["csr"]), serial, until,
                                     replaces=current)
            note_order(session, order, actor, Event.CERT_ISSUED,
                       reason=f"续期签发证书 {cert.serial}",
                       detail={"certificate": cert.serial, "replaces": current.serial})
            await self.hub.queue(session, order, "write_certificate", serial,
                                 data={"certificate": b64(cert.der)})
            return Step()
        # write_certificate: done
        cert = await self.office.by_serial(session, order.certificate_serial or "")
        assert cert is not None
        note_order(session, order, actor, Event.CERT_WRITTEN, reason=f"证书已写入 UKEY {serial}")
        move_order(session, order, actor, Event.COMPLETE,
                   reason=f"新证书 {cert.serial} 已写入 UKEY")
        until = cert.not_after.astimezone(self.settings.tz)
        text = (f"您的续期订单 {order.number} 已完成：新证书（序列号 {cert.serial}）已写入 UKEY "
                f"{serial}，有效期至 {until:%Y-%m-%d %H:%M}。UKEY 密码不变，可以继续投标。")
        return Step(Notice([text], f"续期订单 {order.number}：已完成，有效期至 {until:%Y-%m-%d}",
                           text))

    async def _read_for_renewal(self, session: AsyncSession, order: Order,
                                token: dict[str, Any], serial: str, actor: str) -> Step:
        company = order.company
        ours = None
        for info in token.get("certificates") or []:
            cert = await self.office.by_serial(session, info.get("serial_number", ""))
            if cert is not None and cert.status in (CertStatus.ACTIVE, CertStatus.HOLD):
                ours = cert
        if ours is None:
            return self._refuse_renewal(session, order, actor, (
                "UKEY 里没有本中心签发的有效证书，无法续期。"
                "如果证书已丢失或损坏，请申请「补办证书」。"))
        on_key = subject_of(x509.load_der_x509_certificate(ours.der))
        why = renewal_refusal(CertSubject(on_key.company_name, on_key.uscc) if on_key else None,
                              company.name, company.uscc)
        if why is None and ours.status == CertStatus.HOLD:
            why = "这张证书已挂失，须先「解挂」才能续期。"
        ukey = await Ukeys(session).by_serial(serial)
        if why is None and (ukey is None or ukey.company_id != order.company_id):
            why = (f"这个 UKEY（卡号 {serial}）没有登记在贵单位名下，不能续期。"
                   f"需要核实登记的，{please_contact(self.settings)}")
        if why is not None:
            return self._refuse_renewal(session, order, actor, why)
        tz = self.settings.tz
        order.token_serial, order.certificate_serial = serial, ours.serial
        order.fields = {**order.fields, "token_serial": serial, "cert_serial": ours.serial,
                        "cert_info": f"{ours.subject_name}（序列号 {ours.serial}）",
                        "expires": f"{ours.not_after.astimezone(tz):%Y-%m-%d %H:%M}"}
        until = renewed_until(ours.not_after, utcnow(), self.settings.pki.term_months)
        text = (f"已读取您的 UKEY，请核对：\n项目：证书续期\n订单号：{order.number}\n"
                f"公司名称：{company.name}\n统一社会信用代码：{company.uscc}\n"
                f"证书信息：{ours.subject_name}，序列号 {ours.serial}，UKEY 卡号 {serial}\n"
                f"当前截止日期：{ours.not_after.astimezone(tz):%Y-%m-%d %H:%M}\n"
                f"续期后截止日期：{until.astimezone(tz):%Y-%m-%d %H:%M}\n"
                f"费用：{yuan(order.amount_cents)}\n"
                "单位名称、法定代表人和信用代码都没有变更的，回复"
                f"「确认续期 {order.number}」提交审核；有变更的须申请「新办证书」。")
        return Step(Notice([text], f"续期订单 {order.number}：请确认", text))

    def _refuse_renewal(self, session: AsyncSession, order: Order, actor: str,
                        why: str) -> Step:
        move_order(session, order, actor, Event.CANCEL, reason=why)
        text = f"续期订单 {order.number} 无法办理：{why}"
        return Step(Notice([text], f"续期订单 {order.number}：无法办理", text))


@dataclass
class Held:
    """What a hold did, and who is told once it is committed (the mail is queued already)."""

    certificates: list[Certificate]
    handlers: Sequence[Handler] = ()
    notice: Notice | None = None

    @property
    def serials(self) -> str:
        return "、".join(c.serial for c in self.certificates)


class LossDesk:
    """挂失 puts every valid certificate on the UKEY on hold the moment the report is filed (loss
    cannot wait for office hours); review then confirms it. 解挂 lifts those holds once a
    technician approves. A technician may also hold by command after a phone call. The company's
    verified handlers are told of every hold."""

    def __init__(self, office: CertificateOffice) -> None:
        self.office = office

    async def known_answers(self, handler: Handler, apply_kind: str) -> dict[str, str]:
        """The UKEY a 挂失/解挂 is about, when the company has one it could be (valid for 挂失,
        held for 解挂): its 卡号 and newest certificate, so neither is asked. Empty otherwise."""
        now = utcnow()
        certs = [c for c in await self.office.of_company(handler.company_id)
                 if (c.status == CertStatus.HOLD if apply_kind == "解挂"
                     else c.status in HOLDABLE and c.not_after > now)]
        if len({c.token_serial for c in certs}) != 1:
            return {}
        newest = max(certs, key=lambda c: c.not_after)
        return {"ukey_serial": newest.token_serial, "cert_serial": newest.serial}

    async def certificate_for(self, session: AsyncSession, handler: Handler,
                              values: dict[str, str]) -> Certificate:
        cert = await self.office.by_serial(session, values.get("cert_serial", ""))
        if cert is None or cert.company_id != handler.company_id:
            raise CertificateRefused(
                "没有找到本单位这个序列号的证书，请核对【证书序列号】"
                "（发送「我的证书」可以查看本单位的证书）。")
        if not same_ukey(values.get("ukey_serial", ""), cert.token_serial):
            raise CertificateRefused(
                f"【USBKEY卡号】与证书 {cert.serial} 所在的 UKEY 卡号不一致，请核对后重新输入"
                "（发送「我的证书」可以查看）。", field="ukey_serial")
        status = CertStatus(cert.status)
        loss = values.get("apply_kind") == "挂失"
        if (status not in HOLDABLE) if loss else (status is not CertStatus.HOLD):
            action = values.get("apply_kind", "挂失")
            raise CertificateRefused(f"证书 {cert.serial} 目前{status.label}，不能{action}。"
                                     "请核对【证书序列号】，或发送「取消」结束。")
        return cert

    async def on_filed(self, session: AsyncSession, order: Order, cert: Certificate,
                       actor: str) -> Held | None:
        """Right after a 挂失 is filed: the holds, in the same transaction, and the company's
        other verified handlers' mail. None for a 解挂 (it waits for review)."""
        if order.fields.get("apply_kind") != "挂失":
            return None
        held = Held(await self.office.hold_ukey(session, cert, order=order, actor=actor))
        return await self._tell(session, held, cert, actor, CompanyNotice.LOSS_FILED,
                                number=order.number)

    async def hold_by_technician(self, session: AsyncSession, serial: str, actor: str,
                                 why: str) -> Held:
        """A technician's 挂失 证书序列号 理由 (after a phone call): no order, logged with who and
        why on each certificate."""
        cert = await self.office.by_serial(session, serial)
        if cert is None:
            raise CertificateRefused(f"没有找到序列号为 {serial} 的证书，请核对"
                                     "（「证书 单位名称」可查找）。")
        if cert.not_after <= utcnow():
            raise CertificateRefused(f"证书 {cert.serial} 已过期，无需挂失。")
        held = Held(await self.office.hold_ukey(session, cert, order=None, actor=actor,
                                                why=why))
        return await self._tell(session, held, cert, None, CompanyNotice.TECHNICIAN_HOLD,
                                why=why)

    async def _tell(self, session: AsyncSession, held: Held, cert: Certificate,
                    actor: str | None, kind: CompanyNotice, **values: str) -> Held:
        handlers = [h for h in await Handlers(session).verified_of(cert.company_id)
                    if str(Account(h.platform, h.user_id)) != actor]  # the filer was answered
        notice = company_notice(kind, self.office.settings, company=cert.subject_name,
                                who=actor or "", token=cert.token_serial,
                                serials=held.serials, count=str(len(held.certificates)),
                                **values)
        await self.office.notifier.notify_handlers(session, handlers, notice)
        held.handlers, held.notice = handlers, notice
        return held

    async def announce(self, held: Held) -> None:
        """After the commit: the notices queued with the hold go out."""
        await self.office.notifier.deliver()

    async def on_approved(self, session: AsyncSession, order: Order, actor: str) -> str:
        """The technician approved: a 解挂 lifts the UKEY's holds; either order then completes."""
        cert = await self.office.by_serial(session, order.fields.get("cert_serial", ""))
        if cert is None:
            raise CertificateRefused("找不到订单里的证书，无法办理。")
        if order.fields.get("apply_kind") == "解挂":
            released = await self.office.release_ukey(session, cert, order=order, actor=actor)
            done = f"证书 {'、'.join(c.serial for c in released)} 已解挂，恢复使用。"
        else:
            held = [c.serial for c in await Certificates(session).on_token(cert.token_serial)
                    if c.status == CertStatus.HOLD and c.company_id == cert.company_id]
            done = (f"证书 {cert.serial} 已吊销，永久停止使用，挂失办结。"
                    if not held and cert.status == CertStatus.REVOKED else
                    f"证书 {'、'.join(held) or cert.serial} 挂失已确认，保持暂停使用。")
        move_order(session, order, actor, Event.COMPLETE, reason=done)
        return done
