"""The applicant's side of the chat: one entry point, ``Dialogue.handle``, for every message.

A message either belongs to the form in progress (saved after every step, so a restart loses
nothing) or is a command. The rules live in the domain; this module fetches, stores and routes.
"""

import asyncio
import re
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path

from loguru import logger
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from bot.config import Settings
from bot.domain.fees import amount_cents, quote
from bot.domain.fields import FieldKind
from bot.domain.flow import FlowState, FormFlow, Mode, Outcome
from bot.domain.forms import (
    BINDING,
    BINDING_CONTACT,
    BINDING_REQUEST,
    CERTIFICATE,
    INVOICE,
    LOSS,
    UNLOCK,
    Form,
    form_for,
)
from bot.domain.lifecycle import Event, OrderStatus, OrderType, status_label
from bot.domain.order_numbers import parse_order_number
from bot.domain.orders import order_title
from bot.domain.remembered import suggested_region
from bot.domain.review import changed_fields
from bot.domain.scans import InvalidScan, ScanInfo, accept_scan
from bot.domain.text import normalise
from bot.domain.trust import HandlerStatus
from bot.domain.validators import InvalidAnswer, email_address
from bot.domain.withdrawal import WithdrawalRefused, check_withdrawal
from bot.services import order_views
from bot.services.agents.guide import pairing_steps
from bot.services.agents.hub import AgentHub
from bot.services.agents.registry import AgentRegistry
from bot.services.applications import binding, invoices
from bot.services.applications.commands import (
    Asked,
    is_verified,
    may_see,
    menu_lines,
    no_certificates,
    not_found,
    not_verified,
    order_argument,
    order_number_of,
)
from bot.services.applications.joining import Joining
from bot.services.applications.paper_forms import PaperForms
from bot.services.applications.remembered import remembered_answers
from bot.services.centre import faq_answers, menu_footer, please_contact, reach, when_answered
from bot.services.certificates.chat import CertificateChat
from bot.services.certificates.office import CertificateRefused
from bot.services.commands import Command, CommandTable, FormOpen
from bot.services.filing import file_order, move_order
from bot.services.keyed_locks import KeyedLocks
from bot.services.messages import Account, ImageSource, Incoming, Reply
from bot.services.notify import Notifier, staff_notice, withdrawn_notice
from bot.services.ports import FetchError, ImageFetching, ScanStorage
from bot.services.retention.erasure import Erasure
from bot.services.retention.purge import Retention
from bot.services.scan_use import unused_scans
from storage.account_memo import AccountRows, BindingRow, FormRow
from storage.account_reader import AccountReader
from storage.db import Database, DatabaseUnavailable
from storage.models import Attachment, Handler, OrderEvent, utcnow
from storage.repositories import Companies, Conversations, Handlers, Orders
from storage.state_writer import StateWriter

ORDER_LIST_LIMIT = 10
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".bmp", ".gif", ".png", ".heic", ".heif"}
SCAN_NOT_HANDLED = "这张图片无法处理，请重新拍照后发送。"
CONSOLE_SCAN_HINT = "\n（控制台里不能发图片：请输入图片文件的路径或网址。）"
# every step is one transaction, so a failed one kept nothing of this message: say so
DATABASE_BUSY = ("系统繁忙，您刚才发送的内容没有保存，请稍等一两分钟后重新发送。"
                 "之前已填写的内容和已提交的订单都不受影响。")


PENDING_LINE = ("【待核验】您与本单位的绑定尚未核验：现在可以办理下列业务；查看本单位已有的订单"
                "和证书、挂失/解挂、续期、绑定密钥代理须核验通过后办理。")


def menu(company_name: str, certificates: bool = False, verified: bool = True,
         footer: str = "", email: bool = True) -> str:
    """The applicant's menu (and 帮助 outside a form): what this account may do, in table order;
    a pending account's says so first; ``footer`` (prices, how to reach the centre) last."""
    shown = APPLICANT_COMMANDS.visible(pki=certificates, verified=verified, email=email)
    head = f"您好，这里是 CA 数字证书服务，当前单位：{company_name}。"
    return "\n".join([*([head, PENDING_LINE, "请回复："] if not verified else [head + "请回复："]),
                      *menu_lines(shown), *([footer] if footer else [])])


NO_MAIL = ("本服务暂未开通邮件通知，不需要设置邮箱：审核结果、付款、发货等所有通知都会在这里"
           "（聊天中）发给您。")

# an account that joins a person bound on another channel (绑定 绑定码) is told how, up front
WELCOME = ("您好，欢迎使用 CA 数字证书服务！首次使用需要先绑定您所在的单位（只需一次），"
           "之后即可在这里办理证书、上传资料、查询进度。"
           "\n已在 QQ 或微信公众号等渠道绑定过的，不必再填：请在那里发送「绑定其他渠道」获取"
           "绑定码，再在这里发送「绑定 绑定码」。")


