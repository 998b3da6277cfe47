"""Filing what arrives in the unlock mailbox: a batch of mails, one transaction, a savepoint
per mail.

Each mail's log row (Message-ID, unique), its order, its scans' rows, its automatic reply and
staff notice are one savepoint; the batch's savepoints, the scan directories' sync and the
folder's last UID are committed together. A crash before the commit leaves nothing of the
batch, and it is fetched again; a mail seen again after the commit (a lost UID state, a new
UIDVALIDITY, a copy in another folder) finds its Message-ID and is filed no second time.

No one mail can stop the mailbox: whatever fails while reading, checking or filing it (the
reader, Pillow inside the scan check, the database refusing a value) rolls back that mail's
savepoint only — on PostgreSQL a refused statement would otherwise abort the whole batch — and
sets it aside for a person, with the reason; the batch goes on with the next mail. Only an
outage (``DatabaseUnavailable``) stops the poll: then the batch is fetched again later.
"""

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.fields import Field, FieldKind
from bot.domain.forms import UNLOCK
from bot.domain.lifecycle import OrderType
from bot.domain.masking import mask_personal_numbers
from bot.domain.scans import MAIL_FORMATS, InvalidScan, ScanInfo, ScanRules, accept_scan
from bot.domain.stored_text import (
    ACTOR_CHARS,
    ADDRESS_CHARS,
    MAILBOX_CHARS,
    SUBJECT_CHARS,
    TEXT_CHARS,
    clean,
)
from bot.domain.unlock_mail import InboundMail, assign_materials, read_mail, unreadable
from bot.services.filing import file_order
from bot.services.notify import Notifier, staff_notice
from bot.services.ports import MailQueue, ScanStorage
from storage.db import Database, is_outage
from storage.models import InboundMail as InboundMailRow
from storage.models import utcnow
from storage.repositories import Companies, Mailboxes

FILED, INCOMPLETE, FOR_HUMANS, DUPLICATE = "filed", "incomplete", "for_humans", "duplicate"
MATERIALS = [f for f in UNLOCK.fields if f.kind is FieldKind.SCAN]
REPLY_SUBJECT = "Re: CA数字证书解锁申请"  # never the incoming subject: see _reply


@dataclass
class Filing:
    outcome: str  # filed / incomplete / for_humans / duplicate
    reason: str = ""
    order_number: str | None = None
    company: str = ""  # the name the filed order goes by
    registered: bool = True  # False: the USCC is not on record yet (单位未登记)
    earlier_for_humans: bool = False  # a duplicate of a mail that was set aside for a person

    @property
    def for_humans(self) -> bool:
        return self.outcome == FOR_HUMANS or self.earlier_for_humans


class SetAside(Exception):
    """This mail goes to a person: ``str(error)`` says why, in Chinese."""


@dataclass
class Materials:
    found: dict[str, tuple[ScanInfo, bytes, str]]  # slot → checked scan, bytes, file name
    problems: list[str]  # what was wrong with the attachments that could not be used
    set_aside: str | None = None  # a check crashed on an attachment: for a person, why

    def missing(self) -> list[Field]:
        return [f for f in MATERIALS if f.key not in self.found]


@dataclass
class Read:
    """A fetched mail, parsed and its scans checked: what a batch files."""
    uid: int
    mail: InboundMail
    materials: Materials | None  # None: too large to fetch
    too_large: bool = False


