"""The certificate office: the CA, the certificates it issued, their holds and revocations, the
CRL (signed on every change and on a schedule, kept in the database and written to a file), and
expiry reminders. The token side of issuing and renewing is in ``certificate_jobs.py``.
"""

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.certificates import (
    ON_CRL,
    CertStatus,
    days_until,
    normalise_serial,
    reminder_due,
)
from bot.domain.order_log import Event
from bot.pki import EmbeddedCA, OrgSubject, RevokedEntry, crl_der
from bot.pki.token_key import TokenKeyRef
from bot.services.filing import note_order
from bot.services.notify import Notice, Notifier
from storage.db import Database, DatabaseUnavailable
from storage.models import (
    Certificate,
    CertificateEvent,
    CertificateReminder,
    Crl,
    Order,
    utcnow,
)
from storage.repositories import Certificates, Crls, Handlers

CRL_PATH = "/pki/crl"  # served by plugins/pki, named in every certificate
CA_PATH = "/pki/ca.crt"
CRLS_KEPT = 200
BACKDATE = timedelta(minutes=5)  # older signed CRLs are pruned; the newest is what counts
# on the order the change was asked in
_LOGGED_AS = {CertStatus.HOLD: Event.CERT_HOLD, CertStatus.ACTIVE: Event.CERT_ACTIVE,
              CertStatus.SUPERSEDED: Event.CERT_ACTIVE, CertStatus.REVOKED: Event.CERT_REVOKED}
HOLDABLE = (CertStatus.ACTIVE, CertStatus.SUPERSEDED)  # valid until the end date: 挂失 holds them
_IN_OFFICE = "cadesk.crl_office"  # session.info: a transaction that signs its own CRL
_CRL_DUE = "cadesk.crl_due"  # session.info: a certificate changed state in it


class CertificateRefused(Exception):
    """``str`` says in Chinese what to do instead; ``field``: the loss form's field it names,
    asked again."""

    def __init__(self, message: str, field: str = "cert_serial") -> None:
        super().__init__(message)
        self.field = field


