"""Filing what arrives in the unlock mailbox: one mail, one transaction.

The mail's log row (Message-ID, unique), the order, its scans' rows, the automatic reply and
the folder's last UID are committed together. A crash before the commit leaves nothing, and the
mail is fetched again; a mail seen again after the commit (a lost UID state, a new UIDVALIDITY,
a copy in another folder) finds its Message-ID and is filed no second time.
"""

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.fields import Field, FieldKind
from bot.domain.forms import UNLOCK
from bot.domain.lifecycle import OrderType
from bot.domain.masking import mask_personal_numbers
from bot.domain.scans import MAIL_FORMATS, InvalidScan, ScanInfo, ScanRules, inspect_scan
from bot.domain.unlock_mail import InboundMail, assign_materials, read_mail, unreadable
from bot.services.filing import file_order
from bot.services.notify import Notifier, staff_notice
from bot.services.ports import MailQueue, ScanStorage
from storage.db import Database
from storage.models import InboundMail as InboundMailRow
from storage.models import utcnow
from storage.repositories import Companies, Mailboxes

FILED, INCOMPLETE, FOR_HUMANS, DUPLICATE = "filed", "incomplete", "for_humans", "duplicate"
MATERIALS = [f for f in UNLOCK.fields if f.kind is FieldKind.SCAN]


@dataclass
class Filing:
    outcome: str  # filed / incomplete / for_humans / duplicate
    reason: str = ""
    order_number: str | None = None
    company: str = ""  # the name the filed order goes by
    registered: bool = True  # False: the USCC is not on record yet (单位未登记)

    @property
    def for_humans(self) -> bool:
        return self.outcome == FOR_HUMANS


@dataclass
class Materials:
    found: dict[str, tuple[ScanInfo, bytes, str]]  # slot → checked scan, bytes, file name
    problems: list[str]  # what was wrong with the attachments that could not be used

    def missing(self) -> list[Field]:
        return [f for f in MATERIALS if f.key not in self.found]