class Dialogue:
    def __init__(self, settings: Settings, db: Database, scans: ScanStorage,
                 fetcher: ImageFetching, notifier: Notifier, agents: AgentRegistry,
                 hub: AgentHub, paper_forms: PaperForms,
                 certificates: CertificateChat | None = None,
                 default_region: str | None = None) -> None:
        self.settings = settings
        self.paper_forms = paper_forms
        # 项目所属地区 suggested to everyone: the centre's city (「临沂」 or 「临沂市」)
        self.default_region = default_region
        self.certificates = certificates  # None: [pki] is off
        self.notifier = notifier
        self.agents = agents
        self.hub = hub
        self.db = db
        self.states = StateWriter(db)  # every account's form saves, committed in batches
        self.reads = AccountReader(db)  # accounts not in the memo, read in batches
        self.scans = scans
        self.fetcher = fetcher
        self._locks = KeyedLocks[Account]()
        self.erasure = Erasure(settings, db, Retention(settings, db, scans, notifier), notifier)
        self.joining = Joining(settings, db, notifier)

    async def handle(self, account: Account, incoming: Incoming) -> list[Reply]:
        """Answer one message. Messages of one account are handled one at a time, in order:
        in this process by its lock, across processes ([cluster]) by the database's."""
        async with self._locks.of(account):
            try:
                async with self.db.cluster.account(account.platform, account.user_id):
                    answer = await self._handle(account, incoming)
                    # notices no path could carry go first, where the channel's rules held them
                    return await self.notifier.chat.with_held(account, incoming.ref, answer)
            except DatabaseUnavailable as error:
                logger.warning(f"database unavailable while answering {account}: {error}")
                return [DATABASE_BUSY]

    async def _handle(self, account: Account, incoming: Incoming) -> list[Reply]:
        text = normalise(incoming.text)
        rows = await self._rows(account)
        state = FlowState.from_json(rows.form.state) if rows.form else None
        idle = rows.form is not None and (utcnow() - rows.form.updated_at > timedelta(
            minutes=self.settings.dialogue.idle_minutes))
        found = APPLICANT_COMMANDS.match(text)
        command, argument = found or (None, "")
        # a command is given the binding as it is now (an ORM object, read afresh); a form's
        # answer and the menu need no more than the memo's
        handler: Handler | BindingRow | None = (
            rows.binding if command is None else await self._handler(account))
        if command is not None and command.form_open is FormOpen.ANSWER and (
                handler is not None or not command.binding):
            replies = await self._run(command, Asked(account, _orm(handler), argument))
            # the form as the command left it (绑定 绑定码 ends an unbound account's binding form)
            return [*replies, *self._still_open(state and await self._form_state(account))]
        # a question the centre's FAQ answers, unless a form waits for an answer
        answers = faq_answers(self.settings, text) if command is None else []
        if state is not None:
            flow = FormFlow(state, self.settings.fees)
            pause = idle or (command is not None and command.form_open is FormOpen.PAUSE)
            if pause and state.mode is not Mode.CONFIRM_CANCEL:
                flow.pause()
            if answers and flow.state.paused and not incoming.images:
                await self._save(account, flow)
                return [*answers, flow.reminder()]
            return await self._continue(account, flow, incoming, answers)
        if handler is None and (command is None or command.binding):
            return [*answers, *await self._welcome(account)]
        if command is None:
            assert isinstance(handler, BindingRow)
            return answers or [self._menu_of(handler.company_name, handler.verified)]
        return await self._run(command, Asked(account, _orm(handler), argument))

    async def _rows(self, account: Account) -> AccountRows:
        """The account's binding and form: from the memo, else read (batched with other
        accounts read at the same time, then kept)."""
        key = (account.platform, account.user_id)
        memo = self.db.memo
        rows = memo.get(key)
        if rows is None:
            since = memo.generation
            rows = await self.reads.read(key)
            memo.keep(key, rows, since)
        return rows

    async def _form_state(self, account: Account) -> FlowState | None:
        form = (await self._rows(account)).form
        return FlowState.from_json(form.state) if form is not None else None

    async def _welcome(self, account: Account) -> list[str]:
        """An unbound account: the binding questions begin."""
        flow, outcome = FormFlow.start(BINDING)
        await self._save(account, flow)
        return [WELCOME, *outcome.replies[1:]]

    async def _handler(self, account: Account) -> Handler | None:
        """The account's handler as an ORM object, read now; None when not bound (a technician
        unbinding it makes binding again a new request)."""
        async with self.db.transaction() as session:
            handler = await Handlers(session).get(account.platform, account.user_id)
        if handler is not None and handler.status is HandlerStatus.REMOVED:
            return None
        return handler

    async def _run(self, command: "ApplicantCommand", asked: Asked) -> list[Reply]:
        """A command whose binding is settled: the remaining flags, then its handler."""
        if command.verified and asked.handler is not None and not is_verified(asked.handler):
            return [not_verified(command.word)]
        if command.pki and self.certificates is None:
            return [no_certificates(self.settings)]
        return [*await command.handler(self, asked)]

    async def has_form(self, account: Account) -> bool:
        """Whether the account has a form open (its messages are the form's answers)."""
        return (await self._rows(account)).form is not None

    def _menu(self, handler: Handler, verified: bool | None = None) -> str:
        return self._menu_of(handler.company.name,
                             is_verified(handler) if verified is None else verified)

    def _menu_of(self, company_name: str, verified: bool) -> str:
        certificates = self.certificates is not None
        return menu(company_name, certificates=certificates, verified=verified,
                    footer=menu_footer(self.settings, certificates),
                    email=self.settings.email.enabled)

    # --- commands without a form ------------------------------------------------------------
    async def _start(self, asked: Asked, form: Form, extra: dict[str, str]) -> list[str]:
        """A form with the company profile filled in, the answers of earlier orders offered
        again, and (挂失/解挂) the company's only UKEY filled in."""
        handler = asked.bound
        company = handler.company
        known: dict[str, str] = {}
        if form is LOSS and self.certificates is not None:
            known = await self.certificates.loss_answers(handler, extra["apply_kind"])
        async with self.db.transaction() as session:
            defaults = await remembered_answers(session, handler, form)
        flow, outcome = FormFlow.start(
            form, {**form.presets(company.name, company.uscc, **extra), **known},
            self.settings.fees, defaults=defaults,
            suggested=suggested_region(form, self.default_region))
        await self._save(asked.account, flow)
        if known:
            head, *rest = outcome.replies
            return [f"{head}\n本单位只有一个可以{extra['apply_kind']}的 UKEY（卡号 "
                    f"{known['ukey_serial']}，证书序列号 {known['cert_serial']}），已为您填好，"
                    "不用再输入；最后核对时可以「修改」。", *rest]
        return outcome.replies

    async def _help(self, asked: Asked) -> list[str]:
        return [self._menu(asked.bound)]

    async def _no_form(self, asked: Asked) -> list[str]:
        return ["当前没有未完成的办理。\n" + self._menu(asked.bound)]

    def _still_open(self, state: FlowState | None) -> list[str]:
        return [FormFlow(state).recall()] if state is not None else []

    # --- a form in progress ---------------------------------------------------------------
    async def _continue(self, account: Account, flow: FormFlow, incoming: Incoming,
                        questions: Sequence[str] = ()) -> list[Reply]:
        """The form takes the message. ``questions``: the FAQ's answers to it, given instead of
        the refusal when the field refuses it (「新办证书多少钱？」 is no 信用代码)."""
        sources = list(incoming.images)
        text = normalise(incoming.text)
        asked_before = flow.state.position  # None at the summary
        if not sources and incoming.local_files and flow.expects_scan:
            source = _typed_source(text)
            sources = [source] if source else []
        if sources:
            outcome = await self._take_scans(flow, sources)
        else:
            outcome = flow.handle_text(text)
        if outcome.refused and questions:
            outcome.replies = [*questions, flow.prompt()]
        if outcome.cancelled:
            await self._drop(account, flow)
            return outcome.replies
        if outcome.finished:
            return outcome.replies + await self._finish(account, flow)
        await self._save(account, flow)
        if incoming.local_files and flow.expects_scan and outcome.replies:
            outcome.replies[-1] += CONSOLE_SCAN_HINT
        if flow.state.position != asked_before:
            return await self._with_filled_form(flow, outcome.replies)
        return [*outcome.replies]

    async def _with_filled_form(self, flow: FormFlow, replies: list[str]) -> list[Reply]:
        """When the scan of a paper form the centre fills in is asked for (the unlock's 密码重置
        申请表), that form filled in from the answers comes first, then the question."""
        scan = flow.current
        if not (flow.expects_scan and scan is not None and scan.prefill and replies):
            return [*replies]
        filled = await self.paper_forms.filled(flow.form, scan, flow.state.values)
        return [*replies[:-1], *filled, replies[-1]]

    async def _take_scans(self, flow: FormFlow, sources: list[ImageSource]) -> Outcome:
        """Each image answers the next scan asked for, so several may come in one message."""
        if not flow.expects_scan:
            if flow.state.paused:
                return Outcome([flow.reminder()])
            return Outcome(["这一步不需要图片。\n" + flow.prompt()])
        receipts: list[str] = []
        for i, source in enumerate(sources):
            current = flow.current
            if not flow.expects_scan or current is None:
                receipts.append(f"多出的 {len(sources) - i} 张图片没有使用。")
                break
            try:
                data = await self.fetcher.fetch(source)
                accepted = await asyncio.to_thread(accept_scan, data,
                                                   self.settings.scans.rules())
                info = accepted.info
                await asyncio.to_thread(self.scans.save, info.sha256, accepted.data)
            except (FetchError, InvalidScan) as error:
                logger.info(f"scan refused for {current.key}: {error}")
                return Outcome([*receipts, f"【{current.title}】未通过检查：{error}\n"
                                f"{flow.prompt()}"])
            except Exception as error:  # a bug, a full disk: an answer all the same, not silence
                # type and place only: a traceback's locals would show the form's answers
                where = traceback.extract_tb(error.__traceback__)[-1]
                logger.error(f"scan for {current.key} not handled: {type(error).__name__} at "
                             f"{Path(where.filename).name}:{where.lineno}")
                return Outcome([*receipts, f"【{current.title}】{SCAN_NOT_HANDLED}\n"
                                f"{flow.prompt()}"])
            receipts.append(flow.handle_scan(info).replies[0])
        return Outcome([*receipts, flow.prompt()])

    async def _finish(self, account: Account, flow: FormFlow) -> list[str]:
        if flow.form is BINDING:
            return await self._bind(account, flow)
        handler = await self._handler(account)  # as it is now, for what is filed in its name
        assert handler is not None  # a 解绑 deletes the form with the binding
        if flow.form is BINDING_CONTACT:
            return await self._contact_given(account, flow)
        if flow.form is INVOICE:
            return await invoices.file_request(self, account, handler, flow)
        return await self._submit(account, handler, flow)

    async def _bind(self, account: Account, flow: FormFlow) -> list[str]:
        try:
            return await self._bind_once(account, flow)
        except IntegrityError:  # another handler registered the same USCC at this instant
            return await self._bind_once(account, flow)

    async def _bind_once(self, account: Account, flow: FormFlow) -> list[str]:
        """The binding questions answered: the account is bound, pending, and asks to be
        verified (a colleague vouches, or it sends the documents)."""
        values, _ = flow.result()
        async with self.db.transaction() as session:
            company = await Companies(session).by_uscc(values["uscc"])
            vouchers = await Handlers(session).verified_of(company.id) if company else []
            # only a name someone verified is binding: otherwise the technician checks the licence
            if vouchers and company is not None and company.name != values["company_name"]:
                outcome = flow.reopen("company_name", "该统一社会信用代码已登记的单位名称与您填写的"
                                      "不一致，请对照营业执照核对后重新输入。")
                await Conversations(session).save(account.platform, account.user_id,
                                                   flow.state.to_json())
                return outcome.replies
            if company is None:
                company = await Companies(session).add(values["uscc"], values["company_name"],
                                                       utcnow())
            handler = await Handlers(session).bind(account.platform, account.user_id, company)
            replies, told = await self._ask_binding(session, account, handler, values, vouchers)
        logger.info(f"{account} bound to company #{company.id}, pending")
        first, *rest = replies
        await self._announce(told)
        return [f"已登记：您申请代表【{company.name}】办理业务（待核验）。{first}", *rest]

    async def _contact_given(self, account: Account, flow: FormFlow) -> list[str]:
        """「申请核验」 answered: as at the end of binding, for the company already bound."""
        values, _ = flow.result()
        async with self.db.transaction() as session:
            handler = await Handlers(session).get(account.platform, account.user_id)
            assert handler is not None
            vouchers = await Handlers(session).verified_of(handler.company_id)
            replies, told = await self._ask_binding(
                session, account, handler, {**values, "company_name": handler.company.name},
                vouchers)
        await self._announce(told)
        return replies

    async def _ask_binding(self, session: AsyncSession, account: Account, handler: Handler,
                           values: dict[str, str], vouchers: Sequence[Handler],
                           ) -> tuple[list[str], binding.Told | None]:
        """A later account's request is filed and its colleagues asked; a first account goes on
        to the documents (``BINDING_REQUEST``), filed when that form is submitted."""
        start = binding.request_values(handler.company.uscc, values)
        if vouchers:
            told = await binding.file_vouch_request(session, self.settings, self.notifier,
                                                    handler, start, str(account))
            await Conversations(session).delete(account.platform, account.user_id)
            await self.notifier.notify_staff(session, binding.staff_notice_of(told.order),
                                             told.order.id)
            return binding.submitted_reply(told.order, vouch=True), told
        flow, outcome = FormFlow.start(BINDING_REQUEST, start)
        await Conversations(session).save(account.platform, account.user_id, flow.state.to_json())
        return ["本单位还没有已核验的经办人，请提交单位授权书和营业执照，由技术人员核验。"
                "核验前您也可以回复「取消」先办理新办证书等业务，之后回复「申请核验」再提交。\n"
                + outcome.replies[0], *outcome.replies[1:]], None

    async def _announce(self, told: binding.Told | None) -> None:
        """After the commit: the colleagues asked and the technicians told of a new request."""
        if told is not None:
            await told.deliver(self.notifier)

    async def _submit(self, account: Account, handler: Handler, flow: FormFlow) -> list[str]:
        if flow.state.order_number:
            return await self._resubmit(account, handler, flow)
        values, scans = flow.result()
        order_type = flow.form.order_type
        assert order_type is not None
        if order_type is OrderType.BINDING:
            return await self._submit_binding(account, handler, values, scans)
        held = None
        # a 挂失 holds certificates at once: the CRL that lists them is signed in the same commit
        async with (self.certificates.office.transaction()
                    if order_type is OrderType.LOSS and self.certificates is not None
                    else self.db.transaction()) as session:
            cert = None
            if order_type is OrderType.LOSS:
                if self.certificates is None:  # switched off while the form was being filled
                    await Conversations(session).delete(account.platform, account.user_id)
                    return [no_certificates(self.settings)]
                try:
                    cert = await self.certificates.check_loss(session, handler, values)
                except CertificateRefused as refusal:
                    outcome = flow.reopen(refusal.field, str(refusal))
                    await Conversations(session).save(account.platform, account.user_id,
                                                       flow.state.to_json())
                    return outcome.replies
            order = await file_order(session, self.settings, order_type=order_type,
                                     values=values, scans=scans, company_id=handler.company_id,
                                     handler_id=handler.id, actor=str(account))
            if cert is not None and self.certificates is not None:
                held = await self.certificates.loss_filed(session, order, cert, str(account))
            await Conversations(session).delete(account.platform, account.user_id)
            notice = staff_notice(order, None)
            if held:
                notice += f"\nUKEY 上的证书（{held.serials}）已立即挂失（暂停使用），请审核确认。"
            await self.notifier.notify_staff(session, notice, order.id)
        logger.info(f"order {order.number} submitted by {account}")
        await self.notifier.deliver()
        after = ("审核通过后请按提示扫码支付。" if order.amount_cents
                 else "审核通过后会尽快为您办理。")
        if held:
            after = (f"证书已立即挂失：这个 UKEY 上的 {len(held.certificates)} 张证书（序列号 "
                     f"{held.serials}）从现在起不能再用于签名投标（已列入证书吊销列表）。"
                     "找回 UKEY 后可发送「解挂」申请恢复。")
        fee = quote(order_type, values, self.settings.fees)
        return [f"提交成功！\n订单号：{order.number}\n"
                f"【{order_title(order_type, values)}】{fee.line}\n"
                f"接下来：技术人员会尽快审核您的资料，结果会第一时间在这里通知您；{after}"
                "如被驳回，请按驳回理由修改后重新提交。\n"
                f"随时回复「查询 {order.number}」查看进度；"
                f"审核前不想办了，回复「撤回 {order.number}」。"]

    async def _submit_binding(self, account: Account, handler: Handler, values: dict[str, str],
                              scans: dict[str, ScanInfo]) -> list[str]:
        """A first account's documents: the request goes to the technicians' queue."""
        async with self.db.transaction() as session:
            order = await binding.open_request(Orders(session), handler)
            if order is None:
                order = await file_order(
                    session, self.settings, order_type=OrderType.BINDING,
                    values={**values, binding.ROUTE: binding.DOCUMENTS}, scans=scans,
                    company_id=handler.company_id, handler_id=handler.id, actor=str(account))
                filed = True
                await self.notifier.notify_staff(session, binding.staff_notice_of(order),
                                                 order.id)
            else:
                filed = False
            await Conversations(session).delete(account.platform, account.user_id)
        if not filed:
            return [f"您已有绑定申请 {order.number}，请回复「认证进度」查看。"]
        logger.info(f"binding request {order.number} submitted by {account}")
        await self.notifier.deliver()
        return binding.submitted_reply(order, vouch=False)

    async def _request_verification(self, asked: Asked) -> list[str]:
        """「申请核验」: a pending account without a request in progress starts one."""
        handler = asked.bound
        if is_verified(handler):
            return [f"您与【{handler.company.name}】的绑定已核验，无需再申请。"]
        async with self.db.transaction() as session:
            order = await binding.open_request(Orders(session), handler)
        if order is not None and order.status is OrderStatus.REJECTED:
            return [f"您的绑定申请 {order.number} 已被驳回：{order.reject_reason}\n"
                    f"请回复「修改 {order.number}」按理由修改后重新提交。"]
        if order is not None:
            return [f"您的绑定申请 {order.number} 正在等待核验，回复「认证进度」查看。"]
        flow, outcome = FormFlow.start(BINDING_CONTACT)
        await self._save(asked.account, flow)
        return outcome.replies

    async def _binding_progress(self, asked: Asked) -> list[str]:
        """「认证进度」: the binding's state and the latest request in full."""
        handler = asked.bound
        head = f"您与【{handler.company.name}】的绑定：{handler.status.label}。"
        async with self.db.transaction() as session:
            order = await Orders(session).latest_of_handler(handler.id, OrderType.BINDING)
            events = await Orders(session).events(order.id) if order else []
        if order is None:
            more = ("" if is_verified(handler)
                    else "您还没有提交绑定申请，回复「申请核验」开始。")
            return [head + more]
        return [head, order_views.order_detail(order, events, self.settings.tz)]

    async def _decide_binding(self, asked: Asked, agree: bool) -> list[str]:
        """「同意绑定 编号」/「拒绝绑定 编号 [理由]」 from a verified handler of the company."""
        word = "同意绑定" if agree else "拒绝绑定"
        first, *rest = asked.argument.split(maxsplit=1) or [""]
        number = parse_order_number(first) or first
        if not number:
            return [f"请写上绑定申请的编号，例如「{word} BD-261125-7KQ3」。"]
        reason = (rest[0].strip() if rest else "") or "本单位已核验的经办人表示不认识申请人。"
        try:
            async with self.db.transaction() as session:
                order = await Orders(session).by_number(number)
                why = binding.decision_refused(asked.bound, order, number)
                if why is not None:
                    return [why]
                assert order is not None
                assert order.handler is not None
                requester = binding.who(order.handler, order.fields)
                company = asked.bound.company.name
                if agree:
                    told = await binding.approve(session, self.settings, self.notifier, order,
                                                 str(asked.account),
                                                 self._menu(order.handler, verified=True),
                                                 decider=asked.bound)
                    staff = f"{asked.account} 确认了绑定申请 {number}（{company}）。"
                else:
                    told = await binding.reject(session, self.settings, self.notifier, order,
                                                str(asked.account), reason)
                    staff = f"{asked.account} 拒绝了绑定申请 {number}（{company}）：{reason}"
                await self.notifier.notify_staff(session, staff, order.id)
        except StaleDataError:
            return [f"绑定申请 {number} 刚被其他人处理过，回复「查询 {number}」查看。"]
        await told.deliver(self.notifier)
        if agree:
            return [f"已确认：{requester} 现在是【{company}】已核验的经办人。"]
        return [f"已拒绝绑定申请 {number}，对方仍不能查看或办理本单位已有的业务。"]

    async def _agree_binding(self, asked: Asked) -> list[str]:
        return await self._decide_binding(asked, agree=True)

    async def _refuse_binding(self, asked: Asked) -> list[str]:
        return await self._decide_binding(asked, agree=False)

    async def _revise(self, asked: Asked) -> list[str]:
        """``修改 订单号``: correct a rejected order, asked only what the technician named."""
        account, handler, number = asked.account, asked.bound, asked.argument
        async with self.db.transaction() as session:
            orders = Orders(session)
            order = await orders.by_number(number)
            if not may_see(handler, order):
                return [not_found(number)]
            assert order is not None
            if order.type is OrderType.BINDING and binding.is_vouch(order):
                return [f"绑定申请 {number} 没有可修改的材料：请回复「申请核验」重新申请。"]
            if order.status is not OrderStatus.REJECTED:
                label = status_label(order.type, order.status)
                return [f"订单 {number} 目前{label}，只有被驳回的订单才能修改。"]
            rejection = await orders.last_event(order.id, Event.REJECT)
        keys = set((rejection.detail or {}).get("fields", [])) if rejection else set()
        form = form_for(order.type)
        redo = [f for f in form.fields if f.key in keys]
        current = {a.slot: ScanInfo(a.sha256, a.format, a.size, a.width, a.height)
                   for a in order.attachments}  # later revisions win
        flow, outcome = FormFlow.revise(form, number, order.fields, current, redo,
                                        order.reject_reason or "", self.settings.fees)
        await self._save(account, flow)
        return await self._with_filled_form(flow, outcome.replies)

    async def _resubmit(self, account: Account, handler: Handler, flow: FormFlow) -> list[str]:
        values, scans = flow.result()
        number = flow.state.order_number
        async with self.db.transaction() as session:
            order = await Orders(session).by_number(number)
            if order is None or order.status is not OrderStatus.REJECTED:
                await Conversations(session).delete(account.platform, account.user_id)
                return [f"订单 {number} 已不是驳回状态，本次修改未提交。"
                        f"回复「查询 {number}」查看。"]
            current = {a.slot: a for a in order.attachments}
            changed = changed_fields(
                flow.form, order.fields, values,
                {k: a.sha256 for k, a in current.items()}, {k: s.sha256 for k, s in scans.items()})
            if not changed:  # the same answers and the very same scans: the form stays open
                rejection = await Orders(session).last_event(order.id, Event.REJECT)
                return [nothing_changed(flow, order.reject_reason or "", rejection)]
            previous = dict(order.fields)
            now = utcnow()
            for f in changed:
                if f.key in scans:
                    s = scans[f.key]
                    revision = current[f.key].revision + 1 if f.key in current else 1
                    order.attachments.append(Attachment(
                        slot=f.key, revision=revision, sha256=s.sha256, format=s.format,
                        size=s.size, width=s.width, height=s.height))
            move_order(session, order, str(account), Event.RESUBMIT, at=now,
                       detail={"changed": [f.title for f in changed],
                               "previous_fields": previous})
            order.fields, order.submitted_at = values, now
            # 修改 may change what it costs (证书年限, 办理Ukey数量): charged as resubmitted
            order.amount_cents = amount_cents(order.type, values, self.settings.fees)
            order.reject_reason = None
            await Conversations(session).delete(account.platform, account.user_id)
            await self.notifier.notify_staff(session, staff_notice(order, changed), order.id)
        logger.info(f"order {number} resubmitted by {account}")
        await self.notifier.deliver()
        names = "、".join(f.title for f in changed)
        return [f"订单 {number} 已重新提交，修改了：{names}。技术人员会尽快重新审核，"
                "结果会在这里通知您。"]

    async def _withdraw(self, asked: Asked) -> list[str]:
        """``撤回 订单号``: an order nobody has reviewed yet is cancelled (the rule is in
        bot/domain/withdrawal.py); the staff are told in the same transaction."""
        number, why = order_number_of("撤回", asked.argument)
        if number is None:
            return [why]
        try:
            async with self.db.transaction() as session:
                orders = Orders(session)
                order = await orders.by_number(number)
                if not may_see(asked.bound, order):
                    return [not_found(number)]
                assert order is not None
                check_withdrawal(number, order.type, order.status, order.fields,
                                 await orders.events(order.id))
                move_order(session, order, str(asked.account), Event.WITHDRAW,
                           reason="申请人撤回")
                await session.flush()  # the version check: a technician's decision wins
                await self.notifier.notify_staff(
                    session, withdrawn_notice(order, str(asked.account)), order.id)
        except WithdrawalRefused as refused:
            staff = f"如确需取消，{please_contact(self.settings)}" if refused.ask_staff else ""
            return [f"{refused}{staff}"]
        except StaleDataError:
            return [f"订单 {number} 刚被技术人员处理过，请回复「查询 {number}」查看后再决定。"]
        logger.info(f"order {number} withdrawn by {asked.account}")
        await self.notifier.deliver()
        return [f"已撤回订单 {number}（{order_title(order.type, order.fields)}），订单已取消，"
                "技术人员不会再审核。需要时可以重新提交申请。"]

    async def _unlock_status(self, asked: Asked) -> list[str]:
        number = asked.argument
        async with self.db.transaction() as session:
            order = await Orders(session).by_number(number)
        if not may_see(asked.bound, order):
            return [not_found(number)]
        assert order is not None
        return [await self.hub.describe(order)]

    async def _pairing_code(self, asked: Asked) -> list[str]:
        agents = self.settings.agents
        if not agents.enabled:
            return ["本服务暂未开通密钥代理，解锁将由技术人员联系您办理。"]
        handler = asked.bound
        code, _ = await self.agents.new_code(handler, str(asked.account))
        minutes = int(agents.pairing_code_minutes)
        return [f"密钥代理绑定码：{code}（{minutes} 分钟内有效，只能使用一次，请勿告诉他人）。\n"
                "请在插着 UKEY 的电脑上依次运行（可直接复制）：\n"
                f"{pairing_steps(self.settings, code)}\n"
                f"绑定后，该电脑上的密钥代理即可为【{handler.company.name}】办理远程解锁和续期。"]

    async def _join_code(self, asked: Asked) -> list[str]:
        """「绑定其他渠道」: a one-time code to join another account to this person."""
        return [await self.joining.code_for(asked.account, asked.bound)]

    async def _join(self, asked: Asked) -> list[str]:
        """「绑定 绑定码」: this account becomes the person who asked for the code (joining.py);
        bare 「绑定」 on an unbound account begins the binding questions."""
        if not asked.argument:
            if asked.handler is not None:
                return ["「绑定 绑定码」用于让本账号与您在其他渠道已绑定的账号成为同一位经办人；"
                        "本账号已经绑定。要让另一个渠道的账号也能办理，请在这里发送「绑定其他渠道」。"]
            if not await self.has_form(asked.account):
                return await self._welcome(asked.account)
            return ["已在其他渠道绑定过的，请发送「绑定 绑定码」（绑定码在那里发送「绑定其他渠道」"
                    "获取）；第一次绑定单位的，请接着回答下面的问题。"]  # the form is recalled
        told, handler = await self.joining.join(asked.account, asked.argument)
        return [told, self._menu(handler)] if handler is not None else [told]

    async def _erase_mine(self, asked: Asked) -> list[str]:
        """「删除我的资料」: asked of the technicians (services/retention/erasure.py). An account
        a technician unbound still has the orders it filed: it may ask too."""
        return await self.erasure.request(asked.account)

    async def _templates(self, asked: Asked) -> list[Reply]:
        """「模板」: the blank paper forms, to print, stamp, sign and photograph."""
        return await self.paper_forms.templates()

    async def _set_email(self, asked: Asked) -> list[str]:
        handler, typed = asked.bound, asked.argument.strip()
        removing = typed in {"删除", "取消", "清除"}
        if not self.settings.email.enabled and not removing:  # promise no mail that never goes
            return [NO_MAIL]
        if not typed:
            current = handler.email or "（未设置）"
            return [f"当前接收通知的邮箱：{current}。"
                    "设置请回复「邮箱 地址」，取消请回复「邮箱 删除」。"]
        if removing:
            address = None
        else:
            try:
                address = email_address(typed)
            except InvalidAnswer as error:
                return [str(error)]
        async with self.db.transaction() as session:
            await Handlers(session).set_email(handler.id, address)
        if address is None:
            return ["已取消邮件通知，之后只在这里通知您。"]
        return [f"已设置通知邮箱：{address}。订单有变化时，我们会同时发邮件给您。"]

    async def _ask_a_person(self, asked: Asked) -> list[str]:
        """「人工客服 [问题]」: the technicians are told who asks (account, company) and about
        what (the question, else the form open and the latest order); the asker, when to
        expect the answer."""
        account, handler, question = asked.account, asked.handler, asked.argument.strip()
        async with self.db.transaction() as session:
            conversation = await Conversations(session).get(account.platform, account.user_id)
            latest = await Orders(session).of_handler(handler.id, 1) if handler else []
        company = (f"{handler.company.name}（{handler.status.label}）" if handler is not None
                   else "尚未绑定单位")
        lines = [f"【人工客服】{account} 请技术人员回复", f"单位：{company}",
                 f"问题：{question or '（没有写明，见下）'}"]
        if conversation is not None:
            flow = FormFlow(FlowState.from_json(conversation.state))
            done, total = flow.progress()
            at = f"停在【{flow.current.title}】" if flow.current else "在最后核对"
            lines.append(f"正在填写：【{flow.form.title}】已填 {done}/{total} 项，{at}")
        for order in latest:
            lines.append(f"最近的订单：{order.number} {order_title(order.type, order.fields)} "
                         f"{status_label(order.type, order.status)}")
        lines.append(f"请私聊 {account} 回复。")
        await self.notifier.tell_staff("\n".join(lines))
        logger.info(f"{account} asked for a person")
        told = f"已转告技术人员（您的问题：{question}）。" if question else "已转告技术人员。"
        more = ("" if question else
                "\n补充说明问题会更快，例如发送「人工客服 UKEY 插上电脑没有反应」。")
        return [f"{told}{when_answered(self.settings, utcnow())}\n"
                f"着急的话也可以直接联系{reach(self.settings.centre)}。{more}"]

    # --- persistence of the flow ------------------------------------------------------------
    async def _save(self, account: Account, flow: FormFlow) -> None:
        """Through the group-commit writer (returns once durable), and the memo written
        through: it holds what the database does (a failed write makes it forget the account,
        so the next message reads the database)."""
        key, memo = (account.platform, account.user_id), self.db.memo
        state, at, since = flow.state.to_json(), utcnow(), memo.generation
        rows = memo.peek(key)
        try:
            await self.states.save(*key, state, at)
        except BaseException:
            memo.forget([key])
            raise
        if rows is not None:  # else the next message reads both rows
            memo.keep(key, AccountRows(rows.binding, FormRow(state, at)), since)

    async def _drop(self, account: Account, flow: FormFlow) -> None:
        """Forget an abandoned form, and the scans that nothing else refers to."""
        async with self.db.transaction() as session:
            await Conversations(session).delete(account.platform, account.user_id)
            unused = await unused_scans(session, (s["sha256"] for s in flow.state.scans.values()))
        for sha256 in unused:
            await asyncio.to_thread(self.scans.discard, sha256)

    # --- order queries ----------------------------------------------------------------------
    async def _order_list(self, asked: Asked) -> list[str]:
        handler = asked.bound
        async with self.db.transaction() as session:
            if is_verified(handler):
                orders = await Orders(session).of_company(handler.company_id, ORDER_LIST_LIMIT)
                total = await Orders(session).count_of_company(handler.company_id)
            else:  # pending: only what it filed itself
                orders = await Orders(session).of_handler(handler.id, ORDER_LIST_LIMIT)
                total = await Orders(session).count_of_handler(handler.id)
        listed = order_views.order_list(handler.company.name, orders, total, self.settings.tz)
        if not is_verified(handler):
            listed += "\n（绑定待核验：只显示您自己提交的订单。回复「认证进度」查看核验进度。）"
        return [listed]

    async def _order_query(self, asked: Asked) -> list[str]:
        number, why = order_number_of("查询", asked.argument)
        if number is None:
            return [why]
        async with self.db.transaction() as session:
            order = await Orders(session).by_number(number)
            if not may_see(asked.bound, order):
                return [not_found(number)]
            assert order is not None
            events = await Orders(session).events(order.id)
        return [order_views.order_detail(order, events, self.settings.tz)]