# the scan check is Pillow's decode, which lets go of the GIL: a batch's mails are read on all
# cores (threads, not processes: no pickling megabytes of attachments back, and no fork of a
# process that runs the database's thread); measured in bench/ (docs/mailbox.md)
_READERS = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="mail-reader")


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
        try:
            await self.notifier.tell_staff(self._for_humans(row.reason or "", row.sender,
                                                            row.subject))
        except Exception as error:  # a chat that fails must not stop the mailbox
            logger.opt(exception=error).warning("the technicians could not be told in chat")
        return True

    async def _queue_for_humans(self, session: AsyncSession, reason: str,
                                mail: InboundMail) -> None:
        await self.notifier.notify_staff(
            session, self._for_humans(reason, mail.sender_shown, mail.subject))

    def _for_humans(self, reason: str, sender: str, subject: str) -> str:
        sender = clean(sender, ADDRESS_CHARS) or "（无发件人）"
        return (f"解锁邮箱有一封邮件需要人工处理（{clean(reason, 200)}）："
                f"来自 {sender}，主题「{clean(subject, 100)}」。"
                f"已移到「{self.settings.mailbox.human_folder}」文件夹。")

    async def read(self, mailbox: str, uid: int, raw: bytes, *,
                   too_large: bool = False) -> Read:
        """Parse a fetched mail and check its scans (``raw`` is only its header when it was too
        large to fetch), in the reader pool: off the event loop, and several mails at once.
        Never raises: what cannot be read or checked is marked for a person."""
        mail, materials = await asyncio.get_running_loop().run_in_executor(
            _READERS, self._read, mailbox, uid, raw, too_large)
        return Read(uid, mail, materials, too_large)

    async def file(self, mailbox: str, uidvalidity: int, uid: int, raw: bytes, *,
                   too_large: bool = False) -> Filing:
        """Read and file one fetched mail: a batch of one."""
        read = await self.read(mailbox, uid, raw, too_large=too_large)
        [filing] = await self.file_batch(mailbox, uidvalidity, [read])
        return filing

    async def file_batch(self, mailbox: str, uidvalidity: int,
                         reads: Sequence[Read]) -> list[Filing]:
        """File mails read from one folder, oldest first, in one transaction; each mail in a
        savepoint of its own, so one that fails rolls back alone and goes to a person. Raises
        only on an outage (``DatabaseUnavailable``) or a scan directory that cannot be
        synced: then nothing of the batch is kept, and it is fetched again."""
        filings: list[Filing] = []
        if not reads:
            return filings
        async with self.db.transaction() as session:
            # the batch's write first: on SQLite it takes the write lock before any read
            await Mailboxes(session).advance(mailbox, uidvalidity, reads[-1].uid)
            directories: list[Path] = []
            for read in reads:
                filings.append(await self._file_one(session, mailbox, read, directories))
            # the scans' new names are durable before the rows naming them: one sync each
            await asyncio.to_thread(self.scans.sync_directories, directories)
        self.outbox.wake()  # the replies queued with the batch
        try:
            await self.notifier.deliver()  # the staff notices queued with the batch
        except Exception as error:  # a chat that fails must not stop the mailbox
            logger.opt(exception=error).warning("the technicians could not be told in chat")
        for read, filing in zip(reads, filings, strict=True):
            logger.info(f"mail {read.uid} from {read.mail.sender_shown}: {filing.outcome} "
                        f"{filing.reason}")
        return filings

    async def _file_one(self, session: AsyncSession, mailbox: str, read: Read,
                        directories: list[Path]) -> Filing:
        """One mail of a batch, all or nothing: its savepoint is released, or rolled back and
        the mail set aside in another."""
        written: list[Path] = []
        try:
            async with session.begin_nested():
                filing = await self._file(session, mailbox, read, written)
            directories += written
            return filing
        except Exception as error:  # rolled back; the mail goes to a person, the rest flows
            if is_outage(error):
                raise  # not this mail's fault: the batch is fetched again once it is back
            logger.opt(exception=error).error(f"mail {read.uid} in {mailbox} could not be filed")
            reason = str(error) if isinstance(error, SetAside) else (
                f"无法登记，已回滚（{_kind(error)}）")
            return await self._set_aside(session, mailbox, read, reason)

    async def _file(self, session: AsyncSession, mailbox: str, read: Read,
                    written: list[Path]) -> Filing:
        """The mail's savepoint: its row, order, scans, reply and staff notice."""
        boxes, mail, materials = Mailboxes(session), read.mail, read.materials
        if (earlier := await self._seen(boxes, mailbox, read.uid, mail)) is not None:
            return earlier
        if materials is not None and materials.set_aside:
            raise SetAside(materials.set_aside)
        filing, order = await self._decide(session, mail, materials, read.too_large, written)
        replied = await self._reply(session, mail, filing, materials)
        session.add(_row(mailbox, read.uid, mail, filing,
                         order_id=order.id if order else None, replied=replied))
        if order is not None:
            await self.notifier.notify_staff(session, staff_notice(order, None))
        elif filing.outcome == FOR_HUMANS:
            await self._queue_for_humans(session, filing.reason, mail)
        return filing

    async def _seen(self, boxes: Mailboxes, mailbox: str, uid: int,
                    mail: InboundMail) -> Filing | None:
        """A mail handled before: not filed again. The same Message-ID with other content is
        not that mail (a replay, or a client reusing ids): for a person, once."""
        earlier = await boxes.by_message_id(mail.message_id)
        if earlier is None:
            return None
        if earlier.content_sha256 in (None, mail.digest):
            logger.info(f"mail {mail.message_id} was handled before")
            return Filing(DUPLICATE, earlier_for_humans=earlier.outcome == FOR_HUMANS)
        replay = await boxes.by_message_id(_replay_id(mail))
        if replay is not None:
            return Filing(DUPLICATE, earlier_for_humans=True)
        filing = Filing(FOR_HUMANS, "Message-ID 与此前的另一封邮件相同，内容却不同")
        boxes.session.add(_row(mailbox, uid, mail, filing, message_id=_replay_id(mail)))
        await self._queue_for_humans(boxes.session, filing.reason, mail)
        return filing

    async def _set_aside(self, session: AsyncSession, mailbox: str, read: Read,
                         reason: str) -> Filing:
        """Record that this mail went to a person and why, in a savepoint of its own (the
        mail's was rolled back). If even that fails, the mail still goes to a person and the
        UID still advances with the batch."""
        filing, mail = Filing(FOR_HUMANS, reason), read.mail
        try:
            async with session.begin_nested():
                taken = await Mailboxes(session).by_message_id(mail.message_id) is not None
                session.add(_row(mailbox, read.uid, mail, filing,
                                 message_id=_replay_id(mail) if taken else None))
                await self._queue_for_humans(session, reason, mail)
        except Exception as error:
            if is_outage(error):
                raise
            logger.opt(exception=error).error(f"mail {read.uid} in {mailbox}: no record kept")
        return filing

    # --- deciding ---------------------------------------------------------------------------
    async def _decide(self, session: AsyncSession, mail: InboundMail,
                      materials: Materials | None, too_large: bool, written: list[Path]):
        cap = self.settings.mailbox.max_message_megabytes
        if too_large or materials is None:
            return Filing(FOR_HUMANS, f"邮件超过 {cap:g} MB"), None
        if mail.automatic:
            return Filing(FOR_HUMANS, mail.automatic), None
        if mail.refused:
            return Filing(FOR_HUMANS, mail.refused), None
        if mail.company is None:
            return Filing(FOR_HUMANS, "不是解锁申请"), None
        known = await Companies(session).by_uscc(mail.uscc) if mail.uscc else None
        # by the USCC only: a name from outside is a claim, never a key; an unknown USCC
        # needs the claimed name too, to record the company if a technician approves
        identified = known is not None or bool(mail.uscc and mail.company)
        if not identified or materials.missing():
            return Filing(INCOMPLETE, "材料不全" if identified else "无法确认单位"), None
        written += await asyncio.to_thread(self._write_scans, materials)
        # the order keeps what the mail claims; the view flags a name unlike the record's
        values = {"company_name": clean(mail.company or (known.name if known else ""), 100),
                  "uscc": mail.uscc or "", "contact_email": mail.sender,
                  "mail_subject": clean(mail.subject, SUBJECT_CHARS),
                  "mail_body": clean(mail.body, TEXT_CHARS, lines=True)}
        order = await file_order(
            session, self.settings, order_type=OrderType.UNLOCK, values=values,
            scans={slot: info for slot, (info, _, _) in materials.found.items()},
            company_id=known.id if known else None,
            actor=clean(f"email:{mail.sender}", ACTOR_CHARS), channel="email",
            contact_email=mail.sender, source_message_id=mail.message_id)
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
        if too_large:
            return mail, None
        try:
            return mail, self._materials(mail)
        except Exception as error:
            logger.opt(exception=error).warning(f"mail {uid} in {mailbox}: attachments failed")
            return mail, Materials({}, [], set_aside=f"附件无法读取（{_kind(error)}）")

    def _write_scans(self, materials: Materials) -> list[Path]:
        """Each file synced; their directories are synced once for the batch."""
        return [d for info, data, _ in materials.found.values()
                for d in self.scans.write(info.sha256, data)]

    def _materials(self, mail: InboundMail) -> Materials:
        usable, problems = [], []
        for n, attachment in enumerate(mail.files, 1):
            try:
                usable.append((accept_scan(attachment.data, self.rules), attachment, n))
            except InvalidScan as error:
                problems.append(f"第 {n} 个附件：{error}")
            except Exception as error:  # a decoder's bug on odd bytes: a person looks at it
                logger.opt(exception=error).warning(f"the scan check failed on attachment {n}")
                return Materials({}, problems,
                                 set_aside=f"第 {n} 个附件无法检查（{_kind(error)}）")
        slots = assign_materials([a.filename for _, a, _ in usable])
        found = {slot: (usable[i][0].info, usable[i][0].data, f"第 {usable[i][2]} 个附件")
                 for slot, i in slots.items()}
        return Materials(found, problems)

    # --- answering --------------------------------------------------------------------------
    async def _reply(self, session: AsyncSession, mail: InboundMail, filing: Filing,
                     materials: Materials | None) -> bool:
        """Queue the automatic answer, unless that would feed a loop or flood a sender or a
        domain. It goes to the envelope sender, and says nothing the mail said (not even its
        subject): a stranger naming someone else as the sender cannot make the bot mail them
        text of the stranger's choosing."""
        if filing.outcome not in (FILED, INCOMPLETE) or mail.suppress_reply or not mail.sender:
            return False
        box, since = self.settings.mailbox, utcnow() - timedelta(hours=1)
        boxes, domain = Mailboxes(session), mail.sender.rpartition("@")[2]
        if await boxes.replies_since(mail.sender, since) >= box.replies_per_sender_per_hour:
            logger.warning(f"no automatic reply to {mail.sender}: its hourly cap is reached")
            return False
        if await boxes.replies_to_domain_since(domain, since) >= box.replies_per_domain_per_hour:
            logger.warning(f"no automatic reply to {mail.sender}: the cap of {domain} is reached")
            return False
        assert materials is not None
        body = _reply_text(filing, materials)
        await self.outbox.enqueue(session, mail.sender, REPLY_SUBJECT, body, headers={
            "In-Reply-To": mail.message_id, "References": mail.references,
            "Auto-Submitted": "auto-replied"})
        return True