class UnlockInbox:
    def __init__(self, settings: Settings, db: Database, scans: ScanStorage, notifier: Notifier,
                 outbox: MailQueue) -> None:
        self.settings = settings
        self.db = db
        self.scans = scans
        self.notifier = notifier
        self.outbox = outbox
        box, base = settings.mailbox, settings.scans
        self.rules = ScanRules(max_bytes=int(box.max_attachment_megabytes * 1024 * 1024),
                               min_short_side=base.min_short_side,
                               min_long_side=base.min_long_side,
                               max_pixels=base.rules().max_pixels, formats=MAIL_FORMATS)
        self.own_addresses = [a for a in (box.own_address, settings.email.from_address) if a]

    async def last_uid(self, mailbox: str, uidvalidity: int) -> int:
        async with self.db.transaction() as session:
            return await Mailboxes(session).last_uid(mailbox, uidvalidity)

    async def filed_for_humans(self, mailbox: str, uid: int) -> bool:
        """Whether a mail filed before was left for a person (then the staff, whose notice may
        have been lost with the process, are told again)."""
        async with self.db.transaction() as session:
            row = await Mailboxes(session).last_filed_at(mailbox, uid)
        if row is None or row.outcome != FOR_HUMANS:
            return False
        await self._tell_staff_for_humans(row.reason or "", row.sender, row.subject)
        return True

    async def _tell_staff_for_humans(self, reason: str, sender: str, subject: str) -> None:
        await self.notifier.tell_staff(
            f"解锁邮箱有一封邮件需要人工处理（{reason}）：来自 {sender}，"
            f"主题「{subject}」。已移到「{self.settings.mailbox.human_folder}」文件夹。")

    async def file(self, mailbox: str, uidvalidity: int, uid: int, raw: bytes, *,
                   too_large: bool = False) -> Filing:
        """File one fetched mail (``raw`` is only its header when it was too large to fetch)."""
        # parsing a mail with its scans takes ~20 ms of CPU: off the event loop, so a backlog
        # does not freeze the chat (measured in bench/)
        mail, materials = await asyncio.to_thread(self._read, mailbox, uid, raw, too_large)
        async with self.db.transaction() as session:
            boxes = Mailboxes(session)
            await boxes.advance(mailbox, uidvalidity, uid)
            if await boxes.seen(mail.message_id):
                logger.info(f"mail {uid} in {mailbox} was filed before: {mail.message_id}")
                return Filing(DUPLICATE)
            filing, order = await self._decide(session, mail, materials, too_large)
            replied = await self._reply(session, mail, filing, materials)
            session.add(InboundMailRow(
                message_id=mail.message_id, mailbox=mailbox, uid=uid, sender=mail.sender,
                subject=mail.subject, outcome=filing.outcome, reason=filing.reason or None,
                order_id=order.id if order else None, replied=replied))
            staff = staff_notice(order, None) if order else None
        self.outbox.wake()
        logger.info(f"mail {uid} from {mail.sender}: {filing.outcome} {filing.reason}")
        if staff:
            await self.notifier.tell_staff(staff)
        elif filing.for_humans:
            await self._tell_staff_for_humans(filing.reason, mail.sender, mail.subject)
        return filing

    # --- deciding ---------------------------------------------------------------------------
    async def _decide(self, session: AsyncSession, mail: InboundMail,
                      materials: Materials | None, too_large: bool):
        cap = self.settings.mailbox.max_message_megabytes
        if too_large or materials is None:
            return Filing(FOR_HUMANS, f"邮件超过 {cap:g} MB"), None
        if mail.automatic:
            return Filing(FOR_HUMANS, mail.automatic), None
        if mail.company is None:
            return Filing(FOR_HUMANS, "不是解锁申请"), None
        known = await Companies(session).by_uscc(mail.uscc) if mail.uscc else None
        # by the USCC only: a name from outside is a claim, never a key; an unknown USCC
        # needs the claimed name too, to record the company if a technician approves
        identified = known is not None or bool(mail.uscc and mail.company)
        if not identified or materials.missing():
            return Filing(INCOMPLETE, "材料不全" if identified else "无法确认单位"), None
        await asyncio.to_thread(self._save_scans, materials)
        # the order keeps what the mail claims; the view flags a name unlike the record's
        values = {"company_name": mail.company or (known.name if known else ""),
                  "uscc": mail.uscc or "", "contact_email": mail.sender,
                  "mail_subject": mail.subject, "mail_body": mail.body[:2000]}
        order = await file_order(
            session, self.settings, order_type=OrderType.UNLOCK, values=values,
            scans={slot: info for slot, (info, _, _) in materials.found.items()},
            company_id=known.id if known else None, actor=f"email:{mail.sender}",
            channel="email", contact_email=mail.sender, source_message_id=mail.message_id)
        return Filing(FILED, order_number=order.number,  # the reply names the record, if any
                      company=known.name if known else values["company_name"],
                      registered=known is not None), order

    def _read(self, mailbox: str, uid: int, raw: bytes,
              too_large: bool) -> tuple[InboundMail, Materials | None]:
        try:
            mail = read_mail(raw, self.own_addresses)
        except Exception as error:  # one mail the reader fails on must not stall the mailbox
            logger.opt(exception=error).warning(f"mail {uid} in {mailbox} could not be read")
            mail = unreadable(raw)
        return mail, None if too_large else self._materials(mail)

    def _save_scans(self, materials: Materials) -> None:
        for info, data, _ in materials.found.values():
            self.scans.save(info.sha256, data)

    def _materials(self, mail: InboundMail) -> Materials:
        usable, problems = [], []
        for attachment in mail.files:
            try:
                usable.append((inspect_scan(attachment.data, self.rules), attachment))
            except InvalidScan as error:
                problems.append(f"{attachment.filename}：{error}")
        slots = assign_materials([a.filename for _, a in usable])
        found = {slot: (usable[i][0], usable[i][1].data, usable[i][1].filename)
                 for slot, i in slots.items()}
        return Materials(found, problems)

    # --- answering --------------------------------------------------------------------------
    async def _reply(self, session: AsyncSession, mail: InboundMail, filing: Filing,
                     materials: Materials | None) -> bool:
        """Queue the automatic answer, unless that would feed a loop or flood a sender."""
        if filing.outcome not in (FILED, INCOMPLETE) or mail.suppress_reply or not mail.sender:
            return False
        limit = self.settings.mailbox.replies_per_sender_per_hour
        recent = await Mailboxes(session).replies_since(mail.sender,
                                                         utcnow() - timedelta(hours=1))
        if recent >= limit:
            logger.warning(f"no automatic reply to {mail.sender}: {recent} in the last hour")
            return False
        assert materials is not None
        body = _reply_text(mail, filing, materials)
        await self.outbox.enqueue(session, mail.sender, f"Re: {mail.subject}", body, headers={
            "In-Reply-To": mail.message_id, "References": mail.references,
            "Auto-Submitted": "auto-replied"})
        return True


def _reply_text(mail: InboundMail, filing: Filing, materials: Materials) -> str:
    received = [f"- {f.title}：{materials.found[f.key][2]}" for f in MATERIALS
                if f.key in materials.found]
    lines = ["您好，", ""]
    if filing.outcome == FILED:
        lines += [f"我们已收到【{filing.company}】的 CA 数字证书解锁申请，"
                  f"订单号：{filing.order_number}。",
                  "技术人员审核材料后会尽快为您重置 UKEY 密码，结果将通过邮件通知您。"]
        if not filing.registered:
            lines.append("贵单位尚未在本中心登记，技术人员会核对营业执照上的单位名称和统一社会"
                         "信用代码，审核通过时一并登记。")
        lines += ["", "收到的材料：", *received]
    else:
        todo = [f"- 缺少：{f.title}（{f.hint.removeprefix('要求：')}）"
                for f in materials.missing()]
        if filing.reason == "无法确认单位":
            todo.append("- 请在邮件正文中写明单位的统一社会信用代码（18 位），"
                        "主题写成「CA解锁+公司全称」")
        lines += ["您发送的 CA 数字证书解锁申请还不能受理，请补齐以下内容后重新发送邮件"
                  "（主题：CA解锁+公司名称）：", *todo]
        if received:
            lines += ["", "已收到的材料：", *received]
    if materials.problems:
        lines += ["", "以下附件未能使用：", *(f"- {p}" for p in materials.problems)]
    lines += ["", "三份材料均须加盖单位公章。", "", "（本邮件由系统自动发送。）"]
    return mask_personal_numbers("\n".join(lines))
