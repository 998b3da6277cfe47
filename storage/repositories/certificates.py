"""Certificates the CA issued, the expiry reminders sent for them, and the signed CRLs."""

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.cluster import serialise
from storage.models import Certificate, CertificateEvent, CertificateReminder, Crl


class Certificates:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_serial(self, serial: str) -> Certificate | None:
        """``serial`` in the stored form (``normalise_serial``)."""
        return await self.session.scalar(select(Certificate).where(Certificate.serial == serial))

    async def locked(self, cert_id: int) -> Certificate | None:
        """The certificate, locked until the transaction ends."""
        return await self.session.get(Certificate, cert_id, with_for_update=True)

    async def on_token(self, token_serial: str) -> Sequence[Certificate]:
        """Every certificate issued onto one UKEY (a renewal keeps the UKEY), oldest first."""
        return (await self.session.scalars(
            select(Certificate).where(Certificate.token_serial == token_serial)
            .order_by(Certificate.id))).all()

    def log(self, event: CertificateEvent) -> None:
        """A change of state, written with the change (the caller's transaction)."""
        self.session.add(event)

    async def events(self, cert_id: int) -> Sequence[CertificateEvent]:
        """The certificate's changes of state, oldest first."""
        return (await self.session.scalars(
            select(CertificateEvent).where(CertificateEvent.certificate_id == cert_id)
            .order_by(CertificateEvent.id))).all()

    async def of_company(self, company_id: int) -> Sequence[Certificate]:
        """The company's certificates, the longest-lived first."""
        return (await self.session.scalars(
            select(Certificate).where(Certificate.company_id == company_id)
            .order_by(Certificate.not_after.desc()))).all()

    async def search(self, wanted: str, serial: str, limit: int) -> Sequence[Certificate]:
        """The newest certificates; with ``wanted``, those whose company name contains it or
        whose USCC or UKEY serial it is, or whose serial is ``serial`` (``wanted`` in stored
        form)."""
        query = select(Certificate).order_by(Certificate.created_at.desc()).limit(limit)
        if wanted:
            query = query.where(Certificate.subject_name.contains(wanted)
                                | (Certificate.uscc == wanted.upper())
                                | (Certificate.serial == serial)
                                | (Certificate.token_serial == wanted))
        return (await self.session.scalars(query)).all()

    async def in_status(self, statuses: Collection[str]) -> Sequence[Certificate]:
        return (await self.session.scalars(select(Certificate).where(
            Certificate.status.in_(statuses)))).all()

    async def last_status_change(self) -> datetime | None:
        """When a certificate last changed state (held, released, revoked, superseded)."""
        return await self.session.scalar(select(func.max(Certificate.status_changed_at)))

    async def expiring(self, status: str, after: datetime,
                       until: datetime) -> Sequence[Certificate]:
        """Certificates in ``status`` whose end lies in (after, until]."""
        return (await self.session.scalars(select(Certificate).where(
            Certificate.status == status, Certificate.not_after > after,
            Certificate.not_after <= until))).all()

    async def reminded_days(self, cert_id: int) -> Sequence[int]:
        """The thresholds (days before expiry) already reminded of."""
        return (await self.session.scalars(select(CertificateReminder.days_before).where(
            CertificateReminder.certificate_id == cert_id))).all()


class Crls:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def last_number(self) -> int:
        """The highest CRL number signed; 0 before the first."""
        return await self.session.scalar(select(func.max(Crl.number))) or 0

    async def next_number(self) -> int:
        """The number of the CRL this transaction signs. Another process's transaction signing
        one too waits for this one to end (and then reads the number after), so the numbers
        only grow and each CRL lists every change committed before it."""
        await serialise(self.session, "crl numbering")
        return await self.last_number() + 1

    async def newest(self) -> Crl | None:
        return await self.session.scalar(select(Crl).order_by(Crl.number.desc()).limit(1))

    async def last_issued_at(self) -> datetime | None:
        return await self.session.scalar(select(func.max(Crl.issued_at)))

    async def prune(self, up_to: int) -> None:
        """Forget the CRLs numbered ``up_to`` and below."""
        await self.session.execute(delete(Crl).where(Crl.number <= up_to))