def _kind(error: Exception) -> str:
    """What went wrong, for the technicians: the exception's type, never its text (a driver's
    message may quote the mail's values)."""
    kind = type(error)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


def _replay_id(mail: InboundMail) -> str:
    """The log's key for a mail that reused another mail's Message-ID: by its content."""
    return f"<{mail.digest}@reused-message-id.invalid>"


def _row(mailbox: str, uid: int, mail: InboundMail, filing: Filing, *,
         message_id: str | None = None, order_id: int | None = None,
         replied: bool = False) -> InboundMailRow:
    """The mail's log row, every value cleaned and clipped to its column."""
    return InboundMailRow(
        message_id=message_id or mail.message_id, mailbox=clean(mailbox, MAILBOX_CHARS),
        uid=uid, sender=mail.sender or clean(mail.sender_shown, ADDRESS_CHARS),
        subject=clean(mail.subject, TEXT_CHARS), outcome=filing.outcome,
        reason=clean(filing.reason, TEXT_CHARS) or None, order_id=order_id, replied=replied,
        content_sha256=mail.digest)


def _reply_text(filing: Filing, materials: Materials) -> str:
    received = [f"- {f.title}：{materials.found[f.key][2]}" for f in MATERIALS
                if f.key in materials.found]
    lines = ["您好，", ""]
    if filing.outcome == FILED:
        # the name on record; an unregistered company's is what the mail claims: not echoed
        company = f"【{filing.company}】" if filing.registered else "贵单位"
        lines += [f"我们已收到{company}的 CA 数字证书解锁申请，订单号：{filing.order_number}。",
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
