"""E-mail notifications: queued in the database in the same transaction as the change they report,
sent by a background worker with aiosmtplib, retried with exponential backoff. The chat never
waits for the mail server."""

from collections.abc import Sequence
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.periodic import Periodic
from bot.config import EmailSection
from bot.services.messages import MailAttachment
from bot.services.ports import ScanStorage
from storage.db import Database
from storage.models import OutgoingMail, utcnow
from storage.repositories import OutgoingMails

BATCH = 20


class MailOutbox:
    def __init__(self, db: Database, settings: EmailSection,
                 files: ScanStorage | None = None) -> None:
        self.db = db
        self.settings = settings
        self.files = files  # where attachments are kept (the scan store)
        self._worker = Periodic("mail outbox", self.send_due, settings.poll_seconds)

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def enqueue(self, session: AsyncSession, to: str, subject: str, body: str, *,
                      order_id: int | None = None, headers: dict[str, str] | None = None,
                      attachments: Sequence[MailAttachment] = ()) -> None:
        """Queue a mail inside the caller's transaction; call ``wake`` after it commits."""
        if not self.enabled:
            return
        session.add(OutgoingMail(to_address=to, subject=subject, body=body, headers=headers,
                                 order_id=order_id,
                                 attachments=[a.to_json() for a in attachments] or None))

    def wake(self) -> None:
        self._worker.wake()

    def start(self) -> None:
        if self.enabled:
            self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()

    async def send_due(self) -> int:
        """Send what is due now; returns how many were sent. One pass at a time among the
        processes sharing the database ([cluster]): a mail is sent by one of them, once."""
        async with self.db.cluster.hold("mail outbox"):
            return await self._send_due()

    async def _send_due(self) -> int:
        async with self.db.transaction() as session:
            due = await OutgoingMails(session).due(utcnow(), BATCH)
        sent = 0
        for mail in due:
            error = await self._send(mail)
            async with self.db.transaction() as session:
                row = await OutgoingMails(session).get(mail.id)
                assert row is not None
                row.attempts += 1
                if error is None:
                    row.sent_at, row.last_error = utcnow(), None
                    sent += 1
                    continue
                row.last_error = error
                if row.attempts >= self.settings.max_attempts:
                    row.failed_at = utcnow()
                    logger.error(f"mail #{row.id} given up after {row.attempts} attempts: {error}")
                else:
                    wait = self.settings.retry_seconds * 2 ** (row.attempts - 1)
                    row.next_attempt_at = utcnow() + timedelta(seconds=wait)
                    logger.warning(f"mail #{row.id} failed ({error}); retry in {wait:.0f}s")
        return sent

    def message(self, mail: OutgoingMail) -> EmailMessage:
        s = self.settings
        message = EmailMessage()
        message["From"] = Address(s.from_name, addr_spec=s.from_address)
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(mail.created_at)
        message["Message-ID"] = make_msgid(domain=s.from_address.rpartition("@")[2])
        headers = {"Auto-Submitted": "auto-generated", **(mail.headers or {})}
        for name, value in headers.items():  # RFC 3834: nobody auto-replies to these
            message[name] = value
        message.set_content(mail.body, charset="utf-8")
        for attachment in mail.attachments or []:
            if self.files is None:
                raise OSError("no file store for this mail's attachments")
            maintype, _, subtype = attachment["content_type"].partition("/")
            message.add_attachment(self.files.read(attachment["sha256"]), maintype=maintype,
                                   subtype=subtype, filename=attachment["filename"])
        return message

    async def _send(self, mail: OutgoingMail) -> str | None:
        s = self.settings
        try:
            await aiosmtplib.send(
                self.message(mail), hostname=s.host, port=s.port,
                username=s.username or None, password=s.password or None,
                use_tls=s.security == "tls", start_tls=s.security == "starttls",
                cert_bundle=str(s.ca_file) if s.ca_file else None,
                timeout=s.timeout_seconds)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            return f"{type(error).__name__}: {error}"
        logger.info(f"mail #{mail.id} sent")
        return None