# --- the applicant's commands -----------------------------------------------------------------
ApplicantHandler = Callable[[Dialogue, Asked], Awaitable[Sequence[Reply]]]
ApplicantCommand = Command[ApplicantHandler]
CertificateHandler = Callable[[CertificateChat, Account, Handler, str], Awaitable[list[str]]]


def _starts(form: Form, **extra: str) -> ApplicantHandler:
    """A command that starts ``form``, with values beyond the company profile's."""
    async def start(dialogue: Dialogue, asked: Asked) -> list[str]:
        return await dialogue._start(asked, form, extra)
    return start


def _certificates(method: CertificateHandler) -> ApplicantHandler:
    """A command the certificate service answers (declared ``pki``: the router checked it)."""
    async def answer(dialogue: Dialogue, asked: Asked) -> list[str]:
        assert dialogue.certificates is not None
        return await method(dialogue.certificates, asked.account, asked.bound, asked.argument)
    return answer


_ORDER = order_argument
# In menu order. While a form is open a command is the form's input unless it says otherwise:
# ANSWER replies and recalls the form, PAUSE parks the form (it waits for 继续 or 取消).
APPLICANT_COMMANDS = CommandTable[ApplicantHandler]([
    Command(("新办证书",), "新办证书", "首次办理 CA 数字证书（UKEY）",
            _starts(CERTIFICATE, apply_kind="新办"), form_open=FormOpen.PAUSE),
    Command(("补办证书",), "补办证书", "UKEY 丢失或损坏后重新办理",
            _starts(CERTIFICATE, apply_kind="补办"), form_open=FormOpen.PAUSE),
    Command(("解锁", "证书解锁"), "解锁", "UKEY 密码忘记，申请重置密码",
            _starts(UNLOCK), form_open=FormOpen.PAUSE),
    Command(("续期", "证书续期", "延期"), "续期", "证书快到期时，读取 UKEY 后续期",
            _certificates(CertificateChat.renew), pki=True, verified=True),
    Command(("确认续期",), "确认续期 订单号", "提交续期（续期时提示）",
            _certificates(CertificateChat.confirm_renewal), pattern=re.compile(r"确认续期\s*(\S*)"),
            pki=True, verified=True, menu=False),
    Command(("重新续期",), "重新续期 订单号", "续期写入 UKEY 失败后重新安排（失败时提示）",
            _certificates(CertificateChat.retry_renewal), pattern=re.compile(r"重新续期\s*(\S*)"),
            pki=True, verified=True, menu=False, form_open=FormOpen.ANSWER),
    Command(("挂失", "证书挂失"), "挂失", "UKEY 丢失时立即暂停证书；找回后恢复",
            _starts(LOSS, apply_kind="挂失"), pki=True, verified=True, form_open=FormOpen.PAUSE),
    Command(("解挂", "证书解挂"), "解挂", "UKEY 丢失时立即暂停证书；找回后恢复",
            _starts(LOSS, apply_kind="解挂"), pki=True, verified=True, form_open=FormOpen.PAUSE),
    Command(("我的证书",), "我的证书", "查看本单位的证书和到期日",
            _certificates(CertificateChat.my_certificates), pki=True, verified=True,
            form_open=FormOpen.ANSWER),  # the 挂失 form suggests it while asking the UKEY
    # verified: the company's orders; pending: only those the account filed itself (may_see)
    Command(("我的订单",), "我的订单", "查看本单位的订单", Dialogue._order_list,
            form_open=FormOpen.ANSWER),
    Command(("查询",), "查询 订单号", "查看某个订单的详情和进度", Dialogue._order_query,
            pattern=re.compile(r"查询\s*(.*)"), form_open=FormOpen.ANSWER),
    # 修改 + an order number; 修改 3 is the summary's
    Command(("修改",), "修改 订单号", "按驳回理由修改后重新提交", Dialogue._revise,
            pattern=re.compile(r"修改\s*(\S{10,})"), argument=_ORDER, form_open=FormOpen.PAUSE),
    Command(("撤回",), "撤回 订单号", "撤回还没有审核的订单", Dialogue._withdraw,
            pattern=re.compile(r"撤回\s*(.*)"), form_open=FormOpen.ANSWER),
    Command(("开票",), "开票 订单号", "为已付费的订单申请发票（普通/专用，电子发票发到邮箱）",
            invoices.request_invoice, pattern=re.compile(r"开票\s*(.*)"),
            form_open=FormOpen.PAUSE),
    Command(("邮箱",), "邮箱 地址", "同时用电子邮件接收通知（「邮箱 删除」取消）",
            Dialogue._set_email, pattern=re.compile(r"邮箱\s*(.*)"), email=True,
            form_open=FormOpen.ANSWER),
    Command(("绑定密钥代理",), "绑定密钥代理", "让插着 UKEY 的电脑可以远程解锁",
            Dialogue._pairing_code, verified=True),
    # any bound account, pending or verified: the other channel gets the same standing
    Command(("绑定其他渠道", "关联渠道"), "绑定其他渠道",
            "在微信公众号、QQ 等其他渠道也以本人身份办理（获取一次性绑定码）",
            Dialogue._join_code, form_open=FormOpen.ANSWER),
    # an unbound account (of another channel) joins the person whose code it is
    Command(("绑定",), "绑定 绑定码", "在新渠道用绑定码绑定为同一位经办人（获取绑定码时提示）",
            Dialogue._join, pattern=re.compile(r"绑定\s*([0-9A-Za-z]{4,16})"),
            argument=str.upper, binding=False, menu=False, form_open=FormOpen.ANSWER),
    Command(("解锁状态",), "解锁状态 订单号", "远程解锁进行到哪一步", Dialogue._unlock_status,
            pattern=re.compile(r"解锁状态\s*(\S+)"), argument=_ORDER, menu=False),
    Command(("申请核验",), "申请核验", "提交绑定核验申请（核验后才能查看和办理本单位已有的业务）",
            Dialogue._request_verification, pending_only=True, form_open=FormOpen.PAUSE),
    Command(("认证进度", "核验进度"), "认证进度", "查看绑定核验进行到哪一步",
            Dialogue._binding_progress, pending_only=True, form_open=FormOpen.ANSWER),
    Command(("同意绑定",), "同意绑定 编号", "确认本单位同事的绑定申请（收到申请时提示）",
            Dialogue._agree_binding, pattern=re.compile(r"同意绑定\s*(.*)"), verified=True,
            menu=False, form_open=FormOpen.ANSWER),
    Command(("拒绝绑定",), "拒绝绑定 编号 [理由]", "拒绝不认识的人的绑定申请（收到申请时提示）",
            Dialogue._refuse_binding, pattern=re.compile(r"拒绝绑定\s*(.*)"), verified=True,
            menu=False, form_open=FormOpen.ANSWER),
    # no binding needed: the 单位授权书 is what a first account sends to be verified
    Command(("模板", "空白表格", "表格"), "模板", "获取需要打印、盖章后拍照上传的空白表格",
            Dialogue._templates, binding=False, form_open=FormOpen.ANSWER),
    # any account, bound or not, and while a form is open (the form is recalled after it)
    Command(("人工客服", "转人工", "人工", "客服"), "人工客服 问题",
            "请技术人员回复您（写上问题更快）",
            Dialogue._ask_a_person, pattern=re.compile(r"(?:人工客服|转人工)[\s:：,，]*(.+)"),
            binding=False, form_open=FormOpen.ANSWER),
    # the account's own finished orders only; a technician confirms (确认删除). No binding
    # needed: an account unbound by a technician still filed its orders
    Command(("删除我的资料",), "删除我的资料",
            "申请提前删除您已办结订单中的个人资料（扫描件、身份证号、手机号）",
            Dialogue._erase_mine, binding=False, form_open=FormOpen.ANSWER),
    Command(("帮助",), "帮助", "查看本说明", Dialogue._help),
    Command(("继续", "取消"), "继续 / 取消", "（填表时）接着填写 / 放弃；没有未完成的办理时提示",
            Dialogue._no_form, menu=False),
])


