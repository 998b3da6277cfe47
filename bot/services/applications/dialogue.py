"""The applicant's side of the chat: one entry point, ``Dialogue.handle``, for every message.

A message either belongs to the form in progress (saved after every step, so a restart loses
nothing) or is a command. The rules live in the domain; this module fetches, stores and routes.
"""

import asyncio
import re
import weakref
from datetime import timedelta
from pathlib import Path

from loguru import logger
from sqlalchemy.exc import IntegrityError

from bot.config import Settings
from bot.domain.flow import FlowState, FormFlow, Mode, Outcome
from bot.domain.forms import BINDING, CERTIFICATE, LOSS, UNLOCK, Form, form_for
from bot.domain.lifecycle import Event, OrderStatus, OrderType, next_status, status_label
from bot.domain.order_numbers import parse_order_number
from bot.domain.orders import order_title, yuan
from bot.domain.review import changed_fields
from bot.domain.scans import InvalidScan, ScanInfo, inspect_scan
from bot.domain.text import normalise
from bot.domain.validators import InvalidAnswer, email_address
from bot.services import order_views
from bot.services.agents.hub import AgentHub
from bot.services.agents.registry import AgentRegistry
from bot.services.certificates.chat import RENEW_WORDS, CertificateChat
from bot.services.certificates.office import CertificateRefused
from bot.services.filing import file_order
from bot.services.messages import Account, ImageSource, Incoming
from bot.services.notify import Notifier, staff_notice
from bot.services.ports import FetchError, ImageFetching, ScanStorage
from storage.db import Database, DatabaseUnavailable
from storage.models import Attachment, Handler, OrderEvent, utcnow
from storage.repositories import Companies, Conversations, Handlers, Orders

ORDER_LIST_LIMIT = 10
_QUERY = re.compile(r"查询\s*(.*)")
_REVISE = re.compile(r"修改\s*(\S{10,})")  # 修改 + an order number; 修改 3 is the summary's
_EMAIL = re.compile(r"邮箱\s*(.*)")
_UNLOCK_STATUS = re.compile(r"解锁状态\s*(\S+)")
# what starts a form: the form, and values beyond the company profile's
START_COMMANDS: dict[str, tuple[Form, dict[str, str]]] = {
    "新办证书": (CERTIFICATE, {"apply_kind": "新办"}),
    "补办证书": (CERTIFICATE, {"apply_kind": "补办"}),
    "解锁": (UNLOCK, {}),
    "证书解锁": (UNLOCK, {}),
    "挂失": (LOSS, {"apply_kind": "挂失"}),
    "证书挂失": (LOSS, {"apply_kind": "挂失"}),
    "解挂": (LOSS, {"apply_kind": "解挂"}),
    "证书解挂": (LOSS, {"apply_kind": "解挂"}),
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".bmp", ".gif", ".png"}
CONSOLE_SCAN_HINT = "\n（控制台里不能发图片：请输入图片文件的路径或网址。）"
# every step is one transaction, so a failed one kept nothing of this message: say so
DATABASE_BUSY = ("系统繁忙，您刚才发送的内容没有保存，请稍等一两分钟后重新发送。"
                 "之前已填写的内容和已提交的订单都不受影响。")


CERTIFICATE_MENU = ("· 续期 — 证书快到期时，读取 UKEY 后续期\n"
                    "· 挂失 / 解挂 — UKEY 丢失时立即暂停证书；找回后恢复\n"
                    "· 我的证书 — 查看本单位的证书和到期日\n")
NO_CERTIFICATES = "本服务暂未开通在线续期和挂失，请联系技术人员办理。"