class CertificateOffice:
    def __init__(self, settings: Settings, db: Database, notifier: Notifier) -> None:
        self.settings = settings
        self.db = db
        self.notifier = notifier
        pki = settings.pki
        self.directory = settings.data_dir / "pki"
        token = (TokenKeyRef(pki.ca_token_module, pki.ca_token_label, pki.ca_key_label)
                 if pki.ca_token_module else None)
        self.ca = EmbeddedCA.open(self.directory, cert_file=pki.ca_cert_file,
                                  key_file=pki.ca_key_file, key_token=token, name=pki.ca_name,
                                  crl_url=pki.crl_url or settings.public_url + CRL_PATH)
        self.crl_file = self.directory / "ca.crl"
        self._crl_lock = asyncio.Lock()

    @property
    def ca_der(self) -> bytes:
        return self.ca.certificate.public_bytes(Encoding.DER)

    # --- issuing ------------------------------------------------------------------------------
    def issue(self, session: AsyncSession, order: Order, csr_der: bytes, token_serial: str,
              not_after: datetime, replaces: Certificate | None = None) -> Certificate:
        """Sign the UKEY's request for the order's company (name and USCC from its profile, not
        from the request) and record it on the order; the caller's transaction keeps both."""
        now = utcnow()
        company = order.company
        # a little backdated: a relying party whose clock runs slow must not see "not yet valid"
        cert = self.ca.issue(csr_der, OrgSubject(company.name, company.uscc),
                             now - BACKDATE, not_after)
        row = Certificate(serial=f"{cert.serial_number:x}", company_id=company.id,
                          order_id=order.id, token_serial=token_serial,
                          subject_name=company.name, uscc=company.uscc,
                          not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                          der=cert.public_bytes(Encoding.DER), status=CertStatus.ACTIVE,
                          replaces_id=replaces.id if replaces else None)
        if replaces is not None:
            replaces.status, replaces.status_changed_at = CertStatus.SUPERSEDED, now
        session.add(row)
        order.token_serial, order.certificate_serial = token_serial, row.serial
        logger.info(f"certificate {row.serial} issued for company #{company.id} "
                    f"on token {token_serial}, order {order.number}")
        return row

    # --- reading ------------------------------------------------------------------------------
    async def by_serial(self, session: AsyncSession, serial: str) -> Certificate | None:
        return await Certificates(session).by_serial(normalise_serial(serial))

    async def of_company(self, company_id: int) -> Sequence[Certificate]:
        async with self.db.transaction() as session:
            return await Certificates(session).of_company(company_id)

    async def search(self, wanted: str, limit: int = 20) -> Sequence[Certificate]:
        async with self.db.transaction() as session:
            return await Certificates(session).search(wanted, normalise_serial(wanted), limit)

    def describe(self, cert: Certificate, *, company: bool = False) -> str:
        tz = self.settings.tz
        who = f"{cert.subject_name} " if company else ""
        return (f"{who}证书序列号 {cert.serial}，UKEY 卡号 {cert.token_serial}，"
                f"有效期至 {cert.not_after.astimezone(tz):%Y-%m-%d}，"
                f"{CertStatus(cert.status).label}")

    # --- holds and revocations ------------------------------------------------------------------
    def change_status(self, session: AsyncSession, cert: Certificate, status: CertStatus, *,
                      order: Order | None, actor: str, reason: str | None = None,
                      why: str | None = None) -> None:
        """Hold, release or revoke in the caller's transaction, which must be
        ``office.transaction()``: the CRL that lists the change is signed and stored in the same
        commit. Logged as a certificate event with ``actor`` and ``why`` (the person's words;
        ``reason`` is the CRL's reason of a revocation). A revoked certificate stays revoked; a
        held one is released to what it was (``ACTIVE``, or ``SUPERSEDED`` when renewed)."""
        if not session.info.get(_IN_OFFICE):  # a change committed without its CRL: never
            raise RuntimeError("change_status outside CertificateOffice.transaction()")
        before = CertStatus(cert.status)
        if before is CertStatus.REVOKED:
            raise CertificateRefused(f"证书 {cert.serial} 已吊销，不能再变更。")
        if status is CertStatus.HOLD and before not in HOLDABLE:
            raise CertificateRefused(f"证书 {cert.serial} 目前{before.label}，不能挂失。")
        if status in HOLDABLE and before is not CertStatus.HOLD:
            raise CertificateRefused(f"证书 {cert.serial} 目前{before.label}，不需要解挂。")
        cert.status, cert.status_changed_at = status, utcnow()
        session.info[_CRL_DUE] = True
        cert.revocation_reason = (
            "certificate_hold" if status is CertStatus.HOLD
            else reason if status is CertStatus.REVOKED else None)
        Certificates(session).log(CertificateEvent(
            certificate_id=cert.id, order_id=order.id if order else None, at=cert.status_changed_at,
            actor=actor, from_status=before, to_status=status, reason=why))
        if order is not None:
            note_order(session, order, actor, _LOGGED_AS[status],
                       reason=f"证书 {cert.serial}：{before.label} → {status.label}",
                       detail={"certificate": cert.serial})
        logger.warning(f"certificate {cert.serial}: {before} → {status} by {actor}")

    async def hold_ukey(self, session: AsyncSession, cert: Certificate, *, order: Order | None,
                        actor: str, why: str | None = None) -> list[Certificate]:
        """挂失: ``cert`` and every other still valid certificate on its UKEY (after a 续期 the
        replaced one has the same key and is valid for months) go on hold. Refused, with
        nothing held, when ``cert`` itself cannot be."""
        self.change_status(session, cert, CertStatus.HOLD, order=order, actor=actor, why=why)
        held = [cert]
        now = utcnow()
        for other in await Certificates(session).on_token(cert.token_serial):
            if (other.id != cert.id and other.company_id == cert.company_id
                    and other.status in HOLDABLE and other.not_after > now):
                self.change_status(session, other, CertStatus.HOLD, order=order, actor=actor,
                                   why=why)
                held.append(other)
        return held

    async def release_ukey(self, session: AsyncSession, cert: Certificate, *,
                           order: Order | None, actor: str) -> list[Certificate]:
        """解挂: every certificate held on ``cert``'s UKEY (a 挂失 holds them together) returns
        to what it was: the renewed one superseded, the current one active."""
        if cert.status != CertStatus.HOLD:
            raise CertificateRefused(f"证书 {cert.serial} 目前{CertStatus(cert.status).label}，"
                                     "不需要解挂。")
        on_key = await Certificates(session).on_token(cert.token_serial)
        replaced = {c.replaces_id for c in on_key if c.replaces_id is not None}
        released = [c for c in on_key
                    if c.company_id == cert.company_id and c.status == CertStatus.HOLD]
        for c in released:
            back = CertStatus.SUPERSEDED if c.id in replaced else CertStatus.ACTIVE
            self.change_status(session, c, back, order=order, actor=actor)
        return released

    async def events(self, cert: Certificate) -> Sequence[CertificateEvent]:
        async with self.db.transaction() as session:
            return await Certificates(session).events(cert.id)

    # --- the CRL ------------------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A transaction in which certificates may be held, released or revoked. If one was, a
        CRL listing it is signed and stored in the same commit, so the served CRL (the newest
        row) is never behind the database; the file follows after the commit. CRLs are signed
        one transaction at a time (their numbers only grow, the newest lists every change)."""
        async with self._crl_lock:
            async with self.db.transaction() as session:
                session.info[_IN_OFFICE] = True
                try:
                    yield session
                    der = await self._sign(session) if session.info.get(_CRL_DUE) else None
                finally:
                    session.info.pop(_IN_OFFICE, None)
                    session.info.pop(_CRL_DUE, None)
            if der is not None:
                await self._write_file(der)

    async def _sign(self, session: AsyncSession) -> bytes:
        """Sign a new CRL of every held and revoked certificate as the session sees them, and
        add it to the session (the caller holds ``_crl_lock``)."""
        await session.flush()
        crls = Crls(session)
        number = await crls.next_number()  # first: then every change committed elsewhere is read
        rows = await Certificates(session).in_status(ON_CRL)
        entries = [RevokedEntry(int(r.serial, 16), r.status_changed_at or r.created_at,
                                x509.ReasonFlags[r.revocation_reason or "unspecified"])
                   for r in rows]
        now = utcnow()
        hours = self.settings.pki.crl_hours
        crl = self.ca.crl(entries, number, now, now + timedelta(hours=2 * hours))
        der = crl_der(crl)
        session.add(Crl(number=number, issued_at=now, next_update=crl.next_update_utc, der=der))
        await crls.prune(up_to=number - CRLS_KEPT)
        logger.info(f"CRL {number} signed with {len(entries)} entries")
        return der

    async def _write_file(self, der: bytes) -> None:
        """After the commit: ``ca.crl`` for a web server. A failure here loses nothing: the row
        is served at /pki/crl, and the file is written again at start and by the schedule.
        Processes sharing the data directory ([cluster]) write it one at a time, each the newest
        CRL as it reads it then: none puts back an older CRL over another's newer one."""
        cluster = self.db.cluster
        try:
            async with cluster.hold("crl file"):
                if cluster.shared:
                    async with self.db.transaction() as session:
                        newest = await Crls(session).newest()
                    der = newest.der if newest is not None else der
                await asyncio.to_thread(_write_atomically, self.crl_file, der)
        except (OSError, DatabaseUnavailable) as error:
            logger.error(f"writing {self.crl_file} failed ({error}); /pki/crl serves the CRL")

    async def publish_crl(self) -> bytes:
        """Sign a new CRL of every held and revoked certificate, keep it and write the file."""
        async with self._crl_lock:
            async with self.db.transaction() as session:
                der = await self._sign(session)
            await self._write_file(der)
        return der

    async def recover_crl(self) -> str | None:
        """At start: a certificate changed state after the newest CRL was signed (a change
        from before CRLs were signed in its transaction) → a new CRL; the file missing or not
        the newest CRL (the bot stopped between the commit and the write) → written again.
        Says what it did, None when all was in order."""
        async with self._crl_lock:
            async with self.db.transaction() as session:
                newest = await Crls(session).newest()
                changed = await Certificates(session).last_status_change()
                if newest is None and changed is None:
                    return None  # nothing held or revoked yet: /pki/crl signs the first
                if newest is None or (changed is not None and changed > newest.issued_at):
                    der, what = await self._sign(session), "signed anew"
                else:
                    der, what = newest.der, "written again"
            try:
                on_disk = await asyncio.to_thread(self.crl_file.read_bytes)
            except OSError:
                on_disk = None
            if on_disk == der and what == "written again":
                return None
            await self._write_file(der)
        logger.warning(f"CRL behind the database at start: {what}")
        return what

    async def current_crl(self) -> bytes:
        async with self.db.transaction() as session:
            newest = await Crls(session).newest()
        if newest is None or newest.next_update <= utcnow():
            return await self.publish_crl()
        return newest.der

    async def refresh_crl(self) -> None:
        """The schedule: a new CRL once the newest is ``crl_hours`` old."""
        async with self.db.transaction() as session:
            newest = await Crls(session).last_issued_at()
        if newest is None or utcnow() - newest >= timedelta(hours=self.settings.pki.crl_hours):
            await self.publish_crl()

    # --- expiry reminders -----------------------------------------------------------------------
    async def send_reminders(self) -> int:
        """Tell each company's handlers (chat, and mail when known) that a certificate expires
        in 30, 7 or 1 days (``[pki] reminder_days``). Each threshold once per certificate: the
        reminder is recorded in the same transaction as its mail, before the chat message."""
        now = utcnow()
        days = self.settings.pki.reminder_days
        horizon = now + timedelta(days=max(days, default=0) + 1)
        sent = 0
        async with self.db.transaction() as session:
            certs = await Certificates(session).expiring(CertStatus.ACTIVE, now, horizon)
            ids = [c.id for c in certs]
        for cert_id in ids:
            sent += await self._remind(cert_id, now, days)
        return sent

    async def _remind(self, cert_id: int, now: datetime, days: list[int]) -> int:
        async with self.db.transaction() as session:
            certificates = Certificates(session)
            cert = await certificates.locked(cert_id)
            if cert is None or cert.status != CertStatus.ACTIVE:
                return 0
            already = await certificates.reminded_days(cert.id)
            due = reminder_due(cert.not_after, now, days, already)
            if due is None:
                return 0
            threshold, settled = due
            for d in settled:
                if d not in already:
                    session.add(CertificateReminder(certificate_id=cert.id, days_before=d))
            handlers = await Handlers(session).of_company(cert.company_id)
            text = self._reminder_text(cert, now)
            subject = f"CA 证书将于 {days_until(cert.not_after, now)} 天后到期"
            # the reminder and its record together: each is sent once, and surely
            await self.notifier.notify_handlers(session, handlers, Notice([text], subject, text))
        await self.notifier.deliver()
        logger.info(f"expiry reminder ({threshold} days) for certificate {cert.serial} "
                    f"queued for {len(handlers)} handler(s)")
        return 1

    def _reminder_text(self, cert: Certificate, now: datetime) -> str:
        left = days_until(cert.not_after, now)
        until = cert.not_after.astimezone(self.settings.tz)
        return (f"提醒：【{cert.subject_name}】的 CA 数字证书（UKEY 卡号 {cert.token_serial}，"
                f"证书序列号 {cert.serial}）将于 {until:%Y-%m-%d %H:%M} 到期，还剩 {left} 天。\n"
                "到期后将无法用于投标。续期方法：把 UKEY 插在已绑定密钥代理的电脑上，运行"
                "「cadesk-agent run」，然后在这里发送「续期」，按提示确认并支付即可，"
                "无需重新提交资料。")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".crl-")
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(tmp, 0o644)  # the CRL is public
    os.replace(tmp, path)