def _orm(handler: "Handler | BindingRow | None") -> Handler | None:
    """A command's handler: read afresh as an ORM object, never the memo's row."""
    assert not isinstance(handler, BindingRow)
    return handler


def nothing_changed(flow: FormFlow, reason: str, rejection: OrderEvent | None) -> str:
    """A correction that changes nothing is not resubmitted: say what the technician asked."""
    number = flow.state.order_number
    named = set((rejection.detail or {}).get("fields", [])) if rejection else set()
    asked = [f for f in flow.form.fields if f.key in named]
    scans = "（收到的图片和原来的完全相同，请重新拍照或扫描）" if any(
        f.kind is FieldKind.SCAN for f in asked) else ""
    what = f"需要修改：{'、'.join(f.title for f in asked)}{scans}。\n" if asked else ""
    return (f"您还没有做任何修改，订单 {number} 没有重新提交。\n驳回理由：{reason}\n{what}"
            "请回复「修改 序号」按驳回理由修改相应的项目，改好后再回复「确认提交」；"
            "不再修改请回复「取消」。\n" + flow.summary())


def _typed_source(text: str) -> ImageSource | None:
    """On the Console there are no image messages: a URL or a file path stands in."""
    if text.startswith(("http://", "https://")):
        return ImageSource(url=text)
    cleaned = text.strip("'\"")
    if "/" in cleaned or "\\" in cleaned or Path(cleaned).suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path=Path(cleaned).expanduser())
    return None
