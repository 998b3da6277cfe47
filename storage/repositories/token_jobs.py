"""Token jobs: what was sent to a key agent, for which order, and how it ended."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import TokenJob

OPEN = ("queued", "sent")  # then done, failed or expired


class TokenJobs:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, job_id: str) -> TokenJob | None:
        return await self.session.get(TokenJob, job_id)

    async def locked(self, job_id: str) -> TokenJob | None:
        """The job, its row locked until the transaction ends: its result and its expiry, from
        whichever process, are written one after the other."""
        return await self.session.get(TokenJob, job_id, with_for_update=True)

    async def of_order(self, order_id: int) -> Sequence[TokenJob]:
        """The order's jobs, oldest first."""
        return (await self.session.scalars(select(TokenJob).where(
            TokenJob.order_id == order_id).order_by(TokenJob.created_at))).all()

    async def open_for_order(self, order_id: int, now: datetime) -> bool:
        """Whether the order has a job still open and not expired."""
        return await self.session.scalar(select(TokenJob).where(
            TokenJob.order_id == order_id, TokenJob.status.in_(OPEN),
            TokenJob.expires_at > now)) is not None

    async def due_for_agents(self, company_id: int | None, now: datetime) -> Sequence[TokenJob]:
        """The open, unexpired jobs for a company's agents, or for the service hall's when
        ``company_id`` is None, oldest first; locked until the transaction ends, after any
        other process handing them out now (PostgreSQL: a job is given to one agent, by one
        process, and then read as sent)."""
        whose = (TokenJob.hall.is_(True) if company_id is None
                 else (TokenJob.company_id == company_id) & TokenJob.hall.is_(False))
        return (await self.session.scalars(
            select(TokenJob).where(whose, TokenJob.status.in_(OPEN), TokenJob.expires_at > now)
            .order_by(TokenJob.created_at).with_for_update())).all()

    async def overdue(self, now: datetime) -> Sequence[TokenJob]:
        """Open jobs whose time is up, locked until the transaction ends; one that another
        process is writing now (its result, another sweep) is left for the next sweep."""
        return (await self.session.scalars(select(TokenJob).where(
            TokenJob.status.in_(OPEN), TokenJob.expires_at <= now)
            .with_for_update(skip_locked=True))).all()