def menu(company_name: str, certificates: bool = False) -> str:
    return (f"您好，这里是 CA 数字证书服务，当前单位：{company_name}。请回复：\n"
            "· 新办证书 — 首次办理 CA 数字证书（UKEY）\n"
            "· 补办证书 — UKEY 丢失或损坏后重新办理\n"
            "· 解锁 — UKEY 密码忘记，申请重置密码\n"
            + (CERTIFICATE_MENU if certificates else "") +
            "· 我的订单 — 查看本单位的订单\n"
            "· 查询 订单号 — 查看某个订单的详情和进度\n"
            "· 修改 订单号 — 按驳回理由修改后重新提交\n"
            "· 邮箱 地址 — 同时用电子邮件接收通知（「邮箱 删除」取消）\n"
            "· 绑定密钥代理 — 让插着 UKEY 的电脑可以远程解锁\n"
            "· 帮助 — 查看本说明")


WELCOME = ("您好，欢迎使用 CA 数字证书服务！首次使用需要先绑定您所在的单位（只需一次），"
           "之后即可在这里办理证书、上传资料、查询进度。")


class Dialogue:
    def __init__(self, settings: Settings, db: Database, scans: ScanStorage,
                 fetcher: ImageFetching, notifier: Notifier, agents: AgentRegistry,
                 hub: AgentHub, certificates: CertificateChat | None = None) -> None:
        self.settings = settings
        self.certificates = certificates  # None: [pki] is off
        self.notifier = notifier
        self.agents = agents
        self.hub = hub
        self.db = db
        self.scans = scans
        self.fetcher = fetcher
        self._locks: weakref.WeakValueDictionary[Account, asyncio.Lock] = (
            weakref.WeakValueDictionary())

    async def handle(self, account: Account, incoming: Incoming) -> list[str]:
        """Answer one message. Messages of one account are handled one at a time, in order."""
        lock = self._locks.get(account)
        if lock is None:
            lock = self._locks[account] = asyncio.Lock()
        async with lock:
            try:
                return await self._handle(account, incoming)
            except DatabaseUnavailable as error:
                logger.warning(f"database unavailable while answering {account}: {error}")
                return [DATABASE_BUSY]

    async def _handle(self, account: Account, incoming: Incoming) -> list[str]:
        text = normalise(incoming.text)
        async with self.db.transaction() as session:
            handler = await Handlers(session).get(account.platform, account.user_id)
            conversation = await Conversations(session).get(account.platform, account.user_id)
            state = FlowState.from_json(conversation.state) if conversation else None
            idle = conversation is not None and (utcnow() - conversation.updated_at > timedelta(
                minutes=self.settings.dialogue.idle_minutes))
        if handler is not None and text == "我的订单":
            return [await self._order_list(handler), *self._still_open(state)]
        if handler is not None and (match := _QUERY.fullmatch(text)):
            return [await self._order_query(handler, match.group(1)), *self._still_open(state)]
        if handler is not None and (match := _EMAIL.fullmatch(text)):
            return [await self._set_email(handler, match.group(1)), *self._still_open(state)]
        revise = parse_order_number(m.group(1)) if (m := _REVISE.fullmatch(text)) else None
        if state is not None:
            flow = FormFlow(state)
            if idle and state.mode is not Mode.CONFIRM_CANCEL:
                flow.pause()
            if (text in START_COMMANDS or revise) and state.mode is not Mode.CONFIRM_CANCEL:
                flow.pause()
            return await self._continue(account, handler, flow, incoming)
        if handler is None:
            flow, outcome = FormFlow.start(BINDING)
            await self._save(account, flow)
            return [WELCOME, *outcome.replies[1:]]
        if text in START_COMMANDS:
            form, extra = START_COMMANDS[text]
            if form is LOSS and self.certificates is None:
                return [NO_CERTIFICATES]
            company = handler.company
            flow, outcome = FormFlow.start(form, form.presets(company.name, company.uscc, **extra))
            await self._save(account, flow)
            return outcome.replies
        if revise:
            return await self._revise(account, handler, revise)
        if text == "绑定密钥代理":
            return [await self._pairing_code(account, handler)]
        if self.certificates is not None and (
                answer := await self.certificates.answer(account, handler, text)) is not None:
            return answer
        if self.certificates is None and text in RENEW_WORDS | {"我的证书"}:
            return [NO_CERTIFICATES]
        if (match := _UNLOCK_STATUS.fullmatch(text)) and (number := parse_order_number(
                match.group(1))):
            return [await self._unlock_status(handler, number)]
        if text in {"继续", "取消"}:
            return ["当前没有未完成的办理。\n" + self._menu(handler.company.name)]
        return [self._menu(handler.company.name)]

    def _menu(self, company_name: str) -> str:
        return menu(company_name, certificates=self.certificates is not None)

    def _still_open(self, state: FlowState | None) -> list[str]:
        return [FormFlow(state).reminder()] if state is not None else []

    # --- a form in progress ---------------------------------------------------------------
    async def _continue(self, account: Account, handler: Handler | None, flow: FormFlow,
                        incoming: Incoming) -> list[str]:
        sources = list(incoming.images)
        text = normalise(incoming.text)
        if not sources and incoming.local_files and flow.expects_scan:
            source = _typed_source(text)
            sources = [source] if source else []
        if sources:
            outcome = await self._take_scans(flow, sources)
        else:
            outcome = flow.handle_text(text)
        if outcome.cancelled:
            await self._drop(account, flow)
            return outcome.replies
        if outcome.finished:
            return outcome.replies + await self._finish(account, handler, flow)
        await self._save(account, flow)
        if incoming.local_files and flow.expects_scan and outcome.replies:
            outcome.replies[-1] += CONSOLE_SCAN_HINT
        return outcome.replies

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
                info = await asyncio.to_thread(inspect_scan, data, self.settings.scans.rules())
                await asyncio.to_thread(self.scans.save, info.sha256, data)
            except (FetchError, InvalidScan) as error:
                logger.info(f"scan refused for {current.key}: {error}")
                return Outcome([*receipts, f"【{current.title}】未通过检查：{error}\n"
                                f"{flow.prompt()}"])
            receipts.append(flow.handle_scan(info).replies[0])
        return Outcome([*receipts, flow.prompt()])

    async def _finish(self, account: Account, handler: Handler | None,
                      flow: FormFlow) -> list[str]:
        if flow.form is BINDING:
            return await self._bind(account, flow)
        assert handler is not None
        return await self._submit(account, handler, flow)

    async def _bind(self, account: Account, flow: FormFlow) -> list[str]:
        try:
            return await self._bind_once(account, flow)
        except IntegrityError:  # another handler registered the same USCC at this instant
            return await self._bind_once(account, flow)

    async def _bind_once(self, account: Account, flow: FormFlow) -> list[str]:
        values, _ = flow.result()
        async with self.db.transaction() as session:
            company = await Companies(session).by_uscc(values["uscc"])
            if company is not None and company.name != values["company_name"]:
                outcome = flow.reopen("company_name", "该统一社会信用代码已登记的单位名称与您填写的"
                                      "不一致，请对照营业执照核对后重新输入。")
                await Conversations(session).save(account.platform, account.user_id,
                                                   flow.state.to_json())
                return outcome.replies
            if company is None:
                company = await Companies(session).add(values["uscc"], values["company_name"],
                                                       utcnow())
            await Handlers(session).bind(account.platform, account.user_id, company)
            await Conversations(session).delete(account.platform, account.user_id)
        logger.info(f"{account} bound to company #{company.id}")
        return [f"绑定成功！您现在代表【{company.name}】办理业务。", self._menu(company.name)]

    async def _submit(self, account: Account, handler: Handler, flow: FormFlow) -> list[str]:
        if flow.state.order_number:
            return await self._resubmit(account, handler, flow)
        values, scans = flow.result()
        order_type = flow.form.order_type
        assert order_type is not None
        held = False
        async with self.db.transaction() as session:
            cert = None
            if order_type is OrderType.LOSS:
                if self.certificates is None:  # switched off while the form was being filled
                    await Conversations(session).delete(account.platform, account.user_id)
                    return [NO_CERTIFICATES]
                try:
                    cert = await self.certificates.check_loss(session, handler, values)
                except CertificateRefused as refusal:
                    outcome = flow.reopen("cert_serial", str(refusal))
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
        logger.info(f"order {order.number} submitted by {account}")
        if held and self.certificates is not None:
            await self.certificates.office.publish_crl()
            notice += "\n证书已立即挂失（暂停使用），请审核确认。"
        await self.notifier.tell_staff(notice)
        after = ("审核通过后请按提示扫码支付。" if order.amount_cents
                 else "审核通过后会尽快为您办理。")
        if held:
            after = ("证书已立即挂失：从现在起不能再用于签名投标（已列入证书吊销列表）。"
                     "找回 UKEY 后可发送「解挂」申请恢复。")
        return [f"提交成功！\n订单号：{order.number}\n"
                f"【{order_title(order_type, values)}】金额：{yuan(order.amount_cents)}\n"
                f"接下来：技术人员会尽快审核您的资料，结果会第一时间在这里通知您；{after}"
                "如被驳回，请按驳回理由修改后重新提交。\n"
                f"随时回复「查询 {order.number}」查看进度。"]

    async def _revise(self, account: Account, handler: Handler, number: str) -> list[str]:
        """``修改 订单号``: correct a rejected order, asked only what the technician named."""
        async with self.db.transaction() as session:
            orders = Orders(session)
            order = await orders.by_number(number)
            if order is None or order.company_id != handler.company_id:
                return [f"没有找到本单位的订单 {number}，请核对订单号。"]
            if order.status != OrderStatus.REJECTED:
                label = status_label(OrderType(order.type), OrderStatus(order.status))
                return [f"订单 {number} 目前{label}，只有被驳回的订单才能修改。"]
            rejection = await orders.last_event(order.id, Event.REJECT)
        keys = set((rejection.detail or {}).get("fields", [])) if rejection else set()
        form = form_for(order.type)
        redo = [f for f in form.fields if f.key in keys]
        current = {a.slot: ScanInfo(a.sha256, a.format, a.size, a.width, a.height)
                   for a in order.attachments}  # later revisions win
        flow, outcome = FormFlow.revise(form, number, order.fields, current, redo,
                                        order.reject_reason or "")
        await self._save(account, flow)
        return outcome.replies

    async def _resubmit(self, account: Account, handler: Handler, flow: FormFlow) -> list[str]:
        values, scans = flow.result()
        number = flow.state.order_number
        async with self.db.transaction() as session:
            order = await Orders(session).by_number(number)
            if order is None or order.status != OrderStatus.REJECTED:
                await Conversations(session).delete(account.platform, account.user_id)
                return [f"订单 {number} 已不是驳回状态，本次修改未提交。"
                        f"回复「查询 {number}」查看。"]
            order_type = OrderType(order.type)
            current = {a.slot: a for a in order.attachments}
            changed = changed_fields(
                flow.form, order.fields, values,
                {k: a.sha256 for k, a in current.items()}, {k: s.sha256 for k, s in scans.items()})
            previous = dict(order.fields)
            now = utcnow()
            for f in changed:
                if f.key in scans:
                    s = scans[f.key]
                    revision = current[f.key].revision + 1 if f.key in current else 1
                    order.attachments.append(Attachment(
                        slot=f.key, revision=revision, sha256=s.sha256, format=s.format,
                        size=s.size, width=s.width, height=s.height))
            status = next_status(order_type, OrderStatus(order.status), Event.RESUBMIT)
            session.add(OrderEvent(order_id=order.id, actor=str(account), event=Event.RESUBMIT,
                                   from_status=order.status, to_status=status, at=now,
                                   detail={"changed": [f.title for f in changed],
                                           "previous_fields": previous}))
            order.fields, order.status, order.submitted_at = values, status, now
            order.reject_reason = None
            await Conversations(session).delete(account.platform, account.user_id)
            notice = staff_notice(order, changed)
        logger.info(f"order {number} resubmitted by {account}")
        await self.notifier.tell_staff(notice)
        names = "、".join(f.title for f in changed) or "（没有改动）"
        return [f"订单 {number} 已重新提交，修改了：{names}。技术人员会尽快重新审核，"
                "结果会在这里通知您。"]

    async def _unlock_status(self, handler: Handler, number: str) -> str:
        async with self.db.transaction() as session:
            order = await Orders(session).by_number(number)
        if order is None or order.company_id != handler.company_id:
            return f"没有找到本单位的订单 {number}，请核对订单号。"
        return await self.hub.describe(order)

    async def _pairing_code(self, account: Account, handler: Handler) -> str:
        agents = self.settings.agents
        if not agents.enabled:
            return "本服务暂未开通密钥代理，解锁将由技术人员联系您办理。"
        code, _ = await self.agents.new_code(handler, str(account))
        minutes = int(agents.pairing_code_minutes)
        server = agents.public_url or f"http://{self.settings.server.host}:{self.settings.server.port}"
        return (f"密钥代理绑定码：{code}（{minutes} 分钟内有效，只能使用一次，请勿告诉他人）。\n"
                "在插着 UKEY 的电脑上安装密钥代理后运行：\n"
                f"cadesk-agent pair --server {server} --code {code}\n"
                f"绑定后，该电脑上的密钥代理即可为【{handler.company.name}】办理远程解锁。")

    async def _set_email(self, handler: Handler, typed: str) -> str:
        typed = typed.strip()
        if not typed:
            current = handler.email or "（未设置）"
            return (f"当前接收通知的邮箱：{current}。"
                    "设置请回复「邮箱 地址」，取消请回复「邮箱 删除」。")
        if typed in {"删除", "取消", "清除"}:
            address = None
        else:
            try:
                address = email_address(typed)
            except InvalidAnswer as error:
                return str(error)
        async with self.db.transaction() as session:
            row = await session.get(Handler, handler.id)
            assert row is not None
            row.email = address
        if address is None:
            return "已取消邮件通知，之后只在这里通知您。"
        return f"已设置通知邮箱：{address}。订单有变化时，我们会同时发邮件给您。"

    # --- persistence of the flow ------------------------------------------------------------
    async def _save(self, account: Account, flow: FormFlow) -> None:
        async with self.db.transaction() as session:
            await Conversations(session).save(account.platform, account.user_id,
                                              flow.state.to_json())

    async def _drop(self, account: Account, flow: FormFlow) -> None:
        """Forget an abandoned form, and the scans that nothing else refers to."""
        async with self.db.transaction() as session:
            await Conversations(session).delete(account.platform, account.user_id)
            others = {s["sha256"] for state in await Conversations(session).states()
                      for s in state.get("scans", {}).values()}
            unused = [s["sha256"] for s in flow.state.scans.values()
                      if s["sha256"] not in others
                      and not await Orders(session).scan_in_use(s["sha256"])]
        for sha256 in unused:
            await asyncio.to_thread(self.scans.discard, sha256)

    # --- order queries ----------------------------------------------------------------------
    async def _order_list(self, handler: Handler) -> str:
        async with self.db.transaction() as session:
            orders = await Orders(session).of_company(handler.company_id, ORDER_LIST_LIMIT)
            total = await Orders(session).count_of_company(handler.company_id)
        return order_views.order_list(handler.company.name, orders, total, self.settings.tz)

    async def _order_query(self, handler: Handler, typed: str) -> str:
        number = parse_order_number(typed)
        if number is None:
            return "请在「查询」后面写上订单号，例如「查询 XB-261125-7KQ3」。"
        async with self.db.transaction() as session:
            order = await Orders(session).by_number(number)
            if order is None or order.company_id != handler.company_id:
                return (f"没有找到本单位的订单 {number}，请核对订单号。"
                        "回复「我的订单」查看全部订单。")
            events = await Orders(session).events(order.id)
        return order_views.order_detail(order, events, self.settings.tz)


def _typed_source(text: str) -> ImageSource | None:
    """On the Console there are no image messages: a URL or a file path stands in."""
    if text.startswith(("http://", "https://")):
        return ImageSource(url=text)
    cleaned = text.strip("'\"")
    if "/" in cleaned or "\\" in cleaned or Path(cleaned).suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path=Path(cleaned).expanduser())
    return None
